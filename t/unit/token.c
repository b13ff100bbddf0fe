/*
 * lib/token.c: HMAC-SHA256 against RFC 4231 (test cases 1-4, 6 and 7;
 * 5 is a truncated MAC), SHA-256 against FIPS 180-2's examples, the hex
 * helpers, and the random tokens: shape, uniqueness, alphabet, and the
 * check that tells a token from anything else.
 */
#include <stdlib.h>

#include "lib/b64.h"
#include "lib/token.h"
#include "t/unit/tap.h"

static const char *
hex(const unsigned char *p, size_t n)
{
	static char out[2 * 64 + 1];

	hex_encode(p, n, out);
	return out;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool
only_from(const char *s, const char *alphabet)
{
	return strspn(s, alphabet) == strlen(s);
}

#define URL_ALPHABET	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz" \
			"0123456789-_"
#define NTOKENS		2000

int
main(void)
{
	unsigned char key[131], data[200], mac[SHA256_LEN], raw[64];
	char tok[TOKEN_LEN + 1], code[65], hh[BYTEA_HEX_LEN + 1];
	char **many;
	const char *alpha = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
	int seen[256] = { 0 };
	size_t i;
	int dup, badshape, unseen;

	/* RFC 4231 4.2, test case 1. */
	memset(key, 0x0b, 20);
	hmac_sha256(key, 20, "Hi There", 8, mac);
	is_str(hex(mac, sizeof(mac)), "b0344c61d8db38535ca8afceaf0bf12b"
	    "881dc200c9833da726e9376c2e32cff7", "RFC 4231 test case 1");

	/* 4.3, test case 2: a key shorter than the output. */
	hmac_sha256("Jefe", 4, "what do ya want for nothing?", 28, mac);
	is_str(hex(mac, sizeof(mac)), "5bdcc146bf60754e6a042426089575c7"
	    "5a003f089d2739839dec58b964ec3843", "RFC 4231 test case 2");

	/* 4.4, test case 3: 50 bytes of 0xdd under 20 bytes of 0xaa. */
	memset(key, 0xaa, 20);
	memset(data, 0xdd, 50);
	hmac_sha256(key, 20, data, 50, mac);
	is_str(hex(mac, sizeof(mac)), "773ea91e36800e46854db8ebd09181a7"
	    "2959098b3ef8c122d9635514ced565fe", "RFC 4231 test case 3");

	/* 4.5, test case 4: key 0x01..0x19. */
	for (i = 0; i < 25; i++)
		key[i] = (unsigned char)(i + 1);
	memset(data, 0xcd, 50);
	hmac_sha256(key, 25, data, 50, mac);
	is_str(hex(mac, sizeof(mac)), "82558a389a443c0ea4cc819899f2083a"
	    "85f0faa3e578f8077a2e3ff46729665b", "RFC 4231 test case 4");

	/* 4.7, test case 6: a key longer than the block is hashed first. */
	memset(key, 0xaa, 131);
	hmac_sha256(key, 131, "Test Using Larger Than Block-Size Key - Hash "
	    "Key First", 54, mac);
	is_str(hex(mac, sizeof(mac)), "60e431591ee0b67f0d8a26aacbf5b77f"
	    "8e0bc6213728c5140546040f0ee37f54", "RFC 4231 test case 6");

	/* 4.8, test case 7: and data longer than the block. */
	{
		const char *d7 = "This is a test using a larger than block-size "
		    "key and a larger than block-size data. The key needs to "
		    "be hashed before being used by the HMAC algorithm.";

		is_int(strlen(d7), 152, "test case 7 data is 152 bytes");
		hmac_sha256(key, 131, d7, strlen(d7), mac);
		is_str(hex(mac, sizeof(mac)), "9b09ffa71b942fcb27635fbcd5b0e944"
		    "bfdc63644f0713938a7f51535c3a35e2", "RFC 4231 test case 7");
	}

	/* hmac_sha256v: test case 2 given in three pieces. */
	{
		const void *parts[] = { "what do ya", " want for ", "nothing?" };
		const size_t lens[] = { 10, 10, 8 };

		hmac_sha256v("Jefe", 4, parts, lens, 3, mac);
		is_str(hex(mac, sizeof(mac)), "5bdcc146bf60754e6a04242608957"
		    "5c75a003f089d2739839dec58b964ec3843", "hmac_sha256v of "
		    "pieces is the MAC of their concatenation");
		hmac_sha256v("Jefe", 4, parts, lens, 0, mac);
		is_str(hex(mac, sizeof(mac)), "923598ca6d64af2a5dba79dcd021a8"
		    "a0fe5c5f557519adaaf0ad532d4506dd30", "no pieces: the MAC "
		    "of nothing");
	}

	/* FIPS 180-2 appendix B. */
	sha256("abc", 3, mac);
	is_str(hex(mac, sizeof(mac)), "ba7816bf8f01cfea414140de5dae2223"
	    "b00361a396177a9cb410ff61f20015ad", "SHA-256(\"abc\")");
	sha256("", 0, mac);
	is_str(hex(mac, sizeof(mac)), "e3b0c44298fc1c149afbf4c8996fb924"
	    "27ae41e4649b934ca495991b7852b855", "SHA-256(\"\")");
	sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56,
	    mac);
	is_str(hex(mac, sizeof(mac)), "248d6a61d20638b8e5c026930c3e6039"
	    "a33ce45964ff2167f6ecedd419db06c1", "SHA-256 of the 448-bit "
	    "message");

	/* The stored form of a token: a bytea hex literal of its SHA-256. */
	token_hash_hex("abc", hh);
	is_str(hh, "\\xba7816bf8f01cfea414140de5dae2223"
	    "b00361a396177a9cb410ff61f20015ad", "token_hash_hex is \\x and "
	    "the SHA-256 in lower-case hex");
	is_int(strlen(hh), BYTEA_HEX_LEN, "token_hash_hex length");

	raw[0] = 0x00;
	raw[1] = 0x0f;
	raw[2] = 0xa5;
	raw[3] = 0xff;
	is_str(hex(raw, 4), "000fa5ff", "hex_encode");
	is_str(hex(raw, 0), "", "hex_encode of nothing");

	ok(secure_equal("abcd", "abcd", 4), "secure_equal: equal");
	ok(!secure_equal("abcd", "abce", 4), "secure_equal: last byte differs");
	ok(!secure_equal("xbcd", "abcd", 4), "secure_equal: first byte "
	    "differs");
	ok(secure_equal("a", "b", 0), "secure_equal: zero length is equal");

	/* Tokens: 43 base64url characters of 32 random bytes, all distinct. */
	token_new(tok);
	is_int(strlen(tok), TOKEN_LEN, "token_new: %d characters", TOKEN_LEN);
	ok(only_from(tok, URL_ALPHABET), "token_new: base64url only (%s)",
	    tok);
	ok(token_well_formed(tok), "token_new makes a well-formed token");
	is_int(b64url_decode(tok, strlen(tok), raw), TOKEN_BYTES,
	    "token_new decodes to %d bytes", TOKEN_BYTES);

	many = calloc(NTOKENS, sizeof(*many));
	badshape = 0;
	for (i = 0; i < NTOKENS; i++) {
		many[i] = calloc(1, TOKEN_LEN + 1);
		token_new(many[i]);
		if (strlen(many[i]) != TOKEN_LEN || !token_well_formed(many[i]))
			badshape++;
	}
	qsort(many, NTOKENS, sizeof(*many), cmp_str);
	dup = 0;
	for (i = 1; i < NTOKENS; i++)
		if (strcmp(many[i - 1], many[i]) == 0)
			dup++;
	is_int(badshape, 0, "%d tokens are all well formed", NTOKENS);
	is_int(dup, 0, "%d tokens are all different", NTOKENS);
	for (i = 0; i < NTOKENS; i++)
		free(many[i]);
	free(many);

	/* token_random fills every byte it is asked for. */
	memset(raw, 0, sizeof(raw));
	token_random(raw, sizeof(raw));
	unseen = 0;
	for (i = 0; i < sizeof(raw); i++)
		unseen += raw[i] == 0;
	ok(unseen < 8, "token_random fills the buffer (%d zero bytes of 64)",
	    unseen);

	/* Codes from an alphabet: only its characters, every one in use. */
	memset(code, 'x', sizeof(code));
	token_from_alphabet(code, 8, alpha);
	is_int(strlen(code), 8, "token_from_alphabet: 8 characters and a NUL");
	ok(only_from(code, alpha), "token_from_alphabet: only the alphabet "
	    "(%s)", code);
	badshape = 0;
	for (i = 0; i < 2000; i++) {
		size_t k;

		token_from_alphabet(code, 64, alpha);
		if (strlen(code) != 64 || !only_from(code, alpha))
			badshape++;
		for (k = 0; k < 64; k++)
			seen[(unsigned char)code[k]]++;
	}
	is_int(badshape, 0, "2000 codes of 64 use only the alphabet");
	unseen = 0;
	for (i = 0; alpha[i] != '\0'; i++)
		/* 128000 draws over 32 letters: about 4000 each. */
		if (seen[(unsigned char)alpha[i]] < 3000 ||
		    seen[(unsigned char)alpha[i]] > 5000)
			unseen++;
	is_int(unseen, 0, "every letter of the alphabet comes up about "
	    "equally often");
	/* An alphabet whose size does not divide 256. */
	token_from_alphabet(code, 64, "abc");
	ok(strlen(code) == 64 && only_from(code, "abc"),
	    "a 3-letter alphabet (%s)", code);
	token_from_alphabet(code, 0, alpha);
	is_str(code, "", "token_from_alphabet of length 0 is empty");
	token_from_alphabet(code, 5, "Z");
	is_str(code, "ZZZZZ", "a one-letter alphabet");

	/* token_well_formed: exactly 43 base64url characters. */
	ok(token_well_formed("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
	    "43 x 'A' is well formed");
	ok(token_well_formed("abcdefghijklmnopqrstuvwxyz0123456789-_ABCDE"),
	    "43 mixed base64url characters are well formed");
	ok(!token_well_formed(""), "empty is not a token");
	ok(!token_well_formed("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
	    "42 characters are not a token");
	ok(!token_well_formed("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
	    "44 characters are not a token");
	ok(!token_well_formed("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA+"),
	    "'+' is not base64url");
	ok(!token_well_formed("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA/"),
	    "'/' is not base64url");
	ok(!token_well_formed("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="),
	    "'=' is not base64url");
	ok(!token_well_formed("AAAAAAAAAAAAAAAAAAAAA AAAAAAAAAAAAAAAAAAAAA"),
	    "a space is not base64url");
	ok(!token_well_formed("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\xc3"),
	    "a non-ASCII byte is not base64url");
	ok(!token_well_formed("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n"),
	    "a trailing newline is not allowed");
	ok(!token_well_formed("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'"
	    " OR 1=1"), "a token with SQL after it is refused");

	return tap_done();
}
