/*
 * Allocation with one out-of-memory policy: a failed allocation logs one
 * line and ends the process with status 70 (EX_SOFTWARE).  In a worker the
 * master notices and starts a new one, so callers never test for NULL.
 */
#ifndef MIKY_XALLOC_H
#define MIKY_XALLOC_H

#include <stddef.h>

void	*xmalloc(size_t);
void	*xcalloc(size_t, size_t);
void	*xrealloc(void *, size_t);
char	*xstrdup(const char *);
char	*xstrndup(const char *, size_t);
/* Returns a malloc'd string; the caller frees it. */
char	*xasprintf(const char *, ...) __attribute__((format(printf, 1, 2)));
void	 xoom(void) __attribute__((noreturn));

#endif
