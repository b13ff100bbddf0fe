/*
 * lib/clock.c: RFC 3339 UTC text of known epoch milliseconds (leap
 * days, the last millisecond of a day, times before 1970), and the
 * monotonic and wall clocks moving forward.
 */
#include <string.h>
#include <time.h>

#include "lib/clock.h"
#include "t/unit/tap.h"

static const struct {
	int64_t		 ms;
	const char	*want;
} vec[] = {
	{ 0, "1970-01-01T00:00:00.000Z" },
	{ 1, "1970-01-01T00:00:00.001Z" },
	{ 999, "1970-01-01T00:00:00.999Z" },
	{ 1000, "1970-01-01T00:00:01.000Z" },
	{ 86399999, "1970-01-01T23:59:59.999Z" },
	{ 86400000, "1970-01-02T00:00:00.000Z" },
	{ 951782400000, "2000-02-29T00:00:00.000Z" },
	{ 1700000000123, "2023-11-14T22:13:20.123Z" },
	{ 1709251199999, "2024-02-29T23:59:59.999Z" },
	{ 2147483648000, "2038-01-19T03:14:08.000Z" },
	{ 4102444800000, "2100-01-01T00:00:00.000Z" },
	{ 253402300799999, "9999-12-31T23:59:59.999Z" },
	{ -1, "1969-12-31T23:59:59.999Z" },
	{ -1000, "1969-12-31T23:59:59.000Z" },
	{ -1500, "1969-12-31T23:59:58.500Z" },
};

int
main(void)
{
	char out[RFC3339_LEN], before[RFC3339_LEN], after[RFC3339_LEN];
	struct timespec ts = { 0, 20 * 1000 * 1000 };
	int64_t us0, us1, ms0;
	size_t i;

	is_int(RFC3339_LEN, 25, "RFC3339_LEN holds 24 characters and NUL");
	for (i = 0; i < sizeof(vec) / sizeof(vec[0]); i++) {
		memset(out, 'X', sizeof(out));
		clock_rfc3339(out, vec[i].ms);
		is_str(out, vec[i].want, "%lld ms", (long long)vec[i].ms);
	}

	clock_rfc3339(before, clock_unix() * 1000);
	clock_rfc3339_now(out);
	clock_rfc3339(after, (clock_unix() + 1) * 1000);
	is_int(strlen(out), 24, "now: 24 characters");
	ok(out[4] == '-' && out[10] == 'T' && out[19] == '.' &&
	    out[23] == 'Z', "now: RFC 3339 shape (%s)", out);
	ok(strcmp(before, out) <= 0 && strcmp(out, after) <= 0,
	    "now lies between clock_unix() before and after");
	ok(strncmp(out, "2024", 4) >= 0, "now is after 2024");

	us0 = clock_us();
	ms0 = clock_ms();
	nanosleep(&ts, NULL);
	us1 = clock_us();
	ok(us1 - us0 >= 20000, "monotonic clock advanced by the 20 ms sleep "
	    "(%lld us)", (long long)(us1 - us0));
	ok(us1 - us0 < 5000000, "and by less than 5 s");
	ok(clock_ms() - ms0 >= 19 && clock_ms() - ms0 < 5000,
	    "clock_ms agrees with clock_us");
	ok(clock_ms() >= us1 / 1000, "clock_ms is clock_us in milliseconds");
	return tap_done();
}
