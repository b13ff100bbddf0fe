/*
 * Request-target parsing: percent-decoding, path segments, query
 * parameters.  Decoded text is always valid UTF-8 without NUL bytes;
 * anything else is refused, so handlers never see it.
 */
#ifndef MIKY_URL_H
#define MIKY_URL_H

#include <stdbool.h>
#include <stddef.h>

#include "arena.h"
#include "buf.h"

struct url_kv {
	const char	*key;
	const char	*value;
};

/*
 * Decodes %XX escapes of s[0..n) (and '+' as a space when plus is set)
 * into arena memory.  Returns NULL for a malformed escape, a NUL byte or
 * invalid UTF-8.
 */
char	*url_decode(struct arena *, const char *s, size_t n, bool plus);

/*
 * Splits an absolute path into decoded segments.  Returns the count, or
 * (size_t)-1 if the path is not canonical -- not absolute, an empty
 * segment ("/api//x", "/api/x/") -- has more than max segments or a bad
 * escape.  A path that differs from a route only by slashes is no route:
 * it must not reach a handler past the nginx location that guards it.
 */
size_t	 url_split_path(struct arena *, const char *path, char **segs,
	    size_t max);

/*
 * Parses "a=1&b=x%20y" into decoded pairs (a key without '=' gets "").
 * Returns the count, or (size_t)-1 for a bad escape or more than max
 * pairs.
 */
size_t	 url_parse_query(struct arena *, const char *query,
	    struct url_kv *kv, size_t max);

/*
 * Appends s percent-encoded as application/x-www-form-urlencoded wants
 * it: letters, digits and "-._~" as they are, every other byte as %XX
 * (upper-case hex), a space included.
 */
void	 url_encode(struct buf *, const char *s);
/*
 * Appends one "key=value" pair to a form body, both encoded, with a '&'
 * before it unless the body is empty.  A NULL value adds nothing.
 */
void	 url_form_add(struct buf *, const char *key, const char *value);

#endif
