/*
 * Per-account limits shared by every worker and host: fixed windows
 * counted in PostgreSQL (rate_limits), keyed by what is limited and
 * whom ("signin_fail:a@b.c").
 */
#ifndef MIKY_APP_RATELIMIT_H
#define MIKY_APP_RATELIMIT_H

struct request;

/*
 * Counts one event; returns the count in the current window (with the
 * seconds left in it in *retry_after), or -1 after replying an error.
 */
int	rate_hit(struct request *, const char *key, int window_s,
	    int *retry_after);
/*
 * Takes a place among the `limit` events of key allowed in the current
 * window before the attempt it stands for is made, so that attempts
 * made at once cannot overrun the limit (as counting after each check
 * would let them).  Returns 0 with the place taken, or -1 after replying
 * (429 with the place given back, or an error).
 */
int	rate_take_or_reply(struct request *, const char *key, int window_s,
	    int limit);
/* Gives back an event counted in the current window; errors ignored. */
void	rate_unhit(struct request *, const char *key, int window_s);
/*
 * The client's address as a limit key: nginx's REMOTE_ADDR (never a
 * header the client sets), an IPv6 address cut to its /64, since one
 * host usually owns a whole /64.  "unknown" without one.
 */
const char *rate_address(struct request *);
/* 429 rate_limited with Retry-After. */
void	reply_rate_limited(struct request *, int retry_after);

#endif
