#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "db.h"
#include "log.h"
#include "metrics.h"
#include "xalloc.h"

struct db {
	PGconn	*conn;
	bool	 busy;
};

/* Set once a connection of this process has checked the table. */
static atomic_bool	 stmts_checked;

/*
 * After a failed attempt to connect the pool takes the database for
 * down: for DB_DOWN_MS no slot tries again, and while one slot tries
 * (a probe) the others do not wait for it, so requests are answered 503
 * at once instead of each spending a connect timeout.
 */
#define DB_DOWN_MS	1000

static struct {
	pthread_mutex_t	 mu;
	bool		 down;		/* the last attempt failed */
	int64_t		 retry_at_ms;	/* no attempt before this */
	int		 probing;	/* attempts in progress */
} health = { PTHREAD_MUTEX_INITIALIZER, false, 0, 0 };

/* True if a slot may try to connect now; then it must call tried(). */
static bool
may_try(void)
{
	bool ok;

	pthread_mutex_lock(&health.mu);
	ok = !health.down || (health.probing == 0 &&
	    clock_ms() >= health.retry_at_ms);
	if (ok)
		health.probing++;
	pthread_mutex_unlock(&health.mu);
	return ok;
}

static void
tried(bool connected)
{
	pthread_mutex_lock(&health.mu);
	health.probing--;
	health.down = !connected;
	if (!connected)
		health.retry_at_ms = clock_ms() + DB_DOWN_MS;
	pthread_mutex_unlock(&health.mu);
}

/* True while the database is taken for down (see DB_DOWN_MS). */
static bool
known_down(void)
{
	bool down;

	pthread_mutex_lock(&health.mu);
	down = health.down && (health.probing > 0 ||
	    clock_ms() < health.retry_at_ms);
	pthread_mutex_unlock(&health.mu);
	return down;
}

static struct {
	pthread_mutex_t	 mu;
	pthread_cond_t	 cv;
	struct db	*slots;
	int		 size;
	struct db_config cfg;
} pool = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, 0,
	{ 0 } };

/*
 * SQLSTATE classes and codes that clients see as something other than
 * 500.  The first match wins; a two-character entry matches a class.
 */
static const struct {
	const char	*state;
	int		 status;
	const char	*code;
	const char	*message;
} sqlstate_map[] = {
	{ "23505", 409, "conflict", "That already exists." },
	{ "23503", 409, "conflict", "A related record does not exist." },
	{ "23514", 409, "conflict", "The change conflicts with the current "
	    "state." },
	{ "40001", 503, "unavailable", "The service is busy; please retry." },
	{ "40P01", 503, "unavailable", "The service is busy; please retry." },
	{ "55P03", 503, "unavailable", "The service is busy; please retry." },
	{ "57014", 503, "unavailable", "The request took too long; please "
	    "retry." },
	{ "22", 400, "invalid_input", "A value is not valid." },
	{ "08", 503, "unavailable", "The database is unavailable." },
	{ "53", 503, "unavailable", "The database is unavailable." },
	{ "57P", 503, "unavailable", "The database is unavailable." },
};

void
db_error(PGconn *conn, const PGresult *res, const char *what,
    struct db_err *err)
{
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) :
	    NULL;
	const char *primary = res ? PQresultErrorField(res,
	    PG_DIAG_MESSAGE_PRIMARY) : NULL;
	const char *constraint = res ? PQresultErrorField(res,
	    PG_DIAG_CONSTRAINT_NAME) : NULL;
	size_t i;

	memset(err, 0, sizeof(*err));
	err->status = 500;
	err->code = "internal_error";
	err->message = "Something went wrong on our side.";
	/* No connection left at all (a reconnect failed) is the same. */
	if (state == NULL && (conn == NULL ||
	    PQstatus(conn) == CONNECTION_BAD))
		state = "08006";
	if (state != NULL)
		snprintf(err->sqlstate, sizeof(err->sqlstate), "%s", state);
	if (constraint != NULL)
		snprintf(err->constraint, sizeof(err->constraint), "%s",
		    constraint);
	for (i = 0; state != NULL && i < sizeof(sqlstate_map) /
	    sizeof(sqlstate_map[0]); i++)
		if (strncmp(state, sqlstate_map[i].state,
		    strlen(sqlstate_map[i].state)) == 0) {
			err->status = sqlstate_map[i].status;
			err->code = sqlstate_map[i].code;
			err->message = sqlstate_map[i].message;
			break;
		}
	/* Only the primary message: the detail may hold user data. */
	if (primary == NULL && conn != NULL)
		primary = PQerrorMessage(conn);
	if (err->status >= 500 || err->status == 400)
		log_errx("db %s: %s %s%s%s", what, err->sqlstate,
		    primary ? primary : "(no message)",
		    constraint ? " constraint " : "",
		    constraint ? constraint : "");
}

