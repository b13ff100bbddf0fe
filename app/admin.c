/*
 * /api/admin: statistics, users and conversations, and what the admin
 * files share.  Transactions and cash-outs are in admin_money.c, the
 * settings in admin_settings.c.
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
#include "lib/num.h"

#define STATS_MAX_DAYS	365
#define QUERY_MAX	254
#define CREDITS_MAX	1000000000

static const char *const plan_words[] = { "free", "plus", "business", NULL };
static const char *const role_words[] = { "user", "admin", NULL };

enum { UU_PLAN, UU_ROLE, UU_CREDITS, UU_BANNED, UU_VERIFIED };
const struct jfield admin_user_in[] = {
	[UU_PLAN] = { "plan", JF_WORD, 0, 0, 0, plan_words },
	[UU_ROLE] = { "role", JF_WORD, 0, 0, 0, role_words },
	[UU_CREDITS] = { "credits_delta", JF_INT, 0, -CREDITS_MAX,
	    CREDITS_MAX },
	[UU_BANNED] = { "banned", JF_BOOL },
	[UU_VERIFIED] = { "email_verified", JF_BOOL },
	{ NULL }
};

/* --- shared ---------------------------------------------------------------- */

int
admin_list_begin_or_reply(struct request *r, struct list_page *lp,
    const char **us, const char **id)
{
	if (list_page_or_reply(r, 20, 100, "cursor", lp) != 0 ||
	    list_us_id_cursor_or_reply(r, lp, us, id) != 0)
		return -1;
	if (sql_begin_or_reply(r) != 0 ||
	    sql_run_or_reply(r, STMT_CUSTOM_PLANS, NO_ARGS) == NULL)
		return -1;
	return 0;
}

void
admin_list_reply(struct request *r, const char *key, PGresult *res,
    const struct list_page *lp, int us_col, int id_col, int obj_col,
    void (*render)(struct jw *, const PGresult *, int, int))
{
	struct buf b = BUF_INIT;
	struct jw w;
	int i, n = sql_rows(res);

	if (sql_commit_or_reply(r) != 0)
		return;
	jw_init(&w, &b);
	jw_obj(&w);
	jw_karr(&w, key);
	for (i = 0; i < n && i < lp->limit; i++)
		render(&w, res, i, obj_col);
	jw_end(&w);
	list_next_cursor(r, &w, n > lp->limit ? list_us_id_key(r, res,
	    lp->limit - 1, us_col, id_col) : NULL);
	jw_end(&w);
	reply_json(r, 200, &b);
	buf_free(&b);
}

int
admin_word_or_reply(struct request *r, const char *param,
    const char *const *words, const char **out)
{
	const char *v = req_query(r, param);
	struct buf b = BUF_INIT;
	int i;

	*out = NULL;
	if (v == NULL || *v == '\0')
		return 0;
	for (i = 0; words[i] != NULL; i++)
		if (strcmp(words[i], v) == 0) {
			*out = words[i];
			return 0;
		}
	for (i = 0; words[i] != NULL; i++)
		buf_printf(&b, "%s%s", i > 0 ? (words[i + 1] != NULL ? ", " :
		    " or ") : "", words[i]);
	reply_error(r, 400, "invalid_input", arena_printf(r->arena,
	    "%s must be %s.", param, b.p), param);
	buf_free(&b);
	return -1;
}

int
admin_audit_or_reply(struct request *r, const char *action,
    const char *target_type, const char *target_id, const char *before,
    const char *after)
{
	return sql_run_or_reply(r, STMT_AUDIT_INSERT, ARGS(
	    app_req(r)->user->id, action, target_type, target_id, before,
	    after, r->remote_addr)) != NULL ? 0 : -1;
}

void
admin_event(const char *action, const char *target_id)
{
	struct buf b = BUF_INIT;

	buf_puts(&b, "\"target\":");
	buf_json_str(&b, target_id);
	event_note(EV_ADMIN, action, "ok", b.p);
	buf_free(&b);
}

