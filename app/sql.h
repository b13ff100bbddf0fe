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

#include <stdbool.h>

#include <libpq-fe.h>

#include "render.h"
#include "lib/db.h"
#include "lib/dbbatch.h"

struct request;

enum stmt {
	STMT_PING,
	/* sessions */
	STMT_AUTH_USER,
	STMT_AUTH_USERS,
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
	STMT_HOLDS_ACTIVE,
	STMT_HOLD_TAKE,
	STMT_HOLD_SETTLE,
	STMT_HOLD_REFUND,
	STMT_HOLDS_EXPIRED,
	STMT_CREDITS_TAKE,
	STMT_CREDITS_GIVE,
	STMT_MSG_INSERT,
	STMT_HISTORY,
	STMT_REFERRAL_OF,
	STMT_REFERRAL_ACTIVATE,
	STMT_FIRST_PAYMENT,
	STMT_REFERRAL_QUALIFY,
	/* payments */
	STMT_PAY_STATE,
	STMT_PAY_SET_CUSTOMER,
	STMT_TX_PAGE,
	/* the Stripe webhook */
	STMT_EVENT_RECORD,
	STMT_PAYER_LOCK,
	STMT_CUSTOMER_LINK,
	STMT_SUB_APPLY,
	STMT_CHECKOUT_RECORD,
	STMT_INVOICE_RECORD,
	STMT_TX_BY_CHARGE,
	STMT_TX_REFUND,
	STMT_REFERRAL_BY_TX,
	STMT_REFERRAL_CLAWBACK,
	/* referral stats and cash-outs */
	STMT_REFERRAL_STATS,
	STMT_CASHOUT,
	/* the mailer */
	STMT_OUTBOX_CLAIM,
	STMT_OUTBOX_SENT,
	STMT_OUTBOX_FAILED,
	STMT_OUTBOX_NEXT_DUE,
	/* the janitor */
	STMT_RATE_PURGE,
	STMT_OUTBOX_PURGE,
	STMT_PENDING_PURGE,
	STMT_STATS_FOLD,
	/* the admin API */
	STMT_CUSTOM_PLANS,
	STMT_ADMIN_STATS,
	STMT_ADMIN_SERIES,
	STMT_ADMIN_USERS,
	STMT_ADMIN_USER_LOCK,
	STMT_ADMIN_USER_UPDATE,
	STMT_ADMIN_CONVS,
	STMT_ADMIN_TXS,
	STMT_ADMIN_TX_GET,
	STMT_ADMIN_CASHOUT_END,
	STMT_SETTINGS_ALL,
	STMT_SETTING_PUT,
	STMT_AUDIT_INSERT,
	/* operations */
	STMT_ROLE_CAN_REWRITE,
	STMT_CHECK_LEDGER,
	STMT__MAX
};

extern const struct db_stmt sql_stmts[STMT__MAX];

/*
 * Result columns, by statement: read a row only through these names and
 * the accessors below, never by bare numbers.  The counts (X__N) are the
 * statements' ncols in sql.c, which the pool checks against PostgreSQL's
 * own description of each statement, so an enum cannot drift from its
 * SELECT list unnoticed.  A statement with one column reads it as
 * SQL_ONLY; one with none has no enum.
 */
enum { SQL_ONLY };
enum { AU_ID, AU_ROLE, AU_BANNED, AU_VERIFIED, AU_TVA_MS, AU_CREDITS, AU_PLAN,
	AU_EMAIL, AU_FIRST_NAME, AU_LANGUAGE, AU_FAMILY, AU_USER,
	AU__N = AU_USER + USER_NCOLS };		/* STMT_AUTH_USER(S) */
enum { RS_USER, RS_FAMILY, RS_TVA_MS, RS__N };		/* STMT_REFRESH_SPEND */
enum { RL_FAMILY, RL_USED, RL_REVOKED, RL_USER, RL__N };/* STMT_REFRESH_LOOKUP */
enum { RC_ID, RC_FIRST_NAME, RC_EMAIL, RC__N };		/* STMT_REFERRER_BY_CODE */
enum { UE_ID, UE_VERIFIED, UE_BANNED, UE_HASH, UE_FIRST_NAME, UE_LANGUAGE,
	UE_TVA_MS, UE_USER, UE__N = UE_USER + USER_NCOLS };/* STMT_USER_BY_EMAIL */
