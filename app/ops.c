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

void
ops_metrics(struct request *r)
{
	struct buf b = BUF_INIT;

	metrics_render(&b);
	reply(r, 200, "text/plain; version=0.0.4; charset=utf-8", b.p, b.len);
	buf_free(&b);
}
