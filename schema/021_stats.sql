-- Admin statistics kept by the writes, so GET /api/admin/stats reads a
-- few thousand rows whatever the size of users, messages and the ledger.
--
-- stats_daily holds one number per metric and UTC day.  Every metric is
-- a sum of deltas, and every one counts what the tables hold, so that
-- stats_rebuild() below recounts the same numbers: counts by state
-- (users by plan, verified, referrals by status) move +1/-1 on the day of
-- the change, so their sum over all days is the count now; rows with a
-- day of their own (sign-ups, messages, ledger rows, payments) count on
-- that day, and leave it when deleted, so a range of days sums them.
--
--   users, users_verified,            accounts now (pending ones
--   users_free, users_plus,           included), verified, by plan
--   users_business
--   signups                           accounts by the day they were made
--   messages                          messages by the day they were
--                                     stored
--   credits_consumed                  chat and voice charges net of their
--                                     refunds, by the ledger row's day
--   revenue_cents                     completed subscription and credit
--                                     payments, by the payment's creation
--                                     day; a refund takes it back there
--   referrals, referrals_activated,   invitees now; those that reached
--   referrals_qualified               activation (activated or qualified);
--                                     those qualified
--
-- The triggers only INSERT into stats_deltas (no index, no conflict), so
-- concurrent writers never wait on one another there; the janitor of
-- every worker folds the deltas into stats_daily (STMT_STATS_FOLD, one
-- folder at a time under an advisory lock).  Readers add the unfolded
-- deltas, so an answer is exact at its snapshot.

CREATE TABLE stats_daily (
    metric  text NOT NULL,
    day     date NOT NULL,
    value   bigint NOT NULL,
    PRIMARY KEY (metric, day)
);

CREATE TABLE stats_deltas (
    metric  text NOT NULL,
    day     date NOT NULL,
    delta   bigint NOT NULL
);

CREATE FUNCTION stats_day(t timestamptz) RETURNS date
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (t AT TIME ZONE 'UTC')::date
$$;

-- users: counts by state; signups by creation day.
CREATE FUNCTION stats_users() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    today date := stats_day(now());
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO stats_deltas (metric, day, delta) VALUES
            ('users_' || OLD.plan, today, -1);
        IF OLD.email_verified THEN
            INSERT INTO stats_deltas VALUES ('users_verified', today, -1);
        END IF;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO stats_deltas (metric, day, delta) VALUES
            ('users_' || NEW.plan, today, 1);
        IF NEW.email_verified THEN
            INSERT INTO stats_deltas VALUES ('users_verified', today, 1);
        END IF;
    END IF;
    IF TG_OP = 'INSERT' THEN
        INSERT INTO stats_deltas VALUES ('users', today, 1),
            ('signups', stats_day(NEW.created_at), 1);
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO stats_deltas VALUES ('users', today, -1),
            ('signups', stats_day(OLD.created_at), -1);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER stats_users_insert AFTER INSERT ON users
    FOR EACH ROW EXECUTE FUNCTION stats_users();
CREATE TRIGGER stats_users_delete AFTER DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION stats_users();
-- The WHEN clause is checked without calling the function, so the
-- updates of every chat turn (credits) cost nothing here.
CREATE TRIGGER stats_users_update AFTER UPDATE ON users
    FOR EACH ROW WHEN (OLD.plan IS DISTINCT FROM NEW.plan
                       OR OLD.email_verified IS DISTINCT FROM NEW.email_verified)
    EXECUTE FUNCTION stats_users();

-- messages: one delta per statement and day, whatever the row count (a
-- conversation or an account deleted takes its messages in one
-- statement each).
CREATE FUNCTION stats_messages() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO stats_deltas (metric, day, delta)
            SELECT 'messages', stats_day(created_at), count(*)
              FROM new_rows GROUP BY 2;
    ELSE
        INSERT INTO stats_deltas (metric, day, delta)
            SELECT 'messages', stats_day(created_at), -count(*)
              FROM old_rows GROUP BY 2;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER stats_messages_insert AFTER INSERT ON messages
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION stats_messages();
CREATE TRIGGER stats_messages_delete AFTER DELETE ON messages
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION stats_messages();

-- credit_ledger: what chat turns and transcriptions spent, net of refunds.
CREATE FUNCTION stats_ledger() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO stats_deltas (metric, day, delta)
        SELECT 'credits_consumed', stats_day(created_at), -sum(delta)
          FROM new_rows
         WHERE reason IN ('chat', 'voice', 'chat_refund', 'voice_refund')
         GROUP BY 2;
    RETURN NULL;
END;
$$;

CREATE TRIGGER stats_ledger AFTER INSERT ON credit_ledger
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION stats_ledger();

-- transactions: revenue in cents, kept on the payment's own day.
CREATE FUNCTION stats_revenue_of(type text, status text, amount numeric)
RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN type IN ('subscription', 'credits')
                 AND status = 'completed'
                THEN (amount * 100)::bigint ELSE 0 END
$$;

CREATE FUNCTION stats_transactions() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    was bigint := 0;
    now_ bigint := 0;
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        was := stats_revenue_of(OLD.type, OLD.status, OLD.amount);
        IF was <> 0 THEN
            INSERT INTO stats_deltas VALUES
                ('revenue_cents', stats_day(OLD.created_at), -was);
        END IF;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        now_ := stats_revenue_of(NEW.type, NEW.status, NEW.amount);
        IF now_ <> 0 THEN
            INSERT INTO stats_deltas VALUES
                ('revenue_cents', stats_day(NEW.created_at), now_);
        END IF;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER stats_transactions_insert AFTER INSERT ON transactions
    FOR EACH ROW EXECUTE FUNCTION stats_transactions();
