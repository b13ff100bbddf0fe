/*
 * libFuzzer target for buf_json_strn() (lib/buf.c), which escapes the
 * text users and the model write (messages, titles, names) into every
 * answer, eight bytes at a time.  Its output must be a JSON string that
 * cJSON reads back as exactly the input when the input has no NUL (cJSON
 * stops at one) and is valid UTF-8; it must never hold a raw control
 * character, a quote or backslash that is not escaped, or U+2028/U+2029;
 * and it must be the same whatever the input's alignment in memory.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "lib/buf.h"
#include "lib/utf8.h"

#define CHECK(c) do {							\
	if (!(c)) {							\
		fprintf(stderr, "fuzz_jsonstr: check failed: %s (line %d)\n", \
		    #c, __LINE__);					\
		abort();						\
	}								\
} while (0)

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* No raw control byte, no lone quote or backslash, no U+2028/9. */
static void
well_escaped(const struct buf *b)
{
	const unsigned char *p = (const unsigned char *)b->p;
	size_t i;

	CHECK(b->len >= 2 && p[0] == '"' && p[b->len - 1] == '"');
	for (i = 1; i + 1 < b->len; i++) {
		CHECK(p[i] >= 0x20);
		CHECK(p[i] != '"');
		if (p[i] == '\\') {
			i++;
			CHECK(i + 1 < b->len && p[i] != '\0' && strchr("\"\\nrtbfu", p[i]) != NULL);
		}
		CHECK(!(p[i] == 0xe2 && i + 2 < b->len && p[i + 1] == 0x80 &&
		    (p[i + 2] == 0xa8 || p[i + 2] == 0xa9)));
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t n)
{
	struct buf a = { 0 }, b = { 0 };
	char *copy = malloc(n + 8);
	cJSON *j;

	CHECK(copy != NULL);
	buf_json_strn(&a, (const char *)data, n);
	well_escaped(&a);
	/* The same from another alignment. */
	memcpy(copy + 3, data, n);
	buf_json_strn(&b, copy + 3, n);
	CHECK(a.len == b.len && memcmp(a.p, b.p, a.len) == 0);
	if (memchr(data, 0, n) == NULL && utf8_valid((const char *)data, n)) {
		j = cJSON_ParseWithLength(a.p, a.len);
		CHECK(j != NULL && cJSON_IsString(j));
		CHECK(strlen(j->valuestring) == n &&
		    memcmp(j->valuestring, data, n) == 0);
		cJSON_Delete(j);
	}
	free(copy);
	buf_free(&a);
	buf_free(&b);
	return 0;
}
