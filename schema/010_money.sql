-- 010_money.sql: Stripe payments, referral cash and cash-outs (issue 9).
--
-- What the webhook and the referral rewards need besides 001's tables:
-- the subscription's event clock, the outcome of each Stripe event, the
-- business keys of referral cash, a ledger of referral cash, the mails
-- of rewards and failed payments, and the right seed for the monthly cap.

-- api.md: referral_monthly_cap defaults to 20 (the seed said 50).  An
-- operator who changed it keeps their value.
UPDATE admin_settings SET value = '20'
 WHERE key = 'referral_monthly_cap' AND value = '50'::jsonb;

-- The subscription mirror moves only forward: customer.subscription.*
-- and invoice events are applied only if they are not older (by their
-- `created`) than the last one applied, so a late or replayed event
-- never rolls the plan back.
ALTER TABLE users ADD COLUMN subscription_event_at timestamptz;

-- How each verified event was taken: 'handled' (a type Miky acts on) or
-- 'ignored' (any other type).  Rows are only ever inserted.
ALTER TABLE stripe_events
    ADD COLUMN outcome text NOT NULL DEFAULT 'handled'
        CONSTRAINT stripe_events_outcome_chk CHECK (outcome IN ('handled', 'ignored')),
    ADD COLUMN created_at timestamptz;     -- the event's own `created`

-- Referral rewards.  `rewarded`: the activation fell within the monthly
-- cap, so the referral earns its credits and, at the referee's first
-- payment, its cash (api.md: past the cap, no credits and no cash).
-- `qualified_transaction_id`: the payment that qualified it; a refund of
-- that payment claws the cash back.
ALTER TABLE referrals
    ADD COLUMN rewarded boolean NOT NULL DEFAULT false,
    ADD COLUMN qualified_transaction_id uuid
        CONSTRAINT referrals_qualified_transaction_id_fkey
        REFERENCES transactions (id) ON DELETE SET NULL;
UPDATE referrals SET rewarded = credits_awarded > 0 WHERE status <> 'pending';
CREATE INDEX referrals_qualified_transaction_idx
    ON referrals (qualified_transaction_id);

-- The referrer's cash reward as a transaction, once per referral.
ALTER TABLE transactions ADD COLUMN referral_id uuid
    CONSTRAINT transactions_referral_id_key UNIQUE
    CONSTRAINT transactions_referral_id_fkey REFERENCES referrals (id) ON DELETE SET NULL;
-- charge.refunded finds a payment by its charge too.
CREATE INDEX transactions_charge_idx ON transactions (stripe_charge_id);
-- Available cash sums a user's pending cash-outs.
CREATE INDEX transactions_user_pending_cashout_idx ON transactions (user_id)
    WHERE type = 'cashout' AND status = 'pending';

-- cash_ledger: every change of users.cash_earned, written in the same
-- statement as the change, as credit_ledger is for credits.  Invariant:
-- users.cash_earned * 100 = sum(delta_cents) per user.  'referral' is a
-- reward at a referee's first payment, 'clawback' its return after a
-- refund; each at most once per referral.  Append-only for the app.
CREATE TABLE cash_ledger (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id             uuid
        CONSTRAINT cash_ledger_user_id_fkey REFERENCES users (id) ON DELETE SET NULL,
    delta_cents         bigint NOT NULL
        CONSTRAINT cash_ledger_delta_nonzero_chk CHECK (delta_cents <> 0),
    earned_after_cents  bigint NOT NULL
        CONSTRAINT cash_ledger_earned_after_nonneg_chk CHECK (earned_after_cents >= 0),
    reason              text NOT NULL
        CONSTRAINT cash_ledger_reason_chk CHECK (reason IN ('referral', 'clawback')),
    ref                 text NOT NULL,          -- the referral
    created_at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT cash_ledger_once_key UNIQUE (reason, ref)
);
CREATE INDEX cash_ledger_user_idx ON cash_ledger (user_id, id DESC);

-- A refund's claw-back of credits is written once per transaction, as
-- grants are.
DROP INDEX credit_ledger_grant_once_idx;
CREATE UNIQUE INDEX credit_ledger_grant_once_idx ON credit_ledger (reason, ref)
    WHERE reason IN ('purchase', 'subscription', 'referral', 'signup',
                     'chat_refund', 'voice_refund', 'refund')
      AND ref IS NOT NULL;

-- The mails of this issue: a referral reward (credits at activation,
-- cash at qualification) and a failed subscription payment.
ALTER TABLE email_outbox DROP CONSTRAINT email_outbox_template_chk;
ALTER TABLE email_outbox ADD CONSTRAINT email_outbox_template_chk
    CHECK (template IN ('verify', 'reset', 'already_registered',
                        'password_changed', 'referral_credits',
                        'referral_cash', 'payment_failed'));
