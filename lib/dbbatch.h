/*
 * Reads by key that share one round trip between request threads (a
 * "group commit" for reads).
 *
 * Every authenticated request reads its user's row.  Under load dozens
 * of request threads do that at once, each paying a round trip: a
 * wake-up of a PostgreSQL backend, a transaction, an executor start,
 * and a wake-up of the thread.  Here a thread queues its key instead.
 * While no read of the queue is in flight in its process, it takes the
 * queue (its own key and up to DB_BATCH_KEYS queued ones) and runs them
 * as one statement, `... WHERE key = ANY($1)`; otherwise it sleeps until
 * a reader hands it its row or wakes it to lead the next read.  With one
 * thread asking, that is a plain round trip.
 *
 * Reads wait for few of them to be in flight, so that the keys that come
 * meanwhile go together: one at a time in each process, and, once
 * db_batch_share() has set them up before the workers fork, a few lanes
 * shared by all processes (a read that cannot have a lane within
 * DB_BATCH_LANE_MS goes without one, so a stuck read slows the others
 * down but stops none).  On two cores, a lane for the two workers took
 * the profile from 0.44 to 0.55 (medians) of the do-nothing request
 * (README).
 *
 * Every read is sent after each of its keys was queued, so a read sees
 * every write that committed before its callers asked: no cache, and
 * read-your-writes across threads and processes holds.
 *
 * The statement takes one parameter, an array literal of the keys
 * ({"k1","k2"}), and returns at most one row per key with the key,
 * as text spelled as the caller spelled it, in column 0.  One key the
 * statement cannot take (a cast error) would fail the others' read:
 * after a read of several keys fails with a data exception (SQLSTATE
 * class 22), each key is read again alone.
 */
#ifndef MIKY_DBBATCH_H
#define MIKY_DBBATCH_H

#include <pthread.h>
#include <stdbool.h>

#include "db.h"

#define DB_BATCH_KEYS		64	/* keys per read */
#define DB_BATCH_LANE_MS	100	/* longest wait for a shared lane */

struct db_waiter;

/* A queue of keys for one statement; define with DB_BATCH_INIT. */
struct db_batch {
	int			 stmt;
	pthread_mutex_t		 mu;
	struct db_waiter	*head;
	struct db_waiter	*tail;
	bool			 reading;
};

#define DB_BATCH_INIT(s) \
	{ (s), PTHREAD_MUTEX_INITIALIZER, NULL, NULL, false }

/*
 * Sets up `lanes` lanes shared by this process and the processes it
 * forks from now on.  Call once, before forking.  Returns 0, or -1
 * (logged) if the shared memory cannot be had: reads then wait only for
 * their own process's.
 */
int		 db_batch_share(int lanes);

/*
 * Reads the row of `key` with the batch's statement, on a connection of
 * the pool (the caller must hold none: the reader borrows one).
 * Returns a result of zero or one row that the caller PQclear()s, or
 * NULL with *err set as db_exec() sets it.
 */
PGresult	*db_batch_read(struct db_batch *, const char *key,
		    struct db_err *);

#endif