/* --- GET /api/admin/stats ---------------------------------------------------- */

static void
kint(struct jw *w, const char *key, const PGresult *res, int col)
{
	jw_kint(w, key, sql_int(res, 0, col));
}

static void
write_series(struct jw *w, const PGresult *res)
{
	int i;

	jw_karr(w, "series");
	for (i = 0; i < sql_rows(res); i++) {
		jw_obj(w);
		jw_kstr(w, "date", sql_str(res, i, SE_DATE));
		jw_kint(w, "users", sql_int(res, i, SE_USERS));
		jw_kint(w, "messages", sql_int(res, i, SE_MESSAGES));
		jw_kint(w, "revenue_cents", sql_int(res, i, SE_REVENUE));
		jw_end(w);
	}
	jw_end(w);
}

void
admin_stats(struct request *r)
{
	const char *days = req_query(r, "days");
	PGresult *s, *series = NULL;
	struct buf b = BUF_INIT;
	struct jw w;
	long long n;

	if (days != NULL && num_parse(days, 1, STATS_MAX_DAYS, &n) != 0) {
		reply_error(r, 400, "invalid_input", "days must be an integer "
		    "from 1 to 365.", "days");
		return;
	}
	/* The figures and the series of one snapshot. */
	if (sql_begin_or_reply(r) != 0 ||
	    sql_run_or_reply(r, STMT_SNAPSHOT, NO_ARGS) == NULL ||
	    (s = sql_row_or_reply(r, STMT_ADMIN_STATS, NO_ARGS)) == NULL ||
	    (days != NULL && (series = sql_run_or_reply(r, STMT_ADMIN_SERIES,
	    ARGS(days))) == NULL) || sql_commit_or_reply(r) != 0)
		return;
	jw_init(&w, &b);
	jw_obj(&w);
	jw_kobj(&w, "users");
	kint(&w, "total", s, AS_USERS);
	kint(&w, "verified", s, AS_VERIFIED);
	jw_kobj(&w, "by_plan");
	kint(&w, "free", s, AS_FREE);
	kint(&w, "plus", s, AS_PLUS);
	kint(&w, "business", s, AS_BUSINESS);
	jw_end(&w);
	kint(&w, "new_7d", s, AS_NEW_7D);
	jw_end(&w);
	jw_kobj(&w, "messages");
	kint(&w, "total", s, AS_MESSAGES);
	kint(&w, "last_24h", s, AS_MESSAGES_24H);
	jw_end(&w);
	kint(&w, "credits_consumed_30d", s, AS_CREDITS_30D);
	jw_kobj(&w, "revenue_cents");
	kint(&w, "total", s, AS_REVENUE);
	kint(&w, "last_30d", s, AS_REVENUE_30D);
	jw_end(&w);
	jw_kobj(&w, "referrals");
	kint(&w, "total", s, AS_REFERRALS);
	kint(&w, "activated", s, AS_ACTIVATED);
	kint(&w, "qualified", s, AS_QUALIFIED);
	jw_end(&w);
	jw_kobj(&w, "cashouts_pending");
	kint(&w, "count", s, AS_CASHOUTS);
	kint(&w, "amount_cents", s, AS_CASHOUTS_CENTS);
	jw_end(&w);
	if (series != NULL)
		write_series(&w, series);
	jw_end(&w);
	reply_json(r, 200, &b);
	buf_free(&b);
}

/* --- /api/admin/users -------------------------------------------------------- */

