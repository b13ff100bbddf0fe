/*
 * lib/arena.c: allocations across blocks and of large sizes stay intact
 * and aligned, strings are copied and formatted, and cleanups run in the
 * reverse order of registration, once, at reset, at release or at free.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/arena.h"
#include "t/unit/tap.h"

/* The cleanups append their tag here, so the order can be checked. */
static char	trace[64];

static void
note(void *p)
{
	size_t n = strlen(trace);

	if (n + 1 < sizeof(trace)) {
		trace[n] = *(const char *)p;
		trace[n + 1] = '\0';
	}
}

static int
aligned(const void *p)
{
	return (uintptr_t)p % _Alignof(max_align_t) == 0;
}

/*
 * Many small allocations span several 16 KB blocks; each keeps its own
 * bytes (no two overlap) and is aligned for any type.
 */
static void
test_many(struct arena *a)
{
	enum { N = 5000, SZ = 40 };
	static unsigned char *p[N];
	int i, k, intact = 1, align = 1;

	for (i = 0; i < N; i++) {
		p[i] = arena_alloc(a, SZ - (size_t)(i % 7));
		align &= aligned(p[i]);
		memset(p[i], i & 0xff, SZ - (size_t)(i % 7));
	}
	for (i = 0; i < N && intact; i++)
		for (k = 0; k < SZ - i % 7; k++)
			if (p[i][k] != (i & 0xff)) {
				intact = 0;
				break;
			}
	ok(intact, "5000 small allocations (about 190 KB) keep their bytes");
	ok(align, "every allocation is aligned for max_align_t");
}

/*
 * A large allocation gets a block of its own, both while the current
 * block is nearly empty (it goes behind it) and when nearly full.
 */
static void
test_large(struct arena *a)
{
	unsigned char *small1, *big1, *small2, *big2, *big3;
	size_t i;
	int intact = 1;

	arena_reset(a);
	small1 = arena_alloc(a, 100);
	memset(small1, 0x11, 100);
	big1 = arena_alloc(a, 100 * 1024);
	memset(big1, 0x22, 100 * 1024);
	small2 = arena_alloc(a, 100);
	memset(small2, 0x33, 100);
	/* Fill the current block, then ask for more than half a block. */
	(void)arena_alloc(a, 15 * 1024);
	big2 = arena_alloc(a, 9 * 1024);
	memset(big2, 0x44, 9 * 1024);
	big3 = arena_alloc(a, 1024 * 1024);
	memset(big3, 0x55, 1024 * 1024);
	ok(aligned(big1) && aligned(big2) && aligned(big3),
	    "large allocations are aligned");
	for (i = 0; i < 100; i++)
		intact &= small1[i] == 0x11 && small2[i] == 0x33;
	for (i = 0; i < 100 * 1024; i++)
		intact &= big1[i] == 0x22;
	for (i = 0; i < 9 * 1024; i++)
		intact &= big2[i] == 0x44;
	for (i = 0; i < 1024 * 1024; i++)
		intact &= big3[i] == 0x55;
	ok(intact, "small and large allocations do not overlap");
	ok(small2 > small1 && small2 < small1 + 16 * 1024,
	    "a large allocation leaves the current block's space in use");
}

static void
test_strings(struct arena *a)
{
	char *s, *z;
	size_t i;
	int zero = 1;

	arena_reset(a);
	is_str(arena_strdup(a, "miky"), "miky", "arena_strdup");
	is_str(arena_strdup(a, ""), "", "arena_strdup of an empty string");
	is_str(arena_strndup(a, "abcdef", 3), "abc",
	    "arena_strndup stops at n and terminates");
	is_str(arena_printf(a, "%s-%d-%05.1f", "x", -7, 2.25), "x--7-002.2",
	    "arena_printf formats");
	s = arena_printf(a, "[%0300d]", 42);
	is_int(strlen(s), 302, "arena_printf longer than its 256-byte "
	    "scratch buffer");
	ok(s[0] == '[' && s[1] == '0' && strcmp(s + 299, "42]") == 0,
	    "long arena_printf has the right text");

	/* Dirty the memory, then zalloc the same place after a reset. */
	arena_reset(a);
	memset(arena_alloc(a, 4096), 0xff, 4096);
	arena_reset(a);
	z = arena_zalloc(a, 4096);
	for (i = 0; i < 4096; i++)
		zero &= z[i] == 0;
	ok(zero, "arena_zalloc returns zeroed memory over reused bytes");
}

static void
test_cleanups(struct arena *a)
{
	static char t1 = '1', t2 = '2', t3 = '3', t4 = '4';
	char *owned;

	arena_reset(a);
	trace[0] = '\0';
	arena_cleanup(a, note, &t1);
	arena_cleanup(a, note, &t2);
	arena_cleanup(a, note, NULL);
	arena_cleanup(a, note, &t3);
	is_str(trace, "", "no cleanup runs when registered");
	arena_reset(a);
	is_str(trace, "321", "cleanups run in reverse order at reset; a NULL "
	    "pointer registers nothing");
	arena_reset(a);
	is_str(trace, "321", "a second reset runs nothing again");

	trace[0] = '\0';
	arena_cleanup(a, note, &t1);
	arena_cleanup(a, note, &t2);
	arena_cleanup(a, note, &t3);
	arena_release(a, &t2);
	is_str(trace, "2", "arena_release runs that cleanup now");
	arena_release(a, &t2);
	arena_release(a, &t4);
	is_str(trace, "2", "releasing again, or an unknown pointer, runs "
	    "nothing");
	arena_reset(a);
	is_str(trace, "231", "the released cleanup does not run at reset");

	/* The arena keeps working after resets; free() runs cleanups too. */
	trace[0] = '\0';
	is_str(arena_strdup(a, "again"), "again", "allocation after reset");
	owned = malloc(100);	/* freed by the cleanup, or valgrind says */
	arena_cleanup(a, free, owned);
	arena_cleanup(a, note, &t4);
}

int
main(void)
{
	struct arena *a = arena_new();
	int i;

	test_many(a);
	test_large(a);
	test_strings(a);
	test_cleanups(a);
	arena_free(a);
	is_str(trace, "4", "arena_free runs the pending cleanups");

	/* Reuse across many requests: valgrind checks nothing leaks. */
	a = arena_new();
	for (i = 0; i < 50; i++) {
		(void)arena_alloc(a, 64 * 1024);
		(void)arena_alloc(a, 20 * 1024);
		arena_cleanup(a, free, malloc(16));
		arena_reset(a);
	}
	ok(arena_alloc(a, 1) != NULL, "50 reset cycles with large blocks");
	arena_free(a);
	arena_free(NULL);
	ok(1, "arena_free(NULL) is a no-op");
	return tap_done();
}
