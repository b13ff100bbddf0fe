/*
 * lib/buf.c: growth keeps the bytes and the terminating NUL, printf
 * appends at any size, and JSON string escaping covers quotes,
 * backslashes, control characters and U+2028/U+2029.
 */
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "t/unit/tap.h"

/* Escapes n bytes of s and compares with want. */
static void
json_is(const char *s, size_t n, const char *want, const char *name)
{
	struct buf b = BUF_INIT;

	buf_json_strn(&b, s, n);
	is_str(b.p, want, "json_str: %s", name);
	is_int(b.len, strlen(want), "json_str: %s: length", name);
	buf_free(&b);
}

static void
test_growth(void)
{
	struct buf b = BUF_INIT;
	size_t i;
	int same = 1;
	char *s;

	buf_puts(&b, "ab");
	buf_putc(&b, 'c');
	buf_add(&b, "d\0e", 3);
	is_int(b.len, 6, "puts, putc and add count bytes, NUL included");
	ok(memcmp(b.p, "abcd\0e", 7) == 0, "bytes and terminator in place");
	for (i = 0; i < 10000; i++)
		buf_putc(&b, (char)('a' + i % 26));
	is_int(b.len, 10006, "10000 more single bytes");
	ok(b.cap > b.len && b.p[b.len] == '\0',
	    "room for the terminator after growth");
	for (i = 0; i < 10000; i++)
		same &= b.p[6 + i] == (char)('a' + i % 26);
	ok(same, "bytes survive reallocation");

	buf_reset(&b);
	is_int(b.len, 0, "reset empties");
	is_str(b.p, "", "reset leaves an empty string");
	ok(b.cap >= 10007, "reset keeps the memory");

	buf_puts(&b, "x");
	s = buf_detach(&b);
	is_str(s, "x", "detach hands over the string");
	ok(b.p == NULL && b.len == 0 && b.cap == 0, "detach empties the buf");
	free(s);
	s = buf_detach(&b);
	is_str(s, "", "detach of an empty buf gives \"\"");
	free(s);
	buf_free(&b);
	buf_reset(&b);
	ok(b.p == NULL && b.len == 0, "reset and free of an empty buf");
}

static void
test_printf(void)
{
	struct buf b = BUF_INIT;
	char big[1001];

	buf_printf(&b, "%d:%s", 12, "ab");
	is_str(b.p, "12:ab", "printf into an empty buf");
	buf_printf(&b, "|%05d|%x", 42, 255u);
	is_str(b.p, "12:ab|00042|ff", "printf appends");
	is_int(b.len, 14, "printf length");

	memset(big, 'z', 1000);
	big[1000] = '\0';
	buf_printf(&b, "<%s>", big);
	is_int(b.len, 14 + 1002, "printf larger than the free room");
	ok(strncmp(b.p, "12:ab|00042|ff<z", 16) == 0 &&
	    strcmp(b.p + b.len - 2, "z>") == 0, "large printf text intact");
	buf_reset(&b);
	buf_printf(&b, "%s", "");
	is_int(b.len, 0, "an empty printf adds nothing");
	buf_free(&b);
}

