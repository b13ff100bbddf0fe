#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "xalloc.h"

#define ARENA_BLOCK	(16 * 1024)
#define ARENA_ALIGN	(_Alignof(max_align_t))

struct block {
	struct block	*next;
	size_t		 size;		/* usable bytes in data[] */
	size_t		 used;
	_Alignas(max_align_t) unsigned char data[];
};

struct cleanup {
	struct cleanup	*next;
	void		(*fn)(void *);
	void		*p;
};

struct arena {
	struct block	*first;		/* kept across resets */
	struct block	*head;		/* current block */
	struct cleanup	*cleanups;	/* most recent first */
};

static struct block *
block_new(size_t size)
{
	struct block *b = xmalloc(sizeof(*b) + size);

	b->next = NULL;
	b->size = size;
	b->used = 0;
	return b;
}

struct arena *
arena_new(void)
{
	struct arena *a = xmalloc(sizeof(*a));

	a->first = a->head = block_new(ARENA_BLOCK);
	a->cleanups = NULL;
	return a;
}

static void
run_cleanups(struct arena *a)
{
	struct cleanup *c;

	while ((c = a->cleanups) != NULL) {
		a->cleanups = c->next;
		c->fn(c->p);
	}
}

void
arena_reset(struct arena *a)
{
	struct block *b, *next;

	run_cleanups(a);
	for (b = a->head; b != NULL; b = next) {
		next = b->next;
		if (b != a->first)
			free(b);
	}
	a->head = a->first;
	a->first->next = NULL;
	a->first->used = 0;
}

void
arena_free(struct arena *a)
{
	if (a == NULL)
		return;
	arena_reset(a);
	free(a->first);
	free(a);
}

void *
arena_alloc(struct arena *a, size_t n)
{
	struct block *b = a->head;
	size_t off = (b->used + ARENA_ALIGN - 1) & ~(ARENA_ALIGN - 1);

	if (n > SIZE_MAX - ARENA_BLOCK)
		xoom();
	if (off + n > b->size) {
		b = block_new(n > ARENA_BLOCK / 2 ? n : ARENA_BLOCK);
		/*
		 * A large allocation gets its own block behind the current
		 * one, so the free space of the current block is not lost.
		 */
		if (n > ARENA_BLOCK / 2 && a->head->size - a->head->used >
		    ARENA_BLOCK / 4) {
			b->next = a->head->next;
			a->head->next = b;
			b->used = n;
			return b->data;
		}
		b->next = a->head;
		a->head = b;
		off = 0;
	}
	b->used = off + n;
	return b->data + off;
}

void *
arena_zalloc(struct arena *a, size_t n)
{
	return memset(arena_alloc(a, n), 0, n);
}

char *
arena_strndup(struct arena *a, const char *s, size_t n)
{
	char *p = arena_alloc(a, n + 1);

	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *
arena_strdup(struct arena *a, const char *s)
{
	return arena_strndup(a, s, strlen(s));
}

char *
arena_vprintf(struct arena *a, const char *fmt, va_list ap)
{
	va_list copy;
	char small[256], *p;
	int n;

	va_copy(copy, ap);
	n = vsnprintf(small, sizeof(small), fmt, copy);
	va_end(copy);
	if (n < 0)
		xoom();
	p = arena_alloc(a, (size_t)n + 1);
	if ((size_t)n < sizeof(small))
		memcpy(p, small, (size_t)n + 1);
	else
		vsnprintf(p, (size_t)n + 1, fmt, ap);
	return p;
}

char *
arena_printf(struct arena *a, const char *fmt, ...)
{
	va_list ap;
	char *p;

	va_start(ap, fmt);
	p = arena_vprintf(a, fmt, ap);
	va_end(ap);
	return p;
}

void
arena_cleanup(struct arena *a, void (*fn)(void *), void *p)
{
	struct cleanup *c;

	if (p == NULL)
		return;
	c = arena_alloc(a, sizeof(*c));
	c->fn = fn;
	c->p = p;
	c->next = a->cleanups;
	a->cleanups = c;
}

void
arena_release(struct arena *a, void *p)
{
	struct cleanup **cp, *c;

	for (cp = &a->cleanups; (c = *cp) != NULL; cp = &c->next)
		if (c->p == p) {
			*cp = c->next;
			c->fn(c->p);
			return;
		}
}
