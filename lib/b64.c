#include <string.h>

#include "b64.h"

static const char std_alpha[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char url_alpha[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Encodes with the given alphabet; pads with '=' when pad is set. */
static size_t
encode(const char *alpha, const unsigned char *in, size_t n, char *out,
    int pad)
{
	size_t i, o = 0;

	for (i = 0; i + 2 < n; i += 3) {
		unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 |
		    in[i + 2];

		out[o++] = alpha[v >> 18 & 63];
		out[o++] = alpha[v >> 12 & 63];
		out[o++] = alpha[v >> 6 & 63];
		out[o++] = alpha[v & 63];
	}
	if (i < n) {
		unsigned v = (unsigned)in[i] << 16 |
		    (i + 1 < n ? (unsigned)in[i + 1] << 8 : 0);

		out[o++] = alpha[v >> 18 & 63];
		out[o++] = alpha[v >> 12 & 63];
		if (i + 1 < n)
			out[o++] = alpha[v >> 6 & 63];
		else if (pad)
			out[o++] = '=';
		if (pad)
			out[o++] = '=';
	}
	out[o] = '\0';
	return o;
}

void
b64url_encode(const unsigned char *in, size_t n, char *out)
{
	encode(url_alpha, in, n, out, 0);
}

void
b64_encode(const unsigned char *in, size_t n, char *out)
{
	encode(std_alpha, in, n, out, 1);
}

static int
url_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

long
b64url_decode(const char *in, size_t n, unsigned char *out)
{
	size_t i, o = 0;
	unsigned v = 0;
	int bits = 0, d;

	if (n % 4 == 1)
		return -1;
	for (i = 0; i < n; i++) {
		if ((d = url_value(in[i])) < 0)
			return -1;
		v = (v << 6 | (unsigned)d) & 0xffffff;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (unsigned char)(v >> bits);
		}
	}
	/* Canonical form only: the unused low bits must be zero. */
	if (bits > 0 && (v & ((1u << bits) - 1)) != 0)
		return -1;
	return (long)o;
}