CREATE TRIGGER stats_transactions_delete AFTER DELETE ON transactions
    FOR EACH ROW EXECUTE FUNCTION stats_transactions();
CREATE TRIGGER stats_transactions_update AFTER UPDATE ON transactions
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status
                       OR OLD.type IS DISTINCT FROM NEW.type
                       OR OLD.amount IS DISTINCT FROM NEW.amount
                       OR OLD.created_at IS DISTINCT FROM NEW.created_at)
    EXECUTE FUNCTION stats_transactions();

-- referrals: invitees by how far they got.
CREATE FUNCTION stats_referrals() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    today date := stats_day(now());
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO stats_deltas
            SELECT m, today, -1 FROM unnest(ARRAY['referrals',
                CASE WHEN OLD.status IN ('activated', 'qualified')
                     THEN 'referrals_activated' END,
                CASE WHEN OLD.status = 'qualified'
                     THEN 'referrals_qualified' END]) m
             WHERE m IS NOT NULL;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO stats_deltas
            SELECT m, today, 1 FROM unnest(ARRAY['referrals',
                CASE WHEN NEW.status IN ('activated', 'qualified')
                     THEN 'referrals_activated' END,
                CASE WHEN NEW.status = 'qualified'
                     THEN 'referrals_qualified' END]) m
             WHERE m IS NOT NULL;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER stats_referrals_insert AFTER INSERT ON referrals
    FOR EACH ROW EXECUTE FUNCTION stats_referrals();
CREATE TRIGGER stats_referrals_delete AFTER DELETE ON referrals
    FOR EACH ROW EXECUTE FUNCTION stats_referrals();
CREATE TRIGGER stats_referrals_update AFTER UPDATE ON referrals
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION stats_referrals();

-- Recounts every metric from the tables themselves: for this migration,
-- after a bulk load made with triggers off (bench/seed-admin.sql), or if
-- the numbers are ever in doubt.  Run it as the owner: it locks the
-- counted tables against writes (SHARE) until its transaction ends, so
-- the recount and the deltas of later writes neither miss nor double a
-- change.
CREATE FUNCTION stats_rebuild() RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    today date := stats_day(now());
BEGIN
    LOCK TABLE users, messages, credit_ledger, transactions, referrals
        IN SHARE MODE;
    DELETE FROM stats_deltas;
    DELETE FROM stats_daily;
    INSERT INTO stats_daily (metric, day, value)
    SELECT metric, day, sum(n) FROM (
        SELECT 'users' AS metric, today AS day, count(*) AS n FROM users
        UNION ALL
        SELECT 'users_verified', today, count(*) FROM users
         WHERE email_verified
        UNION ALL
        SELECT 'users_' || plan, today, count(*) FROM users GROUP BY plan
        UNION ALL
        SELECT 'signups', stats_day(created_at), count(*) FROM users
         GROUP BY 2
        UNION ALL
        SELECT 'messages', stats_day(created_at), count(*) FROM messages
         GROUP BY 2
        UNION ALL
        SELECT 'credits_consumed', stats_day(created_at), -sum(delta)
          FROM credit_ledger
         WHERE reason IN ('chat', 'voice', 'chat_refund', 'voice_refund')
         GROUP BY 2
        UNION ALL
        SELECT 'revenue_cents', stats_day(created_at),
               sum(stats_revenue_of(type, status, amount))
          FROM transactions GROUP BY 2
        UNION ALL
        SELECT 'referrals', today, count(*) FROM referrals
        UNION ALL
        SELECT 'referrals_activated', today, count(*) FROM referrals
         WHERE status IN ('activated', 'qualified')
        UNION ALL
        SELECT 'referrals_qualified', today, count(*) FROM referrals
         WHERE status = 'qualified'
    ) s
    WHERE n <> 0
    GROUP BY metric, day;
END;
$$;

SELECT stats_rebuild();

-- --------------------------------------------------------------------------
-- Indexes of the admin lists (GET /api/admin/users, /conversations,
-- /transactions), each read newest first with a (time, id) cursor.
-- --------------------------------------------------------------------------

-- Search by email prefix, and by the prefix of the first name, the last
-- name or "first last", case-insensitively.  text_pattern_ops compares
-- bytes, so a prefix is an index range whatever the database's collation.
CREATE INDEX users_email_prefix_idx ON users (email text_pattern_ops);
CREATE INDEX users_first_name_prefix_idx
    ON users (lower(first_name) text_pattern_ops);
CREATE INDEX users_last_name_prefix_idx
    ON users (lower(last_name) text_pattern_ops);
CREATE INDEX users_full_name_prefix_idx
    ON users (lower(first_name || ' ' || last_name) text_pattern_ops);

-- Every user's conversations, most recently updated first.
CREATE INDEX conversations_updated_idx
    ON conversations (updated_at DESC, id DESC);

-- Transactions filtered by type alone or by status alone.
CREATE INDEX transactions_type_created_idx
    ON transactions (type, created_at DESC, id DESC);
CREATE INDEX transactions_status_created_idx
    ON transactions (status, created_at DESC, id DESC);
