/*
 * Sessions: access tokens (HS256 JWTs, 15 minutes) and refresh tokens
 * (opaque, 30 days, rotated on use, grouped in families), and the check
 * every USER or ADMIN request passes before its handler.
 */
#ifndef MIKY_APP_SESSION_H
#define MIKY_APP_SESSION_H

#include <stdbool.h>

#include <libpq-fe.h>

#include "app.h"
#include "lib/jsonw.h"

#define ACCESS_TTL	900

/* The caller of an authenticated request, loaded once per request. */
struct user {
	const char	*id;
	bool		 admin;
	long long	 credits;
	const char	*plan;
	const char	*email;
	const char	*first_name;
	const char	*language;
	const PGresult	*row;		/* the user object's columns ... */
	int		 col;		/* ... from this one on */
	const char	*sid;		/* the token's session family */
};

/*
 * Checks the bearer token and loads the user: 401 for a missing,
 * invalid or expired token, or a user deleted, banned or signed out
 * since; 403 when `level` is ADMIN and the user is not.  On success
 * app_req(r)->user is set and 0 returned; else the reply was sent.
 */
int	session_auth_or_reply(struct request *, enum access level);

/*
 * Issues an access token and a new refresh token in `family` (NULL: a
 * new family, i.e. a new sign-in) for the user, and writes the fields
 * access_token, refresh_token, token_type and expires_in to w.
 * tva_ms is the user's tokens_valid_after.  Runs on the request's
 * connection, inside the caller's transaction if any.  Returns 0, or
 * -1 after replying.
 */
int	session_issue_or_reply(struct request *, const char *user_id,
	    const char *family, long long tva_ms, struct jw *w);

/*
 * Writes the sign-in answer {user, access_token, ...} with a new family
 * into out.  Returns 0, or -1 after replying.
 */
int	session_signed_in_or_reply(struct request *, const char *user_id,
	    const PGresult *user, int col, long long tva_ms, struct buf *out);

#endif
