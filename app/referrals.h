/*
 * Referrals (api.md, Referrals): rewards earned by real customers.
 */
#ifndef MIKY_APP_REFERRALS_H
#define MIKY_APP_REFERRALS_H

#include <stdbool.h>

#include "lib/db.h"

struct request;

/*
 * Activates the pending referral of `referee`, if there is one, at the
 * end of its first chat turn, in the caller's transaction: the
 * referrer's row is locked first, so the monthly cap holds when many
 * invitees activate at once.  Returns 0, or -1 with *err set.
 */
int	referral_activate(struct request *, const char *referee,
	    struct db_err *);

/*
 * True if two addresses are the same mailbox: case, a "+tag" and, at
 * Gmail, dots in the local part do not count.  A sign-up with the
 * referrer's own mailbox earns nothing.
 */
bool	referral_same_mailbox(const char *a, const char *b);

#endif
