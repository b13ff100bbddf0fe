/*
 * Referrals (api.md, Referrals): rewards earned by real customers.
 *
 * A referral is pending at sign-up, activated at the referee's first
 * chat turn (the referrer gets referral_credits, within the monthly
 * cap), and qualified at the referee's first successful payment (the
 * referrer earns referral_cash_cents, if the activation was within the
 * cap).  Only an activated referral qualifies: a payment made before
 * the activation qualifies it at the activation.  A refund of the
 * qualifying payment claws the cash back as far as it is neither paid
 * out nor in a pending cash-out.  Each step runs in the transaction of
 * the event that causes it, under the referee's row lock and then the
 * referrer's (referral chains only run from newer accounts to older
 * ones, so this order has no cycle), and each reward lands once: the
 * status moves once, and its ledger rows are unique on the referral.
 * The referrer gets a mail when a reward lands.
 */
#ifndef MIKY_APP_REFERRALS_H
#define MIKY_APP_REFERRALS_H

#include <stdbool.h>

#include "lib/db.h"

struct request;

/*
 * Activates the pending referral of `referee`, if there is one, at the
 * end of its first chat turn, in the caller's transaction (the
 * referee's row locked), and qualifies it at once if the referee has
 * paid already.  Returns 0, or -1 with *err set.
 */
int	referral_activate(struct request *, const char *referee,
	    struct db_err *);

/*
 * Qualifies the activated referral of `referee` at its payment
 * `transaction`, in the caller's transaction (the referee's row
 * locked).  Nothing if there is none, or it is pending (then the
 * activation qualifies it) or qualified already.  0, or -1 with *err.
 */
int	referral_qualify(struct request *, const char *referee,
	    const char *transaction, struct db_err *);

/*
 * Claws back the cash of the referral that `transaction` qualified, if
 * any, in the caller's transaction (the payer's row locked), once.
 * 0, or -1 with *err set.
 */
int	referral_clawback(struct request *, const char *transaction,
	    struct db_err *);

/*
 * True if two addresses are the same mailbox: case, a "+tag" and, at
 * Gmail, dots in the local part do not count.  A sign-up with the
 * referrer's own mailbox earns nothing.
 */
bool	referral_same_mailbox(const char *a, const char *b);

#endif
