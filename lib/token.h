/*
 * Random tokens and the hashes and MACs around them (OpenSSL).
 *
 * A token handed to a client is 32 random bytes in base64url (43
 * characters); only its SHA-256 is stored, so a database leak gives no
 * usable token.
 */
#ifndef MIKY_TOKEN_H
#define MIKY_TOKEN_H

#include <stdbool.h>
#include <stddef.h>

#define TOKEN_BYTES	32
#define TOKEN_LEN	43		/* B64URL_LEN(TOKEN_BYTES) */
#define SHA256_LEN	32
/* "\x" + 64 hex digits: a bytea literal for a query parameter. */
#define BYTEA_HEX_LEN	(2 + 2 * SHA256_LEN)

/* Fills buf from the kernel's CSPRNG; ends the process if it cannot. */
void	token_random(void *buf, size_t n);
/* A new token: TOKEN_LEN characters and a NUL. */
void	token_new(char out[TOKEN_LEN + 1]);
/* A random string of n characters drawn from alphabet, plus a NUL. */
void	token_from_alphabet(char *out, size_t n, const char *alphabet);
/* True if s looks like a token (43 base64url characters). */
bool	token_well_formed(const char *s);

void	sha256(const void *data, size_t n, unsigned char out[SHA256_LEN]);
/* SHA-256 of a token as a bytea hex literal, for SQL parameters. */
void	token_hash_hex(const char *tok, char out[BYTEA_HEX_LEN + 1]);
void	hmac_sha256(const void *key, size_t keylen, const void *data,
	    size_t n, unsigned char out[SHA256_LEN]);
/* The MAC of the concatenation of nparts pieces, without copying them. */
void	hmac_sha256v(const void *key, size_t keylen, const void *const *parts,
	    const size_t *lens, size_t nparts, unsigned char out[SHA256_LEN]);
/* Lower-case hex of n bytes into out (2n + 1 bytes). */
void	hex_encode(const unsigned char *in, size_t n, char *out);
/* Compares in constant time for equal lengths. */
bool	secure_equal(const void *a, const void *b, size_t n);

#endif
