#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "app.h"
#include "referrals.h"
#include "settings.h"
#include "sql.h"

int
referral_activate(struct request *r, const char *referee, struct db_err *err)
{
	const struct settings *s = settings_for(r);
	char credits[24], cap[24];
	PGresult *ref;

	if ((ref = sql_run(r, STMT_REFERRAL_PENDING, ARGS(referee), err)) ==
	    NULL)
		return -1;
	if (sql_rows(ref) == 0)
		return 0;
	snprintf(credits, sizeof(credits), "%lld",
	    settings_int(s, SET_REFERRAL_CREDITS));
	snprintf(cap, sizeof(cap), "%lld",
	    settings_int(s, SET_REFERRAL_MONTHLY_CAP));
	/* A referrer deleted meanwhile took the referral with it. */
	if (sql_run(r, STMT_USER_LOCK, ARGS(sql_str(ref, 0, RP_REFERRER)),
	    err) == NULL ||
	    sql_run(r, STMT_REFERRAL_ACTIVATE, ARGS(sql_str(ref, 0, RP_ID),
	    credits, cap), err) == NULL)
		return -1;
	return 0;
}

/* Appends the canonical form of one part of an address to out. */
static size_t
canon(char *out, size_t at, size_t cap, const char *p, size_t n,
    bool drop_dots)
{
	size_t i;

	for (i = 0; i < n && at + 1 < cap; i++) {
		if (drop_dots && p[i] == '.')
			continue;
		out[at++] = (char)tolower((unsigned char)p[i]);
	}
	out[at] = '\0';
	return at;
}

static void
mailbox(const char *addr, char *out, size_t cap)
{
	const char *at = strrchr(addr, '@'), *plus;
	size_t local, n;
	bool gmail;

	if (at == NULL) {
		canon(out, 0, cap, addr, strlen(addr), false);
		return;
	}
	gmail = strcasecmp(at + 1, "gmail.com") == 0 ||
	    strcasecmp(at + 1, "googlemail.com") == 0;
	local = (size_t)(at - addr);
	if ((plus = memchr(addr, '+', local)) != NULL)
		local = (size_t)(plus - addr);
	n = canon(out, 0, cap, addr, local, gmail);
	canon(out, n, cap, gmail ? "@gmail.com" : at, gmail ? 10 :
	    strlen(at), false);
}

bool
referral_same_mailbox(const char *a, const char *b)
{
	char ca[320], cb[320];

	mailbox(a, ca, sizeof(ca));
	mailbox(b, cb, sizeof(cb));
	return strcmp(ca, cb) == 0;
}