void
admin_users(struct request *r)
{
	const char *q = req_query(r, "q"), *plan, *us, *id;
	struct list_page lp;
	PGresult *res;
	char limit[16];

	if (q != NULL && *q == '\0')
		q = NULL;
	if (q != NULL && strlen(q) > QUERY_MAX) {
		reply_error(r, 400, "invalid_input", "q may be at most 254 "
		    "bytes long.", "q");
		return;
	}
	if (admin_word_or_reply(r, "plan", plan_words, &plan) != 0 ||
	    admin_list_begin_or_reply(r, &lp, &us, &id) != 0)
		return;
	snprintf(limit, sizeof(limit), "%d", lp.limit + 1);
	if ((res = sql_run_or_reply(r, STMT_ADMIN_USERS, ARGS(q, plan, us, id,
	    limit))) != NULL)
		admin_list_reply(r, "users", res, &lp, AL_US, AL_USER + USER_ID,
		    AL_USER, render_admin_user);
}

/*
 * The audit's before and after of a user change: the fields that
 * changed, old values from the locked row, new ones from the updated
 * row.  Returns false if nothing changed.
 */
static bool
user_diff(const PGresult *old, const PGresult *now, long long delta,
    struct jw *before, struct jw *after)
{
	const int banned = USER_NCOLS;
	bool changed = false;

	if (strcmp(sql_str(old, 0, UK_PLAN), sql_str(now, 0, USER_PLAN))) {
		jw_kstr(before, "plan", sql_str(old, 0, UK_PLAN));
		jw_kstr(after, "plan", sql_str(now, 0, USER_PLAN));
		changed = true;
	}
	if (strcmp(sql_str(old, 0, UK_ROLE), sql_str(now, 0, USER_ROLE))) {
		jw_kstr(before, "role", sql_str(old, 0, UK_ROLE));
		jw_kstr(after, "role", sql_str(now, 0, USER_ROLE));
		changed = true;
	}
	if (delta != 0) {
		jw_kint(before, "credits", sql_int(old, 0, UK_CREDITS));
		jw_kint(after, "credits", sql_int(now, 0, USER_CREDITS));
		jw_kint(after, "credits_delta", delta);
		changed = true;
	}
	if (sql_bool(old, 0, UK_BANNED) != sql_bool(now, 0, banned)) {
		jw_kbool(before, "banned", sql_bool(old, 0, UK_BANNED));
		jw_kbool(after, "banned", sql_bool(now, 0, banned));
		changed = true;
	}
	if (sql_bool(old, 0, UK_VERIFIED) !=
	    sql_bool(now, 0, USER_EMAIL_VERIFIED)) {
		jw_kbool(before, "email_verified", sql_bool(old, 0,
		    UK_VERIFIED));
		jw_kbool(after, "email_verified", sql_bool(now, 0,
		    USER_EMAIL_VERIFIED));
		changed = true;
	}
	return changed;
}

/*
 * Moves the user's credits by delta through the ledger (reason
 * 'admin'), never below zero.  Returns 0, or -1 after replying.
 */
static int
credits_move_or_reply(struct request *r, const char *uid, long long delta,
    const PGresult *old)
{
	const char *ref = arena_printf(r->arena, "admin:%s",
	    app_req(r)->user->id);
	char n[24];
	PGresult *res;

	if (delta == 0)
		return 0;
	snprintf(n, sizeof(n), "%lld", delta < 0 ? -delta : delta);
	if ((res = sql_run_or_reply(r, delta < 0 ? STMT_CREDITS_TAKE :
	    STMT_CREDITS_GIVE, ARGS(uid, n, "admin", ref))) == NULL)
		return -1;
	if (sql_rows(res) == 0) {
		sql_rollback(r);
		reply_error(r, 400, "invalid_input", arena_printf(r->arena,
		    "The balance is %lld credits; it cannot go below zero.",
		    sql_int(old, 0, UK_CREDITS)), "credits_delta");
		return -1;
	}
	return 0;
}

