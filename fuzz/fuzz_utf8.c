/*
 * libFuzzer target for lib/utf8.c.  utf8_valid() is compared with a
 * reference written from the table of well-formed byte sequences in
 * The Unicode Standard (chapter 3, table 3-7).  On valid input,
 * utf8_chars() must count the code points the reference found and
 * utf8_prefix() must stop on their boundaries; utf8_seq() must give
 * the reference's sequence length (0: ill-formed) at every offset.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "lib/utf8.h"

#define CHECK(c) do {							\
	if (!(c)) {							\
		fprintf(stderr, "fuzz_utf8: check failed: %s (line %d)\n", \
		    #c, __LINE__);					\
		abort();						\
	}								\
} while (0)

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static int
in(uint8_t c, uint8_t lo, uint8_t hi)
{
	return c >= lo && c <= hi;
}

/*
 * Returns the length of the well-formed sequence at s[0..n), or 0.
 * Table 3-7: the second byte's range depends on the first byte.
 */
static size_t
seq_len(const uint8_t *s, size_t n)
{
	uint8_t c = s[0], lo = 0x80, hi = 0xbf;
	size_t len, k;

	if (c <= 0x7f)
		return 1;
	if (in(c, 0xc2, 0xdf))
		len = 2;
	else if (in(c, 0xe0, 0xef)) {
		len = 3;
		if (c == 0xe0)
			lo = 0xa0;
		else if (c == 0xed)
			hi = 0x9f;
	} else if (in(c, 0xf0, 0xf4)) {
		len = 4;
		if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f;
	} else
		return 0;
	if (n < len || !in(s[1], lo, hi))
		return 0;
	for (k = 2; k < len; k++)
		if (!in(s[k], 0x80, 0xbf))
			return 0;
	return len;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	size_t *bound, i, len, chars = 0, k;
	int valid = 1;

	/* bound[k]: the byte offset where code point k starts. */
	bound = malloc((size + 1) * sizeof(*bound));
	if (bound == NULL)
		return 0;
	for (i = 0; i < size; i += len) {
		if ((len = seq_len(data + i, size - i)) == 0) {
			valid = 0;
			break;
		}
		bound[chars++] = i;
	}
	bound[chars] = size;

	CHECK(utf8_valid(s, size) == valid);
	/* utf8_seq() agrees with the reference at every offset. */
	for (i = 0; i < size && i < 4096; i++)
		CHECK(utf8_seq(s + i, size - i) == seq_len(data + i, size - i));
	CHECK(utf8_seq(s, 0) == 0);
	if (valid) {
		CHECK(utf8_chars(s, size) == chars);
		CHECK(utf8_prefix(s, size, chars) == size);
		CHECK(utf8_prefix(s, size, chars + 1) == size);
		CHECK(utf8_prefix(s, size, (size_t)-1) == size);
		/* A few cuts, and every one for short inputs. */
		for (k = 0; k <= chars; k = k < 64 ? k + 1 : k * 2) {
			CHECK(utf8_prefix(s, size, k) == bound[k]);
			CHECK(utf8_valid(s, bound[k]));
			CHECK(utf8_chars(s, bound[k]) == k);
		}
	}
	/* Any cut of valid text at a boundary is valid, and only then. */
	if (valid && size > 0) {
		i = data[0] % size;
		CHECK(utf8_valid(s, i) == ((data[i] & 0xc0) != 0x80));
	}
	free(bound);
	return 0;
}
