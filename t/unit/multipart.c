/*
 * lib/multipart.c: a well-formed body gives each named part with its
 * headers and its exact bytes (CRLFs and delimiter look-alikes inside);
 * a missing part is MP_MISSING; boundaries bad, quoted, long or absent;
 * parameters in any order and case; every truncation of a body is
 * either malformed or, once the part is whole, the same part.
 */
#include <stdlib.h>
#include <string.h>

#include "lib/arena.h"
#include "lib/buf.h"
#include "lib/multipart.h"
#include "t/unit/tap.h"

#define CT	"multipart/form-data; boundary=XyZzy"

/*
 * The file's bytes: CRLFs, a NUL, high bytes, almost-delimiters (a
 * sender picks a boundary that its data does not contain, RFC 2046).
 */
static const char file_data[] =
    "RIFF\r\n--XyZz\r\n\r\nx--XyZzy is no delimiter\r\n\0\xff\xfe\r\n-";
#define FILE_LEN	(sizeof(file_data) - 1)

static struct arena *a;

/* A two-part body: a text field, then the file. */
static char *
two_parts(size_t *len)
{
	struct buf b = BUF_INIT;

	buf_puts(&b, "--XyZzy\r\n"
	    "Content-Disposition: form-data; name=\"note\"\r\n"
	    "\r\n"
	    "hello\r\n"
	    "--XyZzy\r\n"
	    "Content-Disposition: form-data; name=\"file\"; "
	    "filename=\"a b.webm\"\r\n"
	    "Content-Type: audio/webm\r\n"
	    "\r\n");
	buf_add(&b, file_data, FILE_LEN);
	buf_puts(&b, "\r\n--XyZzy--\r\n");
	*len = b.len;
	return buf_detach(&b);
}

/* A copy of exactly n bytes, so reads past the end are caught (ASan). */
static char *
exact(const char *p, size_t n)
{
	char *c = malloc(n > 0 ? n : 1);

	memcpy(c, p, n);
	return c;
}

static int
find(const char *ct, const char *body, size_t len, const char *name,
    struct mp_part *part)
{
	char *c = exact(body, len);
	int rc;

	memset(part, 0, sizeof(*part));
	rc = multipart_find(a, ct, c, len, name, part);
	/* Keep the pointers meaningful for the caller: into body. */
	if (rc == MP_FOUND) {
		if (part->data < c || part->data + part->len > c + len)
			part->data = NULL;
		else
			part->data = body + (part->data - c);
	}
	free(c);
	return rc;
}

static void
test_found(void)
{
	struct mp_part p;
	size_t len;
	char *body = two_parts(&len);

	is_int(find(CT, body, len, "file", &p), MP_FOUND, "the file part");
	is_str(p.name, "file", "its name");
	is_str(p.filename, "a b.webm", "its filename");
	is_str(p.content_type, "audio/webm", "its content type");
	is_int(p.len, FILE_LEN, "its length");
	ok(p.data != NULL && memcmp(p.data, file_data, FILE_LEN) == 0,
	    "its exact bytes, CRLFs and NUL inside");
	ok(p.data != NULL && p.data > body && p.data + p.len < body + len,
	    "pointing inside the body");

	is_int(find(CT, body, len, "note", &p), MP_FOUND, "the text part");
	ok(p.len == 5 && memcmp(p.data, "hello", 5) == 0, "its value");
	is_str(p.filename, NULL, "no filename");
	is_str(p.content_type, NULL, "no content type");

	is_int(find(CT, body, len, "other", &p), MP_MISSING,
	    "a name not in the body: missing");
	is_int(find(CT, body, len, "fil", &p), MP_MISSING,
	    "a prefix of a name is not the name");
	is_int(find(CT, body, len, "FILE", &p), MP_MISSING,
	    "names are case-sensitive");
	free(body);
}

static void
test_variants(void)
{
	struct mp_part p;
	const char *b;

	b = "preamble to ignore\r\n--B\r\nContent-Disposition: form-data; "
	    "name=\"file\"\r\n\r\nX\r\n--B--";
	is_int(find("multipart/form-data; boundary=B", b, strlen(b), "file",
	    &p), MP_FOUND, "a preamble before the first delimiter");
	ok(p.len == 1 && p.data[0] == 'X', "part after a preamble");

	b = "--a b;c\r\ncontent-disposition: form-data; name=file\r\n"
	    "CONTENT-TYPE:   audio/ogg\r\n\r\nOGG\r\n--a b;c--\r\n";
	is_int(find("multipart/form-data; boundary=\"a b;c\"", b, strlen(b),
	    "file", &p), MP_FOUND, "a quoted boundary with space and ';'");
	ok(p.len == 3 && memcmp(p.data, "OGG", 3) == 0, "its bytes");
	is_str(p.name, "file", "an unquoted name");
	is_str(p.content_type, "audio/ogg", "header names in any case, "
	    "leading blanks skipped");

	b = "--B\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nX"
	    "\r\n--B--\r\n";
	is_int(find("multipart/form-data; charset=utf-8; BOUNDARY=B", b,
	    strlen(b), "file", &p), MP_FOUND,
	    "boundary as a later parameter, name in upper case");
	is_int(find("multipart/form-data;boundary=B", b, strlen(b), "file",
	    &p), MP_FOUND, "no space before the parameter");

	b = "--B\r\nContent-Disposition: form-data; filename=\"x.ogg\"; "
	    "name=\"file\"\r\n\r\nX\r\n--B--\r\n";
	is_int(find("multipart/form-data; boundary=B", b, strlen(b), "file",
	    &p), MP_FOUND, "filename before name");
	is_str(p.filename, "x.ogg", "filename is not taken for name");

	b = "--B\r\nContent-Disposition: form-data; filename=\"a;name=x.ogg\";"
	    " name=\"file\"\r\n\r\nX\r\n--B--\r\n";
	is_int(find("multipart/form-data; boundary=B", b, strlen(b), "file",
	    &p), MP_FOUND, "a ';' inside a quoted filename");
	is_str(p.name, "file", "the name after it is found");
	is_str(p.filename, "a;name=x.ogg", "the quoted filename whole");

	b = "--B\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n"
	    "\r\n--B--\r\n";
	is_int(find("multipart/form-data; boundary=B", b, strlen(b), "file",
	    &p), MP_FOUND, "an empty part");
	is_int(p.len, 0, "of length 0");

	b = "--B\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n"
	    "X\r\n--B\r\n";
	is_int(find("multipart/form-data; boundary=B", b, strlen(b), "file",
	    &p), MP_FOUND, "found before a body that ends without --B--");
}

