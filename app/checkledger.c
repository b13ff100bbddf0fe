/*
 * `miky check-ledger [--cashout-days N]`: checks the money invariants
 * in one snapshot and names every user that breaks one.
 *
 *   balance   users.credits is the sum of the user's ledger deltas, and
 *             not below zero
 *   hold      no credit hold outlives its expiry by more than two
 *             janitor rounds and a minute (the sweeper refunds them; one
 *             left means no worker sweeps, or a refund keeps failing)
 *   cashout   no cash-out pending longer than N days (default 7)
 *   cash      referral cash available (earned - paid out - pending) is
 *             not below zero
 *
 * One line per problem on stdout, then a summary.  Exit status: 0 all
 * good, 1 problems found, 2 bad usage or no database.  It only reads,
 * so it runs as the app's restricted role; the balance check reads the
 * whole ledger (run it at a quiet hour, or against a replica).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "config.h"
#include "sql.h"
#include "lib/db.h"
#include "lib/log.h"
#include "lib/num.h"

#define CASHOUT_DAYS	7

struct check {
	struct db	*d;
	int		 problems;
};

/* Runs a check's statement; NULL after saying why. */
static PGresult *
run(struct check *c, enum stmt s, const char *const *params, int n)
{
	struct db_err err;
	PGresult *res = db_exec(c->d, s, params, n, &err);

	if (res == NULL)
		fprintf(stderr, "check-ledger: %s failed (%s)\n",
		    sql_stmts[s].name, err.sqlstate);
	return res;
}

/* The user of a row, as a problem line names it. */
static const char *
who(const PGresult *res, int row, int user, int email, char *buf,
    size_t size)
{
	const char *id = sql_str(res, row, user);

	if (id == NULL)
		return "a deleted account";
	snprintf(buf, size, "user %s <%s>", id, sql_str(res, row, email) ?
	    sql_str(res, row, email) : "?");
	return buf;
}

static int
check_balances(struct check *c)
{
	PGresult *res = run(c, STMT_CHECK_BALANCES, NO_ARGS);
	char w[400];
	int i;

	if (res == NULL)
		return -1;
	for (i = 0; i < sql_rows(res); i++, c->problems++)
		printf("balance: %s has %lld credits, but the ledger sums to "
		    "%lld\n", who(res, i, CB_USER, CB_EMAIL, w, sizeof(w)),
		    sql_int(res, i, CB_CREDITS), sql_int(res, i, CB_LEDGER));
	PQclear(res);
	return 0;
}

static int
check_holds(struct check *c)
{
	char grace[24], w[400];
	PGresult *res;
	int i;

	snprintf(grace, sizeof(grace), "%lld", 2 * conf.sweep_ms + 60000);
	if ((res = run(c, STMT_CHECK_HOLDS, ARGS(grace))) == NULL)
		return -1;
	for (i = 0; i < sql_rows(res); i++, c->problems++)
		printf("hold: %s has hold %s of %lld credits, expired %lld s "
		    "ago and not refunded\n", who(res, i, CH_USER, CH_EMAIL, w,
		    sizeof(w)), sql_str(res, i, CH_HOLD),
		    sql_int(res, i, CH_CREDITS), sql_int(res, i, CH_OVERDUE_S));
	PQclear(res);
	return 0;
}

static int
check_cashouts(struct check *c, const char *days)
{
	PGresult *res = run(c, STMT_CHECK_CASHOUTS, ARGS(days));
	char w[400];
	int i;

	if (res == NULL)
		return -1;
	for (i = 0; i < sql_rows(res); i++, c->problems++)
		printf("cashout: %s has cash-out %s of %lld cents pending for "
		    "%lld days\n", who(res, i, CO_USER, CO_EMAIL, w, sizeof(w)),
		    sql_str(res, i, CO_TX), sql_int(res, i, CO_CENTS),
		    sql_int(res, i, CO_AGE_DAYS));
	PQclear(res);
	return 0;
}

static int
check_cash(struct check *c)
{
	PGresult *res = run(c, STMT_CHECK_CASH, NO_ARGS);
	char w[400];
	int i;

	if (res == NULL)
		return -1;
	for (i = 0; i < sql_rows(res); i++, c->problems++)
		printf("cash: %s has %lld cents of referral cash available, "
		    "below zero\n", who(res, i, CA_USER, CA_EMAIL, w, sizeof(w)),
		    sql_int(res, i, CA_AVAILABLE_CENTS));
	PQclear(res);
	return 0;
}

static int
usage(void)
{
	fprintf(stderr, "usage: miky check-ledger [--cashout-days N]\n");
	return 2;
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
	char days[24];
	struct check c = { 0 };
	PGresult *snap;
	struct db_err err;
	long long n;
	int i, rc = 2;

	snprintf(days, sizeof(days), "%d", CASHOUT_DAYS);
	for (i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--cashout-days") == 0 && i + 1 < argc &&
		    num_parse(argv[i + 1], 0, 3650, &n) == 0) {
			snprintf(days, sizeof(days), "%lld", n);
			i++;
		} else
			return usage();
	}
	if (db_pool_init(&dc) != 0)
		return 2;
	if ((c.d = db_acquire(&err)) == NULL) {
		fprintf(stderr, "check-ledger: no database (%s)\n",
		    err.message);
		goto out;
	}
	if (db_begin(c.d, &err) != 0 ||
	    (snap = run(&c, STMT_SNAPSHOT, NO_ARGS)) == NULL)
		goto out;
	PQclear(snap);
	if (check_balances(&c) != 0 || check_holds(&c) != 0 ||
	    check_cashouts(&c, days) != 0 || check_cash(&c) != 0)
		goto out;
	db_rollback(c.d);
	if (c.problems > 0) {
		printf("check-ledger: %d problem%s\n", c.problems,
		    c.problems > 1 ? "s" : "");
		log_warnx("check-ledger: %d problems", c.problems);
		rc = 1;
	} else {
		printf("check-ledger: ok\n");
		rc = 0;
	}
out:
	if (c.d != NULL)
		db_release(c.d);
	db_pool_free();
	return rc;
}