enum { TP_ID, TP_USER, TP_EMAIL, TP__N };		/* STMT_EMAIL_TOKEN_PEEK */
enum { UV_TVA_MS, UV_USER, UV__N = UV_USER + USER_NCOLS };/* STMT_USER_VERIFY */
enum { SP_EMAIL, SP_FIRST_NAME, SP_LANGUAGE, SP__N };	/* STMT_USER_SET_PASSWORD */
enum { RH_COUNT, RH_RETRY_AFTER, RH__N };		/* STMT_RATE_HIT */
enum { LP_ID, LP_ENTRY, LP__N = LP_ENTRY + LEDGER_NCOLS };/* STMT_LEDGER_PAGE */
enum { CL_US, CL_ID, CL_CONV, CL__N = CL_CONV + CONV_NCOLS };/* STMT_CONV_LIST */
enum { CM_US, CM_ID, CM_MSG, CM__N = CM_MSG + MSG_NCOLS };/* STMT_CONV_MESSAGES */
enum { UL_CREDITS, UL_PLAN, UL_BANNED, UL__N };		/* STMT_USER_LOCK */
enum { HT_BALANCE, HT_HOLD, HT__N };			/* STMT_HOLD_TAKE */
enum { HE_ID, HE_USER, HE__N };				/* STMT_HOLDS_EXPIRED */
/* STMT_EXPORT_{CONVS,MESSAGES,TRANSACTIONS,REFERRALS}: key, then object. */
enum { EK_US, EK_ID, EK__N };
enum { EL_ID, EL__N };				/* STMT_EXPORT_LEDGER, then object */
enum { HI_SENDER, HI_CONTENT, HI__N };			/* STMT_HISTORY */
enum { RF_ID, RF_REFERRER, RF_STATUS, RF__N };	/* STMT_REFERRAL_OF, _BY_TX */
/* A reward that landed: STMT_REFERRAL_ACTIVATE, STMT_REFERRAL_QUALIFY. */
enum { RW_ID, RW_EMAIL, RW_FIRST_NAME, RW_LANGUAGE, RW_AMOUNT, RW__N };
enum { PS_CUSTOMER, PS_SUB, PS_STATUS, PS_PLAN, PS_PERIOD_END, PS_CANCEL,
	PS_EMAIL, PS__N };				/* STMT_PAY_STATE */
enum { XP_US, XP_ID, XP_TX, XP__N = XP_TX + TX_NCOLS };	/* STMT_TX_PAGE */
enum { PL_ID, PL_EMAIL, PL_FIRST_NAME, PL_LANGUAGE, PL__N };/* STMT_PAYER_LOCK */
/* A payment recorded: STMT_CHECKOUT_RECORD, STMT_INVOICE_RECORD. */
enum { PY_ID, PY_STATUS, PY_AMOUNT, PY_CREDITS, PY__N };
enum { TC_ID, TC_USER, TC__N };				/* STMT_TX_BY_CHARGE */
enum { TR_ID, TR_TAKEN, TR__N };			/* STMT_TX_REFUND */
enum { SS_CODE, SS_COUNT, SS_CREDITS, SS_EARNED, SS_PAID, SS_PENDING,
	SS__N };					/* STMT_REFERRAL_STATS */
enum { OC_ID, OC_TO, OC_TEMPLATE, OC_LANGUAGE, OC_FIRST_NAME, OC_TOKEN,
	OC_ATTEMPTS, OC_MESSAGE_ID, OC__N };		/* STMT_OUTBOX_CLAIM */

enum { AS_USERS, AS_VERIFIED, AS_FREE, AS_PLUS, AS_BUSINESS, AS_NEW_7D,
	AS_MESSAGES, AS_MESSAGES_24H, AS_CREDITS_30D, AS_REVENUE,
	AS_REVENUE_30D, AS_REFERRALS, AS_ACTIVATED, AS_QUALIFIED,
	AS_CASHOUTS, AS_CASHOUTS_CENTS, AS__N };	/* STMT_ADMIN_STATS */
enum { SE_DATE, SE_USERS, SE_MESSAGES, SE_REVENUE, SE__N };/* STMT_ADMIN_SERIES */
enum { AL_US, AL_USER, AL__N = AL_USER + ADMIN_USER_NCOLS };
							/* STMT_ADMIN_USERS */
enum { UK_PLAN, UK_ROLE, UK_CREDITS, UK_BANNED, UK_VERIFIED, UK__N };
							/* STMT_ADMIN_USER_LOCK */
enum { AC_US, AC_CONV, AC__N = AC_CONV + ADMIN_CONV_NCOLS };
							/* STMT_ADMIN_CONVS */
