#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "hooksig.h"
#include "num.h"
#include "token.h"

#define HEX_MAC		(2 * SHA256_LEN)
#define T_MAX		((int64_t)1 << 40)	/* far past any real clock */

/* The MAC of "<t>.<body>" as lower-case hex. */
static void
expected(char out[HEX_MAC + 1], const char *t, size_t tlen,
    const void *body, size_t len, const void *secret, size_t secretlen)
{
	const void *parts[] = { t, ".", body };
	const size_t lens[] = { tlen, 1, len };
	unsigned char mac[SHA256_LEN];

	hmac_sha256v(secret, secretlen, parts, lens, 3, mac);
	hex_encode(mac, sizeof(mac), out);
}

enum hooksig_result
hooksig_verify(const char *header, const void *body, size_t len,
    const void *secret, size_t secretlen, int64_t now, int64_t tolerance,
    int64_t *t)
{
	char want[HEX_MAC + 1];
	const char *p, *end, *item, *eq, *ts = NULL;
	size_t n, tslen = 0;
	long long v;
	bool any_v1 = false, match = false;

	*t = 0;
	if (header == NULL || (n = strlen(header)) > HOOKSIG_HEADER_MAX)
		return HOOKSIG_MALFORMED;
	/* First the one timestamp: without it nothing can be checked. */
	for (p = header, end = header + n; p < end; p = item + 1) {
		if ((item = memchr(p, ',', (size_t)(end - p))) == NULL)
			item = end;
		if (item - p >= 2 && p[0] == 't' && p[1] == '=') {
			if (ts != NULL)
				return HOOKSIG_MALFORMED;
			ts = p + 2;
			tslen = (size_t)(item - ts);
		}
	}
	if (ts == NULL || num_parsen(ts, tslen, 0, T_MAX, &v) != 0)
		return HOOKSIG_MALFORMED;
	*t = v;
	expected(want, ts, tslen, body, len, secret, secretlen);
	for (p = header; p < end; p = item + 1) {
		if ((item = memchr(p, ',', (size_t)(end - p))) == NULL)
			item = end;
		if ((eq = memchr(p, '=', (size_t)(item - p))) == NULL ||
		    eq - p != 2 || p[0] != 'v' || p[1] != '1')
			continue;
		any_v1 = true;
		/* Every candidate is compared whole: no early exit. */
		if (item - (eq + 1) == HEX_MAC &&
		    secure_equal(want, eq + 1, HEX_MAC))
			match = true;
	}
	if (!any_v1)
		return HOOKSIG_MALFORMED;
	if (!match)
		return HOOKSIG_MISMATCH;
	if (v > now + tolerance || v < now - tolerance)
		return HOOKSIG_STALE;
	return HOOKSIG_OK;
}

void
hooksig_sign(char out[128], const void *body, size_t len, const void *secret,
    size_t secretlen, int64_t t)
{
	char ts[24], mac[HEX_MAC + 1];
	int n = snprintf(ts, sizeof(ts), "%lld", (long long)t);

	expected(mac, ts, (size_t)n, body, len, secret, secretlen);
	snprintf(out, 128, "t=%s,v1=%s", ts, mac);
}

const char *
hooksig_result_name(enum hooksig_result r)
{
	static const char *const names[] = { "ok", "malformed", "mismatch",
	    "stale" };

	return (size_t)r < sizeof(names) / sizeof(names[0]) ? names[r] : "?";
}
