/*
 * Passwords.  The rules for a new one (NIST SP 800-63B): 8 to 128
 * characters of any kind, not the account's email or its local part,
 * not a commonly used password (data/common-passwords.txt, compiled
 * in).  And the two uses of argon2 by handlers: hashing a new password
 * and checking a given one under the per-account limit on failures.
 */
#ifndef MIKY_APP_POLICY_H
#define MIKY_APP_POLICY_H

#include <stdbool.h>

struct request;

/* Wrong passwords allowed per account and window, in seconds. */
#define PASSWORD_FAILS		10
#define PASSWORD_WINDOW		(15 * 60)
/* Failed sign-ins per client address: MIKY_ADDRESS_FAILS per window. */
#define ADDRESS_WINDOW		(10 * 60)

/* The failure counters a password check counts against. */
enum pw_check {
	PW_SIGNIN,	/* sign-in and verification: the account's (or an
			   unknown email's) and the client address's */
	PW_REAUTH,	/* a signed-in user confirming: the account's own,
			   apart, so strangers' guesses cannot lock it */
};

/* NULL if pw is acceptable for email, else a sentence saying why not. */
const char	*password_problem(const char *pw, const char *email);

/*
 * 0 if a password hash could start now, else -1 after replying 503
 * unavailable with Retry-After (the hashing line is full).  Called before
 * any other work of a request that will hash, so that a flood of them is
 * refused for the price of a mutex, not of database writes.
 */
int		 password_room_or_reply(struct request *);

/*
 * Checks pw against the stored hash phc (NULL for an account that does
 * not exist: a hash is spent all the same, so timing tells nothing).
 * The attempt takes a place in the limits of `kind` first -- for the
 * account `subject` (a user id, or the email of no account) -- and gives
 * it back unless the password was wrong, so parallel guesses cannot
 * overrun them.  Holds no database connection while hashing, nor after.
 * Returns 0 on a match, or -1 after replying: 401 invalid_credentials
 * with the sentence `wrong`, 429, 503 or 500.
 */
int		 password_check_or_reply(struct request *, enum pw_check kind,
		    const char *subject,
		    const char *phc, const char *pw, const char *wrong);

/* A PHC hash of pw in request memory; NULL after replying 503 or 500. */
char		*password_hash_or_reply(struct request *, const char *pw);

/* True for "ll" or "ll-CC", the form users.language holds. */
bool		 language_code_ok(const char *);

#endif
