#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "xalloc.h"

void
buf_grow(struct buf *b, size_t more)
{
	size_t need;

	if (more > SIZE_MAX / 2 - b->len)
		xoom();
	need = b->len + more + 1;
	if (need <= b->cap)
		return;
	if (b->cap == 0)
		b->cap = 256;
	while (b->cap < need)
		b->cap *= 2;
	b->p = xrealloc(b->p, b->cap);
}

void
buf_add(struct buf *b, const void *p, size_t n)
{
	buf_grow(b, n);
	memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void
buf_puts(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

void
buf_putc(struct buf *b, char c)
{
	buf_add(b, &c, 1);
}

void
buf_vprintf(struct buf *b, const char *fmt, va_list ap)
{
	va_list copy;
	int n;

	buf_grow(b, 64);
	va_copy(copy, ap);
	n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, copy);
	va_end(copy);
	if (n < 0)
		xoom();
	if ((size_t)n >= b->cap - b->len) {
		buf_grow(b, (size_t)n);
		vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
	}
	b->len += (size_t)n;
}

void
buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	buf_vprintf(b, fmt, ap);
	va_end(ap);
}

/*
 * Bytes that end a run of plain ones: the quote, the backslash, control
 * characters, and 0xe2 (which starts U+2028 and U+2029).
 */
static inline bool
special(unsigned char c)
{
	return c < 0x20 || c == '"' || c == '\\' || c == 0xe2;
}

#define ONES	0x0101010101010101ULL
#define HIGHS	0x8080808080808080ULL
/* A byte of x is 0 (an exact test; all bytes at once). */
#define ZERO_BYTE(x)	(((x) - ONES) & ~(x) & HIGHS)

/* True if one of the 8 bytes of x may be special(). */
static inline bool
special8(uint64_t x)
{
	return ((x - 0x20 * ONES) & ~x & HIGHS) != 0 ||
	    ZERO_BYTE(x ^ ('"' * ONES)) != 0 ||
	    ZERO_BYTE(x ^ ('\\' * ONES)) != 0 ||
	    ZERO_BYTE(x ^ (0xe2 * ONES)) != 0;
}

/* The length of the run of plain bytes at the start of p[0..n). */
static size_t
plain_run(const unsigned char *p, size_t n)
{
	uint64_t x;
	size_t i = 0;

	for (; i + 8 <= n; i += 8) {
		memcpy(&x, p + i, 8);
		if (special8(x))
			break;
	}
	while (i < n && !special(p[i]))
		i++;
	return i;
}

/*
 * Escapes what JSON requires (quote, backslash, control characters) and
 * also U+2028/U+2029 so the output is safe inside a <script> block.  The
 * input is expected to be valid UTF-8; bytes are copied as they are.
 * Runs of plain bytes are found eight at a time and copied whole.
 */
void
buf_json_strn(struct buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, run;
	unsigned char c;
	char esc[7];

	buf_grow(b, n + 2);
	buf_putc(b, '"');
	while (i < n) {
		run = plain_run(p + i, n - i);
		buf_add(b, s + i, run);
		if ((i += run) == n)
			break;
		c = p[i++];
		esc[0] = '\\';
		if (c == '"' || c == '\\') {
			esc[1] = (char)c;
			buf_add(b, esc, 2);
		} else if (c == 0xe2) {
			if (i + 1 < n && p[i] == 0x80 &&
			    (p[i + 1] == 0xa8 || p[i + 1] == 0xa9)) {
				buf_add(b, p[i + 1] == 0xa8 ? "\\u2028" :
				    "\\u2029", 6);
				i += 2;
			} else
				buf_putc(b, (char)c);
		} else {
			switch (c) {
			case '\n': esc[1] = 'n'; break;
			case '\r': esc[1] = 'r'; break;
			case '\t': esc[1] = 't'; break;
			case '\b': esc[1] = 'b'; break;
			case '\f': esc[1] = 'f'; break;
			default:
				memcpy(esc + 1, "u00", 3);
				esc[4] = hex[c >> 4];
				esc[5] = hex[c & 15];
				buf_add(b, esc, 6);
				continue;
			}
			buf_add(b, esc, 2);
		}
	}
	buf_putc(b, '"');
}

void
buf_json_str(struct buf *b, const char *s)
{
	if (s == NULL)
		buf_puts(b, "null");
	else
		buf_json_strn(b, s, strlen(s));
}

void
buf_reset(struct buf *b)
{
	b->len = 0;
	if (b->p != NULL)
		b->p[0] = '\0';
}

void
buf_free(struct buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

char *
buf_detach(struct buf *b)
{
	char *p = b->p != NULL ? b->p : xstrdup("");

	b->p = NULL;
	b->len = b->cap = 0;
	return p;
}
