-- Credit holds: credits taken for a chat turn or a transcription that is
-- still running.  A hold ends one of two ways, each exactly once because
-- each deletes the row: settled (the work was stored and stays charged),
-- or refunded (the credits go back, with a ledger row).  A hold that
-- outlives expires_at -- its worker was killed, or the database was down
-- when it tried to settle -- is refunded by the sweeper (app/janitor.c).
ALTER TABLE chat_turns RENAME TO credit_holds;
ALTER TABLE credit_holds RENAME CONSTRAINT chat_turns_user_id_fkey
    TO credit_holds_user_id_fkey;
ALTER INDEX chat_turns_pkey RENAME TO credit_holds_pkey;
DROP INDEX chat_turns_user_idx;

ALTER TABLE credit_holds
    ADD COLUMN kind text NOT NULL DEFAULT 'chat'
        CONSTRAINT credit_holds_kind_chk CHECK (kind IN ('chat', 'voice')),
    ADD COLUMN credits bigint NOT NULL DEFAULT 0
        CONSTRAINT credit_holds_credits_nonneg_chk CHECK (credits >= 0),
    -- The ledger row of the refund, if there is one: its reason and ref.
    ADD COLUMN refund_reason text NOT NULL DEFAULT 'chat_refund'
        CONSTRAINT credit_holds_refund_reason_chk
            CHECK (refund_reason IN ('chat_refund', 'voice_refund')),
    ADD COLUMN ref text,
    ADD COLUMN expires_at timestamptz NOT NULL
        DEFAULT now() + interval '10 minutes';
ALTER TABLE credit_holds ALTER COLUMN kind DROP DEFAULT,
    ALTER COLUMN credits DROP DEFAULT, ALTER COLUMN refund_reason DROP DEFAULT,
    ALTER COLUMN expires_at DROP DEFAULT;

-- The per-user cap counts a user's live holds; the sweeper scans by expiry.
CREATE INDEX credit_holds_user_idx ON credit_holds (user_id, kind, expires_at);
CREATE INDEX credit_holds_expires_idx ON credit_holds (expires_at);

-- A refund is written once per hold: the ledger refuses a second one
-- with the same reference, as it does for grants.
DROP INDEX credit_ledger_grant_once_idx;
CREATE UNIQUE INDEX credit_ledger_grant_once_idx ON credit_ledger (reason, ref)
    WHERE reason IN ('purchase', 'subscription', 'referral', 'signup',
                     'chat_refund', 'voice_refund')
      AND ref IS NOT NULL;

-- Mail keeps no usable token once it has left: the outbox row holds the
-- token only until the mailer sends it (the link is built then) and sent
-- rows are purged after a retention period, by sent_at.
CREATE INDEX email_outbox_sent_idx ON email_outbox (sent_at)
    WHERE status <> 'pending';
UPDATE email_outbox SET payload = payload - 'link' WHERE status <> 'pending';
UPDATE email_outbox
   SET payload = (payload - 'link') || CASE
       WHEN payload->>'link' ~ 'token=' THEN jsonb_build_object('token',
            substring(payload->>'link' FROM 'token=([A-Za-z0-9_-]+)'))
       ELSE '{}' END
 WHERE status = 'pending';

-- Pending (unverified) accounts expire: the sweeper deletes them by age.
CREATE INDEX users_pending_idx ON users (updated_at) WHERE NOT email_verified;
