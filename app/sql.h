/*
 * Every SQL statement Miky runs, by name: `enum stmt` indexes the table
 * in sql.c, each row a fixed text with $n parameters that every pooled
 * connection prepares once.  The helpers below tie a connection and its
 * results to the request: a connection is borrowed on first use and
 * given back when the request ends (or earlier with sql_release()), and
 * results are freed with the request's arena.
 */
#ifndef MIKY_APP_SQL_H
#define MIKY_APP_SQL_H

#include <libpq-fe.h>

#include "lib/db.h"

struct request;

enum stmt {
	STMT_PING,
	/* sessions */
	STMT_AUTH_USER,
	STMT_REFRESH_INSERT,
	STMT_REFRESH_SPEND,
	STMT_REFRESH_LOOKUP,
	STMT_REFRESH_REVOKE_FAMILY,
	STMT_REFRESH_REVOKE_USER,
	STMT_USER_END_SESSIONS,
	/* sign-up, verification, passwords */
	STMT_REFERRER_BY_CODE,
	STMT_SIGNUP_INSERT,
	STMT_USER_BY_EMAIL,
	STMT_PENDING_UPDATE,
	STMT_REFERRAL_INSERT,
	STMT_EMAIL_TOKENS_VOID,
	STMT_EMAIL_TOKEN_INSERT,
	STMT_EMAIL_TOKEN_SPEND,
	STMT_EMAIL_TOKEN_PEEK,
	STMT_EMAIL_TOKEN_SPEND_ID,
	STMT_USER_VERIFY,
	STMT_USER_SET_PASSWORD,
	STMT_USER_PASSWORD,
	STMT_OUTBOX_INSERT,
	STMT_RATE_HIT,
	STMT_RATE_UNHIT,
	/* user */
	STMT_PROFILE_UPDATE,
	STMT_LEDGER_PAGE,
	STMT_SNAPSHOT,
	STMT_EXPORT_CONVS,
	STMT_EXPORT_MESSAGES,
	STMT_EXPORT_LEDGER,
	STMT_EXPORT_TRANSACTIONS,
	STMT_EXPORT_REFERRALS,
	STMT_USER_DELETE,
	/* conversations */
	STMT_CONV_LIST,
	STMT_CONV_CREATE,
	STMT_CONV_GET,
	STMT_CONV_LOCK,
	STMT_CONV_MESSAGES,
	STMT_CONV_UPDATE,
	STMT_CONV_DELETE,
	STMT_CONV_TOUCH,
	/* chat turns and credits */
	STMT_USER_LOCK,
	STMT_TURNS_ACTIVE,
	STMT_TURN_START,
	STMT_TURN_END,
	STMT_CREDITS_TAKE,
	STMT_CREDITS_GIVE,
	STMT_MSG_INSERT,
	STMT_HISTORY,
	STMT_REFERRAL_ACTIVATE,
	/* the mailer */
	STMT_OUTBOX_CLAIM,
	STMT_OUTBOX_SENT,
	STMT_OUTBOX_FAILED,
	STMT_OUTBOX_NEXT_DUE,
	STMT_RATE_PURGE,
	STMT__MAX
};

extern const struct db_stmt sql_stmts[STMT__MAX];

/* The request's connection, borrowed now if needed (NULL, *err set). */
struct db	*sql_db(struct request *, struct db_err *);
/* The same, answering 503 itself when there is none. */
struct db	*sql_db_or_reply(struct request *);
/* Gives the connection back before a long wait (a model call). */
void		 sql_release(struct request *);

/*
 * Runs a statement on the request's connection.  The result is freed
 * with the request.  sql_run() leaves *err for the caller to handle;
 * sql_run_or_reply() answers the error itself.
 */
PGresult	*sql_run(struct request *, enum stmt, const char *const *params,
		    struct db_err *);
PGresult	*sql_run_or_reply(struct request *, enum stmt,
		    const char *const *params);
int		 sql_begin(struct request *, struct db_err *);
int		 sql_commit(struct request *, struct db_err *);
int		 sql_begin_or_reply(struct request *);
int		 sql_commit_or_reply(struct request *);
void		 sql_rollback(struct request *);

/* Answers a database error with its mapped status and code. */
void		 reply_db_error(struct request *, const struct db_err *);

/* Values of a result row: the text, or NULL for SQL NULL. */
const char	*sql_get(const PGresult *, int row, int col);

#endif
