/*
 * libFuzzer target for lib/sse.c.  The first byte picks a split point
 * (scaled to the rest of the input) and the second an event after which
 * the callback stops the feed; the rest is the stream.  Invariants:
 *
 *  - fed whole, fed in two pieces at the split point and fed byte by
 *    byte, the reader delivers the same events, and the same as a plain
 *    reference reader (line ends normalised first, then split on LF);
 *  - each event's data is NUL-terminated at its length;
 *  - a callback's non-zero value is returned at once and stops the feed;
 *  - with a small size limit, a feed that fails returns -1 and the
 *    events before it are a prefix of the reference's, none larger than
 *    the limit.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/sse.h"

#define CHECK(c) do {							\
	if (!(c)) {							\
		fprintf(stderr, "fuzz_sse: check failed: %s (line %d)\n", \
		    #c, __LINE__);					\
		abort();						\
	}								\
} while (0)

#define BIG	(1u << 24)
#define SMALL	24

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

struct out {
	struct buf	 b;	/* "name\0len\0data" records */
	int		 events;
	int		 stop_at;	/* 0: never */
	size_t		 max;
};

static int
collect(void *ctx, const char *event, const char *data, size_t len)
{
	struct out *o = ctx;

	CHECK(data[len] == '\0');
	CHECK(event != NULL);
	CHECK(len <= o->max);
	buf_puts(&o->b, event);
	buf_printf(&o->b, "%c%zu%c", 0, len, 0);
	buf_add(&o->b, data, len);
	return ++o->events == o->stop_at ? 1 : 0;
}

/* Feeds s[0..n) cut at `cut` (or byte by byte when bytewise). */
static int
feed(const char *s, size_t n, size_t cut, int bytewise, struct out *o)
{
	struct sse_reader r;
	size_t i;
	int rc = 0;

	sse_init(&r, o->max, collect, o);
	if (bytewise) {
		for (i = 0; i < n && rc == 0; i++)
			rc = sse_feed(&r, s + i, 1);
	} else {
		rc = sse_feed(&r, s, cut);
		if (rc == 0)
			rc = sse_feed(&r, s + cut, n - cut);
	}
	sse_free(&r);
	return rc;
}

/*
 * The reference: CRLF and lone CR become LF, then complete lines are
 * read as the WHATWG spec says (the part after the last LF is not a
 * line yet).  Returns the number of events; stops after stop_at.
 */
static int
reference(const char *s, size_t n, int stop_at, struct out *o)
{
	struct buf norm = BUF_INIT, data = BUF_INIT, event = BUF_INIT;
	size_t i, start, len, flen;
	const char *line, *colon, *value;
	int has_data = 0, events = 0;

	for (i = 0; i < n; i++) {
		if (s[i] == '\r') {
			buf_putc(&norm, '\n');
			if (i + 1 < n && s[i + 1] == '\n')
				i++;
		} else
			buf_putc(&norm, s[i]);
	}
	for (start = 0, i = 0; i < norm.len; i++) {
		if (norm.p[i] != '\n')
			continue;
		line = norm.p + start;
		len = i - start;
		start = i + 1;
		if (len == 0) {
			if (has_data) {
				struct out tmp = { BUF_INIT, 0, 0, BIG };

				buf_add(&data, "", 0);
				collect(&tmp, event.len > 0 ? event.p :
				    "message", data.p != NULL ? data.p : "",
				    data.len);
				buf_add(&o->b, tmp.b.p, tmp.b.len);
				buf_free(&tmp.b);
				if (++events == stop_at)
					break;
			}
			buf_reset(&data);
			buf_reset(&event);
			has_data = 0;
			continue;
		}
		if (line[0] == ':')
			continue;
		colon = memchr(line, ':', len);
		flen = colon != NULL ? (size_t)(colon - line) : len;
		value = colon != NULL ? colon + 1 : line + len;
		if (value < line + len && *value == ' ')
			value++;
		if (flen == 4 && memcmp(line, "data", 4) == 0) {
			if (has_data)
				buf_putc(&data, '\n');
			buf_add(&data, value, (size_t)(line + len - value));
			has_data = 1;
		} else if (flen == 5 && memcmp(line, "event", 5) == 0) {
			buf_reset(&event);
			buf_add(&event, value, (size_t)(line + len - value));
		}
	}
	buf_free(&norm);
	buf_free(&data);
	buf_free(&event);
	return events;
}

static int
same(const struct out *a, const struct out *b)
{
	return a->b.len == b->b.len && (a->b.len == 0 ||
	    memcmp(a->b.p, b->b.p, a->b.len) == 0);
}

static int
is_prefix(const struct out *a, const struct out *b)
{
	return a->b.len <= b->b.len && (a->b.len == 0 ||
	    memcmp(a->b.p, b->b.p, a->b.len) == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct out ref = { BUF_INIT, 0, 0, BIG };
	struct out whole = { BUF_INIT, 0, 0, BIG };
	struct out two = { BUF_INIT, 0, 0, BIG };
	struct out bytes = { BUF_INIT, 0, 0, BIG };
	struct out small = { BUF_INIT, 0, 0, SMALL };
	struct out stopped = { BUF_INIT, 0, 0, BIG };
	struct out ref_stop = { BUF_INIT, 0, 0, BIG };
	const char *s;
	size_t n, cut;
	int rc, stop_at, nref;

	if (size < 2)
		return 0;
	s = (const char *)data + 2;
	n = size - 2;
	cut = n * data[0] / 255;
	stop_at = 1 + data[1] % 4;

	nref = reference(s, n, 0, &ref);

	CHECK(feed(s, n, n, 0, &whole) == 0);
	CHECK(same(&whole, &ref));
	CHECK(whole.events == nref);
	CHECK(feed(s, n, cut, 0, &two) == 0);
	CHECK(same(&two, &ref));
	CHECK(feed(s, n, 0, 1, &bytes) == 0);
	CHECK(same(&bytes, &ref));

	/* Stopped by the callback: exactly the first stop_at events. */
	stopped.stop_at = stop_at;
	rc = feed(s, n, cut, 0, &stopped);
	reference(s, n, stop_at, &ref_stop);
	CHECK(rc == (nref >= stop_at ? 1 : 0));
	CHECK(same(&stopped, &ref_stop));

	/* A small limit: -1 or all of it; what came before is right. */
	rc = feed(s, n, cut, 0, &small);
	CHECK(rc == 0 || rc == -1);
	CHECK(is_prefix(&small, &ref));
	if (rc == 0)
		CHECK(same(&small, &ref));

	buf_free(&ref.b);
	buf_free(&whole.b);
	buf_free(&two.b);
	buf_free(&bytes.b);
	buf_free(&small.b);
	buf_free(&stopped.b);
	buf_free(&ref_stop.b);
	return 0;
}
