/*
 * Signed webhooks in Stripe's scheme: the sender puts
 *
 *	Stripe-Signature: t=1700000000,v1=<hex>,v1=<hex>,v0=...
 *
 * on the request, where each v1 is the lower-case hex HMAC-SHA256, keyed
 * with the endpoint's secret, of "<t>.<raw body>".  Several v1 may come
 * (a secret being rolled); one matching is enough.  Other schemes (v0)
 * are ignored.  The check runs over the raw bytes, before the body is
 * parsed, compares in constant time, and refuses a timestamp more than
 * `tolerance` seconds away from now in either direction, so a captured
 * request cannot be replayed later.
 */
#ifndef MIKY_HOOKSIG_H
#define MIKY_HOOKSIG_H

#include <stddef.h>
#include <stdint.h>

#define HOOKSIG_HEADER_MAX	8192	/* longer headers are malformed */

enum hooksig_result {
	HOOKSIG_OK,
	HOOKSIG_MALFORMED,	/* no header, no t, no v1, junk */
	HOOKSIG_MISMATCH,	/* no v1 matches the body */
	HOOKSIG_STALE,		/* matches, but t is out of tolerance */
};

/*
 * Checks `header` (may be NULL) against body[0..len) and the secret at
 * unix time `now`.  *t is set to the header's timestamp when it has one.
 */
enum hooksig_result hooksig_verify(const char *header, const void *body,
		    size_t len, const void *secret, size_t secretlen,
		    int64_t now, int64_t tolerance, int64_t *t);

/*
 * Writes the header a sender would send for body at time t:
 * "t=<t>,v1=<hex>" (at most 16 + 20 + 64 bytes; out must hold 128).
 */
void		 hooksig_sign(char out[128], const void *body, size_t len,
		    const void *secret, size_t secretlen, int64_t t);

/* A result's name, for logs. */
const char	*hooksig_result_name(enum hooksig_result);

#endif
