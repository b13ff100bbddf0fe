/*
 * Password hashing with argon2id (libargon2), OWASP parameters:
 * m = 19 MiB, t = 2, p = 1, 16-byte salt, 32-byte hash, PHC string.
 *
 * Each hash takes 19 MiB and tens of milliseconds of one core, so at
 * most `password_init(n)` run at once in a process; up to four callers a
 * slot wait their turn (up to a few seconds), and more are refused at
 * once with PASSWORD_BUSY: a burst of sign-ins can neither exhaust memory
 * nor park every request thread of the process.  The hashes run on
 * each slot's own thread at idle priority (SCHED_IDLE), so that other
 * requests on the machine run first.
 */
#ifndef MIKY_PASSWORD_H
#define MIKY_PASSWORD_H

#include <stdbool.h>
#include <stddef.h>

#define PASSWORD_HASH_MAX	128

enum password_result {
	PASSWORD_MATCH,
	PASSWORD_MISMATCH,
	PASSWORD_BUSY,		/* no hashing slot free in time */
	PASSWORD_ERROR,		/* malformed stored hash, internal error */
};

/*
 * True if the line for a slot is full: a hash asked for now would be
 * refused with PASSWORD_BUSY.  A hint for callers that would do costly
 * work before hashing (it may change the next moment).
 */
bool			password_saturated(void);
/* Sets the number of concurrent hashes allowed (default 2). */
void			password_init(int max_concurrent);
/* Hashes pw into out (PHC string).  Returns PASSWORD_MATCH on success. */
enum password_result	password_hash(const char *pw, char *out, size_t outlen);
enum password_result	password_verify(const char *phc, const char *pw);
/*
 * Spends the time of one verification against a fixed hash, for
 * sign-ins of unknown accounts, so timing does not tell them apart.
 * Returns PASSWORD_MISMATCH, or PASSWORD_BUSY as password_verify() would.
 */
enum password_result	password_burn(const char *pw);

#endif
