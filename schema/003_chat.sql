-- Chat turns in progress, one row per turn from the credit reservation
-- until the answer is stored or refunded.  The per-user cap on turns at
-- once counts these rows under the user's row lock; a row left behind
-- by a crashed worker stops counting after ten minutes.
CREATE TABLE chat_turns (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id     uuid NOT NULL
        CONSTRAINT chat_turns_user_id_fkey REFERENCES users (id) ON DELETE CASCADE,
    started_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX chat_turns_user_idx ON chat_turns (user_id, started_at);

-- Cursor pagination of a conversation's messages and of the user's
-- conversations uses (timestamp, id) pairs; these helpers turn a
-- timestamp into exact epoch microseconds and back.
CREATE FUNCTION api_us(t timestamptz) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (extract(epoch FROM t) * 1000000)::bigint
$$;

CREATE FUNCTION api_from_us(us bigint) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT 'epoch'::timestamptz + us * interval '1 microsecond'
$$;
