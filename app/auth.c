/*
 * /api/auth: sign-up with mandatory email verification, sign-in, refresh
 * token rotation, logout, and the password reset flow.  Nothing here
 * tells a caller whether an email has an account: sign-up, resend and
 * forgot-password answer 202 alike, and a sign-in for an unknown email
 * spends a password hash like a real one.
 */
#include <stdio.h>
#include <string.h>

#include "app.h"
#include "events.h"
#include "mail.h"
#include "policy.h"
#include "ratelimit.h"
#include "referrals.h"
#include "session.h"
#include "settings.h"
#include "sql.h"
#include "lib/buf.h"
#include "lib/jsonw.h"
#include "lib/log.h"
#include "lib/token.h"

#define VERIFY_TTL		"48 hours"
#define RESET_TTL		"1 hour"
#define VERIFY_MAILS		5
#define RESET_MAILS		3
#define MAIL_WINDOW		3600
/* Unambiguous: no 0/O, 1/I. */
#define REFERRAL_ALPHABET	"ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
#define REFERRAL_LEN		8

enum { SU_EMAIL, SU_PASSWORD, SU_FIRST, SU_LAST, SU_LANG, SU_REF };
const struct jfield auth_signup_in[] = {
	[SU_EMAIL] = { "email", JF_EMAIL, JF_REQUIRED, 3, 254 },
	[SU_PASSWORD] = { "password", JF_STRING, JF_REQUIRED, 8, 128 },
	[SU_FIRST] = { "first_name", JF_STRING, JF_REQUIRED | JF_TRIM |
	    JF_LINE, 1, 100 },
	[SU_LAST] = { "last_name", JF_STRING, JF_REQUIRED | JF_TRIM | JF_LINE,
	    0, 100 },
	[SU_LANG] = { "language", JF_STRING, JF_TRIM, 2, 5 },
	[SU_REF] = { "referral_code", JF_STRING, JF_TRIM | JF_NULLABLE, 0,
	    32 },
	{ NULL }
};

enum { EM_EMAIL };
const struct jfield auth_email_in[] = {
	[EM_EMAIL] = { "email", JF_EMAIL, JF_REQUIRED, 3, 254 },
	{ NULL }
};

enum { VE_TOKEN, VE_PASSWORD };
const struct jfield auth_verify_in[] = {
	[VE_TOKEN] = { "token", JF_STRING, JF_REQUIRED, 1, 256 },
	[VE_PASSWORD] = { "password", JF_STRING, JF_REQUIRED, 1, 1024 },
	{ NULL }
};

enum { SI_EMAIL, SI_PASSWORD };
const struct jfield auth_signin_in[] = {
	[SI_EMAIL] = { "email", JF_EMAIL, JF_REQUIRED, 3, 254 },
	[SI_PASSWORD] = { "password", JF_STRING, JF_REQUIRED, 1, 1024 },
	{ NULL }
};

enum { RP_TOKEN, RP_PASSWORD };
const struct jfield auth_reset_in[] = {
	[RP_TOKEN] = { "token", JF_STRING, JF_REQUIRED, 1, 256 },
	[RP_PASSWORD] = { "password", JF_STRING, JF_REQUIRED, 8, 128 },
	{ NULL }
};

enum { RT_TOKEN };
const struct jfield auth_refresh_in[] = {
	[RT_TOKEN] = { "refresh_token", JF_STRING, JF_REQUIRED, 1, 256 },
	{ NULL }
};

enum { LO_TOKEN, LO_ALL };
const struct jfield auth_logout_in[] = {
	[LO_TOKEN] = { "refresh_token", JF_STRING, JF_REQUIRED, 1, 256 },
	[LO_ALL] = { "all", JF_BOOL, 0, 0, 0 },
	{ NULL }
};

static void
reply_status(struct request *r, const char *status, const char *email)
{
	struct buf b = BUF_INIT;
	struct jw w;

	jw_init(&w, &b);
	jw_obj(&w);
	jw_kstr(&w, "status", status);
	if (email != NULL)
		jw_kstr(&w, "email", email);
	jw_end(&w);
	reply_json(r, 202, &b);
	buf_free(&b);
}

static void
reply_invalid_token(struct request *r)
{
	reply_error(r, 400, "invalid_token", "This link is invalid or has "
	    "expired; ask for a new one.", NULL);
}

/*
 * Counts a mail of kind `what` to `email` and says whether it may go:
 * 1 yes, 0 over the limit (silently not sent), -1 replied an error.
 */
