/*
 * A per-request arena.  Everything a request allocates comes from here and
 * goes away at once when the request ends; objects owned by libraries
 * (PGresult, cJSON, curl handles) are registered as cleanups and released
 * by arena_reset() in the reverse order of registration, so no branch of a
 * handler leaks and none frees twice.  An arena belongs to one thread.
 */
#ifndef MIKY_ARENA_H
#define MIKY_ARENA_H

#include <stdarg.h>
#include <stddef.h>

struct arena;

/* Returns a new arena; free it with arena_free(). */
struct arena	*arena_new(void);
/* Runs the cleanups and releases every block. */
void		 arena_free(struct arena *);
/* Runs the cleanups and keeps one block for the next request. */
void		 arena_reset(struct arena *);

/* Memory valid until the next reset; aligned for any type. */
void		*arena_alloc(struct arena *, size_t);
void		*arena_zalloc(struct arena *, size_t);
char		*arena_strdup(struct arena *, const char *);
char		*arena_strndup(struct arena *, const char *, size_t);
char		*arena_printf(struct arena *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
char		*arena_vprintf(struct arena *, const char *, va_list)
		    __attribute__((format(printf, 2, 0)));

/* Calls fn(p) at the next reset.  A NULL p registers nothing. */
void		 arena_cleanup(struct arena *, void (*fn)(void *), void *p);
/* Runs and forgets the cleanup registered for p now, if any. */
void		 arena_release(struct arena *, void *p);

#endif
