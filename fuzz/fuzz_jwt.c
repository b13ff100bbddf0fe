/*
 * libFuzzer target for lib/jwt.c.  The first byte picks a mode:
 *
 *  - even: the rest is a token as a client sends it.  jwt_verify() must
 *    not accept it unless its third part is the right MAC over the
 *    first two (checked here with hmac_sha256).
 *  - odd: the rest, split at its first NUL, is a header and a payload
 *    that the fuzzer writes freely; they are signed with the right key,
 *    as only the server could, so every check after the MAC is
 *    reached.  An accepted token must then have a header of "alg":
 *    "HS256" and at most "typ": "JWT", nothing else and no member twice,
 *    and claims that fit their buffers, with iat <= exp.
 *
 * Accepted tokens re-signed with jwt_sign() from their claims must
 * verify again with the same claims.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "lib/b64.h"
#include "lib/jwt.h"
#include "lib/token.h"

#define CHECK(c) do {							\
	if (!(c)) {							\
		fprintf(stderr, "fuzz_jwt: check failed: %s (line %d)\n", \
		    #c, __LINE__);					\
		abort();						\
	}								\
} while (0)

#define KEY	"fuzz-jwt-secret-0123456789-abcdefghijklmnop"
#define ISS	"miky"
#define NOW	1700000000

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* The header a token accepted must have had. */
static void
check_header(const char *tok)
{
	const char *dot = strchr(tok, '.');
	unsigned char raw[JWT_MAX_LEN];
	const cJSON *m;
	cJSON *h;
	long n;
	int alg = 0, typ = 0;

	CHECK(dot != NULL);
	n = b64url_decode(tok, (size_t)(dot - tok), raw);
	CHECK(n >= 0);
	h = cJSON_ParseWithLength((const char *)raw, (size_t)n);
	CHECK(cJSON_IsObject(h));
	for (m = h->child; m != NULL; m = m->next) {
		CHECK(cJSON_IsString(m));
		if (strcmp(m->string, "alg") == 0) {
			CHECK(strcmp(m->valuestring, "HS256") == 0);
			alg++;
		} else {
			CHECK(strcmp(m->string, "typ") == 0);
			CHECK(strcmp(m->valuestring, "JWT") == 0);
			typ++;
		}
	}
	CHECK(alg == 1 && typ <= 1);
	cJSON_Delete(h);
}

static void
check_accepted(const char *tok, const struct jwt_claims *c)
{
	unsigned char mac[SHA256_LEN], given[SHA256_LEN + 3];
	const char *last = strrchr(tok, '.');
	struct jwt_claims again;
	char out[JWT_MAX_LEN];

	CHECK(last != NULL);
	hmac_sha256(KEY, strlen(KEY), tok, (size_t)(last - tok), mac);
	CHECK(b64url_decode(last + 1, strlen(last + 1), given) == SHA256_LEN);
	CHECK(memcmp(mac, given, SHA256_LEN) == 0);
	check_header(tok);
	CHECK(strlen(c->sub) <= JWT_CLAIM_MAX && strlen(c->sid) <= JWT_CLAIM_MAX);
	CHECK(c->iat <= NOW + 60 && c->iat < c->exp);
	if (jwt_sign(KEY, strlen(KEY), ISS, c, out, sizeof(out)) == 0) {
		CHECK(jwt_verify(KEY, strlen(KEY), ISS, out, NOW, 60, &again) ==
		    JWT_OK || again.exp <= NOW);
		CHECK(strcmp(again.sub, c->sub) == 0);
		CHECK(strcmp(again.sid, c->sid) == 0);
		CHECK(again.iat == c->iat && again.exp == c->exp);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char tok[3 * JWT_MAX_LEN];
	unsigned char mac[SHA256_LEN];
	const uint8_t *nul;
	struct jwt_claims c;
	size_t hl, pl, n;
	enum jwt_status st;

	if (size < 1 || size > 2 * JWT_MAX_LEN)
		return 0;
	if (data[0] % 2 == 0) {
		memcpy(tok, data + 1, size - 1);
		tok[size - 1] = '\0';
	} else {
		nul = memchr(data + 1, 0, size - 1);
		hl = nul != NULL ? (size_t)(nul - data - 1) : size - 1;
		pl = nul != NULL ? size - 2 - hl : 0;
		if (B64URL_LEN(hl) + B64URL_LEN(pl) + 48 > sizeof(tok))
			return 0;
		b64url_encode(data + 1, hl, tok);
		n = strlen(tok);
		tok[n++] = '.';
		b64url_encode(nul != NULL ? nul + 1 : data, pl, tok + n);
		n = strlen(tok);
		hmac_sha256(KEY, strlen(KEY), tok, n, mac);
		tok[n++] = '.';
		b64url_encode(mac, sizeof(mac), tok + n);
	}
	st = jwt_verify(KEY, strlen(KEY), ISS, tok, NOW, 60, &c);
	CHECK(st == JWT_OK || st == JWT_INVALID || st == JWT_EXPIRED);
	if (st == JWT_OK)
		check_accepted(tok, &c);
	return 0;
}
