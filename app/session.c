#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "render.h"
#include "session.h"
#include "sql.h"
#include "lib/clock.h"
#include "lib/jwt.h"
#include "lib/log.h"
#include "lib/token.h"
#include "lib/utf8.h"

#define ISSUER		"miky"
#define IAT_LEEWAY	60

/* Access tokens' user rows, read together (lib/dbbatch.h). */
static struct db_batch users = DB_BATCH_INIT(STMT_AUTH_USERS);

static void
unauthorized(struct request *r, const char *code, const char *message)
{
	reply_error(r, 401, code, message, NULL);
}

/* The token of "Authorization: Bearer <token>", or NULL. */
static const char *
bearer(struct request *r)
{
	const char *h = req_param(r, "HTTP_AUTHORIZATION");

	if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0)
		return NULL;
	h += 7;
	while (*h == ' ')
		h++;
	return *h != '\0' ? h : NULL;
}

/*
 * True if the token was issued before the user's tokens_valid_after
 * (compared in milliseconds) and is not of the one family spared then.
 */
static bool
ended(const struct jwt_claims *c, const PGresult *res)
{
	if (c->iat * 1000 >= sql_int(res, 0, AU_TVA_MS))
		return false;
	return sql_null(res, 0, AU_FAMILY) ||
	    strcmp(c->sid, sql_str(res, 0, AU_FAMILY)) != 0;
}

int
session_auth_or_reply(struct request *r, enum access level)
{
	const char *tok = bearer(r);
	struct app_req *ar = app_req(r);
	struct jwt_claims c;
	struct user *u;
	PGresult *res;
	char *p;

	if (tok == NULL) {
		unauthorized(r, "unauthorized", "Sign in first: this endpoint "
		    "needs a bearer access token.");
		return -1;
	}
	switch (jwt_verify(conf.jwt_secret, strlen(conf.jwt_secret), ISSUER,
	    tok, clock_unix(), IAT_LEEWAY, &c)) {
	case JWT_OK:
		break;
	case JWT_EXPIRED:
		unauthorized(r, "token_expired", "The access token has "
		    "expired; refresh it.");
		return -1;
	default:
		unauthorized(r, "unauthorized", "The access token is not "
		    "valid.");
		return -1;
	}
	if (!json_uuid_ok(c.sub)) {
		unauthorized(r, "unauthorized", "The access token is not "
		    "valid.");
		return -1;
	}
	/* As PostgreSQL spells it: the batched read matches on it. */
	for (p = c.sub; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	/*
	 * The handler's reads go with this query (sql_prefetch()); else the
	 * row is read with other threads' (lib/dbbatch.h).
	 */
	if (ar->prefetch != NULL)
		ar->prefetch(r, c.sub);
	res = ar->prefetch == NULL && ar->db == NULL ?
	    sql_batch_or_reply(r, &users, c.sub) :
	    sql_run_or_reply(r, STMT_AUTH_USER, ARGS(c.sub));
	if (res == NULL)
		return -1;
	/* Deleted, banned, unverified, or signed out since the token. */
	if (sql_rows(res) != 1 || sql_bool(res, 0, AU_BANNED) ||
	    !sql_bool(res, 0, AU_VERIFIED) || ended(&c, res)) {
		unauthorized(r, "unauthorized", "This session has ended; sign "
		    "in again.");
		return -1;
	}
	u = arena_zalloc(r->arena, sizeof(*u));
	u->id = arena_strdup(r->arena, c.sub);
	u->sid = c.sid[0] != '\0' ? arena_strdup(r->arena, c.sid) : NULL;
	u->admin = strcmp(sql_str(res, 0, AU_ROLE), "admin") == 0;
	u->credits = sql_int(res, 0, AU_CREDITS);
	u->plan = sql_str(res, 0, AU_PLAN);
	u->email = sql_str(res, 0, AU_EMAIL);
	u->first_name = sql_str(res, 0, AU_FIRST_NAME);
	u->language = sql_str(res, 0, AU_LANGUAGE);
	u->row = res;
	u->col = AU_USER;
	app_req(r)->user = u;
	r->user_id = u->id;
	log_set_user(u->id);
	if (level == ADMIN && !u->admin) {
		reply_error(r, 403, "forbidden", "This needs an administrator.",
		    NULL);
		return -1;
	}
	return 0;
}

/* The User-Agent, if it is valid UTF-8, cut to 512 characters. */
static const char *
user_agent(struct request *r)
{
	const char *ua = req_param(r, "HTTP_USER_AGENT");
	size_t n;

	if (ua == NULL || !utf8_valid(ua, strlen(ua)))
		return NULL;
	n = utf8_prefix(ua, strlen(ua), 512);
	return arena_strndup(r->arena, ua, n);
}

int
session_issue_or_reply(struct request *r, const char *user_id,
    const char *family, long long tva_ms, struct jw *w)
{
	char refresh[TOKEN_LEN + 1], hash[BYTEA_HEX_LEN + 1];
	char access[JWT_MAX_LEN];
	struct jwt_claims c;
	PGresult *res;
	int64_t now = clock_unix();

	token_new(refresh);
	token_hash_hex(refresh, hash);
	if ((res = sql_row_or_reply(r, STMT_REFRESH_INSERT, ARGS(user_id,
	    family, hash, user_agent(r), r->remote_addr))) == NULL)
		return -1;

	/*
	 * Never issued before tokens_valid_after: a token made in the same
	 * second as a password reset must outlive it, one made before must
	 * not (the check compares iat in ms with tokens_valid_after).
	 */
	memset(&c, 0, sizeof(c));
	snprintf(c.sub, sizeof(c.sub), "%s", user_id);
	snprintf(c.sid, sizeof(c.sid), "%s", sql_str(res, 0, SQL_ONLY));
	c.iat = now * 1000 >= tva_ms ? now : (tva_ms + 999) / 1000;
	c.exp = c.iat + ACCESS_TTL;
	if (jwt_sign(conf.jwt_secret, strlen(conf.jwt_secret), ISSUER, &c,
	    access, sizeof(access)) != 0) {
		log_errx("jwt_sign failed");
		reply_error(r, 500, "internal_error",
		    "Something went wrong on our side.", NULL);
		return -1;
	}
	jw_kstr(w, "access_token", access);
	jw_kstr(w, "refresh_token", refresh);
	jw_kstr(w, "token_type", "Bearer");
	jw_kint(w, "expires_in", ACCESS_TTL);
	return 0;
}

int
session_signed_in_or_reply(struct request *r, const char *user_id,
    const PGresult *user, int col, long long tva_ms, struct buf *out)
{
	struct jw w;

	jw_init(&w, out);
	jw_obj(&w);
	jw_key(&w, "user");
	render_user(&w, user, 0, col);
	if (session_issue_or_reply(r, user_id, NULL, tva_ms, &w) != 0)
		return -1;
	jw_end(&w);
	return 0;
}
