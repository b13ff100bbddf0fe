/*
 * lib/jwt.c: a known token built by hand (Perl's Digest::SHA and
 * MIME::Base64 gave the expected strings), sign/verify round trips, and
 * the forgeries: alg none and HS512 with a correct MAC over their own
 * header, a bad or missing signature, a tampered payload, a wrong key or
 * issuer, expired and future tokens, missing and ill-typed claims,
 * over-long tokens and the wrong number of parts; header members
 * (kid, jku, jwk, crit, x5u...) on tokens otherwise valid.
 */
#include <stdlib.h>

#include "lib/b64.h"
#include "lib/jwt.h"
#include "lib/token.h"
#include "t/unit/tap.h"

#define SECRET	"miky-test-jwt-secret-0123456789-abcdefghijklmnop"
#define SUB	"0f8fad5b-d9cb-469f-a165-70867728950e"
#define SID	"7c9e6679-7425-40de-944b-e07fc1f90ae7"
#define IAT	1700000000
#define EXP	1700000900
#define HS256	"{\"alg\":\"HS256\",\"typ\":\"JWT\"}"

/* Header and payload of the known token, and its MAC, from Perl. */
#define KNOWN_H	"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
#define KNOWN_P	"eyJpc3MiOiJtaWt5Iiwic3ViIjoiMGY4ZmFkNWItZDljYi00NjlmLWEx" \
		"NjUtNzA4Njc3Mjg5NTBlIiwic2lkIjoiN2M5ZTY2NzktNzQyNS00MGRl" \
		"LTk0NGItZTA3ZmMxZjkwYWU3IiwiaWF0IjoxNzAwMDAwMDAwLCJleHAi" \
		"OjE3MDAwMDA5MDB9"
#define KNOWN_S	"wOF5Ce_A3uCNjE1RYxTMf6brIFCpelIjAkW4SqmqYNc"
#define KNOWN	KNOWN_H "." KNOWN_P "." KNOWN_S
/* The same claims without sid. */
#define NOSID	KNOWN_H ".eyJpc3MiOiJtaWt5Iiwic3ViIjoiMGY4ZmFkNWItZDljYi00" \
		"NjlmLWExNjUtNzA4Njc3Mjg5NTBlIiwiaWF0IjoxNzAwMDAwMDAwLCJl" \
		"eHAiOjE3MDAwMDA5MDB9.EUvHgVx5p9A59aVb-dyded6IbwfcnApkuON9fCKj9nE"

static char tokbuf[8192];

/*
 * "b64(header).b64(payload).b64(HMAC-SHA256 under key of the first two
 * parts)", as anyone holding the key could make it.
 */
static const char *
mint_key(const char *header, const char *payload, const char *key)
{
	unsigned char mac[SHA256_LEN];
	size_t n;

	b64url_encode((const unsigned char *)header, strlen(header), tokbuf);
	n = strlen(tokbuf);
	tokbuf[n++] = '.';
	b64url_encode((const unsigned char *)payload, strlen(payload),
	    tokbuf + n);
	n = strlen(tokbuf);
	hmac_sha256(key, strlen(key), tokbuf, n, mac);
	tokbuf[n++] = '.';
	b64url_encode(mac, sizeof(mac), tokbuf + n);
	return tokbuf;
}

/* "hp.b64(HMAC-SHA256 of hp)": a MAC over whatever text is given. */
static const char *
mint_raw(const char *hp)
{
	unsigned char mac[SHA256_LEN];
	size_t n = strlen(hp);

	memmove(tokbuf, hp, n + 1);
	hmac_sha256(SECRET, strlen(SECRET), tokbuf, n, mac);
	tokbuf[n++] = '.';
	b64url_encode(mac, sizeof(mac), tokbuf + n);
	return tokbuf;
}

static const char *
mint(const char *header, const char *payload)
{
	return mint_key(header, payload, SECRET);
}

static enum jwt_status
verify_at(const char *tok, int64_t now)
{
	struct jwt_claims c;

	return jwt_verify(SECRET, strlen(SECRET), "miky", tok, now, 60, &c);
}

static enum jwt_status
verify(const char *tok)
{
	return verify_at(tok, IAT + 10);
}

