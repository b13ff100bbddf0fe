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

int
main(void)
{
	test_growth();
	test_printf();
	test_json();
	return tap_done();
}
