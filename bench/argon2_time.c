/*
 * argon2_time N: times N password hashes made by lib/password.c, the
 * app's own code and parameters (argon2id, m=19 MiB, t=2, p=1), one
 * after the other on one core, and prints the median in milliseconds.
 * bench/run.sh divides the cores by it: the ceiling of sign-ins per
 * second, since each sign-in verifies one hash of the same cost.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "lib/password.h"

#define MAX_RUNS	200

static int
cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

int
main(int argc, char *argv[])
{
	double ms[MAX_RUNS];
	struct timespec t0, t1;
	char out[256];
	int i, n = argc > 1 ? atoi(argv[1]) : 20;

	if (n < 1 || n > MAX_RUNS) {
		fprintf(stderr, "usage: argon2_time [1-%d]\n", MAX_RUNS);
		return 2;
	}
	password_init(1);
	for (i = 0; i < n; i++) {
		clock_gettime(CLOCK_MONOTONIC, &t0);
		if (password_hash("correct horse battery staple", out,
		    sizeof(out)) != PASSWORD_MATCH) {
			fprintf(stderr, "argon2_time: password_hash failed\n");
			return 1;
		}
		clock_gettime(CLOCK_MONOTONIC, &t1);
		ms[i] = (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
		    (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	}
	qsort(ms, (size_t)n, sizeof(ms[0]), cmp);
	printf("%.3f\n", n % 2 ? ms[n / 2] : (ms[n / 2 - 1] + ms[n / 2]) / 2);
	return 0;
}
