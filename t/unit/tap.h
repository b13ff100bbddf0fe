/*
 * A minimal TAP producer for the C unit tests, run under prove:
 *
 *	ok(cond, "name");  is_int(got, want, "name");  is_str(...)
 *	return tap_done();
 */
#ifndef MIKY_TAP_H
#define MIKY_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int tap_n, tap_failed;

#define ok(cond, ...) tap_ok(!!(cond), __FILE__, __LINE__, __VA_ARGS__)
#define is_int(got, want, ...) do {					\
	long long g_ = (got), w_ = (want);				\
	if (!ok(g_ == w_, __VA_ARGS__))					\
		printf("#   got %lld, want %lld\n", g_, w_);	\
} while (0)
#define is_str(got, want, ...) do {					\
	const char *g_ = (got), *w_ = (want);				\
	int same_ = (g_ == NULL && w_ == NULL) ||			\
	    (g_ != NULL && w_ != NULL && strcmp(g_, w_) == 0);	\
	if (!ok(same_, __VA_ARGS__))					\
		printf("#   got '%s'\n#  want '%s'\n", g_ ? g_ : "(null)", \
		    w_ ? w_ : "(null)");					\
} while (0)

static int __attribute__((format(printf, 4, 5)))
tap_ok(int pass, const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	printf("%s %d - ", pass ? "ok" : "not ok", ++tap_n);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	if (!pass) {
		tap_failed++;
		printf("#   failed at %s line %d\n", file, line);
	}
	return pass;
}

static int
tap_done(void)
{
	printf("1..%d\n", tap_n);
	return tap_failed != 0;
}

#endif
