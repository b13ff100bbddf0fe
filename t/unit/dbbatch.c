/*
 * lib/dbbatch.c against the test cluster that scripts/test.sh starts
 * (MIKY_TEST_PGHOST, MIKY_TEST_PGPORT), on its `postgres` database, with
 * statements that need no schema.  Skipped when run without it.
 */
#include <pthread.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tap.h"
#include "../../lib/dbbatch.h"
#include "../../lib/log.h"

enum { ECHO, POISON, SLOW, CARD, NSTMTS };

/*
 * Each key's row: the key, the key in capitals, and the read's statement
 * time (the same for every key of one read).  Keys starting with "none"
 * have no row; a read with the key "hold" takes 0.3 s.
 */
static const struct db_stmt stmts[NSTMTS] = {
	[ECHO] = { "echo", "SELECT k, upper(k), statement_timestamp()::text"
	    " FROM unnest($1::text[]) k,"
	    " pg_sleep(CASE WHEN 'hold' = ANY($1::text[]) THEN 0.3 ELSE 0 END)"
	    " WHERE k NOT LIKE 'none%'", 1, 3, 0 },
	/* A read with the key "bad" fails as a whole (division by zero). */
	[POISON] = { "poison", "SELECT k, (1 / (CASE WHEN k = 'bad' THEN 0"
	    " ELSE 1 END))::text, '' FROM unnest($1::text[]) k", 1, 3, 0 },
	[SLOW] = { "slow", "SELECT k, k, '' FROM unnest($1::text[]) k,"
	    " pg_sleep(30)", 1, 3, 0 },
	/*
	 * A read with the key "hold" takes half a second; one with "boom"
	 * fails with a cardinality violation (SQLSTATE 21000, not a data
	 * exception).
	 */
	[CARD] = { "card", "SELECT k, k, '' FROM unnest($1::text[]) k,"
	    " pg_sleep(CASE WHEN 'hold' = ANY($1::text[]) THEN 0.5 ELSE 0 END)"
	    " WHERE CASE WHEN k = 'boom' THEN (SELECT 1 UNION ALL SELECT 2) = 1"
	    " ELSE true END", 1, 3, 0 },
};

static char conninfo[512];

static void
pool_up(void)
{
	struct db_config dc = {
		.conninfo = conninfo, .size = 4, .statement_timeout_ms = 60000,
		.acquire_timeout_ms = 5000, .stmts = stmts, .nstmts = NSTMTS,
		.application_name = "miky-unit-dbbatch",
	};

	if (db_pool_init(&dc) != 0) {
		printf("Bail out! db_pool_init\n");
		exit(1);
	}
}

static struct db_batch echo = DB_BATCH_INIT(ECHO);
static struct db_batch poison = DB_BATCH_INIT(POISON);
static struct db_batch slow = DB_BATCH_INIT(SLOW);
static struct db_batch card = DB_BATCH_INIT(CARD);

struct one {
	struct db_batch	*b;
	const char	*key;
	PGresult	*res;
	struct db_err	 err;
};

static void *
read_one(void *p)
{
	struct one *o = p;

	o->res = db_batch_read(o->b, o->key, &o->err);
	return NULL;
}

#define THREADS	32
#define ROUNDS	20

struct job {
	int	 n;
	int	 wrong;		/* answers not of their own key */
	int	 errors;
	char	 stamp[ROUNDS][64];
};

static void *
asker(void *p)
{
	struct job *j = p;
	struct db_err err;
	PGresult *res;
	char key[64], upper[64];
	int r, i;

	for (r = 0; r < ROUNDS; r++) {
		/* Quotes and backslashes must survive the array literal. */
		snprintf(key, sizeof(key), "k%d \"q\\%d,}", j->n, r);
		for (i = 0; key[i] != '\0'; i++)
			upper[i] = (key[i] >= 'a' && key[i] <= 'z') ?
			    (char)(key[i] - 32) : key[i];
		upper[i] = '\0';
		if ((res = db_batch_read(&echo, key, &err)) == NULL) {
			j->errors++;
			continue;
		}
		if (PQntuples(res) != 1 || strcmp(PQgetvalue(res, 0, 0), key) ||
		    strcmp(PQgetvalue(res, 0, 1), upper))
			j->wrong++;
		else
			snprintf(j->stamp[r], sizeof(j->stamp[r]), "%s",
			    PQgetvalue(res, 0, 2));
		PQclear(res);
	}
	return NULL;
}

