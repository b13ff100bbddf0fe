/*
 * lib/b64.c: the RFC 4648 test vectors (section 10) in the standard
 * alphabet with padding and in base64url without it; the URL-safe
 * characters; and a decoder that takes only canonical unpadded
 * base64url: no character outside the alphabet, no impossible length,
 * no non-zero trailing bits.
 */
#include <stdlib.h>

#include "lib/b64.h"
#include "t/unit/tap.h"

/* RFC 4648, section 10. */
static const struct {
	const char	*raw, *std, *url;
} rfc[] = {
	{ "", "", "" },
	{ "f", "Zg==", "Zg" },
	{ "fo", "Zm8=", "Zm8" },
	{ "foo", "Zm9v", "Zm9v" },
	{ "foob", "Zm9vYg==", "Zm9vYg" },
	{ "fooba", "Zm9vYmE=", "Zm9vYmE" },
	{ "foobar", "Zm9vYmFy", "Zm9vYmFy" },
};

/* Bytes whose encodings use the characters the two alphabets differ in. */
static const struct {
	unsigned char	 raw[4];
	size_t		 n;
	const char	*std, *url;
} bin[] = {
	{ { 0xfb, 0xff, 0xbf }, 3, "+/+/", "-_-_" },
	{ { 0xff, 0xff, 0xff }, 3, "////", "____" },
	{ { 0xfb, 0xf0 }, 2, "+/A=", "-_A" },
	{ { 0xf8 }, 1, "+A==", "-A" },
	{ { 0x00, 0x00, 0x00 }, 3, "AAAA", "AAAA" },
	{ { 0x03, 0xe0, 0x3f, 0xff }, 4, "A+A//w==", "A-A__w" },
};

/* Inputs the decoder must refuse. */
static const struct {
	const char	*in;
	const char	*why;
} bad[] = {
	{ "Z", "one character (length 1 mod 4)" },
	{ "Zm9vY", "five characters (length 1 mod 4)" },
	{ "Zm9vYmFyZ", "nine characters (length 1 mod 4)" },
	{ "Zg==", "padding" },
	{ "Zm8=", "one padding character" },
	{ "Zm9v+A", "'+' of the standard alphabet" },
	{ "Zm9v/A", "'/' of the standard alphabet" },
	{ "Zm 9", "a space" },
	{ "Zm9\n", "a newline" },
	{ "Zm.v", "a dot" },
	{ "Zm\xc3\xa9", "a non-ASCII byte" },
	{ "Zh", "'f' with non-zero trailing bits (canonical: Zg)" },
	{ "Zm9", "'fo' with non-zero trailing bits (canonical: Zm8)" },
	{ "Zm_", "two bytes, last character with low bits set" },
	{ "AB", "one byte, trailing bits 0001" },
	{ "AAB", "two bytes, trailing bits 01" },
};

