#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "credits.h"
#include "janitor.h"
#include "sql.h"
#include "lib/log.h"

static pthread_t	 thread;
static pthread_mutex_t	 mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t	 cv;
static bool		 stop;

/* Runs a purge statement with a count of days; logs what it removed. */
static void
purge(struct db *d, enum stmt s, long long days, const char *what)
{
	char n[24];
	const char *count;
	struct db_err err;
	PGresult *res;

	snprintf(n, sizeof(n), "%lld", days);
	if ((res = db_exec(d, s, ARGS(n), &err)) == NULL)
		return;
	/* A DELETE's count, or a statement's one row that says it. */
	count = PQntuples(res) == 1 && PQnfields(res) == 1 ?
	    PQgetvalue(res, 0, 0) : PQcmdTuples(res);
	if (strcmp(count, "0") != 0)
		log_info("janitor: deleted %s %s", count, what);
	PQclear(res);
}

static void
round_once(void)
{
	struct db_err err;
	struct db *d;
	PGresult *res;

	if ((d = db_acquire(&err)) == NULL)
		return;
	credits_sweep(d);
	purge(d, STMT_OUTBOX_PURGE, conf.mail_retention_days,
	    "sent or dead mails");
	purge(d, STMT_PENDING_PURGE, conf.pending_days,
	    "sign-ups never verified");
	if ((res = db_exec(d, STMT_RATE_PURGE, NO_ARGS, &err)) != NULL)
		PQclear(res);
	if ((res = db_exec(d, STMT_STATS_FOLD, NO_ARGS, &err)) != NULL)
		PQclear(res);
	db_release(d);
}

static void *
janitor_main(void *arg)
{
	struct timespec at;

	(void)arg;
	pthread_mutex_lock(&mu);
	while (!stop) {
		clock_gettime(CLOCK_MONOTONIC, &at);
		at.tv_sec += conf.sweep_ms / 1000;
		at.tv_nsec += (conf.sweep_ms % 1000) * 1000000L;
		if (at.tv_nsec >= 1000000000L) {
			at.tv_sec++;
			at.tv_nsec -= 1000000000L;
		}
		while (!stop && pthread_cond_timedwait(&cv, &mu, &at) == 0)
			;
		if (stop)
			break;
		pthread_mutex_unlock(&mu);
		round_once();
		pthread_mutex_lock(&mu);
	}
	pthread_mutex_unlock(&mu);
	return NULL;
}

int
janitor_start(void)
{
	pthread_condattr_t ca;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&cv, &ca);
	pthread_condattr_destroy(&ca);
	stop = false;
	return pthread_create(&thread, NULL, janitor_main, NULL) == 0 ? 0 :
	    -1;
}

void
janitor_stop(void)
{
	pthread_mutex_lock(&mu);
	stop = true;
	pthread_cond_signal(&cv);
	pthread_mutex_unlock(&mu);
	pthread_join(thread, NULL);
	pthread_cond_destroy(&cv);
}
