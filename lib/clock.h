/*
 * Time helpers: a monotonic clock for durations and deadlines, and
 * RFC 3339 UTC timestamps with milliseconds for logs and the API.
 */
#ifndef MIKY_CLOCK_H
#define MIKY_CLOCK_H

#include <stdint.h>
#include <time.h>

#define RFC3339_LEN	sizeof("2026-01-01T00:00:00.000Z")

/* Milliseconds and microseconds on the monotonic clock. */
int64_t	clock_ms(void);
int64_t	clock_us(void);
/* Seconds since the epoch on the wall clock. */
int64_t	clock_unix(void);
/* Writes "YYYY-MM-DDTHH:MM:SS.mmmZ" for the wall-clock time now. */
void	clock_rfc3339_now(char out[RFC3339_LEN]);
void	clock_rfc3339(char out[RFC3339_LEN], int64_t unix_ms);

#endif
