#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "policy.h"
#include "lib/utf8.h"

/* "\nword\n...": generated from data/common-passwords.txt. */
extern const char common_passwords[];

static int
is_common(const char *pw)
{
	char key[132];
	size_t i, n = strlen(pw);

	if (n + 2 >= sizeof(key))
		return 0;
	key[0] = '\n';
	for (i = 0; i < n; i++)
		key[i + 1] = (char)tolower((unsigned char)pw[i]);
	key[n + 1] = '\n';
	key[n + 2] = '\0';
	return strstr(common_passwords, key) != NULL;
}

const char *
password_problem(const char *pw, const char *email)
{
	size_t chars = utf8_chars(pw, strlen(pw));
	const char *at = strchr(email, '@');

	if (chars < 8 || chars > 128)
		return "The password must be 8 to 128 characters long.";
	if (strcasecmp(pw, email) == 0 || (at != NULL &&
	    strlen(pw) == (size_t)(at - email) &&
	    strncasecmp(pw, email, (size_t)(at - email)) == 0))
		return "The password may not be your email address.";
	if (is_common(pw))
		return "This password is too common; choose another.";
	return NULL;
}

bool
language_code_ok(const char *s)
{
	size_t n = strlen(s);

	return (n == 2 || (n == 5 && s[2] == '-' && s[3] >= 'A' &&
	    s[3] <= 'Z' && s[4] >= 'A' && s[4] <= 'Z')) &&
	    s[0] >= 'a' && s[0] <= 'z' && s[1] >= 'a' && s[1] <= 'z';
}
