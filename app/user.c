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
#include "lib/log.h"

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

/*
 * The data export streams: the document is written a page of rows at a
 * time and sent whenever EXPORT_FLUSH bytes are ready, so neither the
 * document nor any result of a whole list is ever held.  One snapshot
 * (a REPEATABLE READ transaction) keeps the pages consistent.  An error
 * before the first byte is sent is answered as usual; after it, the
 * transfer is cut short (reply_abort), never passed off as complete.
 */
#define EXPORT_PAGE	500
#define EXPORT_PAGE_S	"500"
#define EXPORT_FLUSH	(64 * 1024)

struct export {
	struct request	*r;
	struct buf	 b;
	struct jw	 w;
	bool		 started;	/* the response's head is sent */
	struct db_err	 err;		/* set when a statement failed */
	void		(*render)(struct jw *, const PGresult *, int, int);
};

static void
export_head(struct request *r)
{
	req_add_header(r, "Content-Disposition",
	    "attachment; filename=\"miky-export.json\"");
}

/* Sends what is written once there is enough of it, or all of it. */
static int
export_flush(struct export *x, bool all)
{
	if (x->b.len < EXPORT_FLUSH && !(all && x->b.len > 0))
		return 0;
	if (!x->started) {
		export_head(x->r);
		if (reply_start(x->r, 200, "application/json") != 0)
			return -1;
		x->started = true;
	}
	if (req_write(x->r, x->b.p, x->b.len, false) != 0)
		return -1;
	buf_reset(&x->b);
	return 0;
}

/* Writes one row of a page: 0, or -1 to stop. */
typedef int (*export_row)(struct export *, const PGresult *, int row,
    int col);

/*
 * Writes every row of a paged statement (STMT_EXPORT_*), whose
 * parameters are the user, `scope` unless NULL (a conversation), the
 * `nkeys` key columns of the previous page's last row (NULL for the
 * first page) and the page size.  Rows start with those key columns;
 * the object follows them.  Each page is freed before the next.
 */
static int
export_pages(struct export *x, enum stmt s, const char *scope, int nkeys,
    export_row row)
{
	char key[EK__N][48];
	const char *args[3 + EK__N];
	PGresult *res;
	int i, k, n, na, rc = 0;
	bool first = true;

	do {
		na = 0;
		args[na++] = app_req(x->r)->user->id;
		if (scope != NULL)
			args[na++] = scope;
		for (k = 0; k < nkeys; k++)
			args[na++] = first ? NULL : key[k];
		args[na++] = EXPORT_PAGE_S;
		if ((res = sql_run(x->r, s, args, na, &x->err)) == NULL)
			return -1;
		n = sql_rows(res);
		for (i = 0; i < n && rc == 0; i++)
			if (row(x, res, i, nkeys) != 0 ||
			    export_flush(x, false) != 0)
				rc = -1;
		for (k = 0; n > 0 && k < nkeys; k++)
			snprintf(key[k], sizeof(key[k]), "%s",
			    sql_str(res, n - 1, k));
		sql_free(x->r, res);
		first = false;
	} while (rc == 0 && n == EXPORT_PAGE);
	return rc;
}

static int
export_object(struct export *x, const PGresult *res, int row, int col)
{
	x->render(&x->w, res, row, col);
	return 0;
}

/* A conversation and, in pages of their own, its messages. */
static int
export_conversation(struct export *x, const PGresult *res, int row,
    int col)
{
	jw_obj(&x->w);
	jw_key(&x->w, "conversation");
	render_conversation(&x->w, res, row, col);
	jw_karr(&x->w, "messages");
	x->render = render_message;
	if (export_pages(x, STMT_EXPORT_MESSAGES, sql_str(res, row, EK_ID),
	    EK__N, export_object) != 0)
		return -1;
	jw_end(&x->w);
	jw_end(&x->w);
	return 0;
}

static const struct {
	const char	*key;
	enum stmt	 stmt;
	int		 nkeys;
	void		(*render)(struct jw *, const PGresult *, int, int);
} export_lists[] = {
	{ "ledger", STMT_EXPORT_LEDGER, EL__N, render_ledger },
	{ "transactions", STMT_EXPORT_TRANSACTIONS, EK__N,
	    render_transaction },
	{ "referrals", STMT_EXPORT_REFERRALS, EK__N, render_referral },
};

void
user_export(struct request *r)
{
	struct user *u = app_req(r)->user;
	struct export x = { .r = r, .b = BUF_INIT };
	char now[RFC3339_LEN];
	size_t i;

	clock_rfc3339_now(now);
	jw_init(&x.w, &x.b);
	jw_obj(&x.w);
	jw_kstr(&x.w, "exported_at", now);
	jw_key(&x.w, "profile");
	render_user(&x.w, u->row, 0, u->col);
	if (sql_begin(r, &x.err) != 0 ||
	    sql_run(r, STMT_SNAPSHOT, NO_ARGS, &x.err) == NULL)
		goto fail;
	jw_karr(&x.w, "conversations");
	if (export_pages(&x, STMT_EXPORT_CONVS, NULL, EK__N,
	    export_conversation) != 0)
		goto fail;
	jw_end(&x.w);
	for (i = 0; i < sizeof(export_lists) / sizeof(export_lists[0]); i++) {
		jw_karr(&x.w, export_lists[i].key);
		x.render = export_lists[i].render;
		if (export_pages(&x, export_lists[i].stmt, NULL,
		    export_lists[i].nkeys, export_object) != 0)
			goto fail;
		jw_end(&x.w);
	}
	if (sql_commit(r, &x.err) != 0)
		goto fail;
	jw_end(&x.w);
	if (x.started)
		export_flush(&x, true);
	else {
		/* Small enough to go in one piece, with its length. */
		export_head(r);
		reply_json(r, 200, &x.b);
	}
	buf_free(&x.b);
	return;
fail:
	if (r->client_gone)
		;	/* nothing more to say to anyone */
	else if (x.started) {
		log_warnx("export cut short after it started: %s",
		    x.err.code != NULL ? x.err.code : "?");
		reply_abort(r);
	} else
		reply_db_error(r, &x.err);
	buf_free(&x.b);
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
