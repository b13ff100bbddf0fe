/*
 * libFuzzer target for lib/url.c.  The input, made a C string as the
 * server sees REQUEST_URI, goes through url_split_path() and
 * url_parse_query(); each result is compared with a plain reference
 * (split on '/' or '&', decode each piece with url_decode()), and every
 * decoded string must be valid UTF-8.  url_decode() also gets the raw
 * bytes, NUL bytes included, and its output length is checked.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/url.h"
#include "lib/utf8.h"

#define CHECK(c) do {							\
	if (!(c)) {							\
		fprintf(stderr, "fuzz_url: check failed: %s (line %d)\n", \
		    #c, __LINE__);					\
		abort();						\
	}								\
} while (0)

#define MAXSEGS		8
#define MAXPAIRS	8

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static int
good(const char *s)
{
	return s != NULL && utf8_valid(s, strlen(s));
}

/* Decoding raw bytes: each %XX takes 3 bytes to 1, anything else 1. */
static void
check_decode(struct arena *a, const char *s, size_t n, int plus)
{
	const char *out = url_decode(a, s, n, plus);
	size_t i, want = 0;

	if (out == NULL)
		return;
	for (i = 0; i < n; i++, want++) {
		CHECK(s[i] != '\0');
		if (s[i] == '%')
			i += 2;
	}
	CHECK(strlen(out) == want);
	CHECK(utf8_valid(out, want));
}

static void
check_path(struct arena *a, const char *path)
{
	char *segs[MAXSEGS + 1];
	const char *p = path, *end, *want;
	size_t n, k = 0, pieces = 0;
	int bad = 0;

	n = url_split_path(a, path, segs, MAXSEGS);
	if (path[0] != '/') {
		CHECK(n == (size_t)-1);
		return;
	}
	/* Not canonical: an empty segment anywhere. */
	if (strcmp(path, "/") != 0 && (strstr(path, "//") != NULL ||
	    path[strlen(path) - 1] == '/')) {
		CHECK(n == (size_t)-1);
		return;
	}
	/* The reference: non-empty pieces between slashes. */
	for (;;) {
		while (*p == '/')
			p++;
		if (*p == '\0')
			break;
		end = strchrnul(p, '/');
		if (pieces < MAXSEGS) {
			want = url_decode(a, p, (size_t)(end - p), false);
			if (want == NULL)
				bad = 1;
			else if (!bad && n != (size_t)-1) {
				CHECK(good(segs[k]) && strlen(segs[k]) > 0);
				CHECK(strcmp(segs[k], want) == 0);
				k++;
			}
		}
		pieces++;
		p = end;
	}
	if (pieces > MAXSEGS || bad)
		CHECK(n == (size_t)-1);
	else
		CHECK(n == pieces && k == pieces);
}

static void
check_query(struct arena *a, const char *q)
{
	struct url_kv kv[MAXPAIRS + 1];
	const char *p = q, *amp, *eq, *key, *val;
	size_t n, pieces = 0;
	int bad = 0;

	n = url_parse_query(a, q, kv, MAXPAIRS);
	for (; *p != '\0'; p = *amp == '&' ? amp + 1 : amp) {
		amp = strchrnul(p, '&');
		if (amp == p)
			continue;
		if (pieces < MAXPAIRS && !bad) {
			eq = memchr(p, '=', (size_t)(amp - p));
			key = url_decode(a, p, (size_t)((eq ? eq : amp) - p),
			    true);
			val = eq ? url_decode(a, eq + 1,
			    (size_t)(amp - eq - 1), true) : "";
			if (key == NULL || val == NULL)
				bad = 1;
			else if (n != (size_t)-1) {
				CHECK(good(kv[pieces].key) &&
				    good(kv[pieces].value));
				CHECK(strcmp(kv[pieces].key, key) == 0);
				CHECK(strcmp(kv[pieces].value, val) == 0);
			}
		}
		pieces++;
	}
	if (pieces > MAXPAIRS || bad)
		CHECK(n == (size_t)-1);
	else
		CHECK(n == pieces);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct arena *a;
	const char *s;

	if (a == NULL)
		a = arena_new();
	check_decode(a, (const char *)data, size, size > 0 && (data[0] & 1));
	s = arena_strndup(a, (const char *)data, size);
	check_path(a, s);
	check_query(a, s);
	arena_reset(a);
	return 0;
}