/*
 * Server notices (and the "terminating connection" message of a server
 * going down) go to the log as JSON lines, not raw to stderr.
 */
static void
notice(void *arg, const char *message)
{
	size_t n = strlen(message);

	(void)arg;
	while (n > 0 && message[n - 1] == '\n')
		n--;
	log_warnx("postgres: %.*s", (int)n, message);
}

/*
 * Waits for PQconnectPoll's next step until the deadline; 0 when the
 * socket is ready, -1 when the time ran out.
 */
static int
connect_wait(PGconn *conn, PostgresPollingStatusType st, int64_t deadline)
{
	struct pollfd pfd = { PQsocket(conn), st == PGRES_POLLING_READING ?
	    POLLIN : POLLOUT, 0 };
	int64_t left;
	int rc;

	for (;;) {
		if ((left = deadline - clock_ms()) <= 0)
			return -1;
		if ((rc = poll(&pfd, 1, (int)left)) > 0)
			return 0;
		if (rc < 0 && errno != EINTR)
			return 0;	/* PQconnectPoll will say what failed */
	}
}

PGconn *
db_connect_within(const char *conninfo, const char *appname, int ms)
{
	/*
	 * TCP keepalives (libpq's are on, at the system's timing: the first
	 * probe after two hours): an idle pooled connection to a host that
	 * vanished is found dead in about a minute, not by the request that
	 * next takes it.  Before dbname, so that a conninfo's own settings
	 * win; none of it applies to a Unix-domain socket.
	 */
	const char *keys[] = { "keepalives_idle", "keepalives_interval",
	    "keepalives_count", "dbname", "application_name", NULL };
	const char *vals[] = { "30", "10", "3", conninfo, appname, NULL };
	PGconn *conn = PQconnectStartParams(keys, vals, 1);
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;
	int64_t deadline = clock_ms() + ms;

	if (conn == NULL)
		xoom();
	/*
	 * libpq's own connect_timeout counts whole seconds, two at least:
	 * too coarse for a request that must learn quickly that the
	 * database is gone.  So the handshake is driven here, against a
	 * deadline in milliseconds.
	 */
	while (PQstatus(conn) != CONNECTION_BAD && st != PGRES_POLLING_OK &&
	    st != PGRES_POLLING_FAILED) {
		if (connect_wait(conn, st, deadline) != 0) {
			log_warnx("database connection failed: no answer "
			    "within %d ms", ms);
			PQfinish(conn);
			return NULL;
		}
		st = PQconnectPoll(conn);
	}
	PQsetNoticeProcessor(conn, notice, NULL);
	if (PQstatus(conn) != CONNECTION_OK) {
		log_warnx("database connection failed: %s",
		    PQerrorMessage(conn));
		PQfinish(conn);
		return NULL;
	}
	return conn;
}

PGconn *
db_connect(const char *conninfo, const char *appname)
{
	return db_connect_within(conninfo, appname, DB_CONNECT_MS);
}

/* Prepares statement `s` on `conn`; -1 after logging a failure. */
static int
prepare(PGconn *conn, const struct db_stmt *s)
{
	PGresult *res = PQprepare(conn, s->name, s->sql, s->nparams, NULL);
	int rc = 0;

	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		log_errx("prepare %s: %s", s->name, PQresultErrorMessage(res));
		rc = -1;
	}
	PQclear(res);
	return rc;
}

