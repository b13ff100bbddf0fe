/*
 * lib/num.c: the whole string must be a decimal integer within
 * [min, max]; signs, leading zeros and the ±2^63 edges are exact, and
 * nothing is stored on failure.
 */
#include <limits.h>

#include "lib/num.h"
#include "t/unit/tap.h"

static const struct {
	const char	*s;
	long long	 min, max;
	int		 rc;
	long long	 want;
} vec[] = {
	{ "0", LLONG_MIN, LLONG_MAX, 0, 0 },
	{ "42", LLONG_MIN, LLONG_MAX, 0, 42 },
	{ "-42", LLONG_MIN, LLONG_MAX, 0, -42 },
	{ "+42", LLONG_MIN, LLONG_MAX, 0, 42 },
	{ "-0", LLONG_MIN, LLONG_MAX, 0, 0 },
	{ "007", LLONG_MIN, LLONG_MAX, 0, 7 },
	{ "-007", LLONG_MIN, LLONG_MAX, 0, -7 },
	{ "0000000000000000000000000000042", LLONG_MIN, LLONG_MAX, 0, 42 },
	{ "-00000000009223372036854775808", LLONG_MIN, LLONG_MAX, 0,
	    LLONG_MIN },
	{ "9223372036854775807", LLONG_MIN, LLONG_MAX, 0, LLONG_MAX },
	{ "+9223372036854775807", LLONG_MIN, LLONG_MAX, 0, LLONG_MAX },
	{ "-9223372036854775807", LLONG_MIN, LLONG_MAX, 0, -LLONG_MAX },
	{ "-9223372036854775808", LLONG_MIN, LLONG_MAX, 0, LLONG_MIN },
	{ "9223372036854775808", LLONG_MIN, LLONG_MAX, -1, 0 },
	{ "-9223372036854775809", LLONG_MIN, LLONG_MAX, -1, 0 },
	{ "9999999999999999999", LLONG_MIN, LLONG_MAX, -1, 0 },
	/* 2^64, and 2^64 + 42, which a wrapping parser would read as 42 */
	{ "18446744073709551616", LLONG_MIN, LLONG_MAX, -1, 0 },
	{ "18446744073709551658", LLONG_MIN, LLONG_MAX, -1, 0 },
	{ "99999999999999999999999", LLONG_MIN, LLONG_MAX, -1, 0 },
	{ "", LLONG_MIN, LLONG_MAX, -1, 0 },
	{ "+", LLONG_MIN, LLONG_MAX, -1, 0 },
	{ "-", LLONG_MIN, LLONG_MAX, -1, 0 },
	{ "--1", LLONG_MIN, LLONG_MAX, -1, 0 },
	{ "+-1", LLONG_MIN, LLONG_MAX, -1, 0 },
	{ " 1", LLONG_MIN, LLONG_MAX, -1, 0 },
	{ "1 ", LLONG_MIN, LLONG_MAX, -1, 0 },
	{ "1\n", LLONG_MIN, LLONG_MAX, -1, 0 },
	{ "- 1", LLONG_MIN, LLONG_MAX, -1, 0 },
	{ "1a", LLONG_MIN, LLONG_MAX, -1, 0 },
	{ "0x10", LLONG_MIN, LLONG_MAX, -1, 0 },
	{ "1.0", LLONG_MIN, LLONG_MAX, -1, 0 },
	{ "1e3", LLONG_MIN, LLONG_MAX, -1, 0 },
	{ "1,000", LLONG_MIN, LLONG_MAX, -1, 0 },
	{ "\xd9\xa1", LLONG_MIN, LLONG_MAX, -1, 0 },	/* Arabic-Indic 1 */

	{ "1", 1, 4, 0, 1 },
	{ "4", 1, 4, 0, 4 },
	{ "0", 1, 4, -1, 0 },
	{ "5", 1, 4, -1, 0 },
	{ "-1", 1, 4, -1, 0 },
	{ "-10", -10, -5, 0, -10 },
	{ "-5", -10, -5, 0, -5 },
	{ "-4", -10, -5, -1, 0 },
	{ "-11", -10, -5, -1, 0 },
	{ "65535", 1, 65535, 0, 65535 },
	{ "65536", 1, 65535, -1, 0 },
	{ "9223372036854775807", 0, LLONG_MAX - 1, -1, 0 },
	{ "-9223372036854775808", LLONG_MIN + 1, 0, -1, 0 },
};

/* The input with control bytes shown as \xNN, so TAP lines stay whole. */
static const char *
show(const char *s)
{
	static char out[128];
	size_t o = 0;

	for (; *s != '\0' && o + 5 < sizeof(out); s++) {
		if ((unsigned char)*s < 0x20)
			o += (size_t)snprintf(out + o, sizeof(out) - o,
			    "\\x%02x", (unsigned char)*s);
		else
			out[o++] = *s;
	}
	out[o] = '\0';
	return out;
}

int
main(void)
{
	long long out;
	size_t i;

	for (i = 0; i < sizeof(vec) / sizeof(vec[0]); i++) {
		out = 777;
		is_int(num_parse(vec[i].s, vec[i].min, vec[i].max, &out),
		    vec[i].rc, "'%s' in [%lld, %lld] %s", show(vec[i].s),
		    vec[i].min, vec[i].max, vec[i].rc == 0 ? "accepted" :
		    "refused");
		is_int(out, vec[i].rc == 0 ? vec[i].want : 777,
		    "'%s': %s", show(vec[i].s), vec[i].rc == 0 ? "value" :
		    "nothing stored");
	}

	/* Counted strings: only n bytes are looked at. */
	out = 0;
	is_int(num_parsen("123abc", 3, 0, 1000, &out), 0, "parsen of 3 bytes");
	is_int(out, 123, "parsen value");
	is_int(num_parsen("12", 0, 0, 1000, &out), -1, "parsen of 0 bytes");
	is_int(num_parsen("-5", 1, -10, 10, &out), -1, "parsen of a lone sign");
	is_int(num_parsen("99", 1, 0, 1000, &out), 0, "parsen of 1 byte");
	is_int(out, 9, "parsen of 1 byte value");
	is_int(num_parsen("9223372036854775807999", 19, LLONG_MIN, LLONG_MAX,
	    &out), 0, "parsen of 19 bytes of a longer string");
	is_int(out, LLONG_MAX, "parsen of 19 bytes value");
	return tap_done();
}