static int
mail_allowed(struct request *r, const char *what, const char *email,
    int limit)
{
	int retry, n;

	n = rate_hit(r, arena_printf(r->arena, "%s:%s", what, email),
	    MAIL_WINDOW, &retry);
	if (n < 0)
		return -1;
	if (n > limit)
		log_info("%s mail limit reached; not sending", what);
	return n <= limit;
}

/*
 * Voids earlier links of `purpose` and queues a mail with a new one.
 * Returns 0, or -1 after replying.
 */
static int
send_link(struct request *r, enum mail_template t, const char *purpose,
    const char *ttl, const char *user_id, const char *email,
    const char *language, const char *first_name)
{
	char tok[TOKEN_LEN + 1], hash[BYTEA_HEX_LEN + 1];

	if (sql_run_or_reply(r, STMT_EMAIL_TOKENS_VOID, ARGS(user_id,
	    purpose)) == NULL)
		return -1;
	token_new(tok);
	token_hash_hex(tok, hash);
	if (sql_run_or_reply(r, STMT_EMAIL_TOKEN_INSERT, ARGS(user_id, purpose,
	    hash, ttl)) == NULL)
		return -1;
	return mail_queue_or_reply(r, t, user_id, email, language, first_name,
	    tok);
}

/* A verification mail to an account of STMT_USER_BY_EMAIL, if allowed. */
static int
send_verify(struct request *r, const PGresult *user, const char *email)
{
	int ok;

	if ((ok = mail_allowed(r, "verify_mail", email, VERIFY_MAILS)) <= 0)
		return ok;
	return send_link(r, MAIL_VERIFY, "verify", VERIFY_TTL,
	    sql_str(user, 0, UE_ID), email, sql_str(user, 0, UE_LANGUAGE),
	    NULL);
}

/*
 * Creates the pending account, or finds the existing one.  Returns the
 * user row (STMT_USER_BY_EMAIL) for an existing account, NULL with
 * *new_id set for a new one, NULL with both unset after replying.
 */
static PGresult *
create_account(struct request *r, const char *hash, const char *lang,
    const char *referrer, const char **new_id)
{
	const struct settings *s = settings_for(r);
	char code[REFERRAL_LEN + 1], credits[24];
	PGresult *res;
	int attempt;

	*new_id = NULL;
	snprintf(credits, sizeof(credits), "%lld",
	    settings_int(s, SET_SIGNUP_CREDITS));
	for (attempt = 0; attempt < 3; attempt++) {
		token_from_alphabet(code, REFERRAL_LEN, REFERRAL_ALPHABET);
		if ((res = sql_run_or_reply(r, STMT_SIGNUP_INSERT, ARGS(
		    r->in[SU_EMAIL].s, hash, r->in[SU_FIRST].s,
		    r->in[SU_LAST].s, lang, code, referrer, credits))) == NULL)
			return NULL;
		if (sql_rows(res) == 1) {
			*new_id = sql_str(res, 0, SQL_ONLY);
			return NULL;
		}
		/* Taken: the email (an existing account) or the code. */
		if ((res = sql_run_or_reply(r, STMT_USER_BY_EMAIL, ARGS(
		    r->in[SU_EMAIL].s))) == NULL)
			return NULL;
		if (sql_rows(res) == 1)
			return res;
	}
	log_errx("no free referral code after %d attempts", attempt);
	reply_error(r, 500, "internal_error", "Something went wrong on our "
	    "side.", NULL);
	return NULL;
}

