#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "b64.h"
#include "log.h"
#include "token.h"

void
token_random(void *buf, size_t n)
{
	unsigned char *p = buf;
	ssize_t got;

	while (n > 0) {
		got = getrandom(p, n, 0);
		if (got < 0) {
			if (errno == EINTR)
				continue;
			log_crit("getrandom failed");
			_Exit(71);
		}
		p += got;
		n -= (size_t)got;
	}
}

void
token_new(char out[TOKEN_LEN + 1])
{
	unsigned char raw[TOKEN_BYTES];

	token_random(raw, sizeof(raw));
	b64url_encode(raw, sizeof(raw), out);
}

/*
 * Rejection sampling keeps every character equally likely whatever the
 * alphabet's size.
 */
void
token_from_alphabet(char *out, size_t n, const char *alphabet)
{
	size_t len = strlen(alphabet), i = 0;
	unsigned limit = 256 - 256 % (unsigned)len;
	unsigned char rnd[64];

	while (i < n) {
		size_t k;

		token_random(rnd, sizeof(rnd));
		for (k = 0; k < sizeof(rnd) && i < n; k++)
			if (rnd[k] < limit)
				out[i++] = alphabet[rnd[k] % len];
	}
	out[n] = '\0';
}

bool
token_well_formed(const char *s)
{
	size_t i;

	for (i = 0; i < TOKEN_LEN; i++) {
		char c = s[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '_'))
			return false;
	}
	return s[i] == '\0';
}

void
sha256(const void *data, size_t n, unsigned char out[SHA256_LEN])
{
	unsigned int len = SHA256_LEN;

	EVP_Digest(data, n, out, &len, EVP_sha256(), NULL);
}

void
hex_encode(const unsigned char *in, size_t n, char *out)
{
	static const char hex[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = hex[in[i] >> 4];
		out[2 * i + 1] = hex[in[i] & 15];
	}
	out[2 * n] = '\0';
}

void
token_hash_hex(const char *tok, char out[BYTEA_HEX_LEN + 1])
{
	unsigned char h[SHA256_LEN];

	sha256(tok, strlen(tok), h);
	out[0] = '\\';
	out[1] = 'x';
	hex_encode(h, sizeof(h), out + 2);
}

void
hmac_sha256(const void *key, size_t keylen, const void *data, size_t n,
    unsigned char out[SHA256_LEN])
{
	unsigned int len = SHA256_LEN;

	HMAC(EVP_sha256(), key, (int)keylen, data, n, out, &len);
}

bool
secure_equal(const void *a, const void *b, size_t n)
{
	return CRYPTO_memcmp(a, b, n) == 0;
}
