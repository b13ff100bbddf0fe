/*
 * The API's objects (api.md, Objects), written from result columns.
 *
 * Each object has a column list to put in a SELECT or RETURNING list
 * (USER_COLS("u") and so on) and a writer that reads those columns of
 * one row, from column `col` on, and writes the object as a JSON value.
 * PostgreSQL sends plain columns, which it does much faster than JSON,
 * and the field names of the API live here only.  Timestamps come as
 * timestamptz text in UTC (every pooled connection sets TimeZone) and
 * go out as RFC 3339 with milliseconds.
 */
#ifndef MIKY_APP_RENDER_H
#define MIKY_APP_RENDER_H

#include <libpq-fe.h>

#include "lib/jsonw.h"

#define USER_COLS(u)							\
	u ".id, " u ".email, " u ".first_name, " u ".last_name, "	\
	u ".credits, " u ".plan, " u ".role, " u ".language, "		\
	u ".email_verified, " u ".referral_code, "			\
	u ".referrals_count, "						\
	"(" u ".cash_earned * 100)::bigint, "				\
	"(" u ".cash_paid_out * 100)::bigint, "				\
	u ".subscription_status, " u ".created_at, " u ".updated_at"

/* Columns of the objects, counted from the object's first column. */
enum { USER_ID, USER_EMAIL, USER_FIRST_NAME, USER_LAST_NAME, USER_CREDITS,
	USER_PLAN, USER_ROLE, USER_LANGUAGE, USER_EMAIL_VERIFIED,
	USER_REFERRAL_CODE, USER_REFERRALS_COUNT, USER_CASH_EARNED,
	USER_CASH_PAID_OUT, USER_SUBSCRIPTION_STATUS, USER_CREATED_AT,
	USER_UPDATED_AT, USER_NCOLS };

#define CONV_COLS(c)							\
	c ".id, " c ".title, " c ".persona, " c ".message_count, "	\
	c ".created_at, " c ".updated_at"

enum { CONV_ID, CONV_TITLE, CONV_PERSONA, CONV_MESSAGE_COUNT,
	CONV_CREATED_AT, CONV_UPDATED_AT, CONV_NCOLS };

#define MSG_COLS(m)							\
	m ".id, " m ".conversation_id, " m ".sender, " m ".content, "	\
	m ".persona, " m ".credits_consumed, " m ".created_at"

enum { MSG_ID, MSG_CONVERSATION_ID, MSG_SENDER, MSG_CONTENT, MSG_PERSONA,
	MSG_CREDITS_CONSUMED, MSG_CREATED_AT, MSG_NCOLS };

#define LEDGER_COLS(l)							\
	l ".delta, " l ".balance_after, " l ".reason, " l ".created_at"

enum { LEDGER_DELTA, LEDGER_BALANCE_AFTER, LEDGER_REASON,
	LEDGER_CREATED_AT, LEDGER_NCOLS };

#define TX_COLS(t)							\
	t ".id, " t ".type, (" t ".amount * 100)::bigint, " t ".credits, " \
	t ".status, " t ".created_at"

enum { TX_ID, TX_TYPE, TX_AMOUNT_CENTS, TX_CREDITS, TX_STATUS,
	TX_CREATED_AT, TX_NCOLS };

#define REFERRAL_COLS(r)						\
	r ".referred_first_name, " r ".status, " r ".created_at, "	\
	r ".credits_awarded, (" r ".cash_awarded * 100)::bigint"

enum { REFERRAL_FIRST_NAME, REFERRAL_STATUS, REFERRAL_CREATED_AT,
	REFERRAL_CREDITS_AWARDED, REFERRAL_CASH_AWARDED, REFERRAL_NCOLS };

/*
 * The objects as admins see them (api.md, Admin): a user with `banned`;
 * a conversation with its owner's id and email; a transaction with its
 * owner's id and email and, for a cash-out, where to pay it.
 */
#define ADMIN_USER_COLS(u)						\
	USER_COLS(u) ", " u ".banned_at IS NOT NULL"
#define ADMIN_USER_NCOLS	(USER_NCOLS + 1)

/*
 * The owner's email is a sub-select per row (a page has at most 101): a
 * join to users lets the planner size a Memoize node for a million users,
 * which costs more than the page.
 */
#define ADMIN_OWNER_EMAIL(x)						\
	"(SELECT o.email FROM users o WHERE o.id = " x ".user_id)"

#define ADMIN_CONV_COLS(c)						\
	CONV_COLS(c) ", " c ".user_id, " ADMIN_OWNER_EMAIL(c)
#define ADMIN_CONV_NCOLS	(CONV_NCOLS + 2)

#define ADMIN_TX_COLS(t)						\
	TX_COLS(t) ", " t ".user_id, " ADMIN_OWNER_EMAIL(t) ", "	\
	t ".cashout_method, " t ".cashout_destination"
#define ADMIN_TX_NCOLS		(TX_NCOLS + 4)

void	render_user(struct jw *, const PGresult *, int row, int col);
void	render_admin_user(struct jw *, const PGresult *, int row, int col);
void	render_admin_conversation(struct jw *, const PGresult *, int row,
	    int col);
void	render_admin_transaction(struct jw *, const PGresult *, int row,
	    int col);
void	render_conversation(struct jw *, const PGresult *, int row, int col);
void	render_message(struct jw *, const PGresult *, int row, int col);
void	render_ledger(struct jw *, const PGresult *, int row, int col);
void	render_transaction(struct jw *, const PGresult *, int row, int col);
/* An invitee as the export lists it. */
void	render_referral(struct jw *, const PGresult *, int row, int col);
/* A timestamptz column (ISO, UTC) as an RFC 3339 string value. */
void	render_ts(struct jw *, const char *pgts);

#endif
