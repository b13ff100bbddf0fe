/*
 * /api/user: the caller's profile, credit ledger, password, data export
 * and account deletion; and the public referral-code check.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "list.h"
#include "mail.h"
#include "policy.h"
#include "ratelimit.h"
#include "render.h"
#include "session.h"
#include "sql.h"
#include "lib/clock.h"
#include "lib/jsonw.h"

enum { PR_FIRST, PR_LAST, PR_LANG };
const struct jfield user_profile_in[] = {
	[PR_FIRST] = { "first_name", JF_STRING, JF_TRIM | JF_LINE, 1, 100 },
	[PR_LAST] = { "last_name", JF_STRING, JF_TRIM | JF_LINE, 0, 100 },
	[PR_LANG] = { "language", JF_STRING, JF_TRIM, 2, 5 },
	{ NULL }
};

enum { VR_CODE };
const struct jfield user_referral_in[] = {
	[VR_CODE] = { "referral_code", JF_STRING, JF_REQUIRED | JF_TRIM, 1,
	    32 },
	{ NULL }
};

enum { CP_CURRENT, CP_NEW };
const struct jfield user_password_in[] = {
	[CP_CURRENT] = { "current_password", JF_STRING, JF_REQUIRED, 1, 1024 },
	[CP_NEW] = { "new_password", JF_STRING, JF_REQUIRED, 8, 128 },
	{ NULL }
};

enum { DL_PASSWORD };
const struct jfield user_delete_in[] = {
	[DL_PASSWORD] = { "password", JF_STRING, JF_REQUIRED, 1, 1024 },
	{ NULL }
};


static void
reply_user(struct request *r, int status, const PGresult *res, int col)
{
	struct buf b = BUF_INIT;
	struct jw w;

	jw_init(&w, &b);
	jw_obj(&w);
	jw_key(&w, "user");
	render_user(&w, res, 0, col);
	jw_end(&w);
	reply_json(r, status, &b);
	buf_free(&b);
}

void
user_profile(struct request *r)
{
	reply_user(r, 200, app_req(r)->user->row, app_req(r)->user->col);
}

void
user_profile_update(struct request *r)
{
	const char *lang = r->in[PR_LANG].present ? r->in[PR_LANG].s : NULL;
	PGresult *res;

	if (lang != NULL && !language_code_ok(lang)) {
		reply_error(r, 400, "invalid_input", "Field 'language' must be "
		    "a language code such as 'en' or 'pt-BR'.", "language");
		return;
	}
	if ((res = sql_row_or_reply(r, STMT_PROFILE_UPDATE, ARGS(
	    app_req(r)->user->id, r->in[PR_FIRST].present ?
	    r->in[PR_FIRST].s : NULL, r->in[PR_LAST].present ?
	    r->in[PR_LAST].s : NULL, lang))) != NULL)
		reply_user(r, 200, res, 0);
}

void
user_credits(struct request *r)
{
	struct user *u = app_req(r)->user;
	struct list_page lp;
	struct buf b = BUF_INIT;
	struct jw w;
	PGresult *res;
	char limit[16];
	int i, n;

	if (list_page_or_reply(r, 20, 100, "cursor", &lp) != 0)
		return;
	if (lp.cursor != NULL && !list_cursor_is_int(lp.cursor)) {
		list_reply_bad_cursor(r, &lp);
		return;
	}
	snprintf(limit, sizeof(limit), "%d", lp.limit + 1);
	if ((res = sql_run_or_reply(r, STMT_LEDGER_PAGE, ARGS(u->id,
	    lp.cursor, limit))) == NULL)
		return;
	n = sql_rows(res);
	jw_init(&w, &b);
	jw_obj(&w);
	jw_kint(&w, "credits", u->credits);
	jw_kstr(&w, "plan", u->plan);
	jw_karr(&w, "ledger");
	for (i = 0; i < n && i < lp.limit; i++)
		render_ledger(&w, res, i, LP_ENTRY);
	jw_end(&w);
	list_next_cursor(r, &w, n > lp.limit ?
	    sql_str(res, lp.limit - 1, LP_ID) : NULL);
	jw_end(&w);
	reply_json(r, 200, &b);
	buf_free(&b);
}

PGresult *
referrer_or_reply(struct request *r, const char *code, int status)
{
	char *upper = arena_strdup(r->arena, code), *c;
	PGresult *res;

	for (c = upper; *c != '\0'; c++)
		if (*c >= 'a' && *c <= 'z')
			*c = (char)(*c - 'a' + 'A');
	if ((res = sql_run_or_reply(r, STMT_REFERRER_BY_CODE, ARGS(upper))) ==
	    NULL)
		return NULL;
	if (sql_rows(res) == 0) {
		reply_error(r, status, "invalid_referral_code",
		    "That referral code does not exist.", "referral_code");
		return NULL;
	}
	return res;
}

void
user_verify_referral(struct request *r)
{
	struct buf b = BUF_INIT;
	struct jw w;
	PGresult *res;

	if ((res = referrer_or_reply(r, r->in[VR_CODE].s, 404)) == NULL)
		return;
	jw_init(&w, &b);
	jw_obj(&w);
	jw_kbool(&w, "valid", true);
	jw_kstr(&w, "referrer_first_name", sql_str(res, 0, RC_FIRST_NAME));
	jw_end(&w);
	reply_json(r, 200, &b);
	buf_free(&b);
}

/*
 * Checks the caller's own password.  Its failures count apart from
 * sign-ins, so strangers guessing at the sign-in cannot lock the owner
 * out of changing the password or deleting the account.
 */