static void
test_malformed(void)
{
	static const char *const cts[] = {
		"multipart/form-data",
		"multipart/form-data; boundary=",
		"multipart/form-data; boundary=\"\"",
		"multipart/form-data; boundary=\"unterminated",
		"multipart/form-data; boundaryX=B",
		"multipart/form-data; xboundary=B",
		"multipart/form-data; boundary=0123456789012345678901234567890"
		    "12345678901234567890123456789012345678901",	/* 71 */
		NULL
	};
	static const char *const bodies[] = {
		"",
		"no delimiter at all",
		"--B",					/* no CRLF after it */
		"--Bxx\r\n",				/* not followed by CRLF */
		"--B\r\nContent-Disposition: form-data; name=\"file\"\r\n"
		    "\r\nno closing delimiter",
		"--B\r\nContent-Disposition: form-data; name=\"file\"\r\n"
		    "no blank line after the headers",
		"--B\r\nContent-Disposition: form-data; name=\"other\"\r\n"
		    "\r\nx\r\n--B",				/* ends after a delimiter */
		NULL
	};
	const char *b = "--B\r\nContent-Disposition: form-data; "
	    "name=\"file\"\r\n\r\nX\r\n--B--\r\n";
	struct mp_part p;
	struct buf big = BUF_INIT;
	char ct[200];
	size_t i;

	for (i = 0; cts[i] != NULL; i++)
		is_int(find(cts[i], b, strlen(b), "file", &p), MP_MALFORMED,
		    "bad Content-Type '%s'", cts[i]);
	for (i = 0; bodies[i] != NULL; i++)
		is_int(find("multipart/form-data; boundary=B", bodies[i],
		    strlen(bodies[i]), "file", &p), MP_MALFORMED,
		    "malformed body %zu", i);

	/* One dash short: all preamble up to the closing delimiter. */
	b = "-B\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n"
	    "X\r\n--B--";
	is_int(find("multipart/form-data; boundary=B", b, strlen(b), "file",
	    &p), MP_MISSING, "'-B' is no delimiter: only the closing one is");
	b = "--B\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n"
	    "X\r\n--B--\r\n";

	/* 70 characters is the longest boundary allowed. */
	snprintf(ct, sizeof(ct), "multipart/form-data; boundary=%s",
	    "0123456789012345678901234567890123456789012345678901234567890"
	    "123456789");
	buf_printf(&big, "--%s\r\nContent-Disposition: form-data; "
	    "name=\"file\"\r\n\r\nX\r\n--%s--\r\n", ct + 30, ct + 30);
	is_int(find(ct, big.p, big.len, "file", &p), MP_FOUND,
	    "a boundary of 70 characters");

	/* A header block larger than 4 KiB. */
	buf_reset(&big);
	buf_puts(&big, "--B\r\nContent-Disposition: form-data; name=\"file\""
	    "\r\nX-Pad: ");
	for (i = 0; i < 5000; i++)
		buf_putc(&big, 'p');
	buf_puts(&big, "\r\n\r\nX\r\n--B--\r\n");
	is_int(find("multipart/form-data; boundary=B", big.p, big.len, "file",
	    &p), MP_MALFORMED, "headers over 4 KiB");
	buf_free(&big);
}

/*
 * Every truncation of the body: malformed until the file part and the
 * delimiter after it are complete, then that same part; never anything
 * else, and never a read past the end (the copies are exact).
 */
static void
test_truncated(void)
{
	struct mp_part p;
	size_t len, i, complete, bad = 0, found = 0;
	char *body = two_parts(&len);
	const char *end;
	int rc;

	end = memmem(body, len, file_data, FILE_LEN);
	complete = (size_t)(end - body) + FILE_LEN + strlen("\r\n--XyZzy");
	for (i = 0; i < len; i++) {
		rc = find(CT, body, i, "file", &p);
		if (i < complete ? rc != MP_MALFORMED : (rc != MP_FOUND ||
		    p.len != FILE_LEN || p.data != end)) {
			if (bad++ == 0)
				printf("# truncated at %zu of %zu: rc %d\n", i,
				    len, rc);
		}
		found += rc == MP_FOUND;
	}
	ok(bad == 0, "each of %zu truncations: malformed, or the whole part",
	    len);
	is_int(found, len - complete, "found once the delimiter after it is in");

	/* Looking for a part that is not there, in every truncation. */
	bad = 0;
	for (i = 0; i < len; i++) {
		rc = find(CT, body, i, "other", &p);
		if (rc == MP_FOUND || (rc == MP_MISSING &&
		    i < len - strlen("\r\n")))
			bad++;
	}
	ok(bad == 0, "a missing part is never found, and missing only in "
	    "a whole body");
	free(body);
}

int
main(void)
{
	a = arena_new();
	test_found();
	test_variants();
	test_malformed();
	test_truncated();
	arena_free(a);
	return tap_done();
}
