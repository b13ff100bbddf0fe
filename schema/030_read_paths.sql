-- api_us() and api_from_us() were declared IMMUTABLE, but extract() on a
-- timestamptz and timestamptz + interval are STABLE.  PostgreSQL then
-- refuses to inline them and runs every call through the SQL-function
-- executor, which parses and plans the body again for each query that
-- uses it: for a conversation's messages that was a fifth of the
-- database's work.  Declared STABLE (what they are), they inline into
-- the statements as the expressions they stand for.  Same results.
CREATE OR REPLACE FUNCTION api_us(t timestamptz) RETURNS bigint
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT (extract(epoch FROM t) * 1000000)::bigint
$$;

CREATE OR REPLACE FUNCTION api_from_us(us bigint) RETURNS timestamptz
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT 'epoch'::timestamptz + us * interval '1 microsecond'
$$;

-- A page of the conversation list reads only this index (an index-only
-- scan): the columns it renders ride along in it, so the page needs no
-- visit to the table's 20 scattered rows.  Same key and order as the
-- index it replaces.
CREATE INDEX conversations_user_list_idx
    ON conversations (user_id, updated_at DESC, id DESC)
    INCLUDE (title, persona, message_count, created_at);
DROP INDEX conversations_user_updated_idx;
