/*
 * argon2_time N [P]: times N password hashes made by lib/password.c, the
 * app's own code and parameters (argon2id, m=19 MiB, t=2, p=1), one
 * after the other, in each of P threads at once (default 1), and prints
 * the median in milliseconds.  bench/run.pl divides the cores by the
 * time of one hash alone: the ceiling of sign-ins per second, since each
 * sign-in verifies one hash of the same cost.  With P = the cores, it
 * shows what hashing on every core at once costs each hash (they share
 * the last-level cache and the memory bus).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "lib/password.h"

#define MAX_RUNS	200
#define MAX_THREADS	64

static int n;

static int
cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Fills ms[0..n) with the times of n hashes. */
static void *
hashes(void *arg)
{
	double *ms = arg;
	struct timespec t0, t1;
	char out[256];
	int i;

	for (i = 0; i < n; i++) {
		clock_gettime(CLOCK_MONOTONIC, &t0);
		if (password_hash("correct horse battery staple", out,
		    sizeof(out)) != PASSWORD_MATCH) {
			fprintf(stderr, "argon2_time: password_hash failed\n");
			exit(1);
		}
		clock_gettime(CLOCK_MONOTONIC, &t1);
		ms[i] = (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
		    (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	}
	return NULL;
}

int
main(int argc, char *argv[])
{
	static double ms[MAX_THREADS * MAX_RUNS];
	pthread_t tid[MAX_THREADS];
	int i, p, all;

	n = argc > 1 ? atoi(argv[1]) : 20;
	p = argc > 2 ? atoi(argv[2]) : 1;
	if (n < 1 || n > MAX_RUNS || p < 1 || p > MAX_THREADS) {
		fprintf(stderr, "usage: argon2_time [1-%d [1-%d]]\n",
		    MAX_RUNS, MAX_THREADS);
		return 2;
	}
	password_init(p);
	for (i = 0; i < p; i++)
		if (pthread_create(&tid[i], NULL, hashes, &ms[i * n]) != 0) {
			fprintf(stderr, "argon2_time: pthread_create failed\n");
			return 1;
		}
	for (i = 0; i < p; i++)
		pthread_join(tid[i], NULL);
	all = n * p;
	qsort(ms, (size_t)all, sizeof(ms[0]), cmp);
	printf("%.3f\n", all % 2 ? ms[all / 2] :
	    (ms[all / 2 - 1] + ms[all / 2]) / 2);
	return 0;
}
