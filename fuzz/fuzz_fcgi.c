/*
 * libFuzzer target for lib/fcgi.c, the parser of what nginx (or anything
 * that reaches the socket) sends.  The first byte picks a split point
 * (scaled to the rest of the input), the second the largest piece of
 * body (1 to 256); the rest is the stream.  Invariants:
 *
 *  - fed whole, in two pieces at the split point and byte by byte, the
 *    parser gives the same events (pieces of body joined);
 *  - each call consumes at most what it was given, and something unless
 *    it reports an error or was given nothing; after an error it
 *    consumes nothing and reports the error again;
 *  - a piece of body lies inside the input and is at most max_data;
 *  - the parameters never exceed the limit, and their pairs, whatever
 *    the bytes, decode without reading outside them;
 *  - an answer to FCGI_GET_VALUES is one well-formed record.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/fcgi.h"

#define CHECK(c) do {							\
	if (!(c)) {							\
		fprintf(stderr, "fuzz_fcgi: check failed: %s (line %d)\n", \
		    #c, __LINE__);					\
		abort();						\
	}								\
} while (0)

#define MAX_PARAMS	512

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static int
pair(void *ctx, const char *n, size_t nl, const char *v, size_t vl)
{
	struct buf *out = ctx;

	buf_printf(out, "%zu:%zu:", nl, vl);
	buf_add(out, n, nl);
	buf_add(out, v, vl);
	return 0;
}

static void
event(struct fcgi_parser *p, const struct fcgi_event_info *ev,
    const char *in, size_t len, size_t max_data, struct buf *out)
{
	struct buf res = BUF_INIT;

	switch (ev->type) {
	case FCGI_EV_PARAMS:
		CHECK(p->params.len <= MAX_PARAMS);
		buf_printf(out, "P%d{", p->keep_conn);
		buf_printf(out, "=%d}", fcgi_pairs(p->params.p,
		    p->params.len, pair, out));
		break;
	case FCGI_EV_STDIN:
		CHECK(ev->len >= 1 && ev->len <= max_data);
		CHECK(ev->data >= in && ev->data + ev->len <= in + len);
		/* Joined with the piece before, however it was cut. */
		if (out->len == 0 || out->p[out->len - 1] != '>')
			buf_putc(out, '<');
		else
			out->len--;
		buf_add(out, ev->data, ev->len);
		buf_putc(out, '>');
		break;
	case FCGI_EV_STDIN_END:
		buf_putc(out, 'E');
		fcgi_parser_next(p);
		break;
	case FCGI_EV_ABORT:
		buf_putc(out, 'A');
		fcgi_parser_next(p);
		break;
	case FCGI_EV_REJECT:
		buf_printf(out, "R%u,%u", ev->id, ev->status);
		break;
	case FCGI_EV_GET_VALUES:
		buf_printf(out, "G%zu", ev->len);
		fcgi_get_values_result(ev->data, ev->len, 10, 10, &res);
		CHECK(res.len >= FCGI_HEADER_LEN && res.p[0] == 1 &&
		    res.p[1] == FCGI_GET_VALUES_RESULT);
		CHECK(((size_t)(unsigned char)res.p[4] << 8 |
		    (unsigned char)res.p[5]) == res.len - FCGI_HEADER_LEN);
		buf_free(&res);
		break;
	case FCGI_EV_UNKNOWN:
		buf_printf(out, "U%u", ev->rtype);
		break;
	case FCGI_EV_ERROR:
		CHECK(p->error != NULL);
		buf_putc(out, 'X');
		break;
	case FCGI_EV_MORE:
		break;
	}
}

/* Feeds s in pieces of `step` bytes (0: cut once at `cut`). */
static void
feed(const char *s, size_t n, size_t cut, size_t step, size_t max_data,
    struct buf *out)
{
	struct fcgi_parser p;
	struct fcgi_event_info ev;
	size_t from = 0, to, used;

	fcgi_parser_init(&p, MAX_PARAMS);
	while (from < n) {
		to = step > 0 ? from + step : (from < cut ? cut : n);
		if (to > n)
			to = n;
		while (from < to) {
			used = fcgi_parse(&p, s + from, to - from, max_data,
			    &ev);
			CHECK(used <= to - from);
			CHECK(used > 0 || ev.type == FCGI_EV_ERROR);
			event(&p, &ev, s + from, used, max_data, out);
			from += used;
			if (ev.type == FCGI_EV_ERROR) {
				CHECK(fcgi_parse(&p, s, n, max_data, &ev) == 0);
				CHECK(ev.type == FCGI_EV_ERROR);
				fcgi_parser_free(&p);
				return;
			}
			if (ev.type == FCGI_EV_MORE)
				CHECK(from == to);
		}
	}
	fcgi_parser_free(&p);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buf whole = BUF_INIT, two = BUF_INIT, bytes = BUF_INIT;
	const char *s;
	size_t n, cut, max_data;

	if (size < 2)
		return 0;
	s = (const char *)data + 2;
	n = size - 2;
	cut = n * data[0] / 255;
	max_data = (size_t)data[1] + 1;

	feed(s, n, n, 0, max_data, &whole);
	feed(s, n, cut, 0, max_data, &two);
	feed(s, n, 0, 1, max_data, &bytes);
	CHECK(whole.len == two.len && (whole.len == 0 ||
	    memcmp(whole.p, two.p, whole.len) == 0));
	CHECK(whole.len == bytes.len && (whole.len == 0 ||
	    memcmp(whole.p, bytes.p, whole.len) == 0));
	buf_free(&whole);
	buf_free(&two);
	buf_free(&bytes);
	return 0;
}
