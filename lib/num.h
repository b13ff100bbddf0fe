/*
 * Number parsing with range checks, in the manner of OpenBSD strtonum():
 * the whole string must be a decimal integer within [min, max].
 */
#ifndef MIKY_NUM_H
#define MIKY_NUM_H

#include <stddef.h>

/* Returns 0 and sets *out, or -1 for empty, junk or out-of-range input. */
int	num_parse(const char *s, long long min, long long max, long long *out);
/* The same for a string of known length (not NUL-terminated). */
int	num_parsen(const char *s, size_t n, long long min, long long max,
	    long long *out);

#endif
