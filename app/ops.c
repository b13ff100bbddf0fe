#include <arpa/inet.h>
#include <stdbool.h>
#include <string.h>

#include "app.h"
#include "sql.h"
#include "lib/buf.h"
#include "lib/metrics.h"

void
ops_health(struct request *r)
{
	struct buf b = BUF_INIT;
	struct db_err err;

	if (sql_run(r, STMT_PING, NO_ARGS, &err) == NULL) {
		if (!r->replied)
			reply_error(r, 503, "unavailable",
			    "The database is unreachable.", NULL);
		return;
	}
	buf_puts(&b, "{\"status\":\"ok\"}");
	reply_json(r, 200, &b);
	buf_free(&b);
}

/* True for 127.0.0.0/8 and ::1 (also IPv4-mapped). */
static bool
loopback(const char *addr)
{
	struct in6_addr a6;
	struct in_addr a4;

	if (addr == NULL)
		return false;
	if (inet_pton(AF_INET, addr, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, addr, &a6) != 1)
		return false;
	if (IN6_IS_ADDR_V4MAPPED(&a6))
		return a6.s6_addr[12] == 127;
	return IN6_IS_ADDR_LOOPBACK(&a6);
}

/*
 * The metrics are for the host's own scraper.  nginx lets only loopback
 * reach the location; the app checks again, so no other location or
 * proxy in front of it can expose them.
 */
void
ops_metrics(struct request *r)
{
	struct buf b = BUF_INIT;

	if (!loopback(r->remote_addr)) {
		reply_error(r, 404, "not_found", "No such endpoint.", NULL);
		return;
	}
	metrics_render(&b);
	reply(r, 200, "text/plain; version=0.0.4; charset=utf-8", b.p, b.len);
	buf_free(&b);
}
