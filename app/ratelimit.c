#include <stdio.h>
#include <stdlib.h>

#include "app.h"
#include "ratelimit.h"
#include "sql.h"

static int
run(struct request *r, enum stmt s, const char *key, int window_s,
    int *retry_after)
{
	char window[16];
	const char *params[2] = { key, window };
	PGresult *res;

	snprintf(window, sizeof(window), "%d", window_s);
	if ((res = sql_run_or_reply(r, s, params)) == NULL)
		return -1;
	*retry_after = atoi(PQgetvalue(res, 0, 1));
	if (*retry_after < 1)
		*retry_after = 1;
	return atoi(PQgetvalue(res, 0, 0));
}

int
rate_hit(struct request *r, const char *key, int window_s, int *retry_after)
{
	return run(r, STMT_RATE_HIT, key, window_s, retry_after);
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
	const char *params[2] = { key, window };
	struct db_err err;

	snprintf(window, sizeof(window), "%d", window_s);
	(void)sql_run(r, STMT_RATE_UNHIT, params, &err);
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
