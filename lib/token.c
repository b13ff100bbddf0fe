#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "b64.h"
#include "log.h"
#include "token.h"
#include "xalloc.h"

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

/*
 * HMAC (RFC 2104) over SHA-256 with the keyed inner and outer states
 * kept per thread: every request checks a JWT with the same secret, and
 * setting the key up is most of the cost of a short message.  A call
 * with another key sets them up anew.
 */
struct hmac_state {
	unsigned char	 key[128];
	size_t		 keylen;
	EVP_MD_CTX	*inner, *outer, *work;
};

static pthread_key_t	hmac_key;
static pthread_once_t	hmac_once = PTHREAD_ONCE_INIT;

static void
hmac_state_free(void *p)
{
	struct hmac_state *h = p;

	EVP_MD_CTX_free(h->inner);
	EVP_MD_CTX_free(h->outer);
	EVP_MD_CTX_free(h->work);
	free(h);
}

static void
hmac_key_create(void)
{
	pthread_key_create(&hmac_key, hmac_state_free);
}

/* This thread's state, made on first use and freed when it exits. */
static struct hmac_state *
hmac_state(void)
{
	struct hmac_state *h;

	pthread_once(&hmac_once, hmac_key_create);
	if ((h = pthread_getspecific(hmac_key)) != NULL)
		return h;
	h = xcalloc(1, sizeof(*h));
	h->inner = EVP_MD_CTX_new();
	h->outer = EVP_MD_CTX_new();
	h->work = EVP_MD_CTX_new();
	if (h->inner == NULL || h->outer == NULL || h->work == NULL)
		xoom();
	pthread_setspecific(hmac_key, h);
	return h;
}

static void
hmac_setup(struct hmac_state *hm, const void *key, size_t keylen)
{
	unsigned char k[64] = { 0 }, pad[64];
	size_t i;

	if (keylen > sizeof(k))
		sha256(key, keylen, k);
	else
		memcpy(k, key, keylen);
	for (i = 0; i < sizeof(pad); i++)
		pad[i] = k[i] ^ 0x36;
	EVP_DigestInit_ex(hm->inner, EVP_sha256(), NULL);
	EVP_DigestUpdate(hm->inner, pad, sizeof(pad));
	for (i = 0; i < sizeof(pad); i++)
		pad[i] = k[i] ^ 0x5c;
	EVP_DigestInit_ex(hm->outer, EVP_sha256(), NULL);
	EVP_DigestUpdate(hm->outer, pad, sizeof(pad));
	if (keylen <= sizeof(hm->key)) {
		memcpy(hm->key, key, keylen);
		hm->keylen = keylen;
	} else
		hm->keylen = 0;
}

void
hmac_sha256v(const void *key, size_t keylen, const void *const *parts,
    const size_t *lens, size_t nparts, unsigned char out[SHA256_LEN])
{
	struct hmac_state *hm = hmac_state();
	unsigned char ih[SHA256_LEN];
	unsigned int len = SHA256_LEN;
	size_t i;

	if (hm->keylen == 0 || hm->keylen != keylen ||
	    CRYPTO_memcmp(hm->key, key, keylen) != 0)
		hmac_setup(hm, key, keylen);
	EVP_MD_CTX_copy_ex(hm->work, hm->inner);
	for (i = 0; i < nparts; i++)
		EVP_DigestUpdate(hm->work, parts[i], lens[i]);
	EVP_DigestFinal_ex(hm->work, ih, &len);
	EVP_MD_CTX_copy_ex(hm->work, hm->outer);
	EVP_DigestUpdate(hm->work, ih, sizeof(ih));
	EVP_DigestFinal_ex(hm->work, out, &len);
}

void
hmac_sha256(const void *key, size_t keylen, const void *data, size_t n,
    unsigned char out[SHA256_LEN])
{
	hmac_sha256v(key, keylen, &data, &n, 1, out);
}

bool
secure_equal(const void *a, const void *b, size_t n)
{
	return CRYPTO_memcmp(a, b, n) == 0;
}
