#include <errno.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
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
 * A thread's place in the queue, on its stack.  The queue's mutex guards
 * `next`; the reader that took the waiter off the queue owns `res` and
 * `err` until it sets `state` to W_DONE, after which it touches nothing
 * of the waiter but the address of `state`, as a futex key (a wake-up
 * there is at worst spurious to whoever waits at that address later).
 */
enum { W_QUEUED, W_LEAD, W_DONE };

struct db_waiter {
	const char		*key;
	PGresult		*res;
	struct db_err		 err;
	_Atomic int		 state;
	struct db_waiter	*next;
};

/* Sleeps while *word is val (or until a spurious wake-up). */
static void
futex_wait(_Atomic int *word, int val)
{
	syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

static void
futex_wake(_Atomic int *word)
{
	syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

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

/*
 * Takes up to DB_BATCH_KEYS waiters off the queue, reads them with the
 * mutex released, and asks the next queued waiter, if any, to lead.
 * Called with b->mu held; returns with it released, and then wakes each
 * waiter read: a waiter woken while the reader still held the mutex
 * would only go to sleep again on it.
 */
static void
lead(struct db_batch *b, struct db_waiter *self)
{
	struct db_waiter *w[DB_BATCH_KEYS], *next;
	_Atomic int *word;
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
	if ((next = b->head) != NULL)
		atomic_store_explicit(&next->state, W_LEAD,
		    memory_order_relaxed);
	pthread_mutex_unlock(&b->mu);
	for (i = 0; i < n; i++) {
		word = &w[i]->state;
		atomic_store_explicit(word, W_DONE, memory_order_release);
		if (w[i] != self)
			futex_wake(word);
	}
	if (next != NULL)
		futex_wake(&next->state);
}

PGresult *
db_batch_read(struct db_batch *b, const char *key, struct db_err *err)
{
	struct db_waiter me = { .key = key, .state = W_QUEUED };
	int s;

	pthread_mutex_lock(&b->mu);
	if (b->tail != NULL)
		b->tail->next = &me;
	else
		b->head = &me;
	b->tail = &me;
	for (;;) {
		if (!b->reading && b->head != NULL)
			lead(b, &me);
		else {
			/* Asked to lead but beaten to it: queued again. */
			s = W_LEAD;
			atomic_compare_exchange_strong(&me.state, &s, W_QUEUED);
			pthread_mutex_unlock(&b->mu);
			while (atomic_load_explicit(&me.state,
			    memory_order_acquire) == W_QUEUED)
				futex_wait(&me.state, W_QUEUED);
		}
		if (atomic_load_explicit(&me.state, memory_order_acquire) ==
		    W_DONE)
			break;
		pthread_mutex_lock(&b->mu);
	}
	*err = me.err;
	return me.res;
}
