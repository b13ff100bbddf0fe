/*
 * libFuzzer target for lib/multipart.c.  The first byte is the length
 * of the boundary (0-79, so too long ones come up too) and says whether
 * it is quoted; that many bytes follow as the boundary, the rest is the
 * body.  The boundary goes into a Content-Type header value as the
 * server would see it.  Invariants, for the names "file" and "note":
 *
 *  - the result is MP_FOUND, MP_MISSING or MP_MALFORMED;
 *  - a found part lies inside the body, has that name, is followed by
 *    CRLF "--" boundary, and holds no such delimiter itself;
 *  - its filename and content type are C strings or NULL;
 *  - a boundary longer than 70 bytes or empty is always malformed.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/arena.h"
#include "lib/multipart.h"

#define CHECK(c) do {							\
	if (!(c)) {							\
		fprintf(stderr, "fuzz_multipart: check failed: %s "	\
		    "(line %d)\n", #c, __LINE__);			\
		abort();						\
	}								\
} while (0)

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
check(struct arena *a, const char *ct, const char *boundary, int plain,
    const char *body, size_t len, const char *name)
{
	struct mp_part p;
	char delim[128];
	size_t dlen, blen = strlen(boundary);
	int rc;

	memset(&p, 0, sizeof(p));
	rc = multipart_find(a, ct, body, len, name, &p);
	CHECK(rc == MP_FOUND || rc == MP_MISSING || rc == MP_MALFORMED);
	if (plain && (blen == 0 || blen > 70))
		CHECK(rc == MP_MALFORMED);
	if (rc != MP_FOUND)
		return;
	CHECK(p.data >= body && p.len <= len &&
	    (size_t)(p.data - body) <= len - p.len);
	CHECK(p.name != NULL && strcmp(p.name, name) == 0);
	if (p.filename != NULL)
		(void)strlen(p.filename);
	if (p.content_type != NULL)
		(void)strlen(p.content_type);
	if (plain) {
		/* The part ends where the next delimiter starts. */
		dlen = (size_t)snprintf(delim, sizeof(delim), "\r\n--%s",
		    boundary);
		CHECK(dlen <= (size_t)(body + len - (p.data + p.len)));
		CHECK(memcmp(p.data + p.len, delim, dlen) == 0);
		CHECK(p.len < dlen || memmem(p.data, p.len, delim, dlen) ==
		    NULL);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct arena *a;
	char boundary[96], ct[160];
	size_t blen, i;
	int quoted, plain;
	char *body;

	if (size < 1)
		return 0;
	if (a == NULL)
		a = arena_new();
	blen = (size_t)(data[0] & 0x7f) % 80;
	quoted = data[0] & 0x80;
	if (blen > size - 1)
		blen = size - 1;
	for (i = 0; i < blen; i++) {
		char c = (char)data[1 + i];

		/* A header value has no NUL, CR or LF. */
		boundary[i] = c == '\0' || c == '\r' || c == '\n' ? 'x' : c;
	}
	boundary[blen] = '\0';
	/*
	 * "Plain" when the boundary comes back out of the header as it
	 * went in: unquoted without ';' or blanks, quoted without '"'.
	 */
	plain = strpbrk(boundary, quoted ? "\"" : "; \t\"") == NULL;
	snprintf(ct, sizeof(ct), quoted ? "multipart/form-data; "
	    "boundary=\"%s\"" : "multipart/form-data; boundary=%s", boundary);

	/* An exact copy: a read past the end is an ASan report. */
	body = malloc(size - 1 - blen + 1);
	memcpy(body, data + 1 + blen, size - 1 - blen);
	check(a, ct, boundary, plain, body, size - 1 - blen, "file");
	check(a, ct, boundary, plain, body, size - 1 - blen, "note");
	free(body);
	arena_reset(a);
	return 0;
}
