/*
 * A per-process pool of PostgreSQL connections.
 *
 * The application describes its SQL once, as a table of statements with
 * fixed text and $n parameters; every connection prepares all of them
 * when it is opened, and db_exec() runs one by index with
 * PQexecPrepared.  No SQL is ever assembled from input.
 *
 * A handler borrows a connection for one unit of work and gives it back;
 * db_release() rolls back a transaction left open.  A connection found
 * broken is closed and reopened on its next use, so a database restart
 * needs no application restart.  Connecting has a deadline in
 * milliseconds, and after a failed attempt the pool answers at once for
 * a second (one probe at a time), so while the database is down each
 * request gets its 503 within about the connect timeout.  Errors are split: the client-facing
 * part (HTTP status, API code, sentence) goes to struct db_err, the
 * server's text only to the log.
 */
#ifndef MIKY_DB_H
#define MIKY_DB_H

#include <stdbool.h>
#include <stdint.h>

#include <libpq-fe.h>

#define DB_RETRY	0x01	/* safe to run again on a fresh connection */

/*
 * A statement: its text, how many $n parameters it takes and how many
 * columns its result has.  Both counts are checked against the server's
 * own description of the prepared statement (PQdescribePrepared) when
 * the first connection of a process opens, so a column list or a
 * parameter list that drifts from the code that reads it stops the pool
 * instead of reading the wrong column.  db_exec() checks every call's
 * parameter count against nparams.
 */
struct db_stmt {
	const char	*name;
	const char	*sql;
	int		 nparams;
	int		 ncols;
	unsigned	 flags;
};

struct db_err {
	int		 status;	/* HTTP status */
	const char	*code;		/* API error code */
	const char	*message;	/* safe for clients */
	char		 sqlstate[6];
	char		 constraint[64];	/* violated constraint, if any */
};

struct db;

struct db_config {
	const char		*conninfo;	/* libpq URL or key=value */
	int			 size;		/* connections */
	int			 statement_timeout_ms;
	int			 acquire_timeout_ms;
	int			 connect_timeout_ms;	/* 0: DB_CONNECT_MS */
	const struct db_stmt	*stmts;		/* table of nstmts rows */
	int			 nstmts;
	const char		*application_name;
};

/* Sets up the pool of this process; connections open on demand. */
int		 db_pool_init(const struct db_config *);
/* Closes every connection; no connection may be borrowed. */
void		 db_pool_free(void);

/*
 * Borrows a connection, waiting up to the acquire timeout, and opens it
 * if needed.  Returns NULL with *err set (503) when none can be had.
 */
struct db	*db_acquire(struct db_err *);
/* Gives it back, rolling back an open transaction. */
void		 db_release(struct db *);

/*
 * Runs statement `stmt` with its `nparams` parameters (NULL values are
 * SQL NULL); a count other than the statement's is a programming error,
 * logged as critical and answered 500.  Returns a result the caller
 * PQclear()s, or NULL with *err set.  Statements flagged DB_RETRY are
 * retried once on a fresh connection if the connection turns out to be
 * dead.
 */
PGresult	*db_exec(struct db *, int stmt, const char *const *params,
		    int nparams, struct db_err *);
/* The same with explicit lengths and formats (binary parameters). */
PGresult	*db_exec_bin(struct db *, int stmt, const char *const *params,
		    int nparams, const int *lengths, const int *formats,
		    struct db_err *);

/*
 * Prepares every statement of the table on `conn` and compares each
 * one's parameter and column counts with the server's description.
 * Returns 0 if all match, -1 after logging every mismatch or failure.
 */
int		 db_check_stmts(PGconn *conn, const struct db_stmt *stmts,
		    int nstmts);

/* Transactions.  db_begin() retries once on a dead connection. */
int		 db_begin(struct db *, struct db_err *);
int		 db_commit(struct db *, struct db_err *);
void		 db_rollback(struct db *);

/* The libpq connection, for LISTEN and other direct use. */
PGconn		*db_conn(struct db *);

/* Fills *err for a failed result (or a NULL one) and logs the detail. */
void		 db_error(PGconn *, const PGresult *, const char *what,
		    struct db_err *);

/*
 * Opens a standalone connection (for migrate, mailer, LISTEN), giving
 * up after DB_CONNECT_MS, or `ms` milliseconds; NULL after logging why.
 */
#define DB_CONNECT_MS	5000
PGconn		*db_connect(const char *conninfo, const char *appname);
PGconn		*db_connect_within(const char *conninfo, const char *appname,
		    int ms);

#endif
