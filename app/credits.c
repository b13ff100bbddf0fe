#include <stdio.h>

#include "app.h"
#include "credits.h"
#include "session.h"
#include "sql.h"
#include "lib/log.h"

int
credits_lock_or_reply(struct request *r)
{
	PGresult *res = sql_run_or_reply(r, STMT_USER_LOCK,
	    ARGS(app_req(r)->user->id));

	if (res == NULL)
		return -1;
	if (sql_rows(res) == 0 || sql_bool(res, 0, UL_BANNED)) {
		reply_error(r, 401, "unauthorized", "This session has ended; "
		    "sign in again.", NULL);
		return -1;
	}
	return 0;
}

int
credits_hold_or_reply(struct request *r, const char *kind, long long n,
    const char *ref, long long ttl_ms, struct hold *h)
{
	char amount[24], ttl[24];
	PGresult *res;

	snprintf(amount, sizeof(amount), "%lld", n);
	snprintf(ttl, sizeof(ttl), "%lld", ttl_ms);
	if ((res = sql_run_or_reply(r, STMT_HOLD_TAKE, ARGS(
	    app_req(r)->user->id, amount, kind, ref, ttl))) == NULL)
		return -1;
	if (sql_rows(res) == 0)
		return 1;
	h->id = sql_str(res, 0, HT_HOLD);
	h->credits = n;
	h->balance = sql_int(res, 0, HT_BALANCE);
	return 0;
}

int
credits_settle(struct request *r, const struct hold *h, struct db_err *err)
{
	PGresult *res = sql_run(r, STMT_HOLD_SETTLE, ARGS(h->id), err);

	return res == NULL ? -1 : sql_rows(res) > 0;
}

int
credits_refund(struct request *r, const struct hold *h, long long *balance,
    struct db_err *err)
{
	PGresult *res = sql_run(r, STMT_HOLD_REFUND, ARGS(h->id), err);

	if (res == NULL)
		return -1;
	if (sql_rows(res) == 0)
		return 0;
	*balance = sql_int(res, 0, SQL_ONLY);
	return 1;
}

/* Refunds one expired hold: 1 if this call did, 0 if it had ended. */
static int
sweep_one(struct db *d, const char *hold, const char *user)
{
	struct db_err err;
	PGresult *lock = NULL, *res = NULL;
	int rc = -1;

	if (db_begin(d, &err) != 0 ||
	    (lock = db_exec(d, STMT_USER_LOCK, ARGS(user), &err)) == NULL ||
	    (res = db_exec(d, STMT_HOLD_REFUND, ARGS(hold), &err)) == NULL ||
	    db_commit(d, &err) != 0)
		goto out;
	rc = PQntuples(res) > 0;
	if (rc)
		log_warnx("hold %s of user %s expired unsettled: refunded",
		    hold, user);
out:
	if (rc < 0)
		db_rollback(d);
	PQclear(res);
	PQclear(lock);
	return rc;
}

int
credits_sweep(struct db *d)
{
	struct db_err err;
	PGresult *res;
	int i, n = 0, one;

	if ((res = db_exec(d, STMT_HOLDS_EXPIRED, NO_ARGS, &err)) == NULL)
		return -1;
	for (i = 0; i < PQntuples(res); i++) {
		if ((one = sweep_one(d, sql_str(res, i, HE_ID),
		    sql_str(res, i, HE_USER))) < 0) {
			n = -1;
			break;
		}
		n += one;
	}
	PQclear(res);
	return n;
}