enum { AT_US, AT_TX, AT__N = AT_TX + ADMIN_TX_NCOLS };	/* STMT_ADMIN_TXS */
enum { TG_USER, TG_TYPE, TG_STATUS, TG__N };		/* STMT_ADMIN_TX_GET */
enum { SA_KEY, SA_VALUE, SA__N };			/* STMT_SETTINGS_ALL */
enum { CK_KIND, CK_USER, CK_EMAIL, CK_WHAT, CK__N };	/* STMT_CHECK_LEDGER */

/*
 * A statement's parameters, as one array made for this call:
 * sql_run(r, STMT_X, ARGS(a, b), &err).  The count travels with the
 * array and is checked against the statement's.
 */
#define ARGS(...)							\
	((const char *const[]){ __VA_ARGS__ }),				\
	(int)(sizeof((const char *const[]){ __VA_ARGS__ }) /		\
	    sizeof(const char *))
#define NO_ARGS		NULL, 0

/* The request's connection, borrowed now if needed (NULL, *err set). */
struct db	*sql_db(struct request *, struct db_err *);
/* The same, answering 503 itself when there is none. */
struct db	*sql_db_or_reply(struct request *);
/*
 * Gives the connection back before a long wait (a model call, a
 * password hash).  Debug builds assert that none is held across one:
 * see sql_assert_none().
 */
void		 sql_release(struct request *);
/* Logs critically if the request holds a connection (debug builds). */
void		 sql_assert_none(struct request *, const char *what);

/*
 * A read the handler will run, made known before the user's row is read
 * (session.c, a route's prefetch function): it goes to PostgreSQL in
 * the same round trip as that query (db_pipeline()), and the handler's
 * sql_run() of the same statement with the same parameters takes its
 * result instead of asking again.  Parameters are copied.  A prefetch
 * that fails, or that the handler never asks for, changes nothing.
 */
void		 sql_prefetch(struct request *, enum stmt,
		    const char *const *params, int nparams);

/*
 * Reads the row of `key` through a queue shared with the process's other
 * threads (lib/dbbatch.h), on a connection of its own: the request must
 * hold none.  The result, of zero or one row, is freed with the request.
 */
PGresult	*sql_batch_or_reply(struct request *, struct db_batch *,
		    const char *key);

/*
 * Runs a statement on the request's connection.  The result is freed
 * with the request.  sql_run() leaves *err for the caller to handle;
 * sql_run_or_reply() answers the error itself.
 */
PGresult	*sql_run(struct request *, enum stmt, const char *const *params,
		    int nparams, struct db_err *);
PGresult	*sql_run_or_reply(struct request *, enum stmt,
		    const char *const *params, int nparams);
/*
 * The same for a statement whose row the caller needs: a result with no
 * row is an error too (404 not_found, see sql_no_row()), so no caller
 * can read a row that is not there.  Use it wherever the row may be
 * gone: an account deleted, a conversation removed, a turn settled.
 */
PGresult	*sql_row(struct request *, enum stmt, const char *const *params,
		    int nparams, struct db_err *);
PGresult	*sql_row_or_reply(struct request *, enum stmt,
		    const char *const *params, int nparams);
/*
 * Frees a result now rather than with the request: for a handler that
 * reads many results in one request (the export's pages).
 */
void		 sql_free(struct request *, PGresult *);
/* True if *err is sql_row()'s "no row" rather than a database error. */
bool		 sql_no_row(const struct db_err *);

int		 sql_begin(struct request *, struct db_err *);
int		 sql_commit(struct request *, struct db_err *);
int		 sql_begin_or_reply(struct request *);
int		 sql_commit_or_reply(struct request *);
void		 sql_rollback(struct request *);

/* Answers a database error with its mapped status and code. */
void		 reply_db_error(struct request *, const struct db_err *);

/*
 * The checked accessors, the only way app/ reads a result.  A row or
 * column outside the result is a programming error: it is logged as
 * critical and reads as "" (text), 0 or false, never as a crash.
 * sql_str() gives NULL for SQL NULL; sql_int() 0 for NULL or a value
 * that is not an integer; sql_bool() true only for 't'; sql_len() the
 * length of sql_str()'s text (0 for NULL).
 */
const char	*sql_str(const PGresult *, int row, int col);
size_t		 sql_len(const PGresult *, int row, int col);
long long	 sql_int(const PGresult *, int row, int col);
bool		 sql_bool(const PGresult *, int row, int col);
bool		 sql_null(const PGresult *, int row, int col);
/* Rows of a result (0 for NULL). */
int		 sql_rows(const PGresult *);

#endif
