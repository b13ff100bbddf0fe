-- The API's JSON shapes of the stored objects, built where the data is.
--
-- Handlers embed these as they are, so a list of 50 messages is one
-- round trip and one string, and the field names of api.md live in one
-- place.  json (not jsonb) keeps the documented key order.

-- RFC 3339 UTC with milliseconds, as every timestamp of the API.
CREATE FUNCTION api_ts(t timestamptz) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
$$;

-- numeric(12,2) money to integer cents.
CREATE FUNCTION api_cents(v numeric) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (v * 100)::bigint
$$;

-- The user object.  Never password_hash, Stripe ids or tokens.
CREATE FUNCTION api_user(u users) RETURNS json
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT json_build_object(
        'id', u.id,
        'email', u.email,
        'first_name', u.first_name,
        'last_name', u.last_name,
        'credits', u.credits,
        'plan', u.plan,
        'role', u.role,
        'language', u.language,
        'email_verified', u.email_verified,
        'referral_code', u.referral_code,
        'referrals_count', (SELECT count(*) FROM referrals r
                            WHERE r.user_id = u.id),
        'cash_earned_cents', api_cents(u.cash_earned),
        'cash_paid_out_cents', api_cents(u.cash_paid_out),
        'subscription_status', u.subscription_status,
        'created_at', api_ts(u.created_at),
        'updated_at', api_ts(u.updated_at))
$$;

CREATE FUNCTION api_conversation(c conversations) RETURNS json
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT json_build_object(
        'id', c.id,
        'title', c.title,
        'persona', c.persona,
        'message_count', c.message_count,
        'created_at', api_ts(c.created_at),
        'updated_at', api_ts(c.updated_at))
$$;

CREATE FUNCTION api_message(m messages) RETURNS json
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT json_build_object(
        'id', m.id,
        'conversation_id', m.conversation_id,
        'sender', m.sender,
        'content', m.content,
        'persona', m.persona,
        'credits_consumed', m.credits_consumed,
        'created_at', api_ts(m.created_at))
$$;

CREATE FUNCTION api_transaction(t transactions) RETURNS json
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT json_build_object(
        'id', t.id,
        'type', t.type,
        'amount_cents', api_cents(t.amount),
        'credits', t.credits,
        'status', t.status,
        'created_at', api_ts(t.created_at))
$$;

-- One ledger entry as GET /api/user/credits lists it.
CREATE FUNCTION api_ledger(l credit_ledger) RETURNS json
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT json_build_object(
        'delta', l.delta,
        'balance_after', l.balance_after,
        'reason', l.reason,
        'created_at', api_ts(l.created_at))
$$;