/* Compares a prepared statement with the server's description of it. */
static int
check_stmt(PGconn *conn, const struct db_stmt *s)
{
	PGresult *res = PQdescribePrepared(conn, s->name);
	int rc = -1;

	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		log_errx("describe %s: %s", s->name,
		    PQresultErrorMessage(res));
	else if (PQnparams(res) != s->nparams)
		log_crit("statement %s takes %d parameters, not %d", s->name,
		    PQnparams(res), s->nparams);
	else if (PQnfields(res) != s->ncols)
		log_crit("statement %s returns %d columns, not %d", s->name,
		    PQnfields(res), s->ncols);
	else
		rc = 0;
	PQclear(res);
	return rc;
}

int
db_check_stmts(PGconn *conn, const struct db_stmt *stmts, int nstmts)
{
	int i, rc = 0;

	for (i = 0; i < nstmts; i++) {
		if (prepare(conn, &stmts[i]) != 0)
			return -1;
		if (check_stmt(conn, &stmts[i]) != 0)
			rc = -1;
	}
	return rc;
}

/*
 * Opens the connection of a slot and prepares every statement; the
 * first connection of the process also checks them (db_check_stmts).
 */
static int
open_slot(struct db *d)
{
	char sql[128];
	PGresult *res;
	int i;

	if (d->conn != NULL)
		PQfinish(d->conn);
	d->conn = NULL;
	if (!may_try())
		return -1;
	d->conn = db_connect_within(pool.cfg.conninfo,
	    pool.cfg.application_name, pool.cfg.connect_timeout_ms > 0 ?
	    pool.cfg.connect_timeout_ms : DB_CONNECT_MS);
	tried(d->conn != NULL);
	if (d->conn == NULL)
		return -1;
	/*
	 * UTC and ISO: timestamps reach the app in one known text form.
	 * Generic plans: every statement is prepared once and keyed by ids,
	 * and PostgreSQL's default (custom plans until a generic one looks
	 * as good) planned some of ours again at each run, inlined SQL
	 * functions parsed anew each time, at several times the cost of
	 * running them.
	 */
	snprintf(sql, sizeof(sql), "SET statement_timeout = %d; "
	    "SET TimeZone = 'UTC'; SET DateStyle = 'ISO'; "
	    "SET plan_cache_mode = force_generic_plan",
	    pool.cfg.statement_timeout_ms);
	res = PQexec(d->conn, sql);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		PQclear(res);
		goto fail;
	}
	PQclear(res);
	if (!atomic_load(&stmts_checked)) {
		if (db_check_stmts(d->conn, pool.cfg.stmts,
		    pool.cfg.nstmts) != 0)
			goto fail;
		atomic_store(&stmts_checked, true);
		return 0;
	}
	for (i = 0; i < pool.cfg.nstmts; i++)
		if (prepare(d->conn, &pool.cfg.stmts[i]) != 0)
			goto fail;
	return 0;
fail:
	PQfinish(d->conn);
	d->conn = NULL;
	return -1;
}

int
db_pool_init(const struct db_config *cfg)
{
	int i;

	/* A hole in the statement table is a programming error: say so. */
	for (i = 0; i < cfg->nstmts; i++)
		if (cfg->stmts[i].name == NULL || cfg->stmts[i].sql == NULL) {
			log_crit("statement %d of %d has no SQL", i,
			    cfg->nstmts);
			return -1;
		}
	pool.cfg = *cfg;
	pool.size = cfg->size;
	pool.slots = xcalloc((size_t)cfg->size, sizeof(*pool.slots));
	return 0;
}

void
db_pool_free(void)
{
	int i;

	for (i = 0; i < pool.size; i++)
		if (pool.slots[i].conn != NULL)
			PQfinish(pool.slots[i].conn);
	free(pool.slots);
	pool.slots = NULL;
	pool.size = 0;
}

static void
unavailable(struct db_err *err, const char *message)
{
	memset(err, 0, sizeof(*err));
	err->status = 503;
	err->code = "unavailable";
	err->message = message;
}

/* Takes a free slot, preferring one with an open connection. */
static struct db *
take_slot(void)
{
	struct db *any = NULL;
	int i;

	for (i = 0; i < pool.size; i++) {
		struct db *d = &pool.slots[i];

		if (d->busy)
			continue;
		if (d->conn != NULL) {
			any = d;
			break;
		}
		if (any == NULL)
			any = d;
	}
	if (any != NULL)
		any->busy = true;
	return any;
}

