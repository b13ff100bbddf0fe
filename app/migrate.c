/*
 * `miky migrate`: applies the pending migrations in order, each in its
 * own transaction, recording each in schema_migrations with a checksum.
 * A session advisory lock serialises concurrent runs (several hosts
 * deploying at once); running it again applies nothing.
 *
 * It runs as the owner of the database, never as the app's restricted
 * role: after each migration (in its transaction) and once at the end of
 * every run it calls miky_app_grants() (schema/020), which grants the app
 * role what it may do on every table, new ones included.
 */
#include <stdio.h>
#include <string.h>

#include <libpq-fe.h>

#include "app.h"
#include "sql.h"
#include "migrate.h"
#include "lib/db.h"
#include "lib/log.h"

#define MIGRATE_LOCK	"7314063317"	/* any constant shared by all runs */

/* The app role's grants, once schema/020 has made the function. */
#define GRANTS \
	"DO $$ BEGIN IF to_regprocedure('public.miky_app_grants()') IS NOT NULL" \
	" THEN PERFORM public.miky_app_grants(); END IF; END $$"

static int
exec_ok(PGconn *c, const char *sql)
{
	PGresult *res = PQexec(c, sql);
	ExecStatusType st = PQresultStatus(res);
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	int ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;

	if (!ok)
		log_errx("migrate: %s", PQresultErrorMessage(res));
	if (!ok && state != NULL && strcmp(state, "42501") == 0)
		log_errx("migrate: this role may not change the schema: run "
		    "migrations as the owner of the database "
		    "(MIGRATE_DATABASE_URL)");
	PQclear(res);
	return ok ? 0 : -1;
}

/* Returns 1 if applied (checksum matches), 0 if not, -1 on error. */
static int
applied(PGconn *c, const struct schema_file *f)
{
	const char *params[] = { f->name, f->sql };
	PGresult *res;
	int rc = -1;

	res = PQexecParams(c, "SELECT checksum = md5($2) FROM "
	    "schema_migrations WHERE version = $1", 2, NULL, params, NULL,
	    NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		log_errx("migrate: %s", PQresultErrorMessage(res));
	else if (PQntuples(res) == 0)
		rc = 0;
	else {
		rc = 1;
		if (!sql_bool(res, 0, SQL_ONLY))
			log_warnx("migration %s changed after it was applied",
			    f->name);
	}
	PQclear(res);
	return rc;
}

static int
apply(PGconn *c, const struct schema_file *f)
{
	const char *params[] = { f->name, f->sql };
	PGresult *res;

	if (exec_ok(c, "BEGIN") != 0)
		return -1;
	if (exec_ok(c, f->sql) != 0 || exec_ok(c, GRANTS) != 0)
		goto fail;
	res = PQexecParams(c, "INSERT INTO schema_migrations (version, "
	    "checksum) VALUES ($1, md5($2))", 2, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		log_errx("migrate: %s", PQresultErrorMessage(res));
		PQclear(res);
		goto fail;
	}
	PQclear(res);
	if (exec_ok(c, "COMMIT") != 0)
		goto fail;
	log_info("applied migration %s", f->name);
	return 0;
fail:
	exec_ok(c, "ROLLBACK");
	log_errx("migration %s failed; nothing of it was applied", f->name);
	return -1;
}

int
migrate_run(const char *conninfo)
{
	PGconn *c = db_connect(conninfo, "miky-migrate");
	size_t i;
	int rc = -1, done = 0, state;

	if (c == NULL)
		return -1;
	exec_ok(c, "SET client_min_messages = warning");
	if (exec_ok(c, "SELECT pg_advisory_lock(" MIGRATE_LOCK ")") != 0)
		goto out;
	if (exec_ok(c, "CREATE TABLE IF NOT EXISTS schema_migrations ("
	    "version text PRIMARY KEY, checksum text NOT NULL, "
	    "applied_at timestamptz NOT NULL DEFAULT now())") != 0)
		goto unlock;
	for (i = 0; i < schema_nfiles; i++) {
		state = applied(c, &schema_files[i]);
		if (state < 0)
			goto unlock;
		if (state == 1)
			continue;
		if (apply(c, &schema_files[i]) != 0)
			goto unlock;
		done++;
	}
	if (exec_ok(c, GRANTS) != 0)
		goto unlock;
	log_info("schema up to date (%d applied now, %zu in all)", done,
	    schema_nfiles);
	rc = 0;
unlock:
	exec_ok(c, "SELECT pg_advisory_unlock(" MIGRATE_LOCK ")");
out:
	PQfinish(c);
	return rc;
}
