/* lib/hooksig.c: Stripe-style webhook signatures. */
#include <stdio.h>
#include <string.h>

#include "lib/hooksig.h"
#include "t/unit/tap.h"

static const char secret[] = "whsec_test_secret";
static const char body[] = "{\"id\":\"evt_1\"}";
/* HMAC-SHA256(secret, "1700000000." body), computed apart (Python). */
static const char good[] =
    "248a374f50f943a28b0f6ab50faf9a7e7e29b710fa26df9fb1618b9bf8ea9c9a";
#define T0	1700000000

static enum hooksig_result
check(const char *header, const char *b, int64_t now)
{
	int64_t t;

	return hooksig_verify(header, b, strlen(b), secret, strlen(secret),
	    now, 300, &t);
}

int
main(void)
{
	char h[512], signed_hdr[128], changed[sizeof(body)];
	int64_t t = -1;
	size_t i;

	snprintf(h, sizeof(h), "t=%d,v1=%s", T0, good);
	is_int(check(h, body, T0), HOOKSIG_OK, "a good signature");
	is_int(hooksig_verify(h, body, strlen(body), secret, strlen(secret),
	    T0, 300, &t), HOOKSIG_OK, "again");
	is_int(t, T0, "the timestamp is handed back");

	hooksig_sign(signed_hdr, body, strlen(body), secret, strlen(secret),
	    T0);
	is_str(signed_hdr, h, "hooksig_sign writes the same header");

	is_int(check(NULL, body, T0), HOOKSIG_MALFORMED, "no header");
	is_int(check("", body, T0), HOOKSIG_MALFORMED, "an empty header");
	snprintf(h, sizeof(h), "v1=%s", good);
	is_int(check(h, body, T0), HOOKSIG_MALFORMED, "no t");
	snprintf(h, sizeof(h), "t=%d", T0);
	is_int(check(h, body, T0), HOOKSIG_MALFORMED, "no v1");
	snprintf(h, sizeof(h), "t=%d,v0=%s", T0, good);
	is_int(check(h, body, T0), HOOKSIG_MALFORMED, "only v0: no v1");
	snprintf(h, sizeof(h), "t=%d,t=%d,v1=%s", T0, T0, good);
	is_int(check(h, body, T0), HOOKSIG_MALFORMED, "two t");
	snprintf(h, sizeof(h), "t=17e8,v1=%s", good);
	is_int(check(h, body, T0), HOOKSIG_MALFORMED, "t not a number");
	snprintf(h, sizeof(h), "t=-5,v1=%s", good);
	is_int(check(h, body, T0), HOOKSIG_MALFORMED, "t negative");
	snprintf(h, sizeof(h), "t=99999999999999999999,v1=%s", good);
	is_int(check(h, body, T0), HOOKSIG_MALFORMED, "t too large");
	snprintf(h, sizeof(h), " t=%d,v1=%s", T0, good);
	is_int(check(h, body, T0), HOOKSIG_MALFORMED, "a space before t");

	snprintf(h, sizeof(h), "t=%d,v1=%.63s", T0, good);
	is_int(check(h, body, T0), HOOKSIG_MISMATCH, "v1 one digit short");
	snprintf(h, sizeof(h), "t=%d,v1=%s0", T0, good);
	is_int(check(h, body, T0), HOOKSIG_MISMATCH, "v1 one digit long");
	snprintf(h, sizeof(h), "t=%d,v1=%s", T0 + 1, good);
	is_int(check(h, body, T0), HOOKSIG_MISMATCH, "another t");
	snprintf(h, sizeof(h), "t=%d,v1=%s", T0, good);
	memcpy(changed, body, sizeof(body));
	for (i = 0; i < strlen(body); i++) {
		changed[i] ^= 1;
		if (check(h, changed, T0) != HOOKSIG_MISMATCH)
			break;
		changed[i] ^= 1;
	}
	is_int(i, strlen(body), "any one bit changed in the body: mismatch");
	is_int(hooksig_verify(h, body, strlen(body), "whsec_other", 11, T0,
	    300, &t), HOOKSIG_MISMATCH, "another secret");
	snprintf(h, sizeof(h), "t=%d,v1=%s", T0, good);
	for (i = 0; h[i] != '\0'; i++)
		if (h[i] >= 'a' && h[i] <= 'f')
			h[i] = (char)(h[i] - 'a' + 'A');
	is_int(check(h, body, T0), HOOKSIG_MISMATCH, "upper-case hex");

	snprintf(h, sizeof(h), "t=%d,v1=%064d,v0=%s,v1=%s,v1=%064d", T0, 0,
	    good, good, 1);
	is_int(check(h, body, T0), HOOKSIG_OK, "several v1, one good");
	snprintf(h, sizeof(h), "v1=%064d,t=%d,,x,v1=%s,", 0, T0, good);
	is_int(check(h, body, T0), HOOKSIG_OK, "t after v1, empty and odd "
	    "items ignored");

	snprintf(h, sizeof(h), "t=%d,v1=%s", T0, good);
	is_int(check(h, body, T0 + 300), HOOKSIG_OK, "300 s old: in time");
	is_int(check(h, body, T0 + 301), HOOKSIG_STALE, "301 s old: stale");
	is_int(check(h, body, T0 - 300), HOOKSIG_OK, "300 s ahead: in time");
	is_int(check(h, body, T0 - 301), HOOKSIG_STALE, "301 s ahead: stale");
	snprintf(h, sizeof(h), "t=%d,v1=%064d", T0 - 5000, 0);
	is_int(check(h, body, T0), HOOKSIG_MISMATCH, "a stale forgery is a "
	    "mismatch");

	memset(h, 'x', sizeof(h));
	h[sizeof(h) - 1] = '\0';
	is_int(check(h, body, T0), HOOKSIG_MALFORMED, "junk");
	{
		static char big[HOOKSIG_HEADER_MAX + 2];

		memset(big, ',', sizeof(big) - 1);
		memcpy(big, h, 20);
		is_int(check(big, body, T0), HOOKSIG_MALFORMED,
		    "longer than the limit");
	}
	is_str(hooksig_result_name(HOOKSIG_STALE), "stale", "names");
	return tap_done();
}
