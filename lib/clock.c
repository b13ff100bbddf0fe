#include <stdio.h>
#include <string.h>
#include <time.h>

#include "clock.h"

int64_t
clock_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t
clock_ms(void)
{
	return clock_us() / 1000;
}

int64_t
clock_unix(void)
{
	return (int64_t)time(NULL);
}

void
clock_rfc3339(char out[RFC3339_LEN], int64_t unix_ms)
{
	time_t secs = (time_t)(unix_ms / 1000);
	int ms = (int)(unix_ms % 1000);
	struct tm tm;
	char tmp[64];

	/* Floored, so times before 1970 keep milliseconds in 0..999. */
	if (ms < 0) {
		ms += 1000;
		secs--;
	}
	gmtime_r(&secs, &tm);
	/* Through a roomy buffer: the compiler cannot see the ranges. */
	snprintf(tmp, sizeof(tmp), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
	    (tm.tm_year + 1900) % 10000, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	    tm.tm_min, tm.tm_sec, ms);
	memcpy(out, tmp, RFC3339_LEN - 1);
	out[RFC3339_LEN - 1] = '\0';
}

void
clock_rfc3339_now(char out[RFC3339_LEN])
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	clock_rfc3339(out, (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}
