#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "app.h"
#include "ratelimit.h"
#include "sql.h"

int
rate_hit(struct request *r, const char *key, int window_s, int *retry_after)
{
	char window[16];
	PGresult *res;

	snprintf(window, sizeof(window), "%d", window_s);
	if ((res = sql_row_or_reply(r, STMT_RATE_HIT, ARGS(key, window))) ==
	    NULL)
		return -1;
	*retry_after = (int)sql_int(res, 0, RH_RETRY_AFTER);
	if (*retry_after < 1)
		*retry_after = 1;
	return (int)sql_int(res, 0, RH_COUNT);
}

int
rate_take_or_reply(struct request *r, const char *key, int window_s,
    int limit)
{
	int retry, n;

	if ((n = rate_hit(r, key, window_s, &retry)) < 0)
		return -1;
	if (n > limit) {
		rate_unhit(r, key, window_s);
		reply_rate_limited(r, retry);
		return -1;
	}
	return 0;
}

void
rate_unhit(struct request *r, const char *key, int window_s)
{
	char window[16];
	struct db_err err;

	snprintf(window, sizeof(window), "%d", window_s);
	(void)sql_run(r, STMT_RATE_UNHIT, ARGS(key, window), &err);
}

const char *
rate_address(struct request *r)
{
	struct in6_addr a6;
	char out[INET6_ADDRSTRLEN];

	if (r->remote_addr == NULL || *r->remote_addr == '\0')
		return "unknown";
	/* IPv4, and IPv4 mapped into IPv6, stay whole. */
	if (strchr(r->remote_addr, ':') == NULL ||
	    inet_pton(AF_INET6, r->remote_addr, &a6) != 1 ||
	    IN6_IS_ADDR_V4MAPPED(&a6))
		return r->remote_addr;
	memset(a6.s6_addr + 8, 0, 8);
	if (inet_ntop(AF_INET6, &a6, out, sizeof(out)) == NULL)
		return r->remote_addr;
	return arena_printf(r->arena, "%s/64", out);
}

void
reply_rate_limited(struct request *r, int retry_after)
{
	char v[16];

	snprintf(v, sizeof(v), "%d", retry_after);
	req_add_header(r, "Retry-After", v);
	reply_error(r, 429, "rate_limited", "Too many attempts; try again "
	    "later.", NULL);
}
