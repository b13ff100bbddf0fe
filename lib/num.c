#include <stddef.h>
#include <string.h>

#include "num.h"

int
num_parsen(const char *s, size_t n, long long min, long long max,
    long long *out)
{
	unsigned long long v = 0, limit;
	int neg = 0;
	size_t i = 0;

	if (n > 0 && (s[0] == '-' || s[0] == '+')) {
		neg = s[0] == '-';
		i = 1;
	}
	if (i == n)
		return -1;
	/*
	 * Leading zeros carry no value: skip them before the 19-digit bound
	 * that keeps v from wrapping, so "000...042" is 42 as strtonum says.
	 */
	while (i + 1 < n && s[i] == '0')
		i++;
	if (n - i > 19)
		return -1;
	limit = neg ? (unsigned long long)9223372036854775807LL + 1 :
	    9223372036854775807ULL;
	for (; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned long long)(s[i] - '0');
		if (v > limit)
			return -1;
	}
	if (neg) {
		long long r = v == limit ? (-9223372036854775807LL - 1) :
		    -(long long)v;

		if (r < min || r > max)
			return -1;
		*out = r;
		return 0;
	}
	if ((long long)v < min || (long long)v > max)
		return -1;
	*out = (long long)v;
	return 0;
}

int
num_parse(const char *s, long long min, long long max, long long *out)
{
	return num_parsen(s, strlen(s), min, max, out);
}
