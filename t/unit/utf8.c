/*
 * lib/utf8.c: RFC 3629 validation (no overlongs, no surrogates, nothing
 * above U+10FFFF, no truncated or stray bytes), and code point counting
 * and prefixes on valid text.
 */
#include "lib/utf8.h"
#include "t/unit/tap.h"

static const struct {
	const char	*s;
	size_t		 n;
	int		 valid;
	size_t		 chars;		/* when valid */
	const char	*name;
} vec[] = {
	{ "", 0, 1, 0, "empty" },
	{ "abc", 3, 1, 3, "ASCII" },
	{ "a\0b", 3, 1, 3, "NUL is valid UTF-8 (refused elsewhere)" },
	{ "\x7f", 1, 1, 1, "U+007F" },
	{ "\xc2\x80", 2, 1, 1, "U+0080, smallest 2-byte" },
	{ "\xc3\xa9", 2, 1, 1, "U+00E9" },
	{ "\xdf\xbf", 2, 1, 1, "U+07FF, largest 2-byte" },
	{ "\xe0\xa0\x80", 3, 1, 1, "U+0800, smallest 3-byte" },
	{ "\xe2\x82\xac", 3, 1, 1, "U+20AC" },
	{ "\xed\x9f\xbf", 3, 1, 1, "U+D7FF, below the surrogates" },
	{ "\xee\x80\x80", 3, 1, 1, "U+E000, above the surrogates" },
	{ "\xef\xbf\xbf", 3, 1, 1, "U+FFFF" },
	{ "\xf0\x90\x80\x80", 4, 1, 1, "U+10000, smallest 4-byte" },
	{ "\xf0\x9f\x98\x80", 4, 1, 1, "U+1F600" },
	{ "\xf4\x8f\xbf\xbf", 4, 1, 1, "U+10FFFF, the last code point" },
	{ "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80z", 11, 1, 5, "mixed" },

	{ "\xc0\x80", 2, 0, 0, "overlong NUL C0 80" },
	{ "\xc1\xbf", 2, 0, 0, "overlong C1 BF" },
	{ "\xe0\x80\x80", 3, 0, 0, "overlong E0 80 80" },
	{ "\xe0\x9f\xbf", 3, 0, 0, "overlong U+07FF in 3 bytes" },
	{ "\xf0\x80\x80\x80", 4, 0, 0, "overlong F0 80 80 80" },
	{ "\xf0\x8f\xbf\xbf", 4, 0, 0, "overlong U+FFFF in 4 bytes" },
	{ "\xed\xa0\x80", 3, 0, 0, "surrogate ED A0 80 (U+D800)" },
	{ "\xed\xbf\xbf", 3, 0, 0, "surrogate U+DFFF" },
	{ "\xed\xa0\xbd\xed\xb8\x80", 6, 0, 0, "CESU-8 surrogate pair" },
	{ "\xf4\x90\x80\x80", 4, 0, 0, "F4 90 80 80 (U+110000)" },
	{ "\xf5\x80\x80\x80", 4, 0, 0, "F5 lead byte" },
	{ "\xf8\x88\x80\x80\x80", 5, 0, 0, "5-byte form" },
	{ "\xfe", 1, 0, 0, "FE" },
	{ "\xff", 1, 0, 0, "FF" },
	{ "\x80", 1, 0, 0, "lone continuation byte" },
	{ "a\xbf", 2, 0, 0, "stray continuation after ASCII" },
	{ "\xc3\xa9\xa9", 3, 0, 0, "one continuation too many" },
	{ "\xc3", 1, 0, 0, "truncated 2-byte" },
	{ "\xe2\x82", 2, 0, 0, "truncated 3-byte" },
	{ "\xf0\x9f\x98", 3, 0, 0, "truncated 4-byte" },
	{ "ab\xf0\x9f", 4, 0, 0, "truncated at the end" },
	{ "\xc3\x28", 2, 0, 0, "ASCII where a continuation belongs" },
	{ "\xe2\x28\xa1", 3, 0, 0, "bad second byte of 3" },
	{ "\xe2\x82\x28", 3, 0, 0, "bad third byte of 3" },
	{ "\xf0\x9f\x28\x80", 4, 0, 0, "bad third byte of 4" },
	{ "\xc3\xa9", 1, 0, 0, "valid text cut short by n" },
	{ "ab\xff", 2, 1, 2, "bytes past n are not read" },
};

int
main(void)
{
	/* 'a', U+00E9, U+20AC, U+1F600: 10 bytes */
	const char *s = "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80";
	size_t i;

	for (i = 0; i < sizeof(vec) / sizeof(vec[0]); i++) {
		is_int(utf8_valid(vec[i].s, vec[i].n), vec[i].valid, "%s %s",
		    vec[i].valid ? "valid:" : "invalid:", vec[i].name);
		if (vec[i].valid)
			is_int(utf8_chars(vec[i].s, vec[i].n), vec[i].chars,
			    "chars: %s", vec[i].name);
	}

	is_int(utf8_prefix(s, 10, 0), 0, "prefix of 0 code points");
	is_int(utf8_prefix(s, 10, 1), 1, "prefix of 1: 'a'");
	is_int(utf8_prefix(s, 10, 2), 3, "prefix of 2 ends after U+00E9");
	is_int(utf8_prefix(s, 10, 3), 6, "prefix of 3 ends after U+20AC");
	is_int(utf8_prefix(s, 10, 4), 10, "prefix of 4 is the whole string");
	is_int(utf8_prefix(s, 10, 5), 10, "prefix longer than the string");
	is_int(utf8_prefix(s, 10, (size_t)-1), 10, "prefix of SIZE_MAX");
	is_int(utf8_prefix("", 0, 3), 0, "prefix of an empty string");
	ok(utf8_valid(s, utf8_prefix(s, 10, 3)), "a prefix is valid UTF-8");
	return tap_done();
}