struct db *
db_acquire(struct db_err *err)
{
	struct timespec deadline;
	struct db *d;
	int64_t waited_from = 0;
	int rc = 0;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += pool.cfg.acquire_timeout_ms / 1000;
	deadline.tv_nsec += (long)(pool.cfg.acquire_timeout_ms % 1000) *
	    1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&pool.mu);
	/* No wait for a slot while the database is known to be down. */
	while ((d = take_slot()) == NULL && rc != ETIMEDOUT && !known_down()) {
		if (waited_from == 0)
			waited_from = clock_us();
		rc = pthread_cond_timedwait(&pool.cv, &pool.mu, &deadline);
	}
	pthread_mutex_unlock(&pool.mu);
	if (waited_from != 0)
		metrics_pool_wait(clock_us() - waited_from);
	if (d == NULL && known_down()) {
		unavailable(err, "The database is unavailable.");
		return NULL;
	}
	if (d == NULL) {
		log_warnx("no database connection free after %d ms",
		    pool.cfg.acquire_timeout_ms);
		unavailable(err, "The service is busy; please retry.");
		return NULL;
	}
	if ((d->conn == NULL || PQstatus(d->conn) != CONNECTION_OK) &&
	    open_slot(d) != 0) {
		db_release(d);
		unavailable(err, "The database is unavailable.");
		return NULL;
	}
	return d;
}

void
db_release(struct db *d)
{
	PGresult *res;

	if (d == NULL)
		return;
	if (d->conn != NULL && PQstatus(d->conn) == CONNECTION_OK &&
	    PQtransactionStatus(d->conn) != PQTRANS_IDLE) {
		res = PQexec(d->conn, "ROLLBACK");
		PQclear(res);
	}
	if (d->conn != NULL && (PQstatus(d->conn) != CONNECTION_OK ||
	    PQtransactionStatus(d->conn) != PQTRANS_IDLE)) {
		PQfinish(d->conn);
		d->conn = NULL;
	}
	pthread_mutex_lock(&pool.mu);
	d->busy = false;
	pthread_cond_signal(&pool.cv);
	pthread_mutex_unlock(&pool.mu);
}

PGconn *
db_conn(struct db *d)
{
	return d->conn;
}

static bool
ok(const PGresult *res)
{
	ExecStatusType st = PQresultStatus(res);

	return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
}

/*
 * True if a failure was the connection dying while no transaction was
 * open, and a fresh connection could be had: the caller may run the
 * statement again.
 */
static bool
reopened(struct db *d, bool was_idle)
{
	if (!was_idle || PQstatus(d->conn) != CONNECTION_BAD)
		return false;
	log_warnx("database connection lost; reconnecting");
	return open_slot(d) == 0;
}

PGresult *
db_exec_bin(struct db *d, int stmt, const char *const *params, int nparams,
    const int *lengths, const int *formats, struct db_err *err)
{
	const struct db_stmt *s = &pool.cfg.stmts[stmt];
	PGresult *res;
	bool idle;
	int attempt;

	if (nparams != s->nparams) {
		log_crit("statement %s run with %d parameters, not %d",
		    s->name, nparams, s->nparams);
		memset(err, 0, sizeof(*err));
		err->status = 500;
		err->code = "internal_error";
		err->message = "Something went wrong on our side.";
		return NULL;
	}
	for (attempt = 0;; attempt++) {
		idle = PQtransactionStatus(d->conn) == PQTRANS_IDLE;
		res = PQexecPrepared(d->conn, s->name, s->nparams, params,
		    lengths, formats, 0);
		if (ok(res))
			return res;
		if (attempt == 0 && (s->flags & DB_RETRY) && reopened(d, idle)) {
			PQclear(res);
			continue;
		}
		db_error(d->conn, res, s->name, err);
		PQclear(res);
		return NULL;
	}
}

PGresult *
db_exec(struct db *d, int stmt, const char *const *params, int nparams,
    struct db_err *err)
{
	return db_exec_bin(d, stmt, params, nparams, NULL, NULL, err);
}

