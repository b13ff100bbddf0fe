#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "dbbatch.h"
#include "log.h"
#include "metrics.h"
#include "xalloc.h"

/*
 * The lanes every process shares: robust mutexes in shared memory, so a
 * worker killed holding one leaves it to the next taker, not locked.
 */
static struct lanes {
	int		 n;
	pthread_mutex_t	 mu[];
} *shared;

int
db_batch_share(int lanes)
{
	pthread_mutexattr_t a;
	size_t size = sizeof(*shared) + (size_t)lanes * sizeof(shared->mu[0]);
	void *p;
	int i;

	if (lanes < 1)
		return 0;
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
	    -1, 0);
	if (p == MAP_FAILED) {
		log_warn("mmap of the shared read lanes");
		return -1;
	}
	shared = p;
	shared->n = lanes;
	pthread_mutexattr_init(&a);
	pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
	pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
	for (i = 0; i < lanes; i++)
		pthread_mutex_init(&shared->mu[i], &a);
	pthread_mutexattr_destroy(&a);
	return 0;
}

/* True if rc says the lane is ours (its last owner may have died). */
static bool
held(pthread_mutex_t *m, int rc)
{
	if (rc == EOWNERDEAD) {
		log_warnx("a process died holding a shared read lane; "
		    "taking it over");
		rc = pthread_mutex_consistent(m);
	}
	return rc == 0;
}

/*
 * A shared lane, or NULL if there are none or none came within
 * DB_BATCH_LANE_MS (the read then goes without one).
 */
static pthread_mutex_t *
take_lane(void)
{
	struct timespec until;
	pthread_mutex_t *m;
	int i;

	if (shared == NULL)
		return NULL;
	for (i = 0; i < shared->n; i++)
		if (held(&shared->mu[i], pthread_mutex_trylock(&shared->mu[i])))
			return &shared->mu[i];
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_nsec += DB_BATCH_LANE_MS * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	m = &shared->mu[getpid() % shared->n];
	return held(m, pthread_mutex_timedlock(m, &until)) ? m : NULL;
}

/*
 * A thread's place in the queue, on its stack.  The queue's mutex
 * guards `next` and `done`; the rest belongs to the reader that took
 * the waiter off the queue until it sets `done`.
 */
struct db_waiter {
	const char		*key;
	PGresult		*res;
	struct db_err		 err;
	bool			 done;
	pthread_cond_t		 cv;
	struct db_waiter	*next;
};

/* {"k1","k2",...}: each key quoted, with " and \ escaped. */
static char *
array_of(struct db_waiter **w, int n)
{
	size_t len = 3;
	const char *k;
	char *s, *p;
	int i;

	for (i = 0; i < n; i++)
		len += 2 * strlen(w[i]->key) + 3;
	p = s = xmalloc(len);
	*p++ = '{';
	for (i = 0; i < n; i++) {
		if (i > 0)
			*p++ = ',';
		*p++ = '"';
		for (k = w[i]->key; *k != '\0'; k++) {
			if (*k == '"' || *k == '\\')
				*p++ = '\\';
			*p++ = *k;
		}
		*p++ = '"';
	}
	*p++ = '}';
	*p = '\0';
	return s;
}

/* The row of `key` in res (column 0), as a result of its own. */
static PGresult *
row_of(const PGresult *res, const char *key)
{
	PGresult *one;
	int i, c, ok = 1;

	if ((one = PQcopyResult(res, PG_COPYRES_ATTRS)) == NULL)
		xoom();
	for (i = 0; i < PQntuples(res); i++)
		if (strcmp(PQgetvalue(res, i, 0), key) == 0)
			break;
	if (i == PQntuples(res))
		return one;
	for (c = 0; ok && c < PQnfields(res); c++)
		ok = PQgetisnull(res, i, c) ?
		    PQsetvalue(one, 0, c, NULL, -1) :
		    PQsetvalue(one, 0, c, PQgetvalue(res, i, c),
		    PQgetlength(res, i, c));
	if (!ok)
		xoom();
	return one;
}

/* Reads the keys of w[0..n) in one statement and fills each waiter. */
static void
run(struct db_batch *b, struct db_waiter **w, int n)
{
	struct db_err err = { 0 };
	pthread_mutex_t *lane;
	struct db *d;
	PGresult *res = NULL;
	const char *params[1];
	char *keys = array_of(w, n);
	int i;

	params[0] = keys;
	metrics_batch(n);
	if ((d = db_acquire(&err)) != NULL) {
		lane = take_lane();
		res = db_exec(d, b->stmt, params, 1, &err);
		if (lane != NULL)
			pthread_mutex_unlock(lane);
		db_release(d);
	}
	free(keys);
	if (res == NULL && n > 1 && strncmp(err.sqlstate, "22", 2) == 0) {
		/*
		 * A data exception (class 22, such as a bad cast) may come
		 * from one key: each alone.  Not a timeout, a lock or a lost
		 * connection, which would only be paid n times over.
		 */
		for (i = 0; i < n; i++)
			run(b, &w[i], 1);
		return;
	}
	for (i = 0; i < n; i++) {
		w[i]->res = res != NULL ? row_of(res, w[i]->key) : NULL;
		w[i]->err = err;
	}
	PQclear(res);
}

/* Wakes the first queued waiter to lead a read if none is in flight. */
static void
next_leader(struct db_batch *b)
{
	if (b->head != NULL && !b->reading)
		pthread_cond_signal(&b->head->cv);
}

/*
 * Takes up to DB_BATCH_KEYS waiters off the queue, reads them with the
 * mutex released, and wakes each; then the next queued waiter, if any,
 * to lead.  Called and returns with b->mu held.
 */
static void
lead(struct db_batch *b, struct db_waiter *self)
{
	struct db_waiter *w[DB_BATCH_KEYS];
	int i, n = 0;

	while (b->head != NULL && n < DB_BATCH_KEYS) {
		w[n++] = b->head;
		b->head = b->head->next;
	}
	if (b->head == NULL)
		b->tail = NULL;
	b->reading = true;
	pthread_mutex_unlock(&b->mu);
	run(b, w, n);
	pthread_mutex_lock(&b->mu);
	b->reading = false;
	for (i = 0; i < n; i++) {
		w[i]->done = true;
		if (w[i] != self)
			pthread_cond_signal(&w[i]->cv);
	}
	next_leader(b);
}

PGresult *
db_batch_read(struct db_batch *b, const char *key, struct db_err *err)
{
	struct db_waiter me = { .key = key };

	pthread_cond_init(&me.cv, NULL);
	pthread_mutex_lock(&b->mu);
	if (b->tail != NULL)
		b->tail->next = &me;
	else
		b->head = &me;
	b->tail = &me;
	while (!me.done) {
		if (!b->reading && b->head != NULL)
			lead(b, &me);
		else
			pthread_cond_wait(&me.cv, &b->mu);
	}
	pthread_mutex_unlock(&b->mu);
	pthread_cond_destroy(&me.cv);
	*err = me.err;
	return me.res;
}
