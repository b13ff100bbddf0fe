/*
 * A small streaming JSON writer over struct buf.  It places commas and
 * escapes strings; the caller gives the structure.  Output is compact.
 *
 *	jw_obj(&w);
 *	jw_kstr(&w, "status", "ok");
 *	jw_end(&w);
 */
#ifndef MIKY_JSONW_H
#define MIKY_JSONW_H

#include <stdbool.h>

#include "buf.h"

#define JW_MAXDEPTH	32

struct jw {
	struct buf	*b;
	int		 depth;
	bool		 after_key;
	bool		 comma[JW_MAXDEPTH];
	char		 close[JW_MAXDEPTH];
};

void	jw_init(struct jw *, struct buf *);
void	jw_obj(struct jw *);
void	jw_arr(struct jw *);
/* Closes the innermost object or array. */
void	jw_end(struct jw *);
void	jw_key(struct jw *, const char *);

void	jw_str(struct jw *, const char *);	/* NULL writes null */
void	jw_strn(struct jw *, const char *, size_t);
void	jw_int(struct jw *, long long);
void	jw_bool(struct jw *, bool);
void	jw_null(struct jw *);
/* Writes already-encoded JSON as one value. */
void	jw_raw(struct jw *, const char *);

void	jw_kstr(struct jw *, const char *, const char *);
void	jw_kint(struct jw *, const char *, long long);
void	jw_kbool(struct jw *, const char *, bool);
void	jw_knull(struct jw *, const char *);
void	jw_kraw(struct jw *, const char *, const char *);
/* Opens an object or array as the value of a key. */
void	jw_kobj(struct jw *, const char *);
void	jw_karr(struct jw *, const char *);

#endif
