/*
 * The Stripe API client: form-encoded calls to STRIPE_API_BASE with the
 * secret key, over lib/http.c.
 *
 * Every POST carries an Idempotency-Key, the same on each retry, so a
 * call whose answer was lost is retried without doing the work twice.
 * A call is tried at most STRIPE_ATTEMPTS times, with a short growing
 * pause, when the connection fails or times out or Stripe answers 5xx,
 * 429 or 409 (another request with the same key was in flight); any
 * other answer is final.  A failure reaches the client as 502
 * upstream_error and never carries Stripe's text, which goes to the
 * log only.
 *
 * No database connection may be held across a call: the caller does
 * sql_release() first (checked in debug builds).
 */
#ifndef MIKY_APP_STRIPE_H
#define MIKY_APP_STRIPE_H

#include <stdbool.h>

#include <cJSON.h>

#include "lib/buf.h"

struct request;

#define STRIPE_ATTEMPTS		3

/* True if STRIPE_SECRET_KEY is set; else replies 503 unavailable. */
bool		 stripe_ready_or_reply(struct request *);

/*
 * One call: method "GET", "POST" or "DELETE", path under the API base
 * ("/v1/customers"), the form body of a POST (or NULL), and its
 * idempotency key (NULL: a new random one; ignored but for POST).
 * Returns Stripe's answer as a JSON object freed with the request, or
 * NULL after replying 502 upstream_error.
 */
const cJSON	*stripe_call_or_reply(struct request *, const char *method,
		    const char *path, const struct buf *form,
		    const char *idempotency_key);

/*
 * Reading Stripe objects: the member at a dotted path ("items.data.0.
 * price.id"; a number indexes an array), or NULL when a step is
 * missing or of the wrong kind.
 */
const cJSON	*stripe_get(const cJSON *, const char *path);
/* The string at path, or NULL. */
const char	*stripe_str(const cJSON *, const char *path);
/* The integer at path, or def. */
long long	 stripe_int(const cJSON *, const char *path, long long def);
/* true/false at path, or -1 if absent. */
int		 stripe_bool(const cJSON *, const char *path);
/*
 * The id of an expandable field: the string at path, or the "id" of the
 * object there.  NULL if neither.
 */
const char	*stripe_id(const cJSON *, const char *path);

#endif
