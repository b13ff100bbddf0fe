#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "app.h"
#include "config.h"
#include "policy.h"
#include "ratelimit.h"
#include "sql.h"
#include "lib/password.h"
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

/* Answers a failed hash: 503 when no slot came free, else 500. */
static void
reply_hash_failure(struct request *r, enum password_result pr)
{
	if (pr == PASSWORD_BUSY) {
		req_add_header(r, "Retry-After", "1");
		reply_error(r, 503, "unavailable", "The service is busy; "
		    "please retry.", NULL);
	} else
		reply_error(r, 500, "internal_error",
		    "Something went wrong on our side.", NULL);
}

int
password_room_or_reply(struct request *r)
{
	if (!password_saturated())
		return 0;
	reply_hash_failure(r, PASSWORD_BUSY);
	return -1;
}

int
password_check_or_reply(struct request *r, enum pw_check kind,
    const char *subject, const char *phc, const char *pw, const char *wrong)
{
	const char *key = arena_printf(r->arena, "%s:%s", kind == PW_SIGNIN ?
	    "signin_fail" : "reauth_fail", subject);
	const char *addr = kind == PW_SIGNIN ? arena_printf(r->arena,
	    "signin_addr:%s", rate_address(r)) : NULL;
	enum password_result pr;

	if (password_room_or_reply(r) != 0)
		return -1;
	if (rate_take_or_reply(r, key, PASSWORD_WINDOW, PASSWORD_FAILS) != 0)
		return -1;
	if (addr != NULL && rate_take_or_reply(r, addr, ADDRESS_WINDOW,
	    (int)conf.address_fails) != 0) {
		rate_unhit(r, key, PASSWORD_WINDOW);
		return -1;
	}
	sql_release(r);
	pr = phc == NULL ? password_burn(pw) : password_verify(phc, pw);
	if (pr != PASSWORD_MISMATCH) {
		rate_unhit(r, key, PASSWORD_WINDOW);
		if (addr != NULL)
			rate_unhit(r, addr, ADDRESS_WINDOW);
		sql_release(r);
	}
	if (pr == PASSWORD_MATCH)
		return 0;
	if (pr == PASSWORD_MISMATCH)
		reply_error(r, 401, "invalid_credentials", wrong, NULL);
	else
		reply_hash_failure(r, pr);
	return -1;
}

char *
password_hash_or_reply(struct request *r, const char *pw)
{
	char *out = arena_alloc(r->arena, PASSWORD_HASH_MAX);
	enum password_result pr;

	sql_assert_none(r, "a password hash");
	if ((pr = password_hash(pw, out, PASSWORD_HASH_MAX)) == PASSWORD_MATCH)
		return out;
	reply_hash_failure(r, pr);
	return NULL;
}
