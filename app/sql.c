#include "sql.h"
#include "app.h"
#include "events.h"
#include "render.h"
#include <limits.h>
#include <string.h>

#include "lib/arena.h"
#include "lib/log.h"
#include "lib/num.h"
#include "lib/request.h"

#define S(id, text, nparams, ncols, flags) \
	[id] = { #id, text, nparams, ncols, flags }

/*
 * The new tokens_valid_after when every session of a user ends.  Access
 * tokens carry iat in whole seconds, and one issued in the same second
 * as an earlier end is dated the next second (session.c), so "now" is
 * not enough: the new value must also pass that rounded-up second, or
 * such a token would outlive this end.
 */
#define TVA_BUMP \
	"greatest(now() + interval '1 millisecond'," \
	" date_trunc('second', tokens_valid_after)" \
	" + interval '1001 milliseconds')"

/*
 * The user behind an access token, with what the checks need and the API
 * object; the id first (as text, lowercase), tokens_valid_after in
 * milliseconds.
 */
#define AUTH_COLS \
	"SELECT u.id::text, u.role, u.banned_at IS NOT NULL, u.email_verified," \
	" floor(date_part('epoch', u.tokens_valid_after) * 1000)::int8," \
	" u.credits, u.plan, u.email, u.first_name, u.language," \
	" u.tokens_valid_family, " USER_COLS("u") " FROM users u"

const struct db_stmt sql_stmts[STMT__MAX] = {
	S(STMT_PING, "SELECT 1", 0, 1, DB_RETRY),

	S(STMT_AUTH_USER, AUTH_COLS " WHERE u.id = $1", 1, AU__N, DB_RETRY),
	/* The same for many users at once ({"id",...}; lib/dbbatch.h). */
	S(STMT_AUTH_USERS, AUTH_COLS " WHERE u.id = ANY($1::uuid[])", 1,
	    AU__N, DB_RETRY),
	S(STMT_REFRESH_INSERT,
	    "INSERT INTO refresh_tokens (user_id, family_id, token_hash,"
	    " expires_at, user_agent, ip)"
	    " VALUES ($1, coalesce($2::uuid, gen_random_uuid()), $3,"
	    " now() + interval '30 days', $4, $5::inet)"
	    " RETURNING family_id", 5, 1, 0),
	/* Spends a live token of a usable account; the next is issued. */
	S(STMT_REFRESH_SPEND,
	    "UPDATE refresh_tokens t SET used_at = now() FROM users u"
	    " WHERE t.token_hash = $1 AND t.used_at IS NULL"
	    " AND t.revoked_at IS NULL AND t.expires_at > now()"
	    " AND u.id = t.user_id AND u.banned_at IS NULL"
	    " AND u.email_verified"
	    " RETURNING t.user_id, t.family_id,"
	    " floor(date_part('epoch', u.tokens_valid_after) * 1000)::int8", 1, RS__N,
	    0),
	/*
	 * A token's family, locked for the transaction: rotations and
	 * revocations of one family run one at a time (an advisory lock on
	 * the family id), so no rotation can commit a new token beside a
	 * revocation of its family and outlive it.
	 */
	S(STMT_REFRESH_LOOKUP,
	    "SELECT t.family_id, t.used_at IS NOT NULL,"
	    " t.revoked_at IS NOT NULL, t.user_id"
	    " FROM refresh_tokens t,"
	    " LATERAL pg_advisory_xact_lock(hashtextextended("
	    "  t.family_id::text, 7314)) l"
	    " WHERE t.token_hash = $1", 1, RL__N, 0),
	S(STMT_REFRESH_REVOKE_FAMILY,
	    "UPDATE refresh_tokens SET revoked_at = now()"
	    " WHERE family_id = $1 AND revoked_at IS NULL", 1, 0, 0),
	/* Every family of a user but $2 (NULL: all of them). */
	S(STMT_REFRESH_REVOKE_USER,
	    "UPDATE refresh_tokens SET revoked_at = now()"
	    " WHERE user_id = $1 AND revoked_at IS NULL"
	    " AND ($2::uuid IS NULL OR family_id <> $2::uuid)", 2, 0, 0),
	S(STMT_USER_END_SESSIONS,
	    "UPDATE users SET tokens_valid_after = " TVA_BUMP ","
	    " tokens_valid_family = NULL WHERE id = $1", 1, 0, 0),

	S(STMT_REFERRER_BY_CODE,
	    "SELECT id, first_name, email FROM users"
	    " WHERE referral_code = $1 AND banned_at IS NULL", 1, RC__N, DB_RETRY),
	/*
	 * A new pending account with its sign-up grant as the first ledger
	 * row, in one statement.  No row back: the email (or, rarely, the
	 * referral code) is taken.  The app folds ASCII case; lower() here
	 * and in STMT_USER_BY_EMAIL folds the rest as the CHECK on
	 * users.email does, so "É" is stored and found as "é".
	 */
	S(STMT_SIGNUP_INSERT,
	    "WITH u AS (INSERT INTO users (email, password_hash, first_name,"
	    "  last_name, language, referral_code, referred_by, credits)"
	    "  VALUES (lower($1), $2, $3, $4, $5, $6, $7, $8::bigint)"
	    "  ON CONFLICT DO NOTHING RETURNING id, credits),"
	    " l AS (INSERT INTO credit_ledger (user_id, delta, balance_after,"
	    "  reason, ref) SELECT id, credits, credits, 'signup', id::text"
	    "  FROM u WHERE credits > 0)"
	    " SELECT id FROM u", 8, 1, 0),
	S(STMT_USER_BY_EMAIL,
	    "SELECT id, email_verified, banned_at IS NOT NULL, password_hash,"
	    " first_name, language,"
	    " floor(date_part('epoch', tokens_valid_after) * 1000)::int8,"
	    " " USER_COLS("users") " FROM users WHERE email = lower($1)", 1, UE__N,
	    DB_RETRY),
	S(STMT_PENDING_UPDATE,
	    "UPDATE users SET password_hash = $2, first_name = $3,"
	    " last_name = $4, language = $5"
	    " WHERE id = $1 AND NOT email_verified", 5, 0, 0),
	S(STMT_REFERRAL_INSERT,
	    "INSERT INTO referrals (user_id, referred_user_id,"
	    " referred_first_name) VALUES ($1, $2, $3)", 3, 0, 0),
	S(STMT_EMAIL_TOKENS_VOID,
	    "UPDATE email_tokens SET used_at = now()"
	    " WHERE user_id = $1 AND purpose = $2 AND used_at IS NULL", 2, 0, 0),
	S(STMT_EMAIL_TOKEN_INSERT,
	    "INSERT INTO email_tokens (user_id, purpose, token_hash,"
	    " expires_at) VALUES ($1, $2, $3, now() + $4::interval)", 4, 0, 0),
	S(STMT_EMAIL_TOKEN_SPEND,
	    "UPDATE email_tokens SET used_at = now()"
	    " WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL"
	    " AND expires_at > now() RETURNING user_id", 2, 1, 0),
	S(STMT_EMAIL_TOKEN_PEEK,
	    "SELECT t.id, t.user_id, u.email FROM email_tokens t"
	    " JOIN users u ON u.id = t.user_id"
	    " WHERE t.token_hash = $1 AND t.purpose = $2"
	    " AND t.used_at IS NULL AND t.expires_at > now()", 2, TP__N, 0),
	S(STMT_EMAIL_TOKEN_SPEND_ID,
	    "UPDATE email_tokens SET used_at = now()"
	    " WHERE id = $1 AND used_at IS NULL AND expires_at > now()"
	    " RETURNING user_id", 1, 1, 0),
	S(STMT_USER_VERIFY,
	    "UPDATE users SET email_verified = true,"
	    " email_verified_at = coalesce(email_verified_at, now())"
	    " WHERE id = $1 AND banned_at IS NULL"
	    " RETURNING floor(date_part('epoch', tokens_valid_after) * 1000)::int8,"
	    " " USER_COLS("users"), 1, UV__N, 0),
	/*
	 * A new password ends every session but family $3 (access tokens
	 * through tokens_valid_after) and proves the email, as a reset link
	 * does.
	 */
	S(STMT_USER_SET_PASSWORD,
	    "UPDATE users SET password_hash = $2,"
	    " tokens_valid_after = " TVA_BUMP ","
	    " tokens_valid_family = $3::uuid, email_verified = true,"
	    " email_verified_at = coalesce(email_verified_at, now())"
	    " WHERE id = $1 RETURNING email, first_name, language", 3, SP__N, 0),
	S(STMT_USER_PASSWORD,
	    "SELECT password_hash FROM users WHERE id = $1", 1, 1, DB_RETRY),
	S(STMT_OUTBOX_INSERT,
	    "INSERT INTO email_outbox (user_id, to_addr, template, language,"
	    " payload) VALUES ($1, $2, $3, $4, $5::jsonb)", 5, 0, 0),
	/*
	 * Fixed-window counters shared by every worker and host: counts one
	 * event of key $1 in the current window of $2 seconds and returns
	 * the count and the seconds until the window ends.
	 */
	S(STMT_RATE_HIT,
	    "INSERT INTO rate_limits AS r (key, window_start, count)"
	    " VALUES ($1, to_timestamp(floor(extract(epoch FROM now())"
	    "  / $2::int) * $2::int), 1)"
	    " ON CONFLICT (key, window_start) DO UPDATE SET count = r.count + 1"
	    " RETURNING count, ceil(extract(epoch FROM r.window_start)"
	    "  + $2::int - extract(epoch FROM now()))::int", 2, RH__N, 0),
	/* Gives back one event of key $1 counted in the current window. */
	S(STMT_RATE_UNHIT,
	    "UPDATE rate_limits SET count = count - 1 WHERE key = $1"
	    " AND window_start = to_timestamp(floor(extract(epoch FROM now())"
	    "  / $2::int) * $2::int) AND count > 0", 2, 0, 0),

	S(STMT_PROFILE_UPDATE,
	    "UPDATE users SET first_name = coalesce($2, first_name),"
	    " last_name = coalesce($3, last_name),"
	    " language = coalesce($4, language)"
	    " WHERE id = $1 RETURNING " USER_COLS("users"), 4, USER_NCOLS, 0),
	S(STMT_LEDGER_PAGE,
	    "SELECT l.id, " LEDGER_COLS("l") " FROM credit_ledger l"
	    " WHERE l.user_id = $1 AND ($2::bigint IS NULL OR l.id < $2)"
	    " ORDER BY l.id DESC LIMIT $3", 3, LP__N, DB_RETRY),
	/*
	 * The data export, read in one snapshot and in pages: each list in
	 * keyset order, a page at a time after the last row of the one
	 * before (NULL: from the start), so no statement reads a whole
	 * account and none runs long.  Each row starts with its key
	 * (api_us(created_at), id; the ledger's id), then the object.
	 */
	S(STMT_SNAPSHOT,
	    "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY", 0, 0, 0),
	S(STMT_EXPORT_CONVS,
	    "SELECT api_us(c.created_at), c.id, " CONV_COLS("c")
	    " FROM conversations c WHERE c.user_id = $1"
	    " AND ($2::bigint IS NULL OR (c.created_at, c.id)"
	    "  > (api_from_us($2), $3::uuid))"
	    " ORDER BY c.created_at, c.id LIMIT $4", 4, EK__N + CONV_NCOLS, 0),
	S(STMT_EXPORT_MESSAGES,
	    "SELECT api_us(m.created_at), m.id, " MSG_COLS("m")
	    " FROM messages m WHERE m.conversation_id = $2 AND m.user_id = $1"
	    " AND ($3::bigint IS NULL OR (m.created_at, m.id)"
	    "  > (api_from_us($3), $4::uuid))"
	    " ORDER BY m.created_at, m.id LIMIT $5", 5, EK__N + MSG_NCOLS, 0),
	S(STMT_EXPORT_LEDGER,
	    "SELECT l.id, " LEDGER_COLS("l") " FROM credit_ledger l"
	    " WHERE l.user_id = $1 AND ($2::bigint IS NULL OR l.id > $2)"
	    " ORDER BY l.id LIMIT $3", 3, EL__N + LEDGER_NCOLS, 0),
	S(STMT_EXPORT_TRANSACTIONS,
	    "SELECT api_us(t.created_at), t.id, " TX_COLS("t")
	    " FROM transactions t WHERE t.user_id = $1"
	    " AND ($2::bigint IS NULL OR (t.created_at, t.id)"
	    "  > (api_from_us($2), $3::uuid))"
	    " ORDER BY t.created_at, t.id LIMIT $4", 4, EK__N + TX_NCOLS, 0),
	S(STMT_EXPORT_REFERRALS,
	    "SELECT api_us(r.created_at), r.id, " REFERRAL_COLS("r")
	    " FROM referrals r WHERE r.user_id = $1"
	    " AND ($2::bigint IS NULL OR (r.created_at, r.id)"
	    "  > (api_from_us($2), $3::uuid))"
	    " ORDER BY r.created_at, r.id LIMIT $4", 4,
	    EK__N + REFERRAL_NCOLS, 0),
	S(STMT_USER_DELETE, "DELETE FROM users WHERE id = $1", 1, 0, 0),

	/* Most recently updated first; the cursor is (updated_at, id). */
	S(STMT_CONV_LIST,
	    "SELECT api_us(c.updated_at), c.id, " CONV_COLS("c")
	    " FROM conversations c WHERE c.user_id = $1"
	    " AND ($2::text IS NULL OR c.title ILIKE $2)"
	    " AND ($3::bigint IS NULL OR (c.updated_at, c.id)"
	    "  < (api_from_us($3), $4::uuid))"
	    " ORDER BY c.updated_at DESC, c.id DESC LIMIT $5", 5, CL__N, DB_RETRY),
	S(STMT_CONV_CREATE,
	    "INSERT INTO conversations (user_id, title, persona)"
	    " VALUES ($1, $2, $3) RETURNING " CONV_COLS("conversations"),
	    3, CONV_NCOLS, 0),
	S(STMT_CONV_GET,
	    "SELECT " CONV_COLS("c") " FROM conversations c"
	    " WHERE c.id = $1 AND c.user_id = $2", 2, CONV_NCOLS, DB_RETRY),
	S(STMT_CONV_LOCK,
	    "SELECT " CONV_COLS("c") " FROM conversations c"
	    " WHERE c.id = $1 AND c.user_id = $2 FOR UPDATE", 2, CONV_NCOLS, 0),
	/*
	 * The newest $5 messages before the cursor (created_at, id), newest
	 * first, in the order of the conversation's index (no sort; the
	 * handler renders them the other way round).  Owned through the
	 * conversation (the composite foreign key makes its messages the
	 * owner's), checked once (an InitPlan), not joined row by row: with
	 * a condition on messages.user_id the planner also read that user's
	 * index, every message of every conversation, to intersect it with
	 * this one's.
	 */
	S(STMT_CONV_MESSAGES,
	    "SELECT api_us(m.created_at), m.id, " MSG_COLS("m")
	    " FROM messages m WHERE m.conversation_id = $1"
	    " AND EXISTS (SELECT FROM conversations c"
	    "  WHERE c.id = $1 AND c.user_id = $2)"
	    " AND ($3::bigint IS NULL OR (m.created_at, m.id)"
	    "  < (api_from_us($3), $4::uuid))"
	    " ORDER BY m.created_at DESC, m.id DESC LIMIT $5", 5, CM__N,
	    DB_RETRY),
	S(STMT_CONV_UPDATE,
	    "UPDATE conversations SET title = coalesce($3, title),"
	    " persona = coalesce($4, persona)"
	    " WHERE id = $1 AND user_id = $2"
	    " RETURNING " CONV_COLS("conversations"), 4, CONV_NCOLS, 0),
	S(STMT_CONV_DELETE,
	    "DELETE FROM conversations WHERE id = $1 AND user_id = $2"
	    " RETURNING id", 2, 1, 0),
	S(STMT_CONV_TOUCH,
	    "UPDATE conversations SET message_count = message_count + 1,"
	    " updated_at = now() WHERE id = $1 AND user_id = $2"
	    " RETURNING " CONV_COLS("conversations"), 2, CONV_NCOLS, 0),

	/*
	 * Serialises a user's turns and settlements: the reservation checks
	 * run under it, and every change of a hold takes it first (user,
	 * then hold), as the account's deletion does, so none deadlocks.
	 */
	S(STMT_USER_LOCK,
	    "SELECT credits, plan, banned_at IS NOT NULL FROM users"
	    " WHERE id = $1 FOR NO KEY UPDATE", 1, UL__N, 0),
	S(STMT_HOLDS_ACTIVE,
	    "SELECT count(*) FROM credit_holds WHERE user_id = $1"
	    " AND kind = $2 AND expires_at > now()", 2, 1, 0),
	/*
	 * Credit holds (schema/007): $2 credits of user $1 taken for work
	 * of kind $3 ('chat' or 'voice', also the ledger reason) with its
	 * ledger row, and held until settled or refunded, at the latest
	 * $5 ms from now.  $4 is the ledger reference of both rows.  No
	 * row back: the balance is short, and nothing changed.
	 */
	S(STMT_HOLD_TAKE,
	    "WITH u AS (UPDATE users SET credits = credits - $2::bigint"
	    "  WHERE id = $1 AND credits >= $2::bigint RETURNING id, credits),"
	    " l AS (INSERT INTO credit_ledger (user_id, delta, balance_after,"
	    "  reason, ref) SELECT id, -$2::bigint, credits, $3, $4 FROM u"
	    "  WHERE $2::bigint > 0),"
	    " h AS (INSERT INTO credit_holds (user_id, kind, credits,"
	    "  refund_reason, ref, expires_at) SELECT id, $3, $2::bigint,"
	    "  $3 || '_refund', $4,"
	    "  now() + $5::bigint * interval '1 millisecond' FROM u"
	    "  RETURNING id)"
	    " SELECT u.credits, h.id FROM u, h", 5, HT__N, 0),
	/* Ends a hold for good, charged.  No row: it had ended already. */
	S(STMT_HOLD_SETTLE,
	    "DELETE FROM credit_holds WHERE id = $1 RETURNING id", 1, 1, 0),
	/*
	 * Ends a hold by giving its credits back, with the ledger row;
	 * returns the new balance.  No row: the hold had ended already (or
	 * its account is gone), and nothing changed.
	 */
	S(STMT_HOLD_REFUND,
	    "WITH h AS (DELETE FROM credit_holds WHERE id = $1"
	    "  RETURNING user_id, credits, refund_reason, ref),"
	    " u AS (UPDATE users SET credits = users.credits + h.credits"
	    "  FROM h WHERE users.id = h.user_id"
	    "  RETURNING users.id, users.credits, h.credits AS delta,"
	    "  h.refund_reason, h.ref),"
	    " l AS (INSERT INTO credit_ledger (user_id, delta, balance_after,"
	    "  reason, ref) SELECT id, delta, credits, refund_reason, ref"
	    "  FROM u WHERE delta > 0)"
	    " SELECT credits FROM u", 1, 1, 0),
	S(STMT_HOLDS_EXPIRED,
	    "SELECT id, user_id FROM credit_holds WHERE expires_at < now()"
	    " ORDER BY expires_at LIMIT 100", 0, HE__N, 0),
	/*
	 * The ledger: every change of users.credits is one conditional
	 * update and its ledger row, in one statement.  Taking more than
	 * the balance changes nothing and returns no row.
	 */
	S(STMT_CREDITS_TAKE,
	    "WITH u AS (UPDATE users SET credits = credits - $2::bigint"
	    "  WHERE id = $1 AND credits >= $2::bigint RETURNING id, credits),"
	    " l AS (INSERT INTO credit_ledger (user_id, delta, balance_after,"
	    "  reason, ref) SELECT id, -$2::bigint, credits, $3, $4 FROM u"
	    "  WHERE $2::bigint > 0)"
	    " SELECT credits FROM u", 4, 1, 0),
	S(STMT_CREDITS_GIVE,
	    "WITH u AS (UPDATE users SET credits = credits + $2::bigint"
	    "  WHERE id = $1 RETURNING id, credits),"
	    " l AS (INSERT INTO credit_ledger (user_id, delta, balance_after,"
	    "  reason, ref) SELECT id, $2::bigint, credits, $3, $4 FROM u"
	    "  WHERE $2::bigint <> 0)"
	    " SELECT credits FROM u", 4, 1, 0),
	S(STMT_MSG_INSERT,
	    "INSERT INTO messages (conversation_id, user_id, sender, content,"
	    " persona, credits_consumed, prompt_tokens, completion_tokens,"
	    " model) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
	    " RETURNING " MSG_COLS("messages"), 9, MSG_NCOLS, 0),
	S(STMT_HISTORY,
	    "SELECT sender, content FROM messages"
	    " WHERE conversation_id = $1 AND user_id = $2 AND id <> $3"
	    " ORDER BY created_at DESC, id DESC LIMIT $4", 4, HI__N, 0),
	/*
	 * Referrals (referrals.c).  A referred user's first completed turn
	 * activates the referral (STMT_REFERRAL_OF finds it) and rewards
	 * the referrer once, with $2 credits, if fewer than $3 of the
	 * referrer's referrals were rewarded this calendar month (UTC);
	 * past the cap it activates unrewarded, and will earn no cash
	 * either.  The caller holds the referrer's row lock, so activations
	 * of one referrer's invitees count the month one at a time; the
	 * ledger's unique (reason, ref) makes the reward once per referral.
	 * No row: it was not pending.  A row: the referrer to tell, with
	 * the credits (0: none, or no account any more).
	 */
	S(STMT_REFERRAL_OF,
	    "SELECT id, user_id, status FROM referrals"
	    " WHERE referred_user_id = $1", 1, RF__N, 0),
	S(STMT_REFERRAL_ACTIVATE,
	    "WITH n AS (SELECT count(*) < $3::int AS ok FROM referrals o"
	    "  WHERE o.user_id = (SELECT user_id FROM referrals WHERE id = $1)"
	    "  AND o.rewarded AND o.activated_at >= date_trunc('month', now())),"
	    " r AS (UPDATE referrals f SET status = 'activated',"
	    "  activated_at = now(), rewarded = n.ok,"
	    "  credits_awarded = CASE WHEN n.ok THEN $2::int ELSE 0 END"
	    "  FROM n WHERE f.id = $1 AND f.status = 'pending'"
	    "  RETURNING f.id, f.user_id, f.credits_awarded),"
	    " u AS (UPDATE users SET credits = credits + r.credits_awarded"
	    "  FROM r WHERE users.id = r.user_id AND r.credits_awarded > 0"
	    "  RETURNING users.id, users.credits, r.credits_awarded,"
	    "  r.id AS rid, users.email, users.first_name, users.language),"
	    " l AS (INSERT INTO credit_ledger (user_id, delta, balance_after,"
	    "  reason, ref) SELECT id, credits_awarded, credits, 'referral',"
	    "  'activation:' || rid FROM u)"
	    " SELECT r.id, u.email, u.first_name, u.language,"
	    " coalesce(u.credits_awarded, 0)::bigint FROM r"
	    " LEFT JOIN u ON u.rid = r.id", 3, RW__N, 0),
	/* The referee's first successful payment, if any. */
	S(STMT_FIRST_PAYMENT,
	    "SELECT id FROM transactions WHERE user_id = $1"
	    " AND type IN ('credits', 'subscription') AND status = 'completed'"
	    " AND amount > 0 ORDER BY created_at, id LIMIT 1", 1, 1, 0),
	/*
	 * An activated referral qualifies at payment $2: the referrer earns
	 * $3 cents if the activation was rewarded (within the cap), with
	 * its cash ledger row and a 'referral' transaction, once (the
	 * status moves once; the ledger and the transaction are unique on
	 * the referral).  Under the referee's and then the referrer's row
	 * lock.  No row: not activated (pending, or qualified already).
	 */
	S(STMT_REFERRAL_QUALIFY,
	    "WITH r AS (UPDATE referrals SET status = 'qualified',"
	    "  qualified_at = now(), qualified_transaction_id = $2,"
	    "  cash_awarded = CASE WHEN rewarded THEN $3::bigint / 100.0"
	    "  ELSE 0 END"
	    "  WHERE id = $1 AND status = 'activated'"
	    "  RETURNING id, user_id, cash_awarded),"
	    " u AS (UPDATE users SET cash_earned = users.cash_earned"
	    "  + r.cash_awarded FROM r"
	    "  WHERE users.id = r.user_id AND r.cash_awarded > 0"
	    "  RETURNING users.id, users.cash_earned, r.cash_awarded,"
	    "  r.id AS rid, users.email, users.first_name, users.language),"
	    " c AS (INSERT INTO cash_ledger (user_id, delta_cents,"
	    "  earned_after_cents, reason, ref)"
	    "  SELECT id, (cash_awarded * 100)::bigint,"
	    "  (cash_earned * 100)::bigint, 'referral', rid::text FROM u),"
	    " x AS (INSERT INTO transactions (user_id, type, amount, status,"
	    "  referral_id, description) SELECT id, 'referral', cash_awarded,"
	    "  'completed', rid, 'Referral reward' FROM u)"
	    " SELECT r.id, u.email, u.first_name, u.language,"
	    " (coalesce(u.cash_awarded, 0) * 100)::bigint FROM r"
	    " LEFT JOIN u ON u.rid = r.id", 3, RW__N, 0),

	/* Payments (payments.c): the caller's Stripe state. */
	S(STMT_PAY_STATE,
	    "SELECT stripe_customer_id, stripe_subscription_id,"
	    " subscription_status, subscription_plan,"
	    " floor(date_part('epoch', subscription_current_period_end))::int8,"
	    " subscription_cancel_at_period_end, email"
	    " FROM users WHERE id = $1", 1, PS__N, DB_RETRY),
	/* No row: the user has a customer already (or is gone). */
	S(STMT_PAY_SET_CUSTOMER,
	    "UPDATE users SET stripe_customer_id = $2"
	    " WHERE id = $1 AND stripe_customer_id IS NULL"
	    " RETURNING stripe_customer_id", 2, 1, 0),
	/* Newest first; the cursor is (created_at, id). */
	S(STMT_TX_PAGE,
	    "SELECT api_us(t.created_at), t.id, " TX_COLS("t")
	    " FROM transactions t WHERE t.user_id = $1"
	    " AND ($2::bigint IS NULL OR (t.created_at, t.id)"
	    "  < (api_from_us($2), $3::uuid))"
	    " ORDER BY t.created_at DESC, t.id DESC LIMIT $4", 4, XP__N,
	    DB_RETRY),

	/*
	 * The Stripe webhook (webhook.c, whose head comment gives the lock
	 * order and why every grant happens once).  An event is recorded
	 * first, in the transaction of its effect: no row back means it was
	 * recorded before (a replay), and a concurrent delivery of the same
	 * event waits here until the first commits or rolls back.
	 */
	S(STMT_EVENT_RECORD,
	    "INSERT INTO stripe_events (id, type, payload, outcome, created_at,"
	    " processed_at) VALUES ($1, $2, $3::jsonb, $4,"
	    " to_timestamp($5::bigint), now())"
	    " ON CONFLICT (id) DO NOTHING RETURNING id", 5, 1, 0),
	/* The payer, by Stripe customer or else by our metadata, locked. */
	S(STMT_PAYER_LOCK,
	    "SELECT id, email, first_name, language FROM users"
	    " WHERE id = coalesce((SELECT id FROM users"
	    "  WHERE stripe_customer_id = $1), $2::uuid)"
	    " FOR NO KEY UPDATE", 2, PL__N, 0),
	S(STMT_CUSTOMER_LINK,
	    "UPDATE users SET stripe_customer_id = $2"
	    " WHERE id = $1 AND stripe_customer_id IS NULL"
	    " AND NOT EXISTS (SELECT 1 FROM users o"
	    "  WHERE o.stripe_customer_id = $2)", 2, 0, 0),
	/*
	 * The subscription mirror, moved by an event created at $7 (unix):
	 * subscription $2, status $3, plan $4, period end $5, cancel at
	 * period end $6 (NULL: unchanged).  Applied only if
	 *  - it is not older than the last event applied (a canceled
	 *    subscription's own 'canceled' always applies; with $7 NULL, an
	 *    event without a clock, only while none was applied),
	 *  - a subscription canceled stays canceled (Stripe never revives
	 *    one), and
	 *  - it is the user's subscription, or the user has none live (a
	 *    new one after the end of the last).
	 * The plan follows: a live subscription's plan, else 'free'.
	 */
	S(STMT_SUB_APPLY,
	    "UPDATE users SET stripe_subscription_id = $2,"
	    " subscription_status = coalesce($3, subscription_status),"
	    " subscription_plan = coalesce($4, subscription_plan),"
	    " subscription_current_period_end = coalesce(to_timestamp($5::bigint),"
	    "  subscription_current_period_end),"
	    " subscription_cancel_at_period_end = coalesce($6::boolean,"
	    "  subscription_cancel_at_period_end),"
	    " plan = CASE WHEN coalesce($3, subscription_status) IN ('active',"
	    "  'trialing', 'past_due') THEN coalesce($4, subscription_plan, plan)"
	    "  WHEN $3 IS NULL THEN plan ELSE 'free' END,"
	    " subscription_event_at = greatest(subscription_event_at,"
	    "  to_timestamp($7::bigint))"
	    " WHERE id = $1"
	    " AND (subscription_event_at IS NULL"
	    "  OR to_timestamp($7::bigint) >= subscription_event_at"
	    "  OR ($3 = 'canceled' AND stripe_subscription_id = $2))"
	    " AND NOT coalesce(stripe_subscription_id = $2"
	    "  AND subscription_status = 'canceled'"
	    "  AND $3 IS DISTINCT FROM 'canceled', false)"
	    " AND (stripe_subscription_id IS NULL OR stripe_subscription_id = $2"
	    "  OR subscription_status IS NULL OR subscription_status NOT IN"
	    "  ('active', 'trialing', 'past_due'))"
	    " RETURNING id", 7, 1, 0),
	/*
	 * A payment, recorded once on its business key -- the Checkout
	 * Session ($2) of a pack, the invoice ($2) of a plan -- and moved
	 * only forward: pending to completed or failed, failed (an invoice
	 * Stripe retries) to completed; completed and refunded are final.
	 * The step to completed grants its credits with their ledger row
	 * in the same statement, so a grant happens exactly when a
	 * transaction becomes completed: once.  A row back: this call moved
	 * it (its new status); no row: nothing changed.
	 */
#define TX_MOVES							\
	" WHERE (transactions.status = 'pending'"			\
	"  AND EXCLUDED.status <> 'pending')"				\
	"  OR (transactions.status = 'failed'"				\
	"  AND EXCLUDED.status = 'completed')"				\
	" RETURNING id, user_id, status, amount, credits)"
#define TX_GRANT(reason)						\
	" u AS (UPDATE users SET credits = users.credits + t.credits FROM t" \
	"  WHERE users.id = t.user_id AND t.status = 'completed'"	\
	"  AND t.credits > 0"						\
	"  RETURNING users.id, users.credits, t.credits AS delta),"	\
	" l AS (INSERT INTO credit_ledger (user_id, delta, balance_after," \
	"  reason, ref) SELECT id, delta, credits, '" reason "', $2 FROM u)" \
	" SELECT t.id, t.status, (t.amount * 100)::bigint, t.credits FROM t"
	S(STMT_CHECKOUT_RECORD,
	    "WITH t AS (INSERT INTO transactions (user_id, type, amount,"
	    "  credits, status, pack, stripe_checkout_session_id,"
	    "  stripe_payment_intent_id, description)"
	    "  VALUES ($1, 'credits', $4::bigint / 100.0, $5, $3, $6, $2, $7,"
	    "  'Credit pack ' || $6)"
	    "  ON CONFLICT (stripe_checkout_session_id) DO UPDATE"
	    "  SET status = EXCLUDED.status, stripe_payment_intent_id ="
	    "  coalesce(EXCLUDED.stripe_payment_intent_id,"
	    "  transactions.stripe_payment_intent_id)" TX_MOVES ","
	    TX_GRANT("purchase"), 7, PY__N, 0),
	S(STMT_INVOICE_RECORD,
	    "WITH t AS (INSERT INTO transactions (user_id, type, amount,"
	    "  credits, status, plan, stripe_invoice_id,"
	    "  stripe_payment_intent_id, stripe_charge_id, description)"
	    "  VALUES ($1, 'subscription', $4::bigint / 100.0, $5, $3, $6, $2,"
	    "  $7, $8, 'Plan ' || $6)"
	    "  ON CONFLICT (stripe_invoice_id) DO UPDATE"
	    "  SET status = EXCLUDED.status, amount = EXCLUDED.amount,"
	    "  credits = EXCLUDED.credits,"
	    "  plan = coalesce(EXCLUDED.plan, transactions.plan),"
	    "  stripe_payment_intent_id = coalesce("
	    "  EXCLUDED.stripe_payment_intent_id,"
	    "  transactions.stripe_payment_intent_id),"
	    "  stripe_charge_id = coalesce(EXCLUDED.stripe_charge_id,"
	    "  transactions.stripe_charge_id)" TX_MOVES ","
	    TX_GRANT("subscription"), 8, PY__N, 0),
	/* The payment a refunded charge paid for. */
	S(STMT_TX_BY_CHARGE,
	    "SELECT id, user_id FROM transactions"
	    " WHERE type IN ('credits', 'subscription') AND user_id IS NOT NULL"
	    " AND (stripe_payment_intent_id = $1 OR stripe_charge_id = $2"
	    "  OR stripe_invoice_id = $3)"
	    " ORDER BY created_at, id LIMIT 1", 3, TC__N, 0),
	/*
	 * A completed payment refunded, once (the status moves once), with
	 * its credits taken back as far as the balance allows: a ledger row
	 * 'refund', never below zero.  Under the payer's row lock, so the
	 * balance read is the balance.  No row: not completed.
	 */
	S(STMT_TX_REFUND,
	    "WITH t AS (UPDATE transactions SET status = 'refunded'"
	    "  WHERE id = $1 AND status = 'completed'"
	    "  RETURNING id, user_id, credits),"
	    " x AS (SELECT u.id, least(u.credits, t.credits::bigint) AS take,"
	    "  t.id AS tid FROM users u JOIN t ON u.id = t.user_id),"
	    " u AS (UPDATE users SET credits = users.credits - x.take FROM x"
	    "  WHERE users.id = x.id AND x.take > 0"
	    "  RETURNING users.id, users.credits, x.take, x.tid),"
	    " l AS (INSERT INTO credit_ledger (user_id, delta, balance_after,"
	    "  reason, ref) SELECT id, -take, credits, 'refund', tid::text"
	    "  FROM u)"
	    " SELECT t.id, coalesce(x.take, 0) FROM t"
	    " LEFT JOIN x ON x.tid = t.id", 1, TR__N, 0),
	S(STMT_REFERRAL_BY_TX,
	    "SELECT id, user_id, status FROM referrals"
	    " WHERE qualified_transaction_id = $1 AND NOT cash_clawed_back",
	    1, RF__N, 0),
	/*
	 * Referral $1's cash taken back from referrer $2, once, as far as
	 * it is neither paid out nor in a pending cash-out: available never
	 * goes below zero.  With a cash ledger row 'clawback', and the
	 * reward's transaction marked refunded.  Under the referrer's row
	 * lock, which every change of its cash takes.  Returns the cents
	 * taken; no row: clawed back already.
	 */
#define CASH_PENDING(u)							\
	"coalesce((SELECT sum(p.amount) FROM transactions p"		\
	" WHERE p.user_id = " u ".id AND p.type = 'cashout'"		\
	" AND p.status = 'pending'), 0)"
#define CASH_AVAILABLE(u)						\
	"(" u ".cash_earned - " u ".cash_paid_out - " CASH_PENDING(u) ")"
	S(STMT_REFERRAL_CLAWBACK,
	    "WITH a AS (SELECT greatest(" CASH_AVAILABLE("u") ", 0) AS avail"
	    "  FROM users u WHERE u.id = $2),"
	    " c AS (SELECT f.id, f.user_id, least(f.cash_awarded, a.avail)"
	    "  AS take FROM referrals f, a WHERE f.id = $1 AND f.user_id = $2"
	    "  AND NOT f.cash_clawed_back),"
	    " r AS (UPDATE referrals SET cash_clawed_back = true,"
	    "  cash_awarded = referrals.cash_awarded - c.take FROM c"
	    "  WHERE referrals.id = c.id RETURNING referrals.id),"
	    " u AS (UPDATE users SET cash_earned = users.cash_earned - c.take"
	    "  FROM c WHERE users.id = c.user_id AND c.take > 0"
	    "  RETURNING users.id, users.cash_earned, c.take, c.id AS rid),"
	    " l AS (INSERT INTO cash_ledger (user_id, delta_cents,"
	    "  earned_after_cents, reason, ref)"
	    "  SELECT id, -(take * 100)::bigint, (cash_earned * 100)::bigint,"
	    "  'clawback', rid::text FROM u),"
	    " x AS (UPDATE transactions SET status = 'refunded' FROM u"
	    "  WHERE transactions.referral_id = u.rid"
	    "  AND transactions.status = 'completed')"
	    " SELECT (c.take * 100)::bigint FROM c", 2, 1, 0),

	S(STMT_REFERRAL_STATS,
	    "SELECT u.referral_code, u.referrals_count,"
	    " (SELECT coalesce(sum(credits_awarded), 0) FROM referrals"
	    "  WHERE user_id = u.id)::bigint,"
	    " (u.cash_earned * 100)::bigint, (u.cash_paid_out * 100)::bigint,"
	    " (" CASH_PENDING("u") " * 100)::bigint"
	    " FROM users u WHERE u.id = $1", 1, SS__N, DB_RETRY),
	/*
	 * A cash-out of $2 cents, pending, if that much is available.  The
	 * caller holds the user's row lock (taken by an earlier statement,
	 * so this one's snapshot sees every cash-out committed before it):
	 * parallel cash-outs are counted one after the other and can never
	 * take more than available.  No row: not enough available.
	 */
	S(STMT_CASHOUT,
	    "INSERT INTO transactions (user_id, type, amount, status,"
	    " cashout_method, cashout_destination, description)"
	    " SELECT u.id, 'cashout', $2::bigint / 100.0, 'pending', $3, $4,"
	    " 'Cash-out'"
	    " FROM users u WHERE u.id = $1"
	    " AND " CASH_AVAILABLE("u") " >= $2::bigint / 100.0"
	    " RETURNING " TX_COLS("transactions"), 4, TX_NCOLS, 0),

	/*
	 * The mailer.  One due row, locked for the transaction that sends
	 * it; rows other mailers hold are skipped, so no two send the same
	 * row, and a row marked sent is never claimed again.
	 */
	S(STMT_OUTBOX_CLAIM,
	    "SELECT id, to_addr, template, language,"
	    " coalesce(payload->>'first_name', ''), payload->>'token',"
	    " attempts, message_id FROM email_outbox"
	    " WHERE status = 'pending' AND next_attempt_at <= now()"
	    " ORDER BY next_attempt_at, id LIMIT 1"
	    " FOR UPDATE SKIP LOCKED", 0, OC__N, 0),
	S(STMT_OUTBOX_SENT,
	    "UPDATE email_outbox SET status = 'sent', attempts = attempts + 1,"
	    " sent_at = clock_timestamp(), message_id = $2, last_error = NULL,"
	    " payload = payload - 'token' WHERE id = $1", 2, 0, 0),
	/*
	 * A failed attempt: $3 is the attempt limit (0 gives up at once),
	 * $4 the milliseconds to the next try.  The Message-ID is kept, so
	 * a retry of a mail that did arrive can be recognised.
	 */
	S(STMT_OUTBOX_FAILED,
	    "UPDATE email_outbox SET attempts = attempts + 1, last_error = $2,"
	    " status = CASE WHEN attempts + 1 >= $3::int THEN 'dead'"
	    "  ELSE 'pending' END,"
	    " payload = CASE WHEN attempts + 1 >= $3::int"
	    "  THEN payload - 'token' ELSE payload END,"
	    " next_attempt_at = clock_timestamp()"
	    "  + $4::bigint * interval '1 millisecond',"
	    " message_id = $5 WHERE id = $1 RETURNING status", 5, 1, 0),
	/* Milliseconds until the next pending row is due (NULL: none). */
	S(STMT_OUTBOX_NEXT_DUE,
	    "SELECT (extract(epoch FROM min(next_attempt_at) - now())"
	    " * 1000)::bigint FROM email_outbox WHERE status = 'pending'", 0, 1,
	    0),
	S(STMT_RATE_PURGE,
	    "DELETE FROM rate_limits"
	    " WHERE window_start < now() - interval '1 day'", 0, 0, 0),
	/* Sent and dead mail older than $1 days. */
	S(STMT_OUTBOX_PURGE,
	    "DELETE FROM email_outbox WHERE status <> 'pending'"
	    " AND coalesce(sent_at, created_at)"
	    "  < now() - $1::int * interval '1 day'", 1, 0, 0),
	/*
	 * Sign-ups not verified within $1 days.  An account once verified
	 * (an admin may set email_verified back to false) is never one.
	 */
	/*
	 * Sign-ups never verified, and the referrals still pending that they
	 * made: nothing was earned, and an invitee that never was would stay
	 * in the referrer's list and count (a later account deletion keeps
	 * its row: that referral was activated, its rewards explained).  The
	 * referrals go only with accounts this statement deletes, so one
	 * verified meanwhile keeps its own.  One row: how many accounts.
	 */
	S(STMT_PENDING_PURGE,
	    "WITH gone AS (DELETE FROM users WHERE NOT email_verified"
	    "  AND email_verified_at IS NULL"
	    "  AND updated_at < now() - $1::int * interval '1 day'"
	    "  RETURNING id),"
	    " r AS (DELETE FROM referrals WHERE status = 'pending'"
	    "  AND referred_user_id IN (SELECT id FROM gone))"
	    " SELECT count(*) FROM gone", 1, 1, 0),
	/*
	 * Folds the statistics' deltas into their days (schema/021).  One
	 * folder at a time, the others skip (an advisory lock held until
	 * this statement's transaction ends); rows are upserted in key
	 * order.
	 */
	S(STMT_STATS_FOLD,
	    "WITH l AS (SELECT pg_try_advisory_xact_lock(7314, 21) AS got),"
	    " d AS (DELETE FROM stats_deltas WHERE (SELECT got FROM l)"
	    "  RETURNING metric, day, delta)"
	    " INSERT INTO stats_daily AS s (metric, day, value)"
	    " SELECT metric, day, sum(delta) FROM d GROUP BY metric, day"
	    " ORDER BY metric, day"
	    " ON CONFLICT (metric, day) DO UPDATE SET value = s.value"
	    " + excluded.value", 0, 0, 0),

	/*
	 * The admin lists filter on optional parameters ("$1 IS NULL OR
	 * ..."), which only a plan made for the values at hand turns into
	 * the right index: run them after this, in their transaction.
	 */
	S(STMT_CUSTOM_PLANS,
	    "SELECT set_config('plan_cache_mode', 'force_custom_plan', true)",
	    0, 1, 0),
	/*
	 * GET /api/admin/stats: the rollup of schema/021 (unfolded deltas
	 * included), the messages of the last 24 hours by index, pending
	 * cash-outs by index.  Days are UTC; "7d" and "30d" are today and
	 * the 6 or 29 days before.
	 */
	S(STMT_ADMIN_STATS,
	    "WITH s AS (SELECT metric, day, value AS n FROM stats_daily"
	    "  UNION ALL SELECT metric, day, delta FROM stats_deltas),"
	    " d AS (SELECT stats_day(now()) AS today)"
	    " SELECT coalesce(sum(n) FILTER (WHERE metric = 'users'), 0),"
	    " coalesce(sum(n) FILTER (WHERE metric = 'users_verified'), 0),"
	    " coalesce(sum(n) FILTER (WHERE metric = 'users_free'), 0),"
	    " coalesce(sum(n) FILTER (WHERE metric = 'users_plus'), 0),"
	    " coalesce(sum(n) FILTER (WHERE metric = 'users_business'), 0),"
	    " coalesce(sum(n) FILTER (WHERE metric = 'signups'"
	    "  AND day > today - 7), 0),"
	    " coalesce(sum(n) FILTER (WHERE metric = 'messages'), 0),"
	    " (SELECT count(*) FROM messages"
	    "  WHERE created_at > now() - interval '24 hours'),"
	    " coalesce(sum(n) FILTER (WHERE metric = 'credits_consumed'"
	    "  AND day > today - 30), 0),"
	    " coalesce(sum(n) FILTER (WHERE metric = 'revenue_cents'), 0),"
	    " coalesce(sum(n) FILTER (WHERE metric = 'revenue_cents'"
	    "  AND day > today - 30), 0),"
	    " coalesce(sum(n) FILTER (WHERE metric = 'referrals'), 0),"
	    " coalesce(sum(n) FILTER (WHERE metric = 'referrals_activated'),"
	    "  0),"
	    " coalesce(sum(n) FILTER (WHERE metric = 'referrals_qualified'),"
	    "  0),"
	    " (SELECT count(*) FROM transactions"
	    "  WHERE type = 'cashout' AND status = 'pending'),"
	    " (SELECT coalesce((sum(amount) * 100)::bigint, 0) FROM transactions"
	    "  WHERE type = 'cashout' AND status = 'pending')"
	    " FROM s, d", 0, AS__N, DB_RETRY),
	/* The last $1 days, oldest first, each with its sign-ups. */
	S(STMT_ADMIN_SERIES,
	    "WITH s AS (SELECT metric, day, value AS n FROM stats_daily"
	    "  WHERE metric IN ('signups', 'messages', 'revenue_cents')"
	    "  AND day > stats_day(now()) - $1::int"
	    "  UNION ALL SELECT metric, day, delta FROM stats_deltas"
	    "  WHERE metric IN ('signups', 'messages', 'revenue_cents'))"
	    " SELECT g.day::text,"
	    " coalesce(sum(n) FILTER (WHERE metric = 'signups'), 0),"
	    " coalesce(sum(n) FILTER (WHERE metric = 'messages'), 0),"
	    " coalesce(sum(n) FILTER (WHERE metric = 'revenue_cents'), 0)"
	    " FROM (SELECT (stats_day(now()) - i) AS day"
	    "  FROM generate_series(0, $1::int - 1) i) g"
	    " LEFT JOIN s ON s.day = g.day GROUP BY g.day ORDER BY g.day",
	    1, SE__N, DB_RETRY),
	/*
	 * Users newest first, (created_at, id) cursor.  $1 is a prefix of
	 * the email or of the first, last or full name, any case; each is
	 * a range of a text_pattern_ops index (schema/021).
	 */
	S(STMT_ADMIN_USERS,
	    "SELECT api_us(u.created_at), " ADMIN_USER_COLS("u")
	    " FROM users u WHERE ($1::text IS NULL"
	    "  OR u.email ~>=~ lower($1)"
	    "   AND u.email ~<~ (lower($1) || chr(1114111))"
	    "  OR lower(u.first_name) ~>=~ lower($1)"
	    "   AND lower(u.first_name) ~<~ (lower($1) || chr(1114111))"
	    "  OR lower(u.last_name) ~>=~ lower($1)"
	    "   AND lower(u.last_name) ~<~ (lower($1) || chr(1114111))"
	    "  OR lower(u.first_name || ' ' || u.last_name) ~>=~ lower($1)"
	    "   AND lower(u.first_name || ' ' || u.last_name)"
	    "    ~<~ (lower($1) || chr(1114111)))"
	    " AND ($2::text IS NULL OR u.plan = $2)"
	    " AND ($3::bigint IS NULL OR (u.created_at, u.id)"
	    "  < (api_from_us($3), $4::uuid))"
	    " ORDER BY u.created_at DESC, u.id DESC LIMIT $5", 5, AL__N, 0),
	/* The state an admin change starts from, locked (user row first). */
	S(STMT_ADMIN_USER_LOCK,
	    "SELECT plan, role, credits, banned_at IS NOT NULL, email_verified"
	    " FROM users WHERE id = $1 FOR NO KEY UPDATE", 1, UK__N, 0),
	/*
	 * NULL leaves a field as it is.  A ban keeps its first date; an
	 * email marked verified keeps the date it first was.
	 */
	S(STMT_ADMIN_USER_UPDATE,
	    "UPDATE users SET plan = coalesce($2, plan),"
	    " role = coalesce($3, role),"
	    " banned_at = CASE WHEN $4::boolean IS NULL THEN banned_at"
	    "  WHEN $4::boolean THEN coalesce(banned_at, now()) END,"
	    " email_verified = coalesce($5::boolean, email_verified),"
	    " email_verified_at = CASE WHEN $5::boolean"
	    "  THEN coalesce(email_verified_at, now()) ELSE email_verified_at END"
	    " WHERE id = $1 RETURNING " ADMIN_USER_COLS("users"), 5,
	    ADMIN_USER_NCOLS, 0),
	/* Conversations most recently updated first, of one user or all. */
	S(STMT_ADMIN_CONVS,
	    "SELECT api_us(c.updated_at), " ADMIN_CONV_COLS("c")
	    " FROM conversations c WHERE ($1::uuid IS NULL OR c.user_id = $1)"
	    " AND ($2::bigint IS NULL OR (c.updated_at, c.id)"
	    "  < (api_from_us($2), $3::uuid))"
	    " ORDER BY c.updated_at DESC, c.id DESC LIMIT $4", 4, AC__N, 0),
	/* Transactions newest first, by type and status. */
	S(STMT_ADMIN_TXS,
	    "SELECT api_us(t.created_at), " ADMIN_TX_COLS("t")
	    " FROM transactions t WHERE ($1::text IS NULL OR t.type = $1)"
	    " AND ($2::text IS NULL OR t.status = $2)"
	    " AND ($3::bigint IS NULL OR (t.created_at, t.id)"
	    "  < (api_from_us($3), $4::uuid))"
	    " ORDER BY t.created_at DESC, t.id DESC LIMIT $5", 5, AT__N, 0),
	S(STMT_ADMIN_TX_GET,
	    "SELECT user_id, type, status FROM transactions WHERE id = $1", 1,
	    TG__N, 0),
	/*
	 * Ends a pending cash-out (the caller holds its user's row lock):
	 * completed adds it to what was paid out; failed makes it
	 * available again, since available counts pending cash-outs only.
	 * No row: it is no longer pending.
	 */
	S(STMT_ADMIN_CASHOUT_END,
	    "WITH t AS (UPDATE transactions SET status = $2"
	    "  WHERE id = $1 AND type = 'cashout' AND status = 'pending'"
	    "  RETURNING *),"
	    " p AS (UPDATE users SET cash_paid_out = cash_paid_out + t.amount"
	    "  FROM t WHERE users.id = t.user_id AND t.status = 'completed')"
	    " SELECT " ADMIN_TX_COLS("t") " FROM t", 2, ADMIN_TX_NCOLS,
	    0),
	S(STMT_SETTINGS_ALL,
	    "SELECT key, value::text FROM admin_settings ORDER BY key", 0,
	    SA__N, DB_RETRY),
	/*
	 * Sets setting $1 to $2 for admin $3 (from address $4) with its
	 * audit row, old and new values, in one statement; the trigger on
	 * admin_settings notifies every worker at commit.  No row back:
	 * the value was already that.
	 */
	S(STMT_SETTING_PUT,
	    "WITH o AS (SELECT value FROM admin_settings WHERE key = $1"
	    "  FOR UPDATE),"
	    " n AS (INSERT INTO admin_settings (key, value, updated_by)"
	    "  SELECT $1, $2::jsonb, $3::uuid"
	    "  WHERE (SELECT value FROM o) IS DISTINCT FROM $2::jsonb"
	    "  ON CONFLICT (key) DO UPDATE SET value = excluded.value,"
	    "  updated_by = excluded.updated_by RETURNING value)"
	    " INSERT INTO admin_audit (admin_id, action, target_type,"
	    "  target_id, before, after, ip)"
	    " SELECT $3::uuid, 'settings.update', 'setting', $1,"
	    "  (SELECT value FROM o), n.value, $4::inet FROM n RETURNING id",
	    4, 1, 0),
	/*
	 * An admin change: admin $1 did $2 to $4 of kind $3; $5 and $6
	 * the fields it changed, before and after, as JSON objects.
	 */
	S(STMT_AUDIT_INSERT,
	    "INSERT INTO admin_audit (admin_id, action, target_type, target_id,"
	    " before, after, ip) VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb,"
	    " $7::inet)", 7, 0, 0),

	/* True if this role may rewrite the ledger (it should not). */
	S(STMT_ROLE_CAN_REWRITE,
	    "SELECT has_table_privilege('credit_ledger', 'UPDATE')"
	    " OR has_table_privilege('credit_ledger', 'DELETE')", 0, 1, 0),
	/*
	 * `miky check-ledger`: every problem with the money, one row each
	 * (kind, user, email, what is wrong), read in one statement and so
	 * one snapshot.  $1: milliseconds a credit hold may outlive its
	 * expiry before it counts as never refunded; $2: days a cash-out may
	 * stay pending.
	 *   balance  credits not the sum of the ledger, or below zero
	 *   earned   referral cash earned not the sum of the cash ledger
	 *   hold     a hold the sweeper should have refunded
	 *   cashout  a cash-out pending too long
	 *   cash     referral cash available (earned - paid out - pending)
	 *            below zero
	 */
	S(STMT_CHECK_LEDGER,
	    "SELECT 'balance', u.id, u.email, format('has %s credits, but the"
	    " ledger sums to %s', u.credits, coalesce(l.total, 0))"
	    " FROM users u LEFT JOIN (SELECT user_id, sum(delta) AS total"
	    "  FROM credit_ledger WHERE user_id IS NOT NULL GROUP BY user_id) l"
	    " ON l.user_id = u.id"
	    " WHERE u.credits <> coalesce(l.total, 0) OR u.credits < 0"
	    " UNION ALL"
	    " SELECT 'earned', u.id, u.email, format('has %s cents of referral"
	    " cash earned, but the cash ledger sums to %s',"
	    "  (u.cash_earned * 100)::bigint, coalesce(c.total, 0))"
	    " FROM users u LEFT JOIN (SELECT user_id, sum(delta_cents) AS total"
	    "  FROM cash_ledger WHERE user_id IS NOT NULL GROUP BY user_id) c"
	    " ON c.user_id = u.id"
	    " WHERE (u.cash_earned * 100)::bigint <> coalesce(c.total, 0)"
	    " UNION ALL"
	    " SELECT 'hold', h.user_id, u.email, format('has hold %s of %s"
	    " credits, expired %s s ago and not refunded', h.id, h.credits,"
	    "  floor(extract(epoch FROM now() - h.expires_at)))"
	    " FROM credit_holds h JOIN users u ON u.id = h.user_id"
	    " WHERE h.expires_at < now() - $1::bigint * interval '1 millisecond'"
	    " UNION ALL"
	    " SELECT 'cashout', t.user_id, u.email, format('has cash-out %s of"
	    " %s cents pending for %s days', t.id, (t.amount * 100)::bigint,"
	    "  floor(extract(epoch FROM now() - t.created_at) / 86400))"
	    " FROM transactions t LEFT JOIN users u ON u.id = t.user_id"
	    " WHERE t.type = 'cashout' AND t.status = 'pending'"
	    " AND t.created_at < now() - $2::int * interval '1 day'"
	    " UNION ALL"
	    " SELECT 'cash', u.id, u.email, format('has %s cents of referral"
	    " cash available, below zero', ((u.cash_earned - u.cash_paid_out"
	    "  - coalesce(p.pending, 0)) * 100)::bigint) FROM users u"
	    " LEFT JOIN (SELECT user_id, sum(amount) AS pending"
	    "  FROM transactions WHERE type = 'cashout' AND status = 'pending'"
	    "  GROUP BY user_id) p ON p.user_id = u.id"
	    " WHERE u.cash_earned - u.cash_paid_out - coalesce(p.pending, 0) < 0"
	    " ORDER BY 1, 2, 4", 2, CK__N, 0),
};

static void
give_back(void *p)
{
	db_release(p);
}

struct db *
sql_db(struct request *r, struct db_err *err)
{
	struct app_req *ar = app_req(r);

	if (ar->db == NULL && (ar->db = db_acquire(err)) != NULL)
		arena_cleanup(r->arena, give_back, ar->db);
	return ar->db;
}

struct db *
sql_db_or_reply(struct request *r)
{
	struct db_err err;
	struct db *db = sql_db(r, &err);

	if (db == NULL)
		reply_db_error(r, &err);
	return db;
}

void
sql_release(struct request *r)
{
	struct app_req *ar = app_req(r);

	if (ar->db != NULL) {
		arena_release(r->arena, ar->db);
		ar->db = NULL;
	}
}

static void
clear(void *p)
{
	PQclear(p);
}

void
sql_prefetch(struct request *r, enum stmt s, const char *const *params,
    int nparams)
{
	struct app_req *ar = app_req(r);
	struct sql_pre *p;
	int i;

	if (ar->npre == APP_PREFETCH)
		return;
	p = &ar->pre[ar->npre++];
	p->stmt = s;
	p->nparams = nparams;
	p->params = arena_alloc(r->arena, sizeof(*p->params) *
	    (size_t)(nparams > 0 ? nparams : 1));
	for (i = 0; i < nparams; i++)
		p->params[i] = params[i] != NULL ?
		    arena_strdup(r->arena, params[i]) : NULL;
	p->sent = false;
	p->res = NULL;
}

/* A prefetched result of this very call, taken (once). */
static PGresult *
prefetched(struct request *r, enum stmt s, const char *const *params,
    int nparams)
{
	struct app_req *ar = app_req(r);
	struct sql_pre *p;
	PGresult *res;
	int i, k;

	for (k = 0; k < ar->npre; k++) {
		p = &ar->pre[k];
		if (p->res == NULL || (int)p->stmt != (int)s ||
		    p->nparams != nparams)
			continue;
		for (i = 0; i < nparams; i++)
			if ((params[i] == NULL) != (p->params[i] == NULL) ||
			    (params[i] != NULL &&
			    strcmp(params[i], p->params[i]) != 0))
				break;
		if (i < nparams)
			continue;
		res = p->res;
		p->res = NULL;
		return res;
	}
	return NULL;
}

/* Runs s with the prefetches not sent yet, in one round trip. */
static PGresult *
run_with_prefetches(struct request *r, struct db *db, enum stmt s,
    const char *const *params, int nparams, struct db_err *err)
{
	struct app_req *ar = app_req(r);
	struct db_call calls[1 + APP_PREFETCH];
	PGresult *res[1 + APP_PREFETCH];
	struct sql_pre *of[1 + APP_PREFETCH];
	int n = 1, k;

	calls[0] = (struct db_call){ s, params, nparams };
	for (k = 0; k < ar->npre; k++)
		if (!ar->pre[k].sent) {
			ar->pre[k].sent = true;
			of[n] = &ar->pre[k];
			calls[n++] = (struct db_call){ ar->pre[k].stmt,
			    ar->pre[k].params, ar->pre[k].nparams };
		}
	if (db_pipeline(db, calls, n, res, err) != 0)
		return NULL;
	for (k = 1; k < n; k++)
		if ((of[k]->res = res[k]) != NULL)
			arena_cleanup(r->arena, clear, res[k]);
	return res[0];
}

PGresult *
sql_run(struct request *r, enum stmt s, const char *const *params,
    int nparams, struct db_err *err)
{
	struct app_req *ar = app_req(r);
	struct db *db;
	PGresult *res;
	int k;

	if ((res = prefetched(r, s, params, nparams)) != NULL)
		return res;
	if ((db = sql_db(r, err)) == NULL)
		return NULL;
	for (k = 0; k < ar->npre && ar->pre[k].sent; k++)
		;
	if (k < ar->npre && PQtransactionStatus(db_conn(db)) == PQTRANS_IDLE)
		res = run_with_prefetches(r, db, s, params, nparams, err);
	else
		res = db_exec(db, s, params, nparams, err);
	arena_cleanup(r->arena, clear, res);
	return res;
}

PGresult *
sql_run_or_reply(struct request *r, enum stmt s, const char *const *params,
    int nparams)
{
	struct db_err err;
	PGresult *res = sql_run(r, s, params, nparams, &err);

	if (res == NULL)
		reply_db_error(r, &err);
	return res;
}

PGresult *
sql_batch_or_reply(struct request *r, struct db_batch *b, const char *key)
{
	struct db_err err;
	PGresult *res = db_batch_read(b, key, &err);

	if (res == NULL) {
		reply_db_error(r, &err);
		return NULL;
	}
	arena_cleanup(r->arena, clear, res);
	return res;
}

/* sql_row()'s "no row": a 404 with no SQLSTATE. */
static const struct db_err no_row = {
	404, "not_found", "No such resource.", "", ""
};

PGresult *
sql_row(struct request *r, enum stmt s, const char *const *params,
    int nparams, struct db_err *err)
{
	PGresult *res = sql_run(r, s, params, nparams, err);

	if (res != NULL && PQntuples(res) == 0) {
		*err = no_row;
		return NULL;
	}
	return res;
}

PGresult *
sql_row_or_reply(struct request *r, enum stmt s, const char *const *params,
    int nparams)
{
	struct db_err err;
	PGresult *res = sql_row(r, s, params, nparams, &err);

	if (res == NULL)
		reply_db_error(r, &err);
	return res;
}

void
sql_free(struct request *r, PGresult *res)
{
	arena_release(r->arena, res);
}

bool
sql_no_row(const struct db_err *err)
{
	return err->status == 404 && err->sqlstate[0] == '\0';
}

int
sql_begin_or_reply(struct request *r)
{
	struct db *db = sql_db_or_reply(r);
	struct db_err err;

	if (db == NULL)
		return -1;
	if (db_begin(db, &err) != 0) {
		reply_db_error(r, &err);
		return -1;
	}
	return 0;
}

int
sql_begin(struct request *r, struct db_err *err)
{
	struct db *db = sql_db(r, err);

	return db != NULL ? db_begin(db, err) : -1;
}

/* Events noted for this transaction go out once it has committed. */
int
sql_commit(struct request *r, struct db_err *err)
{
	if (db_commit(app_req(r)->db, err) != 0) {
		events_drop(r);
		return -1;
	}
	events_commit(r);
	return 0;
}

int
sql_commit_or_reply(struct request *r)
{
	struct db_err err;

	if (sql_commit(r, &err) != 0) {
		reply_db_error(r, &err);
		return -1;
	}
	return 0;
}

void
sql_rollback(struct request *r)
{
	events_drop(r);
	if (app_req(r)->db != NULL)
		db_rollback(app_req(r)->db);
}

void
reply_db_error(struct request *r, const struct db_err *err)
{
	if (!r->replied)
		reply_error(r, err->status, err->code, err->message, NULL);
}

/* True if (row, col) is inside the result; logs critically if not. */
static bool
inside(const PGresult *res, int row, int col)
{
	if (res != NULL && row >= 0 && row < PQntuples(res) && col >= 0 &&
	    col < PQnfields(res))
		return true;
	log_crit("read of row %d column %d outside a result of %d rows and "
	    "%d columns", row, col, res != NULL ? PQntuples(res) : 0,
	    res != NULL ? PQnfields(res) : 0);
	return false;
}

const char *
sql_str(const PGresult *res, int row, int col)
{
	if (!inside(res, row, col))
		return "";
	return PQgetisnull(res, row, col) ? NULL : PQgetvalue(res, row, col);
}

size_t
sql_len(const PGresult *res, int row, int col)
{
	return inside(res, row, col) ? (size_t)PQgetlength(res, row, col) : 0;
}

long long
sql_int(const PGresult *res, int row, int col)
{
	const char *v = sql_str(res, row, col);
	long long n;

	return v != NULL && num_parse(v, LLONG_MIN, LLONG_MAX, &n) == 0 ? n :
	    0;
}

bool
sql_bool(const PGresult *res, int row, int col)
{
	const char *v = sql_str(res, row, col);

	return v != NULL && v[0] == 't';
}

bool
sql_null(const PGresult *res, int row, int col)
{
	return inside(res, row, col) && PQgetisnull(res, row, col);
}

int
sql_rows(const PGresult *res)
{
	return res != NULL ? PQntuples(res) : 0;
}

void
sql_assert_none(struct request *r, const char *what)
{
#ifndef NDEBUG
	if (app_req(r)->db != NULL)
		log_crit("a database connection is held across %s", what);
#else
	(void)r;
	(void)what;
#endif
}
