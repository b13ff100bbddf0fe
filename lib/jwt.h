/*
 * HS256 JSON Web Tokens (RFC 7519) for access tokens.
 *
 * Signing writes a fixed header ({"alg":"HS256","typ":"JWT"}).
 * Verification pins the algorithm: the MAC is checked first, in
 * constant time, over the exact bytes received; only then is the header
 * parsed, and anything but "HS256" is refused ("none" included), as is
 * a header with any member but "alg" and "typ" ("kid", "jku", "jwk",
 * "crit"...: none is honoured, so none is accepted).  The claims iss,
 * sub, iat and exp are required; sid is optional.
 */
#ifndef MIKY_JWT_H
#define MIKY_JWT_H

#include <stddef.h>
#include <stdint.h>

#define JWT_MAX_LEN	2048
#define JWT_MIN_SECRET	32
#define JWT_CLAIM_MAX	64

enum jwt_status {
	JWT_OK,
	JWT_INVALID,	/* malformed, bad MAC, wrong alg or issuer */
	JWT_EXPIRED,	/* valid but now >= exp */
};

struct jwt_claims {
	char	 sub[JWT_CLAIM_MAX + 1];
	char	 sid[JWT_CLAIM_MAX + 1];	/* "" when absent */
	int64_t	 iat;
	int64_t	 exp;
};

/*
 * Writes a token for the claims into out (outlen bytes).  Returns 0, or
 * -1 if it does not fit or a claim is too long.
 */
int		jwt_sign(const void *secret, size_t secretlen, const char *iss,
		    const struct jwt_claims *, char *out, size_t outlen);

/*
 * Checks token against the secret, issuer and the time now (seconds).
 * Fills *claims on JWT_OK (and on JWT_EXPIRED).  A token issued more
 * than `leeway` seconds in the future is invalid.
 */
enum jwt_status	jwt_verify(const void *secret, size_t secretlen,
		    const char *iss, const char *token, int64_t now,
		    int64_t leeway, struct jwt_claims *claims);

#endif
