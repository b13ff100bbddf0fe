/*
 * `miky serve`: sets up what every worker needs and hands over to the
 * server in lib/.  Routes and metrics are set up in the master, before
 * the fork, so every worker shares the same metrics memory.
 */
#include <stdio.h>

#include "app.h"
#include "config.h"
#include "janitor.h"
#include "settings.h"
#include "sql.h"
#include "lib/db.h"
#include "lib/dbbatch.h"
#include "lib/http.h"
#include "lib/log.h"
#include "lib/password.h"
#include "lib/server.h"

/*
 * The app's role must not be able to rewrite money history
 * (schema/020): say so loudly when DATABASE_URL names one that can,
 * such as the owner.
 */
static void
role_check(struct db *d)
{
	struct db_err err;
	PGresult *res;

	if ((res = db_exec(d, STMT_ROLE_CAN_REWRITE, NO_ARGS, &err)) == NULL)
		return;
	if (sql_bool(res, 0, SQL_ONLY))
		log_warnx("DATABASE_URL's role may UPDATE or DELETE the credit "
		    "ledger: connect as the restricted role miky_app "
		    "(README, \"Database roles\")");
	PQclear(res);
}

static int
worker_init(void)
{
	struct db_config dc = {
		.conninfo = conf.database_url,
		.size = (int)conf.db_pool,
		.statement_timeout_ms = (int)conf.statement_timeout_ms,
		.acquire_timeout_ms = 5000,
		.connect_timeout_ms = (int)conf.db_connect_timeout_ms,
		.stmts = sql_stmts,
		.nstmts = STMT__MAX,
		.application_name = "miky",
	};

	struct db_err err;
	struct db *d;

	password_init((int)conf.hash_concurrency);
	if (http_global_init() != 0 || db_pool_init(&dc) != 0)
		return -1;
	/*
	 * The first connection checks every statement against the
	 * database (db_check_stmts); open it now, not at the first request.
	 * A database that is down is checked when it is back.
	 */
	if ((d = db_acquire(&err)) != NULL) {
		role_check(d);
		db_release(d);
	}
	return settings_start(conf.database_url) != 0 ||
	    janitor_start() != 0 ? -1 : 0;
}

static void
worker_exit(void)
{
	janitor_stop();
	settings_stop();
	db_pool_free();
}

int
serve_main(void)
{
	struct server_config sc = {
		.listen = conf.listen,
		.workers = (int)conf.workers,
		.threads = (int)conf.threads,
		.drain_seconds = (int)conf.drain_seconds,
		.io_timeout_ms = (int)conf.io_timeout_ms,
		.queue_ms = (int)conf.queue_ms,
		.thread_stack = (size_t)conf.thread_stack_kb * 1024,
		.worker_init = worker_init,
		.worker_exit = worker_exit,
		.handle = app_handle,
	};

	log_set_process("master");
	if (routes_init() != 0)
		return 1;
	db_batch_share((int)conf.db_lanes);
	return server_run(&sc);
}