/* A payload with the usual claims and `extra` members appended. */
static const char *
claims(const char *extra)
{
	static char p[4096];

	snprintf(p, sizeof(p), "{\"iss\":\"miky\",\"sub\":\"" SUB "\","
	    "\"iat\":%d,\"exp\":%d%s}", IAT, EXP, extra);
	return p;
}

int
main(void)
{
	struct jwt_claims c, in;
	char out[JWT_MAX_LEN], copy[8192], pad[4096];
	char *p;
	size_t n;
	int i;

	/* Signing fixed claims gives exactly the token made by hand. */
	memset(&in, 0, sizeof(in));
	snprintf(in.sub, sizeof(in.sub), "%s", SUB);
	snprintf(in.sid, sizeof(in.sid), "%s", SID);
	in.iat = IAT;
	in.exp = EXP;
	is_int(jwt_sign(SECRET, strlen(SECRET), "miky", &in, out, sizeof(out)),
	    0, "jwt_sign succeeds");
	is_str(out, KNOWN, "jwt_sign makes the known token");
	in.sid[0] = '\0';
	is_int(jwt_sign(SECRET, strlen(SECRET), "miky", &in, out, sizeof(out)),
	    0, "jwt_sign without sid");
	is_str(out, NOSID, "without sid, no sid claim");
	is_str(mint(HS256, claims("")), NOSID, "the test's own minting agrees");

	/* The known token verifies and yields its claims. */
	memset(&c, 0x55, sizeof(c));
	is_int(jwt_verify(SECRET, strlen(SECRET), "miky", KNOWN, IAT + 1, 60,
	    &c), JWT_OK, "the known token verifies");
	is_str(c.sub, SUB, "sub");
	is_str(c.sid, SID, "sid");
	is_int(c.iat, IAT, "iat");
	is_int(c.exp, EXP, "exp");
	is_int(jwt_verify(SECRET, strlen(SECRET), "miky", NOSID, IAT + 1, 60,
	    &c), JWT_OK, "the token without sid verifies");
	is_str(c.sid, "", "absent sid reads as \"\"");

	/* Round trips over a range of claims. */
	for (i = 0; i < 5; i++) {
		memset(&in, 0, sizeof(in));
		snprintf(in.sub, sizeof(in.sub), "user-%d-%s", i,
		    i % 2 ? "with \"quotes\" and \\" : "plain");
		if (i % 3)
			snprintf(in.sid, sizeof(in.sid), "family-%d", i);
		in.iat = 1600000000 + i * 1000003LL;
		in.exp = in.iat + 900;
		jwt_sign(SECRET, strlen(SECRET), "miky", &in, out, sizeof(out));
		memset(&c, 0, sizeof(c));
		ok(jwt_verify(SECRET, strlen(SECRET), "miky", out, in.iat, 60,
		    &c) == JWT_OK && strcmp(c.sub, in.sub) == 0 &&
		    strcmp(c.sid, in.sid) == 0 && c.iat == in.iat &&
		    c.exp == in.exp, "round trip %d (sub %s)", i, in.sub);
	}
	/* A 64-character sub is the most a claim holds. */
	memset(&in, 0, sizeof(in));
	memset(in.sub, 'x', JWT_CLAIM_MAX);
	in.iat = IAT;
	in.exp = EXP;
	jwt_sign(SECRET, strlen(SECRET), "miky", &in, out, sizeof(out));
	ok(verify(out) == JWT_OK, "a 64-character sub round trips");
	is_int(jwt_sign(SECRET, strlen(SECRET), "miky", &in, out, 40), -1,
	    "jwt_sign into a too small buffer fails");

	/* Expiry: valid until the second before exp. */
	is_int(verify_at(KNOWN, EXP - 1), JWT_OK, "valid one second before "
	    "exp");
	memset(&c, 0, sizeof(c));
	is_int(jwt_verify(SECRET, strlen(SECRET), "miky", KNOWN, EXP, 60, &c),
	    JWT_EXPIRED, "expired at exp");
	is_str(c.sub, SUB, "an expired token's claims are filled in");
	is_int(verify_at(KNOWN, EXP + 86400), JWT_EXPIRED, "expired a day "
	    "later");

	/* iat in the future: the leeway, and no more. */
	is_int(verify_at(KNOWN, IAT - 60), JWT_OK, "iat 60 s ahead is within "
	    "the leeway");
	is_int(verify_at(KNOWN, IAT - 61), JWT_INVALID, "iat 61 s ahead is "
	    "refused");
	is_int(verify_at(KNOWN, IAT - 86400), JWT_INVALID, "iat a day ahead "
	    "is refused");

	/* Key and algorithm. */
	is_int(jwt_verify("another-secret-of-more-than-32-bytes!!", 38, "miky",
	    KNOWN, IAT + 1, 60, &c), JWT_INVALID, "wrong key");
	is_int(jwt_verify(SECRET, strlen(SECRET) - 1, "miky", KNOWN, IAT + 1,
	    60, &c), JWT_INVALID, "the key minus its last byte");
	is_int(verify(mint_key(HS256, claims(""), "miky-test-jwt-secret-"
	    "0123456789-abcdefghijklmnoP")), JWT_INVALID, "signed with a key "
	    "differing in one letter");
	is_int(verify(mint("{\"alg\":\"none\",\"typ\":\"JWT\"}", claims(""))),
	    JWT_INVALID, "alg none with a correct HS256 MAC over it");
	snprintf(copy, sizeof(copy), "%s", mint("{\"alg\":\"none\"}",
	    claims("")));
	*(strrchr(copy, '.') + 1) = '\0';
	is_int(verify(copy), JWT_INVALID, "alg none with an empty signature");
	is_int(verify(mint("{\"alg\":\"HS512\",\"typ\":\"JWT\"}", claims(""))),
	    JWT_INVALID, "alg HS512 with a correct HS256 MAC over it");
	is_int(verify(mint("{\"alg\":\"RS256\",\"typ\":\"JWT\"}", claims(""))),
	    JWT_INVALID, "alg RS256 with a correct HS256 MAC over it");
	is_int(verify(mint("{\"alg\":\"hs256\"}", claims(""))), JWT_INVALID,
	    "alg hs256 (wrong case)");
	is_int(verify(mint("{\"typ\":\"JWT\"}", claims(""))), JWT_INVALID,
	    "no alg");
	is_int(verify(mint("{\"alg\":[\"HS256\"]}", claims(""))), JWT_INVALID,
	    "alg not a string");
	is_int(verify(mint("[\"HS256\"]", claims(""))), JWT_INVALID,
	    "header not an object");
	is_int(verify(mint("not json", claims(""))), JWT_INVALID,
	    "header not JSON");
	is_int(verify(mint("{\"alg\":\"HS256\"}", claims(""))), JWT_OK,
	    "a header without typ is fine (control)");

	/*
	 * Header members that name other keys or demand extensions, on
	 * tokens otherwise valid (right MAC, claims, times): all refused.
	 */
	{
		static const char *const extra[] = {
			"\"kid\":\"1\"",
			"\"kid\":\"../../../../dev/null\"",
			"\"kid\":\"\"",
			"\"jku\":\"https://attacker.invalid/jwks.json\"",
			"\"jwk\":{\"kty\":\"oct\",\"k\":\"AAAA\"}",
			"\"crit\":[\"exp\"]",
			"\"crit\":[]",
			"\"x5u\":\"https://attacker.invalid/cert.pem\"",
			"\"x5c\":[\"MIIB\"]",
			"\"cty\":\"JWT\"",
			"\"b64\":false",
			"\"zip\":\"DEF\"",
			"\"typ\":\"JWT\",\"typ\":\"JWT\"",
			"\"alg\":\"HS256\"",
			"\"alg\":\"none\"",
			"\"typ\":\"at+jwt\"",
			"\"typ\":null",
		};
		char h[256];
		size_t k;

		for (k = 0; k < sizeof(extra) / sizeof(extra[0]); k++) {
			snprintf(h, sizeof(h), "{\"alg\":\"HS256\",%s}",
			    extra[k]);
			is_int(verify(mint(h, claims(""))), JWT_INVALID,
			    "header %s refused", h);
			snprintf(h, sizeof(h), "{%s,\"alg\":\"HS256\","
			    "\"typ\":\"JWT\"}", extra[k]);
			is_int(verify(mint(h, claims(""))), JWT_INVALID,
			    "header %s refused", h);
		}
		is_int(verify(mint("{\"typ\":\"JWT\",\"alg\":\"HS256\"}",
		    claims(""))), JWT_OK, "typ before alg is fine (control)");
		is_int(verify(mint("{}", claims(""))), JWT_INVALID,
		    "an empty header");
	}

	/* Signatures. */
	snprintf(copy, sizeof(copy), "%s", KNOWN);
	p = strrchr(copy, '.') + 1;
	*p = *p == 'A' ? 'B' : 'A';
	is_int(verify(copy), JWT_INVALID, "first signature character changed");
	snprintf(copy, sizeof(copy), "%s", KNOWN);
	copy[strlen(copy) - 1] = '\0';
	is_int(verify(copy), JWT_INVALID, "signature one character short");
	snprintf(copy, sizeof(copy), "%sA", KNOWN);
	is_int(verify(copy), JWT_INVALID, "signature one character long");
	snprintf(copy, sizeof(copy), "%s.", KNOWN_H "." KNOWN_P);
	is_int(verify(copy), JWT_INVALID, "empty signature");
	/* Longer signatures (an RS256 one is 342 characters) are refused
	 * without being decoded into a MAC-sized buffer. */
	for (n = 44; n <= 1400; n = n < 48 ? n + 1 : n * 2) {
		memset(pad, 'A', n);
		pad[n] = '\0';
		snprintf(copy, sizeof(copy), "%s.%s", KNOWN_H "." KNOWN_P, pad);
		is_int(verify(copy), JWT_INVALID, "a signature of %zu "
		    "characters", n);
	}
	memset(pad, 'x', 342);
	pad[342] = '\0';
	snprintf(copy, sizeof(copy), "%s.%s%s", KNOWN_H "." KNOWN_P, KNOWN_S,
	    pad);
	is_int(verify(copy), JWT_INVALID, "the right MAC followed by 342 "
	    "more characters");
	snprintf(copy, sizeof(copy), "%s.%s", KNOWN_H "." KNOWN_P,
	    "wOF5Ce+A3uCNjE1RYxTMf6brIFCpelIjAkW4SqmqYNc");
	is_int(verify(copy), JWT_INVALID, "signature in the standard "
	    "alphabet ('+' for '_')");
	snprintf(copy, sizeof(copy), "%s.%s=", KNOWN_H "." KNOWN_P, KNOWN_S);
	is_int(verify(copy), JWT_INVALID, "padded signature");
	/* The last character carries 4 bits and 2 zero bits: not malleable. */
	snprintf(copy, sizeof(copy), "%s", KNOWN);
	copy[strlen(copy) - 1] = 'd';
	is_int(verify(copy), JWT_INVALID, "last signature character with "
	    "non-zero spare bits (Nc -> Nd)");

	/* Tampering keeps the signature but changes what it covered. */
	{
		char other[4096];
		const char *t = mint(HS256, "{\"iss\":\"miky\",\"sub\":"
		    "\"11111111-2222-3333-4444-555555555555\",\"sid\":\"" SID
		    "\",\"iat\":1700000000,\"exp\":1700000900}");
		const char *d1 = strchr(t, '.'), *d2 = strrchr(t, '.');

		snprintf(other, sizeof(other), "%s.%.*s.%s", KNOWN_H,
		    (int)(d2 - d1 - 1), d1 + 1, KNOWN_S);
		is_int(verify(other), JWT_INVALID, "another sub under the "
		    "known signature");
		snprintf(other, sizeof(other), "%s.%s.%s", KNOWN_H,
		    strchr(NOSID, '.') + 1, KNOWN_S);
		/* NOSID has two dots after the header: cut its signature. */
		*strrchr(other, '.') = '\0';
		*strrchr(other, '.') = '\0';
		strcat(other, "." KNOWN_S);
		is_int(verify(other), JWT_INVALID, "sid removed under the known "
		    "signature");
	}
	snprintf(copy, sizeof(copy), "%s", KNOWN);
	copy[strlen(KNOWN_H) + 5] ^= 1;
	is_int(verify(copy), JWT_INVALID, "one payload character flipped");
	snprintf(copy, sizeof(copy), "%s", KNOWN);
	copy[3] ^= 1;
	is_int(verify(copy), JWT_INVALID, "one header character flipped");

	/* Issuer. */
	is_int(verify(mint(HS256, "{\"iss\":\"evil\",\"sub\":\"" SUB "\","
	    "\"iat\":1700000000,\"exp\":1700000900}")), JWT_INVALID,
	    "iss evil");
	is_int(verify(mint(HS256, "{\"iss\":\"miky2\",\"sub\":\"" SUB "\","
	    "\"iat\":1700000000,\"exp\":1700000900}")), JWT_INVALID,
	    "iss miky2");
	is_int(verify(mint(HS256, "{\"iss\":\"Miky\",\"sub\":\"" SUB "\","
	    "\"iat\":1700000000,\"exp\":1700000900}")), JWT_INVALID,
	    "iss Miky");
	is_int(jwt_verify(SECRET, strlen(SECRET), "other", KNOWN, IAT + 1, 60,
	    &c), JWT_INVALID, "a verifier expecting another issuer");

	/* Missing claims. */
	is_int(verify(mint(HS256, "{\"sub\":\"" SUB "\",\"iat\":1700000000,"
	    "\"exp\":1700000900}")), JWT_INVALID, "no iss");
	is_int(verify(mint(HS256, "{\"iss\":\"miky\",\"iat\":1700000000,"
	    "\"exp\":1700000900}")), JWT_INVALID, "no sub");
	is_int(verify(mint(HS256, "{\"iss\":\"miky\",\"sub\":\"" SUB "\","
	    "\"exp\":1700000900}")), JWT_INVALID, "no iat");
	is_int(verify(mint(HS256, "{\"iss\":\"miky\",\"sub\":\"" SUB "\","
	    "\"iat\":1700000000}")), JWT_INVALID, "no exp");
	is_int(verify(mint(HS256, "{}")), JWT_INVALID, "no claims at all");
	is_int(verify(mint(HS256, "[]")), JWT_INVALID, "payload an array");
	is_int(verify(mint(HS256, "null")), JWT_INVALID, "payload null");
	is_int(verify(mint(HS256, "")), JWT_INVALID, "empty payload");
	is_int(verify(mint(HS256, "{\"iss\":\"miky\",")), JWT_INVALID,
	    "truncated JSON payload");

	/* Ill-typed claims. */
	is_int(verify(mint(HS256, "{\"iss\":\"miky\",\"sub\":\"" SUB "\","
	    "\"iat\":1700000000,\"exp\":1700000900.5}")), JWT_INVALID,
	    "exp not an integer");
	is_int(verify(mint(HS256, "{\"iss\":\"miky\",\"sub\":\"" SUB "\","
	    "\"iat\":1700000000,\"exp\":\"1700000900\"}")), JWT_INVALID,
	    "exp a string");
	is_int(verify(mint(HS256, "{\"iss\":\"miky\",\"sub\":\"" SUB "\","
	    "\"iat\":1700000000,\"exp\":true}")), JWT_INVALID, "exp true");
	is_int(verify(mint(HS256, "{\"iss\":\"miky\",\"sub\":\"" SUB "\","
	    "\"iat\":1700000000,\"exp\":null}")), JWT_INVALID, "exp null");
	is_int(verify(mint(HS256, "{\"iss\":\"miky\",\"sub\":\"" SUB "\","
	    "\"iat\":1700000000,\"exp\":1e300}")), JWT_INVALID, "exp 1e300");
	is_int(verify(mint(HS256, "{\"iss\":\"miky\",\"sub\":\"" SUB "\","
	    "\"iat\":-5,\"exp\":1700000900}")), JWT_INVALID, "iat negative");
	is_int(verify(mint(HS256, "{\"iss\":\"miky\",\"sub\":\"" SUB "\","
	    "\"iat\":1699999999.9,\"exp\":1700000900}")), JWT_INVALID,
	    "iat not an integer");
	is_int(verify(mint(HS256, "{\"iss\":\"miky\",\"sub\":42,"
	    "\"iat\":1700000000,\"exp\":1700000900}")), JWT_INVALID,
	    "sub a number");
	is_int(verify(mint(HS256, "{\"iss\":1,\"sub\":\"" SUB "\","
	    "\"iat\":1700000000,\"exp\":1700000900}")), JWT_INVALID,
	    "iss a number");
	is_int(verify(mint(HS256, claims(",\"sid\":7"))), JWT_INVALID,
	    "sid a number");
	is_int(verify(mint(HS256, claims(",\"sid\":null"))), JWT_INVALID,
	    "sid null");
	is_int(verify(mint(HS256, "{\"iss\":\"miky\",\"sub\":\"" SUB "\","
	    "\"iat\":1700000000,\"exp\":1700000000}")), JWT_INVALID,
	    "exp equal to iat");
	is_int(verify(mint(HS256, "{\"iss\":\"miky\",\"sub\":\"" SUB "\","
	    "\"iat\":1700000000,\"exp\":1600000000}")), JWT_INVALID,
	    "exp before iat");
	memset(pad, 'x', 65);
	pad[65] = '\0';
	{
		char pl[512];

		snprintf(pl, sizeof(pl), "{\"iss\":\"miky\",\"sub\":\"%.65s\","
		    "\"iat\":1700000000,\"exp\":1700000900}", pad);
		is_int(verify(mint(HS256, pl)), JWT_INVALID, "sub of 65 "
		    "characters");
	}
	is_int(verify(mint(HS256, claims(",\"extra\":{\"a\":[1,2]}"))), JWT_OK,
	    "unknown extra claims are ignored (control)");

	/* Length: 2048 characters is the most a token may have. */
	for (n = 0; n < 3000; n++) {
		size_t plen, tlen;

		memset(pad, 'p', n);
		pad[n] = '\0';
		snprintf(copy, sizeof(copy), ",\"pad\":\"%s\"", pad);
		plen = strlen(claims(copy));
		tlen = strlen(KNOWN_H) + 1 + B64URL_LEN(plen) + 1 + 43;
		if (tlen == JWT_MAX_LEN) {
			is_int(strlen(mint(HS256, claims(copy))), JWT_MAX_LEN,
			    "a token of exactly %d characters", JWT_MAX_LEN);
			is_int(verify(tokbuf), JWT_OK, "is accepted");
		} else if (tlen == JWT_MAX_LEN + 1) {
			is_int(strlen(mint(HS256, claims(copy))),
			    JWT_MAX_LEN + 1, "a token of %d characters",
			    JWT_MAX_LEN + 1);
			is_int(verify(tokbuf), JWT_INVALID, "is refused, though "
			    "correctly signed");
		}
	}
	memset(pad, 'p', 3000);
	pad[3000] = '\0';
	snprintf(copy, sizeof(copy), ",\"pad\":\"%s\"", pad);
	is_int(verify(mint(HS256, claims(copy))), JWT_INVALID, "a correctly "
	    "signed 4 KB token is refused");

	/* The number of parts. */
	is_int(verify(""), JWT_INVALID, "empty string");
	is_int(verify("garbage"), JWT_INVALID, "no dots");
	is_int(verify(KNOWN_H "." KNOWN_P), JWT_INVALID, "one dot (no "
	    "signature part)");
	is_int(verify(".."), JWT_INVALID, "two dots only");
	is_int(verify("..."), JWT_INVALID, "three dots only");
	is_int(verify(KNOWN "." KNOWN_S), JWT_INVALID, "three dots (four "
	    "parts)");
	is_int(verify(KNOWN "."), JWT_INVALID, "a trailing dot");
	is_int(verify("." KNOWN), JWT_INVALID, "a leading dot");
	is_int(verify("." KNOWN_P "." KNOWN_S), JWT_INVALID, "empty header");
	/* Correctly signed, but the parts are not base64url or not JSON. */
	is_int(verify(mint_raw(KNOWN_H ".eyJ!" KNOWN_P)), JWT_INVALID,
	    "a '!' in the payload part, signed");
	is_int(verify(mint_raw(KNOWN_H ".Zm9vYmFyZ")), JWT_INVALID,
	    "a payload part of impossible length, signed");
	is_int(verify(mint_raw(KNOWN_H "." KNOWN_P "=")), JWT_INVALID,
	    "a padded payload part, signed");
	is_int(verify(mint_raw("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9=." KNOWN_P)),
	    JWT_INVALID, "a padded header part, signed");
	is_int(verify(mint_raw(KNOWN_H ".")), JWT_INVALID, "an empty payload "
	    "part, signed");
	is_int(verify(mint_raw(KNOWN_H "." KNOWN_P)), JWT_OK, "the known parts "
	    "signed by mint_raw (control)");
	is_int(verify(KNOWN_H " ." KNOWN_P "." KNOWN_S), JWT_INVALID,
	    "a space in the header part");

	return tap_done();
}
