-- seed-admin.sql: a large Miky database for the admin statistics and
-- lists (bench/admin-scale.sh runs it as the owner on a migrated
-- database).  psql variables: users (1000000) and turns per user (25):
-- messages = users x turns x 2 (fifty million by default).
--
--   users          plans 80/15/5 % free/plus/business, 95 % verified,
--                  made over two years
--   conversations  3 per user
--   messages       a user and an assistant message per turn, spread over
--                  the last year
--   credit_ledger  a sign-up grant and one charge per turn, so that
--                  users.credits is the sum of the ledger
--   transactions   a payment for one user in four (a tenth of them
--                  refunded), a pending cash-out for one in 500
--   referrals      one invitee for one user in five, by status
--
-- Triggers are off while loading (session_replication_role = replica:
-- the foreign keys are right by construction, and the statistics are
-- recounted at the end with stats_rebuild()), and the plain indexes are
-- dropped and made again after, which is several times faster.

\set ON_ERROR_STOP 1
\if :{?users}
\else
\set users 1000000
\endif
\if :{?turns}
\else
\set turns 25
\endif

SET session_replication_role = replica;
SET maintenance_work_mem = '1GB';
SET work_mem = '256MB';
SET synchronous_commit = off;

-- The plain indexes of the loaded tables, kept to be made again.
CREATE TEMP TABLE seed_indexes AS
SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS def
  FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid
 WHERE t.relname IN ('users', 'conversations', 'messages', 'credit_ledger',
                     'transactions', 'referrals')
   AND NOT EXISTS (SELECT FROM pg_constraint c WHERE c.conindid = i.indexrelid);
SELECT format('DROP INDEX %s', name) FROM seed_indexes \gexec

-- Referral codes: the user's number in base 32 over the code alphabet.
CREATE FUNCTION pg_temp.code(n bigint) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT string_agg(substr('ABCDEFGHJKLMNPQRSTUVWXYZ23456789',
                             ((n >> (5 * k)) & 31)::int + 1, 1), '' ORDER BY k)
      FROM generate_series(0, 7) k
$$;

\echo users
INSERT INTO users (id, email, password_hash, first_name, last_name, language,
                   credits, plan, email_verified, email_verified_at,
                   referral_code, created_at, updated_at)
SELECT md5('u' || i)::uuid,
       'user' || i || '@example.com',
       'x',
       (ARRAY['Anna', 'Ben', 'Carla', 'David', 'Elena', 'Farid', 'Giulia',
              'Hugo', 'Ines', 'Jonas', 'Kenji', 'Lea', 'Marco', 'Nora',
              'Omar', 'Paula'])[i % 16 + 1] || (i % 997),
       (ARRAY['Rossi', 'Smith', 'Müller', 'García', 'Kowalska', 'Dubois',
              'Novak', 'Silva', 'Jensen', 'Ivanova'])[i % 10 + 1],
       'en',
       100 - :turns,
       CASE WHEN i % 20 = 0 THEN 'business' WHEN i % 20 < 4 THEN 'plus'
            ELSE 'free' END,
       i % 20 <> 7,
       CASE WHEN i % 20 <> 7 THEN now() END,
       pg_temp.code(i),
       now() - (i::float8 / :users) * interval '730 days',
       now()
  FROM generate_series(1, :users) i;

\echo conversations
INSERT INTO conversations (id, user_id, title, persona, message_count,
                           created_at, updated_at)
SELECT md5('c' || i || '.' || k)::uuid, md5('u' || i)::uuid,
       'Conversation ' || k, 'general',
       2 * (:turns / 3 + CASE WHEN k < :turns % 3 THEN 1 ELSE 0 END),
       now() - interval '365 days',
       now() - ((i * 3 + k) % 525600) * interval '1 minute'
  FROM generate_series(1, :users) i, generate_series(0, 2) k;

\echo messages
INSERT INTO messages (conversation_id, user_id, sender, content, persona,
                      credits_consumed, created_at)
SELECT md5('c' || i || '.' || (t % 3))::uuid, md5('u' || i)::uuid,
       CASE WHEN s = 0 THEN 'user' ELSE 'assistant' END,
       CASE WHEN s = 0 THEN 'Hello' ELSE 'Hi! How can I help?' END,
       'general', s,
       now() - ((i::bigint * 7919 + t * 104729) % 31536000) * interval '1 second'
             + s * interval '2 seconds'
  FROM generate_series(1, :users) i, generate_series(0, :turns - 1) t,
       generate_series(0, 1) s;

\echo credit_ledger
INSERT INTO credit_ledger (user_id, delta, balance_after, reason, ref, created_at)
SELECT md5('u' || i)::uuid, 100, 100, 'signup', md5('u' || i), now() - interval '730 days'
  FROM generate_series(1, :users) i;
INSERT INTO credit_ledger (user_id, delta, balance_after, reason, ref, created_at)
SELECT md5('u' || i)::uuid, -1, 99 - t, 'chat', 'turn' || t,
       now() - ((i::bigint * 7919 + t * 104729) % 31536000) * interval '1 second'
  FROM generate_series(1, :users) i, generate_series(0, :turns - 1) t;

\echo transactions
INSERT INTO transactions (user_id, type, amount, credits, status, plan, pack, created_at)
SELECT md5('u' || i)::uuid,
       CASE WHEN i % 8 < 2 THEN 'subscription' ELSE 'credits' END,
       CASE WHEN i % 8 < 2 THEN 9.99 ELSE 4.99 END,
       CASE WHEN i % 8 < 2 THEN 2000 ELSE 500 END,
       CASE WHEN (i / 4) % 10 = 0 THEN 'refunded' ELSE 'completed' END,
       CASE WHEN i % 8 < 2 THEN 'plus' END,
       CASE WHEN i % 8 >= 2 THEN 'small' END,
       now() - (i % 365) * interval '1 day'
  FROM generate_series(1, :users, 4) i;
INSERT INTO transactions (user_id, type, amount, status, cashout_method,
                          cashout_destination, created_at)
SELECT md5('u' || i)::uuid, 'cashout', 20.00, 'pending', 'paypal',
       'user' || i || '@example.com', now() - (i % 10) * interval '1 day'
  FROM generate_series(1, :users, 500) i;
UPDATE users SET cash_earned = 20.00
 WHERE id IN (SELECT user_id FROM transactions WHERE type = 'cashout');

\echo referrals
INSERT INTO referrals (user_id, referred_user_id, referred_first_name, status,
                       credits_awarded, activated_at, created_at)
SELECT md5('u' || i)::uuid, md5('u' || (i + 1))::uuid, 'Friend',
       (ARRAY['pending', 'activated', 'qualified'])[i % 3 + 1],
       CASE WHEN i % 3 > 0 THEN 300 ELSE 0 END,
       CASE WHEN i % 3 > 0 THEN now() END,
       now() - (i % 700) * interval '1 day'
  FROM generate_series(1, :users - 1, 5) i;
UPDATE users u SET referrals_count = 1
 WHERE id IN (SELECT user_id FROM referrals);

RESET session_replication_role;

\echo indexes
SELECT def FROM seed_indexes \gexec

\echo statistics
SELECT stats_rebuild();
\echo vacuum
VACUUM ANALYZE;