static int
check_password_or_reply(struct request *r, const char *pw)
{
	struct user *u = app_req(r)->user;
	PGresult *res;

	if ((res = sql_row_or_reply(r, STMT_USER_PASSWORD, ARGS(u->id))) ==
	    NULL)
		return -1;
	return password_check_or_reply(r, PW_REAUTH, u->id, sql_str(res, 0,
	    SQL_ONLY), pw, "The password is wrong.");
}

void
user_change_password(struct request *r)
{
	struct user *u = app_req(r)->user;
	const char *pw = r->in[CP_NEW].s, *why;
	char *hash;

	if ((why = password_problem(pw, u->email)) != NULL) {
		reply_error(r, 400, "invalid_input", why, "new_password");
		return;
	}
	if (check_password_or_reply(r, r->in[CP_CURRENT].s) != 0)
		return;
	if ((hash = password_hash_or_reply(r, pw)) == NULL)
		return;
	/* Every session but the caller's ends, access tokens included. */
	if (sql_begin_or_reply(r) != 0 ||
	    sql_row_or_reply(r, STMT_USER_SET_PASSWORD, ARGS(u->id, hash,
	    u->sid)) == NULL ||
	    sql_run_or_reply(r, STMT_REFRESH_REVOKE_USER, ARGS(u->id,
	    u->sid)) == NULL ||
	    mail_queue_or_reply(r, MAIL_PASSWORD_CHANGED, u->id, u->email,
	    u->language, u->first_name, NULL) != 0 ||
	    sql_commit_or_reply(r) != 0)
		return;
	reply(r, 200, "application/json", "{}", 2);
}

/* One export query's rows written with their renderer. */
static int
export_list(struct request *r, struct jw *w, const char *key, enum stmt s,
    void (*render)(struct jw *, const PGresult *, int, int))
{
	PGresult *res;
	int i;

	if ((res = sql_run_or_reply(r, s, ARGS(app_req(r)->user->id))) ==
	    NULL)
		return -1;
	jw_karr(w, key);
	for (i = 0; i < sql_rows(res); i++)
		render(w, res, i, 0);
	jw_end(w);
	return 0;
}

/*
 * Conversations with their messages: both lists come in the same
 * conversation order, so one walk pairs them.
 */
static int
export_conversations(struct request *r, struct jw *w)
{
	const char *uid = app_req(r)->user->id;
	PGresult *convs, *msgs;
	int i, m = 0, nm;

	if ((convs = sql_run_or_reply(r, STMT_EXPORT_CONVS, ARGS(uid))) ==
	    NULL || (msgs = sql_run_or_reply(r, STMT_EXPORT_MESSAGES,
	    ARGS(uid))) == NULL)
		return -1;
	nm = sql_rows(msgs);
	jw_karr(w, "conversations");
	for (i = 0; i < sql_rows(convs); i++) {
		jw_obj(w);
		jw_key(w, "conversation");
		render_conversation(w, convs, i, 0);
		jw_karr(w, "messages");
		for (; m < nm && strcmp(sql_str(msgs, m, MSG_CONVERSATION_ID),
		    sql_str(convs, i, CONV_ID)) == 0; m++)
			render_message(w, msgs, m, 0);
		jw_end(w);
		jw_end(w);
	}
	jw_end(w);
	return 0;
}

void
user_export(struct request *r)
{
	struct user *u = app_req(r)->user;
	struct buf b = BUF_INIT;
	char now[RFC3339_LEN];
	struct jw w;

	clock_rfc3339_now(now);
	jw_init(&w, &b);
	jw_obj(&w);
	jw_kstr(&w, "exported_at", now);
	jw_key(&w, "profile");
	render_user(&w, u->row, 0, u->col);
	if (sql_begin_or_reply(r) != 0 ||
	    sql_run_or_reply(r, STMT_SNAPSHOT, NO_ARGS) == NULL ||
	    export_conversations(r, &w) != 0 ||
	    export_list(r, &w, "ledger", STMT_EXPORT_LEDGER,
	    render_ledger) != 0 ||
	    export_list(r, &w, "transactions", STMT_EXPORT_TRANSACTIONS,
	    render_transaction) != 0 ||
	    export_list(r, &w, "referrals", STMT_EXPORT_REFERRALS,
	    render_referral) != 0 || sql_commit_or_reply(r) != 0) {
		buf_free(&b);
		return;
	}
	jw_end(&w);
	req_add_header(r, "Content-Disposition",
	    "attachment; filename=\"miky-export.json\"");
	reply_json(r, 200, &b);
	buf_free(&b);
}

void
user_delete(struct request *r)
{
	if (check_password_or_reply(r, r->in[DL_PASSWORD].s) != 0)
		return;
	/*
	 * Conversations, messages, tokens and unsent mail go with the row
	 * (ON DELETE CASCADE); ledger rows and transactions stay, their
	 * user_id set to NULL (ON DELETE SET NULL).
	 */
	if (sql_run_or_reply(r, STMT_USER_DELETE, ARGS(app_req(r)->user->id))
	    != NULL)
		reply_empty(r, 204);
}