void
auth_signup(struct request *r)
{
	const char *email = r->in[SU_EMAIL].s, *pw = r->in[SU_PASSWORD].s;
	const char *lang = r->in[SU_LANG].present ? r->in[SU_LANG].s : "en";
	const char *ref = r->in[SU_REF].present ? r->in[SU_REF].s : "";
	const char *why, *referrer = NULL, *new_id, *id;
	char *hash;
	PGresult *user, *res;
	int ok;

	if ((why = password_problem(pw, email)) != NULL) {
		reply_error(r, 400, "invalid_input", why, "password");
		return;
	}
	if (!language_code_ok(lang)) {
		reply_error(r, 400, "invalid_input", "Field 'language' must be "
		    "a language code such as 'en' or 'pt-BR'.", "language");
		return;
	}
	/* Every path hashes once, so all take about the same time. */
	if ((hash = password_hash_or_reply(r, pw)) == NULL ||
	    sql_begin_or_reply(r) != 0)
		return;
	if (*ref != '\0') {
		if ((res = referrer_or_reply(r, ref, 400)) == NULL)
			return;
		/* One's own mailbox under another alias earns nothing. */
		if (!referral_same_mailbox(email, sql_str(res, 0, RC_EMAIL)))
			referrer = sql_str(res, 0, RC_ID);
	}
	user = create_account(r, hash, lang, referrer, &new_id);
	if (new_id != NULL) {
		if (referrer != NULL && sql_run_or_reply(r,
		    STMT_REFERRAL_INSERT, ARGS(referrer, new_id,
		    r->in[SU_FIRST].s)) == NULL)
			return;
		if ((ok = mail_allowed(r, "verify_mail", email,
		    VERIFY_MAILS)) < 0 || (ok && send_link(r, MAIL_VERIFY,
		    "verify", VERIFY_TTL, new_id, email, lang, NULL) != 0))
			return;
	} else if (user == NULL) {
		return;
	} else if (!sql_bool(user, 0, UE_VERIFIED)) {
		/*
		 * Pending: the newest sign-up sets the password, and only
		 * that password verifies the email (auth_verify_email).
		 * Over the mail limit nothing changes: replacing the
		 * password would void the links already sent and mail
		 * none, leaving the account with no way to be verified.
		 */
		id = sql_str(user, 0, UE_ID);
		if ((ok = mail_allowed(r, "verify_mail", email,
		    VERIFY_MAILS)) < 0)
			return;
		if (ok && (sql_run_or_reply(r, STMT_PENDING_UPDATE, ARGS(id,
		    hash, r->in[SU_FIRST].s, r->in[SU_LAST].s, lang)) ==
		    NULL || send_link(r, MAIL_VERIFY, "verify", VERIFY_TTL, id,
		    email, lang, NULL) != 0))
			return;
	} else {
		if ((ok = mail_allowed(r, "verify_mail", email,
		    VERIFY_MAILS)) < 0 || (ok && mail_queue_or_reply(r,
		    MAIL_ALREADY_REGISTERED, sql_str(user, 0, UE_ID), email,
		    sql_str(user, 0, UE_LANGUAGE), sql_str(user, 0,
		    UE_FIRST_NAME), NULL) != 0))
			return;
	}
	if (sql_commit_or_reply(r) != 0)
		return;
	/* A new account's sign-up grant (STMT_SIGNUP_INSERT). */
	if (new_id != NULL &&
	    settings_int(settings_for(r), SET_SIGNUP_CREDITS) > 0)
		event_note(EV_GRANT, "signup", "granted", NULL);
	reply_status(r, "verification_sent", email);
}

void
auth_resend_verification(struct request *r)
{
	const char *email = r->in[EM_EMAIL].s;
	PGresult *user;

	if (sql_begin_or_reply(r) != 0 ||
	    (user = sql_run_or_reply(r, STMT_USER_BY_EMAIL, ARGS(email))) ==
	    NULL)
		return;
	if (sql_rows(user) == 1 && !sql_bool(user, 0, UE_VERIFIED) &&
	    !sql_bool(user, 0, UE_BANNED) && send_verify(r, user, email) < 0)
		return;
	if (sql_commit_or_reply(r) == 0)
		reply_status(r, "verification_sent", email);
}

/*
 * The live email token `tok` of `purpose`: its STMT_EMAIL_TOKEN_PEEK
 * row, or NULL after replying 400 invalid_token (or an error).  It is
 * not spent: a request that fails its other checks leaves it usable.
 */
static PGresult *
link_or_reply(struct request *r, const char *tok, const char *purpose)
{
	char hash[BYTEA_HEX_LEN + 1];
	PGresult *res;

	if (!token_well_formed(tok)) {
		reply_invalid_token(r);
		return NULL;
	}
	token_hash_hex(tok, hash);
	if ((res = sql_run_or_reply(r, STMT_EMAIL_TOKEN_PEEK, ARGS(hash,
	    purpose))) == NULL)
		return NULL;
	if (sql_rows(res) == 0) {
		reply_invalid_token(r);
		return NULL;
	}
	return res;
}

/*
 * Spends a token found by link_or_reply() for good, in the caller's
 * transaction: 0, or -1 after replying (a second use raced and lost).
 */
static int
spend_or_reply(struct request *r, const char *token_id)
{
	PGresult *res = sql_run_or_reply(r, STMT_EMAIL_TOKEN_SPEND_ID,
	    ARGS(token_id));

	if (res == NULL)
		return -1;
	if (sql_rows(res) == 0) {
		reply_invalid_token(r);
		return -1;
	}
	return 0;
}

/*
 * The link proves the mailbox and the password proves the sign-up that
 * sent it: a stranger who signed up again with someone's pending email
 * changed the password, so the owner's link needs the stranger's
 * password, which the owner does not have, and the stranger never sees
 * the link.  A wrong password keeps the token and counts as a failed
 * sign-in of the account.
 */
