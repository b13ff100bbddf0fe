/*
 * Credit holds (schema/007_holds.sql): the credits of work still running.
 *
 * A chat turn or a transcription takes its price up front, with its
 * ledger row, and records a hold.  The hold then ends exactly once,
 * whichever comes first: settled by the request when its work was
 * stored (the credits stay taken), refunded by the request when there
 * is nothing to charge for, or refunded by the sweeper once it is older
 * than the work can last (its worker died, or the database was down when
 * the request tried to end it).  Each ending deletes the hold row, so a
 * second one finds nothing and changes nothing.
 *
 * Every ending takes the user's row lock first, as a reservation and an
 * account's deletion do, so none of them deadlocks with another.
 */
#ifndef MIKY_APP_CREDITS_H
#define MIKY_APP_CREDITS_H

#include "lib/db.h"

struct request;

struct hold {
	const char	*id;		/* NULL: none taken */
	long long	 credits;	/* taken */
	long long	 balance;	/* the user's credits after taking them */
};

/*
 * Locks the request's user's row for the transaction, the first lock of
 * every change of credits: 0, or -1 after replying (401 when the account
 * was deleted or banned since its token was checked).
 */
int	credits_lock_or_reply(struct request *);

/*
 * Takes n credits of the request's user for work of `kind` ("chat" or
 * "voice", also the ledger reason; `ref` the ledger reference) that ends
 * within ttl_ms, in the caller's transaction.  Returns 0 with *h set,
 * 1 if the balance is short (nothing changed), -1 after replying.
 */
int	credits_hold_or_reply(struct request *, const char *kind, long long n,
	    const char *ref, long long ttl_ms, struct hold *h);

/*
 * Ends a hold, in the caller's transaction (begun, user row locked):
 * settled for good, or refunded with *balance set to the new balance.
 * Return 1 if this call ended it, 0 if it had ended already (swept, or
 * the account is gone), -1 on a database error with *err set (then the
 * sweeper refunds it later).
 */
int	credits_settle(struct request *, const struct hold *, struct db_err *);
int	credits_refund(struct request *, const struct hold *,
	    long long *balance, struct db_err *);

/*
 * The sweeper: refunds every expired hold, each in its own transaction.
 * Safe to run on any number of workers and hosts at once.  Returns the
 * number refunded, or -1 on a database error.
 */
int	credits_sweep(struct db *);

#endif
