/*
 * Base64: the URL-safe alphabet without padding (RFC 4648 section 5) for
 * tokens and JWTs, and the standard alphabet with padding for MIME.
 */
#ifndef MIKY_B64_H
#define MIKY_B64_H

#include <stddef.h>

/* Encoded length of n bytes, without the NUL. */
#define B64URL_LEN(n)	(((n) * 4 + 2) / 3)
#define B64_LEN(n)	((((n) + 2) / 3) * 4)

/* Writes B64URL_LEN(n) characters and a NUL to out. */
void	b64url_encode(const unsigned char *in, size_t n, char *out);
/*
 * Decodes n characters of unpadded base64url into out (room for n*3/4
 * bytes).  Returns the byte count, or -1 for a character outside the
 * alphabet, a length that cannot occur, or non-zero trailing bits.
 */
long	b64url_decode(const char *in, size_t n, unsigned char *out);
/* Standard alphabet with '=' padding; writes B64_LEN(n) chars + NUL. */
void	b64_encode(const unsigned char *in, size_t n, char *out);

#endif