void
auth_verify_email(struct request *r)
{
	const char *tok = r->in[VE_TOKEN].s, *pw = r->in[VE_PASSWORD].s;
	const char *token_id, *user_id;
	struct buf b = BUF_INIT;
	PGresult *res;

	if ((res = link_or_reply(r, tok, "verify")) == NULL)
		return;
	token_id = sql_str(res, 0, TP_ID);
	user_id = sql_str(res, 0, TP_USER);
	if ((res = sql_row_or_reply(r, STMT_USER_PASSWORD, ARGS(user_id))) ==
	    NULL || password_check_or_reply(r, PW_SIGNIN, user_id,
	    sql_str(res, 0, SQL_ONLY), pw,
	    "The password is not the one chosen at this sign-up.") != 0)
		return;
	if (sql_begin_or_reply(r) != 0 ||
	    spend_or_reply(r, token_id) != 0)
		return;
	if ((res = sql_run_or_reply(r, STMT_USER_VERIFY, ARGS(user_id))) ==
	    NULL)
		return;
	if (sql_rows(res) == 0) {
		reply_error(r, 403, "forbidden", "This account is suspended.",
		    NULL);
		return;
	}
	if (session_signed_in_or_reply(r, user_id, res, UV_USER,
	    sql_int(res, 0, UV_TVA_MS), &b) == 0 &&
	    sql_commit_or_reply(r) == 0)
		reply_json(r, 200, &b);
	buf_free(&b);
}

void
auth_signin(struct request *r)
{
	const char *email = r->in[SI_EMAIL].s, *pw = r->in[SI_PASSWORD].s;
	struct buf b = BUF_INIT;
	PGresult *user;

	if (password_room_or_reply(r) != 0 ||
	    (user = sql_run_or_reply(r, STMT_USER_BY_EMAIL, ARGS(email))) ==
	    NULL || password_check_or_reply(r, PW_SIGNIN, sql_rows(user) == 1 ?
	    sql_str(user, 0, UE_ID) : email,
	    sql_rows(user) == 1 ? sql_str(user, 0, UE_HASH) : NULL, pw,
	    "The email or the password is wrong.") != 0)
		return;
	if (sql_bool(user, 0, UE_BANNED)) {
		reply_error(r, 403, "forbidden", "This account is suspended.",
		    NULL);
		return;
	}
	if (!sql_bool(user, 0, UE_VERIFIED)) {
		reply_error(r, 403, "email_not_verified", "Verify your email "
		    "first: follow the link we sent you.", NULL);
		return;
	}
	if (session_signed_in_or_reply(r, sql_str(user, 0, UE_ID), user,
	    UE_USER, sql_int(user, 0, UE_TVA_MS), &b) == 0)
		reply_json(r, 200, &b);
	buf_free(&b);
}

void
auth_forgot_password(struct request *r)
{
	const char *email = r->in[EM_EMAIL].s;
	PGresult *user;
	int ok;

	if (sql_begin_or_reply(r) != 0 ||
	    (user = sql_run_or_reply(r, STMT_USER_BY_EMAIL, ARGS(email))) ==
	    NULL)
		return;
	if (sql_rows(user) == 1 && !sql_bool(user, 0, UE_BANNED)) {
		if ((ok = mail_allowed(r, "reset_mail", email,
		    RESET_MAILS)) < 0 || (ok && send_link(r, MAIL_RESET,
		    "reset", RESET_TTL, sql_str(user, 0, UE_ID), email,
		    sql_str(user, 0, UE_LANGUAGE), sql_str(user, 0,
		    UE_FIRST_NAME)) != 0))
			return;
	}
	if (sql_commit_or_reply(r) == 0)
		reply_status(r, "reset_sent", NULL);
}

