/*
 * UTF-8 checks.  Validation follows RFC 3629: no overlong forms, no
 * surrogates, nothing above U+10FFFF.
 */
#ifndef MIKY_UTF8_H
#define MIKY_UTF8_H

#include <stdbool.h>
#include <stddef.h>

bool	utf8_valid(const char *, size_t);
/*
 * Bytes of the valid UTF-8 sequence at the start of s (1 to 4), or 0 if
 * s starts with an invalid one (or n is 0).
 */
size_t	utf8_seq(const char *, size_t);
/* Code points in a valid UTF-8 string. */
size_t	utf8_chars(const char *, size_t);
/* Bytes taken by the first `chars` code points of a valid string. */
size_t	utf8_prefix(const char *, size_t, size_t chars);

#endif