static void
test_json(void)
{
	struct buf b = BUF_INIT;

	json_is("plain", 5, "\"plain\"", "plain text");
	json_is("", 0, "\"\"", "empty");
	json_is("a\"b\\c/d", 7, "\"a\\\"b\\\\c/d\"", "quote and backslash");
	json_is("\n\r\t\b\f", 5, "\"\\n\\r\\t\\b\\f\"", "short escapes");
	json_is("\x01\x1f\x7f", 3, "\"\\u0001\\u001f\x7f\"",
	    "other controls as \\u00XX; DEL as is");
	json_is("a\0b", 3, "\"a\\u0000b\"", "NUL inside a counted string");
	json_is("x\xe2\x80\xa8y\xe2\x80\xa9", 8, "\"x\\u2028y\\u2029\"",
	    "U+2028 and U+2029 escaped");
	json_is("\xe2\x80\xa7\xe2\x80\xaa", 6, "\"\xe2\x80\xa7\xe2\x80\xaa\"",
	    "U+2027 and U+202A untouched");
	json_is("\xe2\x80", 2, "\"\xe2\x80\"",
	    "a cut-off E2 80 at the end is copied");
	json_is("\xc3\xa9t\xc3\xa9 \xf0\x9f\x98\x80", 10,
	    "\"\xc3\xa9t\xc3\xa9 \xf0\x9f\x98\x80\"", "UTF-8 copied as is");
	json_is("ab\"cd", 2, "\"ab\"", "json_strn stops at n");

	buf_json_str(&b, NULL);
	is_str(b.p, "null", "json_str(NULL) writes null");
	buf_putc(&b, ',');
	buf_json_str(&b, "q\"");
	is_str(b.p, "null,\"q\\\"\"", "json_str appends");
	buf_free(&b);
}

/* The escaper one byte at a time, as the contract says, for comparison. */
static void
reference(struct buf *b, const unsigned char *p, size_t n)
{
	size_t i;

	buf_putc(b, '"');
	for (i = 0; i < n; i++) {
		if (p[i] == '"' || p[i] == '\\')
			buf_printf(b, "\\%c", p[i]);
		else if (p[i] == '\n')
			buf_puts(b, "\\n");
		else if (p[i] == '\r')
			buf_puts(b, "\\r");
		else if (p[i] == '\t')
			buf_puts(b, "\\t");
		else if (p[i] == '\b')
			buf_puts(b, "\\b");
		else if (p[i] == '\f')
			buf_puts(b, "\\f");
		else if (p[i] < 0x20)
			buf_printf(b, "\\u%04x", p[i]);
		else if (p[i] == 0xe2 && i + 2 < n && p[i + 1] == 0x80 &&
		    (p[i + 2] == 0xa8 || p[i + 2] == 0xa9)) {
			buf_puts(b, p[i + 2] == 0xa8 ? "\\u2028" : "\\u2029");
			i += 2;
		} else
			buf_putc(b, (char)p[i]);
	}
	buf_putc(b, '"');
}

/*
 * Random strings of every length up to 80, drawn mostly from the bytes
 * that matter (each special byte, its neighbours, U+2028/9 and their
 * broken prefixes), at every alignment: the same as the reference.
 */
static void
test_json_random(void)
{
	static const unsigned char pick[] = { 'a', 'z', ' ', '!', '#', '"',
	    '\\', '[', ']', 0x00, 0x01, 0x08, 0x09, 0x0a, 0x0c, 0x0d, 0x1f,
	    0x7f, 0x80, 0xa8, 0xa9, 0xe1, 0xe2, 0xe3, 0xff };
	unsigned char in[96];
	struct buf got = { 0 }, want = { 0 };
	unsigned seed = 12345;
	int k, bad = 0;
	size_t n, i, off;

	for (k = 0; k < 200000; k++) {
		seed = seed * 1103515245u + 12345u;
		n = (seed >> 8) % 81;
		off = (seed >> 20) % 8;
		for (i = 0; i < n; i++) {
			seed = seed * 1103515245u + 12345u;
			in[off + i] = (seed >> 16) % 4 == 0 ? 'x' :
			    pick[(seed >> 8) % sizeof(pick)];
		}
		buf_reset(&got);
		buf_reset(&want);
		buf_json_strn(&got, (const char *)in + off, n);
		reference(&want, in + off, n);
		if (got.len != want.len || memcmp(got.p, want.p, got.len) != 0)
			bad++;
	}
	is_int(bad, 0, "200,000 random strings: the same as the byte-by-byte "
	    "reference");
	buf_free(&got);
	buf_free(&want);
}

int
main(void)
{
	test_growth();
	test_printf();
	test_json();
	test_json_random();
	return tap_done();
}