void
auth_reset_password(struct request *r)
{
	const char *tok = r->in[RP_TOKEN].s, *pw = r->in[RP_PASSWORD].s;
	const char *why, *token_id, *user_id;
	char *pwhash;
	PGresult *res;

	if ((res = link_or_reply(r, tok, "reset")) == NULL)
		return;
	token_id = sql_str(res, 0, TP_ID);
	user_id = sql_str(res, 0, TP_USER);
	if ((why = password_problem(pw, sql_str(res, 0, TP_EMAIL))) != NULL) {
		reply_error(r, 400, "invalid_input", why, "password");
		return;
	}
	sql_release(r);
	if ((pwhash = password_hash_or_reply(r, pw)) == NULL ||
	    sql_begin_or_reply(r) != 0)
		return;
	/* Spent for good only now: a second use races and loses here. */
	if (spend_or_reply(r, token_id) != 0)
		return;
	if ((res = sql_row_or_reply(r, STMT_USER_SET_PASSWORD, ARGS(user_id,
	    pwhash, NULL))) == NULL ||
	    sql_run_or_reply(r, STMT_REFRESH_REVOKE_USER, ARGS(user_id,
	    NULL)) == NULL ||
	    mail_queue_or_reply(r, MAIL_PASSWORD_CHANGED, user_id,
	    sql_str(res, 0, SP_EMAIL), sql_str(res, 0, SP_LANGUAGE),
	    sql_str(res, 0, SP_FIRST_NAME), NULL) != 0 ||
	    sql_run_or_reply(r, STMT_EMAIL_TOKENS_VOID, ARGS(user_id,
	    "verify")) == NULL)
		return;
	if (sql_commit_or_reply(r) == 0)
		reply(r, 200, "application/json", "{}", 2);
}

static void
reply_bad_refresh(struct request *r)
{
	reply_error(r, 401, "unauthorized", "The refresh token is not valid; "
	    "sign in again.", NULL);
}

/*
 * Rotation and revocation of a session family run under the family's
 * lock (STMT_REFRESH_LOOKUP takes it), so a rotation committing at the
 * moment a reuse revokes the family cannot leave its new token alive.
 */
void
auth_refresh_token(struct request *r)
{
	const char *tok = r->in[RT_TOKEN].s;
	char hash[BYTEA_HEX_LEN + 1];
	struct buf b = BUF_INIT;
	PGresult *res;
	struct jw w;

	if (!token_well_formed(tok)) {
		reply_bad_refresh(r);
		return;
	}
	token_hash_hex(tok, hash);
	if (sql_begin_or_reply(r) != 0 ||
	    (res = sql_run_or_reply(r, STMT_REFRESH_LOOKUP, ARGS(hash))) ==
	    NULL)
		return;
	/* A spent token again: stolen or replayed; end the whole family. */
	if (sql_rows(res) == 1 && sql_bool(res, 0, RL_USED)) {
		if (sql_run_or_reply(r, STMT_REFRESH_REVOKE_FAMILY, ARGS(
		    sql_str(res, 0, RL_FAMILY))) == NULL ||
		    sql_commit_or_reply(r) != 0)
			return;
		log_warnx("refresh token reused; session family revoked");
		reply_error(r, 401, "token_reused", "This refresh token was "
		    "already used, so the session was ended; sign in again.",
		    NULL);
		return;
	}
	if (sql_rows(res) == 1 && (res = sql_run_or_reply(r,
	    STMT_REFRESH_SPEND, ARGS(hash))) == NULL)
		return;
	if (sql_rows(res) == 0) {
		sql_rollback(r);
		reply_bad_refresh(r);
		return;
	}
	jw_init(&w, &b);
	jw_obj(&w);
	if (session_issue_or_reply(r, sql_str(res, 0, RS_USER),
	    sql_str(res, 0, RS_FAMILY), sql_int(res, 0, RS_TVA_MS), &w) == 0 &&
	    sql_commit_or_reply(r) == 0) {
		jw_end(&w);
		reply_json(r, 200, &b);
	}
	buf_free(&b);
}

void
auth_logout(struct request *r)
{
	const char *tok = r->in[LO_TOKEN].s, *uid;
	char hash[BYTEA_HEX_LEN + 1];
	PGresult *res;

	if (r->in[LO_ALL].present && r->in[LO_ALL].b) {
		if (session_auth_or_reply(r, USER) != 0)
			return;
		uid = app_req(r)->user->id;
		if (sql_begin_or_reply(r) != 0 ||
		    sql_run_or_reply(r, STMT_REFRESH_REVOKE_USER, ARGS(uid,
		    NULL)) == NULL ||
		    sql_run_or_reply(r, STMT_USER_END_SESSIONS, ARGS(uid)) ==
		    NULL || sql_commit_or_reply(r) != 0)
			return;
	} else if (token_well_formed(tok)) {
		token_hash_hex(tok, hash);
		if (sql_begin_or_reply(r) != 0 ||
		    (res = sql_run_or_reply(r, STMT_REFRESH_LOOKUP,
		    ARGS(hash))) == NULL)
			return;
		if (sql_rows(res) == 1 && sql_run_or_reply(r,
		    STMT_REFRESH_REVOKE_FAMILY, ARGS(sql_str(res, 0,
		    RL_FAMILY))) == NULL)
			return;
		if (sql_commit_or_reply(r) != 0)
			return;
	}
	reply_empty(r, 204);
}
