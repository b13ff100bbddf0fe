#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "multipart.h"

#define BOUNDARY_MAX	70	/* RFC 2046 */
#define HEADERS_MAX	4096

/* The value of parameter `key` in a header value, unquoted. */
static char *
param(struct arena *a, const char *h, size_t n, const char *key)
{
	size_t klen = strlen(key), i = 0, start;
	bool quoted;

	while (i < n) {
		while (i < n && (h[i] == ';' || h[i] == ' ' || h[i] == '\t'))
			i++;
		if (n - i > klen && strncasecmp(h + i, key, klen) == 0 &&
		    h[i + klen] == '=') {
			i += klen + 1;
			if (i < n && h[i] == '"') {
				start = ++i;
				while (i < n && h[i] != '"')
					i++;
				return i < n ? arena_strndup(a, h + start,
				    i - start) : NULL;
			}
			start = i;
			while (i < n && h[i] != ';' && h[i] != ' ')
				i++;
			return arena_strndup(a, h + start, i - start);
		}
		/* On to the next parameter: a ';' in quotes is not one. */
		for (quoted = false; i < n && (quoted || h[i] != ';'); i++)
			if (h[i] == '"')
				quoted = !quoted;
	}
	return NULL;
}

/* Reads the header block of one part (up to the blank line). */
static int
part_headers(struct arena *a, const char *p, size_t n, struct mp_part *part,
    size_t *used)
{
	const char *end = memmem(p, n < HEADERS_MAX ? n : HEADERS_MAX,
	    "\r\n\r\n", 4), *line, *eol;

	if (end == NULL)
		return -1;
	part->name = part->filename = part->content_type = NULL;
	for (line = p; line < end; line = eol + 2) {
		eol = memmem(line, (size_t)(end + 2 - line), "\r\n", 2);
		if (eol == NULL)
			return -1;
		if ((size_t)(eol - line) > 20 && strncasecmp(line,
		    "Content-Disposition:", 20) == 0) {
			part->name = param(a, line + 20,
			    (size_t)(eol - line - 20), "name");
			part->filename = param(a, line + 20,
			    (size_t)(eol - line - 20), "filename");
		} else if ((size_t)(eol - line) > 13 && strncasecmp(line,
		    "Content-Type:", 13) == 0) {
			const char *v = line + 13;

			while (v < eol && (*v == ' ' || *v == '\t'))
				v++;
			part->content_type = arena_strndup(a, v,
			    (size_t)(eol - v));
		}
	}
	*used = (size_t)(end + 4 - p);
	return 0;
}

int
multipart_find(struct arena *a, const char *content_type, const char *body,
    size_t len, const char *name, struct mp_part *part)
{
	const char *semi = strchr(content_type, ';'), *p, *end = body + len;
	char delim[BOUNDARY_MAX + 5];
	char *boundary;
	size_t dlen, used;

	if (semi == NULL || (boundary = param(a, semi + 1, strlen(semi + 1),
	    "boundary")) == NULL || *boundary == '\0' ||
	    strlen(boundary) > BOUNDARY_MAX)
		return MP_MALFORMED;
	/* The first delimiter may start the body; later ones follow CRLF. */
	dlen = (size_t)snprintf(delim, sizeof(delim), "\r\n--%s", boundary);
	if (len >= dlen - 2 && memcmp(body, delim + 2, dlen - 2) == 0)
		p = body + dlen - 2;
	else if ((p = memmem(body, len, delim, dlen)) != NULL)
		p += dlen;
	else
		return MP_MALFORMED;
	for (;;) {
		const char *next;

		if (end - p >= 2 && memcmp(p, "--", 2) == 0)
			return MP_MISSING;	/* the closing delimiter */
		if (end - p < 2 || memcmp(p, "\r\n", 2) != 0)
			return MP_MALFORMED;
		p += 2;
		if (part_headers(a, p, (size_t)(end - p), part, &used) != 0)
			return MP_MALFORMED;
		p += used;
		next = memmem(p, (size_t)(end - p), delim, dlen);
		if (next == NULL)
			return MP_MALFORMED;
		if (part->name != NULL && strcmp(part->name, name) == 0) {
			part->data = p;
			part->len = (size_t)(next - p);
			return MP_FOUND;
		}
		p = next + dlen;
	}
}