static void
internal_error(struct db_err *err)
{
	memset(err, 0, sizeof(*err));
	err->status = 500;
	err->code = "internal_error";
	err->message = "Something went wrong on our side.";
}

/* Sends the calls and reads their results; false if the link broke. */
static bool
pipeline_once(struct db *d, const struct db_call *calls, int n,
    PGresult **results)
{
	const struct db_stmt *s;
	PGresult *res;
	bool sent = PQenterPipelineMode(d->conn) == 1;
	int i;

	for (i = 0; i < n; i++)
		results[i] = NULL;
	for (i = 0; sent && i < n; i++) {
		s = &pool.cfg.stmts[calls[i].stmt];
		sent = PQsendQueryPrepared(d->conn, s->name, s->nparams,
		    calls[i].params, NULL, NULL, 0) == 1;
	}
	if (sent)
		sent = PQpipelineSync(d->conn) == 1;
	/* Each call's results end with a NULL; then comes the sync. */
	for (i = 0; sent && i < n; i++)
		while ((res = PQgetResult(d->conn)) != NULL) {
			if (PQresultStatus(res) == PGRES_PIPELINE_SYNC) {
				PQclear(res);
				sent = false;
				break;
			}
			if (results[i] == NULL)
				results[i] = res;
			else
				PQclear(res);
		}
	if (sent) {
		res = PQgetResult(d->conn);
		sent = res != NULL &&
		    PQresultStatus(res) == PGRES_PIPELINE_SYNC;
		PQclear(res);
	}
	if (PQexitPipelineMode(d->conn) != 1)
		sent = false;
	return sent && PQstatus(d->conn) == CONNECTION_OK;
}

int
db_pipeline(struct db *d, const struct db_call *calls, int n,
    PGresult **results, struct db_err *err)
{
	const struct db_stmt *first = &pool.cfg.stmts[calls[0].stmt];
	bool idle, whole;
	int attempt, i;

	for (i = 0; i < n; i++)
		if (calls[i].nparams != pool.cfg.stmts[calls[i].stmt].nparams) {
			log_crit("statement %s run with %d parameters, not %d",
			    pool.cfg.stmts[calls[i].stmt].name,
			    calls[i].nparams,
			    pool.cfg.stmts[calls[i].stmt].nparams);
			for (i = 0; i < n; i++)
				results[i] = NULL;
			internal_error(err);
			return -1;
		}
	for (attempt = 0;; attempt++) {
		idle = PQtransactionStatus(d->conn) == PQTRANS_IDLE;
		whole = pipeline_once(d, calls, n, results);
		if (results[0] != NULL && ok(results[0])) {
			for (i = 1; i < n; i++)
				if (results[i] != NULL && !ok(results[i])) {
					PQclear(results[i]);
					results[i] = NULL;
				}
			return 0;
		}
		if (attempt == 0 && !whole && (first->flags & DB_RETRY) &&
		    reopened(d, idle)) {
			for (i = 0; i < n; i++)
				PQclear(results[i]);
			continue;
		}
		db_error(d->conn, results[0], first->name, err);
		for (i = 0; i < n; i++) {
			PQclear(results[i]);
			results[i] = NULL;
		}
		return -1;
	}
}

static int
simple(struct db *d, const char *sql, bool retry, struct db_err *err)
{
	PGresult *res;
	bool idle;

	idle = PQtransactionStatus(d->conn) == PQTRANS_IDLE;
	res = PQexec(d->conn, sql);
	if (!ok(res) && retry && reopened(d, idle)) {
		PQclear(res);
		res = PQexec(d->conn, sql);
	}
	if (ok(res)) {
		PQclear(res);
		return 0;
	}
	db_error(d->conn, res, sql, err);
	PQclear(res);
	return -1;
}

int
db_begin(struct db *d, struct db_err *err)
{
	return simple(d, "BEGIN", true, err);
}

int
db_commit(struct db *d, struct db_err *err)
{
	return simple(d, "COMMIT", false, err);
}

void
db_rollback(struct db *d)
{
	PGresult *res;

	if (d->conn != NULL &&
	    PQtransactionStatus(d->conn) != PQTRANS_IDLE) {
		res = PQexec(d->conn, "ROLLBACK");
		PQclear(res);
	}
}
