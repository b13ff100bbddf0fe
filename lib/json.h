/*
 * Strict JSON input.  json_parse() accepts only well-formed UTF-8 JSON
 * with bounded nesting and no NUL characters, and registers the cJSON
 * tree with the arena.  json_validate() checks an object against a field
 * spec: only listed fields, each once, of the right type and size; the
 * typed values land in an array parallel to the spec, so handlers never
 * touch cJSON for their input.
 *
 *	enum { IN_EMAIL, IN_PASSWORD, IN__MAX };
 *	static const struct jfield spec[] = {
 *		[IN_EMAIL] = { "email", JF_EMAIL, JF_REQUIRED, 3, 254 },
 *		[IN_PASSWORD] = { "password", JF_STRING, JF_REQUIRED, 1, 1024 },
 *		{ NULL }
 *	};
 */
#ifndef MIKY_JSON_H
#define MIKY_JSON_H

#include <stdbool.h>
#include <stddef.h>

#include <cJSON.h>

#include "arena.h"

#define JSON_MAX_DEPTH	16
#define JSON_MAX_FIELDS	32

enum jf_type {
	JF_STRING,	/* min..max code points */
	JF_EMAIL,	/* trimmed, lower-cased, practical syntax check */
	JF_UUID,	/* canonical 8-4-12 hex, lower-cased */
	JF_WORD,	/* one of `words` */
	JF_INT,		/* integral number within min..max */
	JF_BOOL,
	JF_ANY,		/* any JSON value; the handler checks it */
};

#define JF_REQUIRED	0x01
#define JF_NULLABLE	0x02	/* null is accepted and reported as is_null */
#define JF_TRIM		0x04	/* strings: strip surrounding white space */
#define JF_LINE		0x08	/* strings: no control characters at all */

struct jfield {
	const char		*name;
	enum jf_type		 type;
	unsigned		 flags;
	long long		 min, max;
	const char *const	*words;	/* JF_WORD: NULL-terminated list */
};

struct jvalue {
	bool		 present;	/* given, and not null */
	bool		 is_null;	/* given as null (JF_NULLABLE) */
	const char	*s;		/* string types; arena memory */
	long long	 i;		/* JF_INT; JF_WORD: index in words */
	bool		 b;		/* JF_BOOL */
	const cJSON	*node;		/* the raw node (JF_ANY and all) */
};

/* The client-facing description of bad input: an API error code, a
 * sentence, and the field at fault (or NULL). */
struct jerror {
	const char	*code;
	const char	*message;
	const char	*field;
};

/*
 * Parses body[0..len).  Returns the tree (freed with the arena) or NULL
 * with *err set to invalid_json.
 */
cJSON	*json_parse(struct arena *, const char *body, size_t len,
	    struct jerror *err);
/*
 * Checks that obj is an object whose members all appear in spec (at
 * most once) with valid values, and that required ones are there.  Fills
 * vals[i] for spec[i].  Returns 0, or -1 with *err set (invalid_input).
 */
int	 json_validate(struct arena *, const cJSON *obj,
	    const struct jfield *spec, struct jvalue *vals, struct jerror *err);

/* Practical email check on an already trimmed, lower-cased address. */
bool	 json_email_ok(const char *);
/* True if s is a canonical UUID (any case); used for path ids too. */
bool	 json_uuid_ok(const char *);

#endif
