-- seed.sql — the bench's real-shaped data, as the peer benchmark seeds it
-- (../shared/bench: the same users, ids, titles and message sizes), so
-- make bench and the side-by-side comparison measure the same thing.
--
--   psql -v users=1000 -v convs=20 -v msgs=20 -v pwhash='$argon2id$...' -f seed.sql
--
-- User n is user<n>@bench.test with id md5('bench-user-' || n) shaped as
-- a v4 UUID; every user shares one password hash (made by a real
-- sign-up: seeding a thousand argon2 hashes would take minutes) and has
-- `convs` conversations of `msgs` messages: questions of ~110
-- characters, answers of ~600.
\set ON_ERROR_STOP 1
BEGIN;
INSERT INTO users (id, email, password_hash, first_name, last_name, credits, plan,
                   referral_code, language, email_verified, email_verified_at,
                   tokens_valid_after, created_at, updated_at)
SELECT overlay(overlay(md5('bench-user-' || n) placing '4' from 13) placing '8' from 17)::uuid,
       'user' || n || '@bench.test', :'pwhash', 'First' || n, 'Last' || n,
       1000000, CASE WHEN n % 10 = 0 THEN 'plus' ELSE 'free' END,
       (SELECT string_agg(substr('ABCDEFGHJKLMNPQRSTUVWXYZ23456789', ((n >> (5 * i)) & 31) + 1, 1), '' ORDER BY i)
          FROM generate_series(0, 7) AS i),
       'en', true, now() - interval '90 days',
       now() - interval '90 days', now() - interval '90 days', now() - interval '90 days'
FROM generate_series(1, :users) AS n;

INSERT INTO credit_ledger (user_id, delta, balance_after, reason, ref)
SELECT id, 1000000, 1000000, 'admin', 'bench-seed' FROM users WHERE email LIKE 'user%@bench.test';

INSERT INTO conversations (id, user_id, title, persona, message_count, created_at, updated_at)
SELECT gen_random_uuid(), u.id,
       'Conversation ' || k || ' about topic ' || (k * 7 % 13),
       (ARRAY['general', 'academic', 'engineer', 'coach'])[1 + k % 4],
       :msgs,
       now() - interval '60 days' - k * interval '1 hour',
       now() - k * interval '1 minute' - u.n * interval '1 millisecond'
FROM (SELECT n, overlay(overlay(md5('bench-user-' || n) placing '4' from 13) placing '8' from 17)::uuid AS id
        FROM generate_series(1, :users) AS n) u
CROSS JOIN generate_series(1, :convs) AS k;

INSERT INTO messages (conversation_id, user_id, content, sender, persona, credits_consumed, created_at)
SELECT c.id, c.user_id,
       CASE WHEN m % 2 = 1
            THEN 'User question ' || m || ': ' || repeat('could you explain this part again? ', 3)
            ELSE 'Assistant answer ' || m || ': ' || repeat('Here is a detailed explanation with an example. ', 12)
       END,
       CASE WHEN m % 2 = 1 THEN 'user' ELSE 'assistant' END,
       c.persona,
       CASE WHEN m % 2 = 1 THEN 0 ELSE 1 END,
       c.created_at + m * interval '1 second'
FROM conversations c
CROSS JOIN generate_series(1, :msgs) AS m;
COMMIT;
VACUUM ANALYZE;
