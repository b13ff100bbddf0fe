/*
 * miky: one binary, subcommands.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "sql.h"
#include "config.h"
#include "settings.h"
#include "lib/db.h"
#include "lib/log.h"

static void
usage(FILE *out)
{
	fprintf(out,
	    "usage: miky command\n"
	    "  serve          run the FastCGI server (master and workers)\n"
	    "  migrate        apply pending database migrations\n"
	    "  mailer         send queued mail (SMTP, or .eml files)\n"
	    "  check-config   check the environment and print the settings\n"
	    "  check-ledger [--cashout-days N]   check the money invariants\n"
	    "  settings       list the business settings (admin_settings)\n"
	    "  sql [NAME]     list the SQL statements, or print one (to EXPLAIN)\n"
	    "  user promote EMAIL   make an account an administrator\n"
	    "  help           this text\n"
	    "Settings come from the environment; see README.md.\n");
}

/*
 * Loads the settings (flags: CONF_*); on problems prints them and
 * returns -1.
 */
static int
load_config(unsigned flags)
{
	int problems = app_config_load(stderr, flags);

	if (problems > 0) {
		fprintf(stderr, "miky: %d configuration problem%s; not "
		    "starting\n", problems, problems > 1 ? "s" : "");
		return -1;
	}
	return 0;
}

/*
 * `miky migrate` connects as the owner of the database: the URL in
 * MIGRATE_DATABASE_URL, else DATABASE_URL (one role for both, as in a
 * setup without the restricted app role).
 */
static int
cmd_migrate(void)
{
	const char *url = getenv("MIGRATE_DATABASE_URL");

	log_set_process("migrate");
	if (url == NULL || *url == '\0')
		url = getenv("DATABASE_URL");
	if (url == NULL || *url == '\0') {
		fprintf(stderr, "MIGRATE_DATABASE_URL or DATABASE_URL: not set "
		    "(libpq connection string of the database owner)\n");
		return 1;
	}
	return migrate_run(url) == 0 ? 0 : 1;
}

/* `miky user promote EMAIL`: the way the first administrator is made. */
static int
cmd_user(int argc, char *argv[])
{
	const char *url = getenv("DATABASE_URL"), *params[1];
	PGresult *res;
	PGconn *c;
	int rc = 1;

	log_set_process("cli");
	if (argc != 4 || strcmp(argv[2], "promote") != 0) {
		fprintf(stderr, "usage: miky user promote EMAIL\n");
		return 2;
	}
	if (url == NULL || *url == '\0') {
		fprintf(stderr, "DATABASE_URL: not set\n");
		return 1;
	}
	if ((c = db_connect(url, "miky-cli")) == NULL)
		return 1;
	params[0] = argv[3];
	res = PQexecParams(c, "WITH u AS (UPDATE users SET role = 'admin' "
	    "WHERE email = lower(trim($1)) RETURNING id, email) "
	    "INSERT INTO admin_audit (action, target_type, target_id, after) "
	    "SELECT 'user.promote', 'user', id::text, "
	    "json_build_object('role', 'admin', 'via', 'cli') FROM u "
	    "RETURNING target_id", 1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		fprintf(stderr, "miky: %s", PQresultErrorMessage(res));
	else if (PQntuples(res) == 0)
		fprintf(stderr, "miky: no account with email %s\n", argv[3]);
	else {
		printf("%s is now an administrator (user %s)\n", argv[3],
		    sql_str(res, 0, SQL_ONLY));
		rc = 0;
	}
	PQclear(res);
	PQfinish(c);
	return rc;
}

/*
 * `miky sql`: the names of the statements in app/sql.c; `miky sql NAME`:
 * that statement's text, e.g. for EXPLAIN (bench/admin-scale.sh).
 */
static int
cmd_sql(int argc, char *argv[])
{
	int i;

	for (i = 0; i < STMT__MAX; i++) {
		if (argc < 3)
			printf("%s\n", sql_stmts[i].name);
		else if (strcmp(argv[2], sql_stmts[i].name) == 0) {
			printf("%s\n", sql_stmts[i].sql);
			return 0;
		}
	}
	if (argc < 3)
		return 0;
	fprintf(stderr, "miky: no statement %s (miky sql lists them)\n",
	    argv[2]);
	return 1;
}

int
main(int argc, char *argv[])
{
	const char *cmd = argc > 1 ? argv[1] : "help";

	if (strcmp(cmd, "serve") == 0)
		return load_config(0) == 0 ? serve_main() : 1;
	if (strcmp(cmd, "mailer") == 0)
		return load_config(CONF_NO_JWT) == 0 ? mailer_main() : 1;
	if (strcmp(cmd, "migrate") == 0)
		return cmd_migrate();
	if (strcmp(cmd, "user") == 0)
		return cmd_user(argc, argv);
	if (strcmp(cmd, "sql") == 0)
		return cmd_sql(argc, argv);
	if (strcmp(cmd, "settings") == 0) {
		settings_describe(stdout);
		return 0;
	}
	if (strcmp(cmd, "check-ledger") == 0) {
		log_set_process("check-ledger");
		return load_config(CONF_NO_JWT) == 0 ?
		    check_ledger_main(argc, argv) : 2;
	}
	if (strcmp(cmd, "check-config") == 0) {
		if (load_config(0) != 0)
			return 1;
		app_config_dump(stdout);
		return 0;
	}
	if (strcmp(cmd, "help") == 0 || strcmp(cmd, "-h") == 0 ||
	    strcmp(cmd, "--help") == 0) {
		usage(stdout);
		return 0;
	}
	fprintf(stderr, "miky: unknown command '%s'\n", cmd);
	usage(stderr);
	return 2;
}
