/*
 * multipart/form-data (RFC 7578) reading, enough to take one named part
 * out of a request body without copying it.
 */
#ifndef MIKY_MULTIPART_H
#define MIKY_MULTIPART_H

#include <stddef.h>

#include "arena.h"

struct mp_part {
	const char	*name;
	const char	*filename;	/* NULL if none */
	const char	*content_type;	/* NULL if none */
	const char	*data;		/* points into the body */
	size_t		 len;
};

enum { MP_FOUND = 0, MP_MALFORMED = -1, MP_MISSING = 1 };

/*
 * Finds the part called `name` in body[0..len), the boundary taken from
 * the Content-Type header value.  Returns MP_FOUND with *part filled
 * (strings in arena memory), MP_MISSING, or MP_MALFORMED.
 */
int	multipart_find(struct arena *, const char *content_type,
	    const char *body, size_t len, const char *name,
	    struct mp_part *part);

#endif
