/*
 * /api/admin/transactions: every user's transactions, and the end of a
 * cash-out.  The cash-out model (shared with referrals.c): a pending
 * cash-out is a transactions row of type 'cashout'; available cash is
 * earned - paid out - pending.  Completing one adds it to paid out,
 * failing one takes it out of pending (so it is available again); both
 * under the user's row lock, as every change of that user's money.
 */
#include <stdio.h>
#include <string.h>

#include "admin.h"
#include "app.h"
#include "events.h"
#include "render.h"
#include "session.h"
#include "sql.h"
#include "lib/json.h"

static const char *const type_words[] = { "subscription", "credits",
	"referral", "cashout", NULL };
static const char *const status_words[] = { "pending", "completed",
	"failed", "refunded", NULL };
static const char *const end_words[] = { "completed", "failed", NULL };

enum { TU_STATUS };
const struct jfield admin_tx_in[] = {
	[TU_STATUS] = { "status", JF_WORD, JF_REQUIRED, 0, 0, end_words },
	{ NULL }
};

void
admin_transactions(struct request *r)
{
	const char *type, *status, *us, *id;
	struct list_page lp;
	PGresult *res;
	char limit[16];

	if (admin_word_or_reply(r, "type", type_words, &type) != 0 ||
	    admin_word_or_reply(r, "status", status_words, &status) != 0 ||
	    admin_list_begin_or_reply(r, &lp, &us, &id) != 0)
		return;
	snprintf(limit, sizeof(limit), "%d", lp.limit + 1);
	if ((res = sql_run_or_reply(r, STMT_ADMIN_TXS, ARGS(type, status, us,
	    id, limit))) != NULL)
		admin_list_reply(r, "transactions", res, &lp, AT_US,
		    AT_TX + TX_ID, AT_TX, render_admin_transaction);
}

static void
conflict(struct request *r)
{
	reply_error(r, 409, "conflict", "Only a pending cash-out can be "
	    "completed or failed.", NULL);
}

void
admin_transaction_update(struct request *r)
{
	const char *tid = r->params[0], *status = r->in[TU_STATUS].s;
	const char *user, *action;
	struct buf b = BUF_INIT;
	PGresult *tx, *res;
	struct jw w;

	if ((tx = sql_row_or_reply(r, STMT_ADMIN_TX_GET, ARGS(tid))) == NULL)
		return;
	if (strcmp(sql_str(tx, 0, TG_TYPE), "cashout") != 0 ||
	    strcmp(sql_str(tx, 0, TG_STATUS), "pending") != 0) {
		conflict(r);
		return;
	}
	/* The user's lock first; an account deleted since has none. */
	user = sql_str(tx, 0, TG_USER);
	if (sql_begin_or_reply(r) != 0 || (user != NULL &&
	    sql_run_or_reply(r, STMT_USER_LOCK, ARGS(user)) == NULL) ||
	    (res = sql_run_or_reply(r, STMT_ADMIN_CASHOUT_END, ARGS(tid,
	    status))) == NULL)
		return;
	if (sql_rows(res) == 0) {	/* ended by someone else meanwhile */
		sql_rollback(r);
		conflict(r);
		return;
	}
	action = strcmp(status, "completed") == 0 ? "cashout.complete" :
	    "cashout.fail";
	if (admin_audit_or_reply(r, action, "transaction", tid,
	    "{\"status\":\"pending\"}", strcmp(status, "completed") == 0 ?
	    "{\"status\":\"completed\"}" : "{\"status\":\"failed\"}") != 0 ||
	    sql_commit_or_reply(r) != 0)
		return;
	admin_event(action, tid);
	event_note(EV_CASHOUT, status, "ok", NULL);
	jw_init(&w, &b);
	jw_obj(&w);
	jw_key(&w, "transaction");
	render_admin_transaction(&w, res, 0, 0);
	jw_end(&w);
	reply_json(r, 200, &b);
	buf_free(&b);
}