void
admin_user_update(struct request *r)
{
	const struct jvalue *in = r->in;
	const char *uid = r->params[0];
	bool self = strcmp(uid, app_req(r)->user->id) == 0;
	long long delta = in[UU_CREDITS].present ? in[UU_CREDITS].i : 0;
	struct buf bb = BUF_INIT, ab = BUF_INIT, out = BUF_INIT;
	PGresult *old, *now;
	struct jw before, after, w;
	bool changed;

	if (self && in[UU_ROLE].present && strcmp(in[UU_ROLE].s, "admin")) {
		reply_error(r, 400, "invalid_input", "You cannot remove your "
		    "own administrator role.", "role");
		return;
	}
	if (self && in[UU_BANNED].present && in[UU_BANNED].b) {
		reply_error(r, 400, "invalid_input", "You cannot ban yourself.",
		    "banned");
		return;
	}
	/* That would end one's own sessions as surely as a ban. */
	if (self && in[UU_VERIFIED].present && !in[UU_VERIFIED].b) {
		reply_error(r, 400, "invalid_input", "You cannot mark your own "
		    "email unverified.", "email_verified");
		return;
	}
	if (sql_begin_or_reply(r) != 0 ||
	    (old = sql_row_or_reply(r, STMT_ADMIN_USER_LOCK, ARGS(uid))) ==
	    NULL || credits_move_or_reply(r, uid, delta, old) != 0 ||
	    (now = sql_row_or_reply(r, STMT_ADMIN_USER_UPDATE, ARGS(uid,
	    in[UU_PLAN].present ? in[UU_PLAN].s : NULL,
	    in[UU_ROLE].present ? in[UU_ROLE].s : NULL,
	    in[UU_BANNED].present ? (in[UU_BANNED].b ? "true" : "false") :
	    NULL, in[UU_VERIFIED].present ? (in[UU_VERIFIED].b ? "true" :
	    "false") : NULL))) == NULL)
		return;
	/* A ban ends every session at once, access tokens included. */
	if (in[UU_BANNED].present && in[UU_BANNED].b &&
	    (sql_run_or_reply(r, STMT_USER_END_SESSIONS, ARGS(uid)) == NULL ||
	    sql_run_or_reply(r, STMT_REFRESH_REVOKE_USER, ARGS(uid, NULL)) ==
	    NULL))
		return;
	jw_init(&before, &bb);
	jw_init(&after, &ab);
	jw_obj(&before);
	jw_obj(&after);
	changed = user_diff(old, now, delta, &before, &after);
	jw_end(&before);
	jw_end(&after);
	if ((changed && admin_audit_or_reply(r, "user.update", "user", uid,
	    bb.p, ab.p) != 0) || sql_commit_or_reply(r) != 0)
		goto out;
	if (changed)
		admin_event("user.update", uid);
	if (delta != 0)
		event_note(EV_GRANT, "admin", delta > 0 ? "granted" : "taken",
		    NULL);
	jw_init(&w, &out);
	jw_obj(&w);
	jw_key(&w, "user");
	render_admin_user(&w, now, 0, 0);
	jw_end(&w);
	reply_json(r, 200, &out);
out:
	buf_free(&bb);
	buf_free(&ab);
	buf_free(&out);
}

/* --- GET /api/admin/conversations --------------------------------------------- */

void
admin_conversations(struct request *r)
{
	const char *user = req_query(r, "user_id"), *us, *id;
	struct list_page lp;
	PGresult *res;
	char limit[16];

	if (user != NULL && *user == '\0')
		user = NULL;
	if (user != NULL && !json_uuid_ok(user)) {
		reply_error(r, 400, "invalid_input", "user_id must be a user's "
		    "id.", "user_id");
		return;
	}
	if (admin_list_begin_or_reply(r, &lp, &us, &id) != 0)
		return;
	snprintf(limit, sizeof(limit), "%d", lp.limit + 1);
	if ((res = sql_run_or_reply(r, STMT_ADMIN_CONVS, ARGS(user, us, id,
	    limit))) != NULL)
		admin_list_reply(r, "conversations", res, &lp, AC_US,
		    AC_CONV + CONV_ID, AC_CONV, render_admin_conversation);
}
