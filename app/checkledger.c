/*
 * `miky check-ledger [--cashout-days N]`: checks the money invariants
 * in one snapshot and names every user that breaks one.
 *
 *   balance   users.credits is the sum of the user's ledger deltas, and
 *             not below zero
 *   earned    users.cash_earned is the sum of the user's cash ledger
 *   hold      no credit hold outlives its expiry by more than two
 *             janitor rounds and a minute (the sweeper refunds them; one
 *             left means no worker sweeps, or a refund keeps failing)
 *   cashout   no cash-out pending longer than N days (default 7)
 *   cash      referral cash available (earned - paid out - pending) is
 *             not below zero
 *
 * One line per problem on stdout ("balance: user ID <EMAIL> has ..."),
 * then a summary.  Exit status: 0 all good, 1 problems found, 2 bad
 * usage or no database.  It only reads, so it runs as the app's
 * restricted role; the balance check reads the whole ledger (run it at
 * a quiet hour, or against a replica).
 */
#include <stdio.h>
#include <string.h>

#include "app.h"
#include "config.h"
#include "sql.h"
#include "lib/db.h"
#include "lib/log.h"
#include "lib/num.h"

#define CASHOUT_DAYS	7

static int
usage(void)
{
	fprintf(stderr, "usage: miky check-ledger [--cashout-days N]\n");
	return 2;
}

/* Prints the problems; returns how many, or -1 on a database error. */
static int
check(struct db *d, const char *grace_ms, const char *days)
{
	struct db_err err;
	PGresult *res;
	int i, n;

	if ((res = db_exec(d, STMT_CHECK_LEDGER, ARGS(grace_ms, days),
	    &err)) == NULL) {
		fprintf(stderr, "check-ledger: the check failed (%s %s)\n",
		    err.code, err.sqlstate);
		return -1;
	}
	n = sql_rows(res);
	for (i = 0; i < n; i++) {
		printf("%s: ", sql_str(res, i, CK_KIND));
		if (sql_null(res, i, CK_USER))
			printf("a deleted account");
		else
			printf("user %s <%s>", sql_str(res, i, CK_USER),
			    sql_null(res, i, CK_EMAIL) ? "?" :
			    sql_str(res, i, CK_EMAIL));
		printf(" %s\n", sql_str(res, i, CK_WHAT));
	}
	PQclear(res);
	return n;
}

int
check_ledger_main(int argc, char *argv[])
{
	struct db_config dc = {
		.conninfo = conf.database_url,
		.size = 1,
		.statement_timeout_ms = 0,	/* the ledger may be large */
		.acquire_timeout_ms = 5000,
		.stmts = sql_stmts,
		.nstmts = STMT__MAX,
		.application_name = "miky-check-ledger",
	};
	char days[24], grace[24];
	struct db_err err;
	struct db *d;
	long long n;
	int i, problems, rc = 2;

	snprintf(days, sizeof(days), "%d", CASHOUT_DAYS);
	for (i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--cashout-days") == 0 && i + 1 < argc &&
		    num_parse(argv[i + 1], 0, 3650, &n) == 0) {
			snprintf(days, sizeof(days), "%lld", n);
			i++;
		} else
			return usage();
	}
	snprintf(grace, sizeof(grace), "%lld", 2 * conf.sweep_ms + 60000);
	if (db_pool_init(&dc) != 0)
		return 2;
	if ((d = db_acquire(&err)) == NULL) {
		fprintf(stderr, "check-ledger: no database (%s)\n",
		    err.message);
		goto out;
	}
	if ((problems = check(d, grace, days)) > 0) {
		printf("check-ledger: %d problem%s\n", problems,
		    problems > 1 ? "s" : "");
		log_warnx("check-ledger: %d problems", problems);
		rc = 1;
	} else if (problems == 0) {
		printf("check-ledger: ok\n");
		rc = 0;
	}
	db_release(d);
out:
	db_pool_free();
	return rc;
}