int
main(void)
{
	char out[64];
	unsigned char raw[64], all[256], back[256];
	char enc[B64URL_LEN(256) + 1];
	size_t i, n, k;
	long got;
	int bad_round;

	is_int(B64URL_LEN(0), 0, "B64URL_LEN(0)");
	is_int(B64URL_LEN(1), 2, "B64URL_LEN(1)");
	is_int(B64URL_LEN(2), 3, "B64URL_LEN(2)");
	is_int(B64URL_LEN(3), 4, "B64URL_LEN(3)");
	is_int(B64URL_LEN(32), 43, "B64URL_LEN(32) is a token's length");
	is_int(B64_LEN(0), 0, "B64_LEN(0)");
	is_int(B64_LEN(1), 4, "B64_LEN(1)");
	is_int(B64_LEN(3), 4, "B64_LEN(3)");
	is_int(B64_LEN(4), 8, "B64_LEN(4)");

	for (i = 0; i < sizeof(rfc) / sizeof(rfc[0]); i++) {
		n = strlen(rfc[i].raw);
		memset(out, 'x', sizeof(out));
		b64_encode((const unsigned char *)rfc[i].raw, n, out);
		is_str(out, rfc[i].std, "b64_encode(\"%s\")", rfc[i].raw);
		is_int(strlen(out), B64_LEN(n), "B64_LEN(%zu)", n);

		memset(out, 'x', sizeof(out));
		b64url_encode((const unsigned char *)rfc[i].raw, n, out);
		is_str(out, rfc[i].url, "b64url_encode(\"%s\")", rfc[i].raw);
		is_int(strlen(out), B64URL_LEN(n), "B64URL_LEN(%zu)", n);

		memset(raw, 0xaa, sizeof(raw));
		got = b64url_decode(rfc[i].url, strlen(rfc[i].url), raw);
		is_int(got, (long long)n, "b64url_decode(\"%s\") length",
		    rfc[i].url);
		ok(got >= 0 && memcmp(raw, rfc[i].raw, n) == 0,
		    "b64url_decode(\"%s\") is \"%s\"", rfc[i].url, rfc[i].raw);
	}

	for (i = 0; i < sizeof(bin) / sizeof(bin[0]); i++) {
		b64_encode(bin[i].raw, bin[i].n, out);
		is_str(out, bin[i].std, "b64_encode of binary %zu", i);
		b64url_encode(bin[i].raw, bin[i].n, out);
		is_str(out, bin[i].url, "b64url_encode of binary %zu", i);
		got = b64url_decode(bin[i].url, strlen(bin[i].url), raw);
		ok(got == (long)bin[i].n && memcmp(raw, bin[i].raw,
		    bin[i].n) == 0, "b64url_decode(\"%s\") round trip",
		    bin[i].url);
	}

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		is_int(b64url_decode(bad[i].in, strlen(bad[i].in), raw), -1,
		    "b64url_decode refuses %s", bad[i].why);

	/* A NUL inside the counted length is not in the alphabet either. */
	is_int(b64url_decode("Zm\0v", 4, raw), -1,
	    "b64url_decode refuses a NUL inside the input");
	/* Only n characters are read: the rest of the string is ignored. */
	is_int(b64url_decode("Zm9v!!!!", 4, raw), 3,
	    "b64url_decode reads only n characters");
	is_int(b64url_decode("", 0, raw), 0, "b64url_decode of nothing is 0");

	/* Every byte value, and every length up to 256, round trips. */
	for (i = 0; i < sizeof(all); i++)
		all[i] = (unsigned char)(255 - i);
	bad_round = 0;
	for (n = 0; n <= sizeof(all); n++) {
		memset(enc, 0, sizeof(enc));
		b64url_encode(all, n, enc);
		if (strlen(enc) != B64URL_LEN(n) ||
		    strspn(enc, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		    "0123456789-_") != strlen(enc)) {
			bad_round++;
			continue;
		}
		got = b64url_decode(enc, strlen(enc), back);
		if (got != (long)n || memcmp(back, all, n) != 0)
			bad_round++;
	}
	is_int(bad_round, 0, "lengths 0..256 of all byte values round trip "
	    "through base64url");

	/*
	 * Changing the last character of a one- or two-byte tail to any
	 * other character that keeps the same decoded bytes is refused:
	 * there is exactly one accepted spelling of each byte string.
	 */
	bad_round = 0;
	for (n = 1; n <= 2; n++) {
		const char *alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopq"
		    "rstuvwxyz0123456789-_";
		int accepted = 0;

		b64url_encode(all, n, enc);
		for (k = 0; k < 64; k++) {
			enc[strlen(enc) - 1] = alpha[k];
			got = b64url_decode(enc, strlen(enc), back);
			if (got == (long)n && memcmp(back, all, n) == 0)
				accepted++;
		}
		if (accepted != 1)
			bad_round++;
	}
	is_int(bad_round, 0, "exactly one spelling of a 1- and 2-byte tail "
	    "is accepted");

	return tap_done();
}
