/*
 * libFuzzer target for lib/json.c: json_parse() on the raw bytes (not
 * NUL-terminated, as a request body), then json_validate() against a
 * spec holding every field type.  Besides the sanitizers, it checks
 * what the contracts promise: an accepted tree prints back to JSON that
 * parses again; accepted values are valid UTF-8 within their bounds;
 * refusals carry the right error code.
 */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/json.h"
#include "lib/utf8.h"

#define CHECK(c) do {							\
	if (!(c)) {							\
		fprintf(stderr, "fuzz_json: check failed: %s (line %d)\n", \
		    #c, __LINE__);					\
		abort();						\
	}								\
} while (0)

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static const char *const words[] = { "a", "bb", "ccc", NULL };

/* Short names, so the fuzzer finds them. */
static const struct jfield spec[] = {
	{ "s", JF_STRING, JF_TRIM, 1, 8 },
	{ "t", JF_STRING, JF_NULLABLE, 0, 3 },
	{ "l", JF_STRING, JF_LINE, 0, 8 },
	{ "e", JF_EMAIL, 0, 3, 254 },
	{ "u", JF_UUID, JF_NULLABLE },
	{ "w", JF_WORD, 0, 0, 0, words },
	{ "i", JF_INT, 0, LLONG_MIN, LLONG_MAX },
	{ "n", JF_INT, JF_NULLABLE, -5, 5 },
	{ "b", JF_BOOL, 0 },
	{ "x", JF_ANY, 0 },
	{ "r", JF_BOOL, JF_REQUIRED },
	{ NULL }
};
#define NSPEC	(sizeof(spec) / sizeof(spec[0]) - 1)

/* No C0, DEL or C1 (U+0080-U+009F) code point, decoded the long way. */
static int
has_control(const char *str)
{
	const unsigned char *s = (const unsigned char *)str;
	unsigned cp;
	size_t len;

	for (; *s != '\0'; s += len) {
		if (*s < 0x80)
			cp = *s, len = 1;
		else if (*s < 0xe0)
			cp = (*s & 0x1fu) << 6 | (s[1] & 0x3fu), len = 2;
		else
			cp = 0x100, len = *s < 0xf0 ? 3 : 4;
		if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f))
			return 1;
	}
	return 0;
}

static void
check_values(const struct jvalue *v)
{
	size_t i, n;

	for (i = 0; i < NSPEC; i++) {
		const struct jfield *f = &spec[i];

		CHECK(!(v[i].present && v[i].is_null));
		if (v[i].is_null)
			CHECK((f->flags & JF_NULLABLE) || f->type == JF_ANY);
		if (f->flags & JF_REQUIRED)
			CHECK(v[i].node != NULL);
		if (!v[i].present)
			continue;
		switch (f->type) {
		case JF_STRING:
		case JF_EMAIL:
		case JF_UUID:
		case JF_WORD:
			CHECK(v[i].s != NULL);
			n = strlen(v[i].s);
			CHECK(utf8_valid(v[i].s, n));
			break;
		default:
			n = 0;
			break;
		}
		switch (f->type) {
		case JF_STRING:
			CHECK((long long)utf8_chars(v[i].s, n) >= f->min &&
			    (long long)utf8_chars(v[i].s, n) <= f->max);
			if (f->flags & JF_LINE)
				CHECK(!has_control(v[i].s));
			break;
		case JF_EMAIL:
			CHECK(n <= 254 && json_email_ok(v[i].s));
			break;
		case JF_UUID:
			CHECK(json_uuid_ok(v[i].s) && n == 36);
			break;
		case JF_WORD:
			CHECK(v[i].i >= 0 && v[i].i < 3 &&
			    strcmp(words[v[i].i], v[i].s) == 0);
			break;
		case JF_INT:
			CHECK(v[i].i >= f->min && v[i].i <= f->max);
			break;
		default:
			break;
		}
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct arena *a;
	struct jvalue vals[NSPEC];
	struct jerror err = { NULL, NULL, NULL };
	cJSON *root;
	char *text;

	if (a == NULL)
		a = arena_new();
	root = json_parse(a, (const char *)data, size, &err);
	if (root == NULL) {
		CHECK(err.code != NULL &&
		    strcmp(err.code, "invalid_json") == 0);
		CHECK(err.message != NULL && err.field == NULL);
		arena_reset(a);
		return 0;
	}
	/* What was accepted prints back to JSON that is accepted again. */
	text = cJSON_PrintUnformatted(root);
	if (text != NULL) {
		CHECK(json_parse(a, text, strlen(text), &err) != NULL);
		cJSON_free(text);
	}
	if (json_validate(a, root, spec, vals, &err) == 0)
		check_values(vals);
	else {
		CHECK(err.code != NULL &&
		    strcmp(err.code, "invalid_input") == 0);
		CHECK(err.message != NULL);
		if (err.field != NULL)
			CHECK(utf8_valid(err.field, strlen(err.field)));
	}
	arena_reset(a);
	return 0;
}
