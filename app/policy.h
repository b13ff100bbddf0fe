/*
 * Password rules (NIST SP 800-63B): 8 to 128 characters of any kind,
 * not the account's email or its local part, not a commonly used
 * password (data/common-passwords.txt, compiled in).
 */
#ifndef MIKY_APP_POLICY_H
#define MIKY_APP_POLICY_H

#include <stdbool.h>

/* NULL if pw is acceptable for email, else a sentence saying why not. */
const char	*password_problem(const char *pw, const char *email);

/* True for "ll" or "ll-CC", the form users.language holds. */
bool		 language_code_ok(const char *);

#endif