static void
many_threads(void)
{
	static struct job jobs[THREADS];
	struct one hold = { &echo, "hold", NULL, { 0 } };
	pthread_t th[THREADS], first;
	int i, r, k, wrong = 0, errors = 0, reads = 0, answers = 0;

	/*
	 * Whether threads share reads depends on timing; behind a read in
	 * flight that takes 0.3 s, every thread's first read queues, and
	 * the next read takes them all.
	 */
	pthread_create(&first, NULL, read_one, &hold);
	usleep(100000);
	for (i = 0; i < THREADS; i++) {
		jobs[i].n = i;
		pthread_create(&th[i], NULL, asker, &jobs[i]);
	}
	for (i = 0; i < THREADS; i++) {
		pthread_join(th[i], NULL);
		wrong += jobs[i].wrong;
		errors += jobs[i].errors;
	}
	pthread_join(first, NULL);
	PQclear(hold.res);
	is_int(errors, 0, "%d threads x %d reads: no error", THREADS, ROUNDS);
	is_int(wrong, 0, "each answer is its own key's row (with quotes, "
	    "backslashes, commas and braces in the keys)");
	/* Reads: distinct statement times among the answers. */
	for (i = 0; i < THREADS; i++)
		for (r = 0; r < ROUNDS; r++) {
			if (jobs[i].stamp[r][0] == '\0')
				continue;
			answers++;
			for (k = 0; k < i * ROUNDS + r; k++)
				if (strcmp(jobs[k / ROUNDS].stamp[k % ROUNDS],
				    jobs[i].stamp[r]) == 0)
					break;
			reads += k == i * ROUNDS + r;
		}
	ok(reads < answers, "the %d answers came from %d reads: some were "
	    "shared", answers, reads);
}

/* Reads the keys at once, each on its thread. */
static void
at_once(struct one *o, int n)
{
	pthread_t th[16];
	int i;

	for (i = 0; i < n; i++)
		pthread_create(&th[i], NULL, read_one, &o[i]);
	for (i = 0; i < n; i++)
		pthread_join(th[i], NULL);
}

static void
missing_and_poison(void)
{
	struct one o[8] = {
		{ &echo, "none-1", NULL, { 0 } }, { &echo, "here", NULL, { 0 } },
		{ &echo, "none-2", NULL, { 0 } }, { &echo, "none-1", NULL, { 0 } },
		{ &poison, "good1", NULL, { 0 } }, { &poison, "bad", NULL, { 0 } },
		{ &poison, "good2", NULL, { 0 } }, { &poison, "good3", NULL, { 0 } },
	};
	int i, fine = 1;

	at_once(o, 8);
	ok(o[0].res != NULL && PQntuples(o[0].res) == 0 &&
	    o[2].res != NULL && PQntuples(o[2].res) == 0 &&
	    o[3].res != NULL && PQntuples(o[3].res) == 0,
	    "a key without a row: a result of no rows, not an error");
	ok(o[1].res != NULL && PQntuples(o[1].res) == 1 &&
	    strcmp(PQgetvalue(o[1].res, 0, 1), "HERE") == 0,
	    "beside them, a key with a row gets it");
	ok(o[5].res == NULL && o[5].err.status >= 400 &&
	    o[5].err.code != NULL, "the key that fails the statement: an "
	    "error (%d %s)", o[5].err.status,
	    o[5].err.code ? o[5].err.code : "");
	for (i = 4; i < 8; i++)
		if (i != 5)
			fine &= o[i].res != NULL && PQntuples(o[i].res) == 1;
	ok(fine, "the keys read with it get their rows: each read again "
	    "alone");
	for (i = 0; i < 8; i++)
		PQclear(o[i].res);
}

/*
 * Eight keys queued behind a read in flight go in one read; when it
 * fails with an error that is not a data exception, they all get it and
 * nothing is read again key by key (a timeout would be paid eight times).
 */
