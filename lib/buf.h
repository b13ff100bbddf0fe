/*
 * A growable byte buffer, always NUL-terminated so it can be used as a C
 * string.  The owner calls buf_free(); buf_detach() hands the memory over.
 */
#ifndef MIKY_BUF_H
#define MIKY_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
	char	*p;
	size_t	 len;
	size_t	 cap;
};

#define BUF_INIT	{ NULL, 0, 0 }

void	 buf_grow(struct buf *, size_t more);
void	 buf_add(struct buf *, const void *, size_t);
void	 buf_puts(struct buf *, const char *);
void	 buf_putc(struct buf *, char);
void	 buf_printf(struct buf *, const char *, ...)
	    __attribute__((format(printf, 2, 3)));
void	 buf_vprintf(struct buf *, const char *, va_list)
	    __attribute__((format(printf, 2, 0)));
/* Appends s as a JSON string literal, quotes included. */
void	 buf_json_str(struct buf *, const char *s);
void	 buf_json_strn(struct buf *, const char *s, size_t n);
void	 buf_reset(struct buf *);
void	 buf_free(struct buf *);
/* Returns the malloc'd string (never NULL) and empties the buffer. */
char	*buf_detach(struct buf *);

#endif