static void
no_retry_but_data_errors(void)
{
	struct one hold = { &card, "hold", NULL, { 0 } }, o[8];
	static const char *keys[8] = { "k1", "k2", "k3", "boom", "k5", "k6",
	    "k7", "k8" };
	char path[] = "/tmp/miky-dbbatch-XXXXXX", logged[8192] = "";
	pthread_t first;
	const char *p;
	int fd, saved, i, fails = 0, lines = 0;
	ssize_t n;

	fd = mkstemp(path);
	saved = dup(2);
	dup2(fd, 2);
	log_set_level(LOG_ERR);
	pthread_create(&first, NULL, read_one, &hold);
	usleep(100000);
	for (i = 0; i < 8; i++)
		o[i] = (struct one){ &card, keys[i], NULL, { 0 } };
	at_once(o, 8);
	pthread_join(first, NULL);
	log_set_level(LOG_CRIT);
	dup2(saved, 2);
	close(saved);
	lseek(fd, 0, SEEK_SET);
	n = read(fd, logged, sizeof(logged) - 1);
	logged[n > 0 ? n : 0] = '\0';
	close(fd);
	unlink(path);
	ok(hold.res != NULL && PQntuples(hold.res) == 1, "the read in flight "
	    "is served");
	for (i = 0; i < 8; i++)
		fails += o[i].res == NULL && strcmp(o[i].err.sqlstate,
		    "21000") == 0;
	is_int(fails, 8, "the eight keys queued behind it: one read, and "
	    "its error (21000) for each");
	for (p = logged; (p = strstr(p, "db card: 21000")) != NULL; p++)
		lines++;
	is_int(lines, 1, "one failed statement, not read again key by key");
	PQclear(hold.res);
	for (i = 0; i < 8; i++)
		PQclear(o[i].res);
}

/* Runs sql on a connection of its own; the first value, or "". */
static void
query(const char *sql, char *out, size_t size)
{
	PGconn *c = PQconnectdb(conninfo);
	PGresult *res = PQexec(c, sql);

	snprintf(out, size, "%s", PQresultStatus(res) == PGRES_TUPLES_OK &&
	    PQntuples(res) > 0 ? PQgetvalue(res, 0, 0) : "");
	PQclear(res);
	PQfinish(c);
}

#define SLEEPERS "FROM pg_stat_activity WHERE application_name =" \
	" 'miky-unit-dbbatch' AND state = 'active' AND query LIKE '%pg_sleep%'"

/* True once a read of `slow` is under way, within 30 s. */
static bool
sleeping(void)
{
	char v[32];
	int i;

	for (i = 0; i < 300; i++) {
		query("SELECT count(*) " SLEEPERS, v, sizeof(v));
		if (strcmp(v, "1") == 0)
			return true;
		usleep(100000);
	}
	return false;
}

static void
end_sleepers(void)
{
	char v[32];

	query("SELECT count(pg_terminate_backend(pid)) " SLEEPERS, v,
	    sizeof(v));
}

/*
 * A child process takes the shared lane with a read that sleeps, and is
 * killed; the next read takes the lane over (and logs it).
 */
static void
lane_of_the_dead(void)
{
	char path[] = "/tmp/miky-dbbatch-XXXXXX", logged[4096] = "";
	struct db_err err;
	PGresult *res;
	pid_t pid;
	int fd, saved, status;
	ssize_t n;

	if (db_batch_share(1) != 0) {
		ok(0, "db_batch_share");
		return;
	}
	if ((pid = fork()) == 0) {
		pool_up();
		res = db_batch_read(&slow, "sleeper", &err);
		_exit(res != NULL ? 0 : 1);
	}
	ok(sleeping(), "a child's read sleeps in PostgreSQL, holding the "
	    "lane");
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	ok(WIFSIGNALED(status), "the child is killed in the middle of it");
	end_sleepers();
	fd = mkstemp(path);
	saved = dup(2);
	dup2(fd, 2);
	pool_up();
	res = db_batch_read(&echo, "after", &err);
	dup2(saved, 2);
	close(saved);
	lseek(fd, 0, SEEK_SET);
	n = read(fd, logged, sizeof(logged) - 1);
	logged[n > 0 ? n : 0] = '\0';
	close(fd);
	unlink(path);
	ok(res != NULL && PQntuples(res) == 1, "the next read is served");
	ok(strstr(logged, "died holding a shared read lane; taking it over") !=
	    NULL, "and it took the dead child's lane over (logged)");
	PQclear(res);
	db_pool_free();
}

int
main(void)
{
	const char *host = getenv("MIKY_TEST_PGHOST");
	const char *port = getenv("MIKY_TEST_PGPORT");

	if (host == NULL || port == NULL) {
		printf("1..0 # SKIP no test cluster (run through make test)\n");
		return 0;
	}
	snprintf(conninfo, sizeof(conninfo),
	    "host=%s port=%s dbname=postgres user=miky", host, port);
	log_set_level(LOG_WARN);
	lane_of_the_dead();
	/* The poisoned read's errors are expected: keep them quiet. */
	log_set_level(LOG_CRIT);
	pool_up();
	many_threads();
	missing_and_poison();
	no_retry_but_data_errors();
	db_pool_free();
	return tap_done();
}
