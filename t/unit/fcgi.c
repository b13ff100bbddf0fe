/*
 * lib/fcgi.c: a request as nginx sends it gives the same events however
 * its bytes are split (whole, byte by byte, at every split point), with
 * padding and with records of inactive ids mixed in; the keep-alive
 * flag and a second request on the same connection; long and short
 * name-value lengths; max_data bounds the pieces of the body; refused
 * roles and a second request id (CANT_MPX_CONN); ABORT_REQUEST;
 * GET_VALUES and its answer; unknown management records; protocol
 * errors stay errors; the records we write, byte for byte.
 */
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/fcgi.h"
#include "t/unit/tap.h"

/* Appends one record. */
static void
rec(struct buf *b, unsigned type, unsigned id, const char *p, size_t n,
    unsigned pad)
{
	unsigned char h[FCGI_HEADER_LEN];
	static const char zeros[256];

	fcgi_header(h, type, id, n, pad);
	buf_add(b, h, sizeof(h));
	if (n > 0)
		if (n > 0)
		buf_add(b, p, n);
	buf_add(b, zeros, pad);
}

static void
begin(struct buf *b, unsigned id, unsigned role, unsigned flags)
{
	char body[8] = { (char)(role >> 8), (char)role, (char)flags };

	rec(b, FCGI_BEGIN_REQUEST, id, body, 8, 0);
}

static int
add_pair(void *ctx, const char *n, size_t nl, const char *v, size_t vl)
{
	struct buf *out = ctx;

	buf_add(out, n, nl);
	buf_putc(out, '=');
	buf_add(out, v, vl);
	buf_putc(out, ';');
	return 0;
}

/* The longest piece of body and how many pieces the last run() gave. */
static size_t	longest, pieces;

static void
show(struct fcgi_parser *p, const struct fcgi_event_info *ev,
    struct buf *out, bool *in_body)
{
	bool body = ev->type == FCGI_EV_STDIN;

	if (body) {
		pieces++;
		if (ev->len > longest)
			longest = ev->len;
		/* Pieces of body come joined, however they were split. */
		if (!*in_body)
			buf_putc(out, 'I');
		buf_add(out, ev->data, ev->len);
	}
	if (ev->type != FCGI_EV_MORE)
		*in_body = body;
	switch (ev->type) {
	case FCGI_EV_PARAMS:
		buf_puts(out, "P{");
		if (fcgi_pairs(p->params.p, p->params.len, add_pair, out) != 0)
			buf_puts(out, "!bad");
		buf_puts(out, p->keep_conn ? "}k" : "}");
		break;
	case FCGI_EV_STDIN:
		break;
	case FCGI_EV_STDIN_END:
		buf_putc(out, 'E');
		break;
	case FCGI_EV_ABORT:
		buf_putc(out, 'A');
		break;
	case FCGI_EV_REJECT:
		buf_printf(out, "R%u,%u", ev->id, ev->status);
		break;
	case FCGI_EV_GET_VALUES:
		buf_printf(out, "G%zu", ev->len);
		break;
	case FCGI_EV_UNKNOWN:
		buf_printf(out, "U%u", ev->rtype);
		break;
	case FCGI_EV_ERROR:
		buf_putc(out, 'X');
		break;
	case FCGI_EV_MORE:
		break;
	}
}

/*
 * Feeds s split at the offsets in cuts (ascending, ncuts of them) and
 * writes the events as text: "P{name=value;...}" for the parameters
 * ("}k" with FCGI_KEEP_CONN), "I<data>" for the body, "E" at its end,
 * "A" for an abort, "R<id>,<status>", "G<length>" for a management
 * query, "U<type>", "X" for an error.  After the body's end the parser
 * is made ready for the connection's next request.  The caller frees
 * the string.
 */
static char *
run(const char *s, size_t n, const size_t *cuts, size_t ncuts,
    size_t max_data)
{
	struct fcgi_parser p;
	struct fcgi_event_info ev;
	struct buf out = BUF_INIT;
	size_t i, from = 0, to, used;
	bool in_body = false;

	longest = pieces = 0;
	fcgi_parser_init(&p, 4096);
	for (i = 0; i <= ncuts; i++) {
		to = i < ncuts ? cuts[i] : n;
		while (from < to) {
			used = fcgi_parse(&p, s + from, to - from, max_data,
			    &ev);
			from += used;
			show(&p, &ev, &out, &in_body);
			if (ev.type == FCGI_EV_ERROR)
				goto out;
			if (ev.type == FCGI_EV_STDIN_END)
				fcgi_parser_next(&p);
			if (ev.type == FCGI_EV_MORE)
				break;
		}
	}
out:
	fcgi_parser_free(&p);
	buf_putc(&out, '\0');
	return buf_detach(&out);
}

/* A request as nginx sends it, with some unusual but valid bits. */
static void
nginx_request(struct buf *b, unsigned id, unsigned flags, const char *body)
{
	struct buf params = BUF_INIT;
	char long_value[300];

	memset(long_value, 'v', sizeof(long_value) - 1);
	long_value[sizeof(long_value) - 1] = '\0';
	fcgi_pair_add(&params, "REQUEST_METHOD", 14, "POST", 4);
	fcgi_pair_add(&params, "REQUEST_URI", 11, "/api/x?y=1", 10);
	fcgi_pair_add(&params, "EMPTY", 5, "", 0);
	fcgi_pair_add(&params, "HTTP_LONG", 9, long_value,
	    strlen(long_value));
	begin(b, id, FCGI_RESPONDER, flags);
	/* The parameters in two records, the first padded. */
	rec(b, FCGI_PARAMS, id, params.p, 20, 4);
	/* A record of another id, ignored. */
	rec(b, FCGI_PARAMS, id + 1, "zz", 2, 0);
	rec(b, FCGI_PARAMS, id, params.p + 20, params.len - 20, 0);
	rec(b, FCGI_PARAMS, id, NULL, 0, 0);
	rec(b, FCGI_STDIN, id, body, 3, 5);
	rec(b, FCGI_DATA, id, "data", 4, 0);
	rec(b, FCGI_STDIN, id, body + 3, strlen(body) - 3, 0);
	rec(b, FCGI_STDIN, id, NULL, 0, 0);
	buf_free(&params);
}

static void
test_splits(void)
{
	struct buf b = BUF_INIT;
	char *whole, *got, want[1024];
	size_t cut, cuts[2], bad = 0, i, *every;
	char long_value[300];

	memset(long_value, 'v', sizeof(long_value) - 1);
	long_value[sizeof(long_value) - 1] = '\0';
	nginx_request(&b, 1, FCGI_KEEP_CONN, "hello body");
	nginx_request(&b, 1, 0, "second");
	snprintf(want, sizeof(want), "P{REQUEST_METHOD=POST;REQUEST_URI=/api/"
	    "x?y=1;EMPTY=;HTTP_LONG=%s;}kIhello bodyE"
	    "P{REQUEST_METHOD=POST;REQUEST_URI=/api/x?y=1;EMPTY=;"
	    "HTTP_LONG=%s;}IsecondE", long_value, long_value);
	whole = run(b.p, b.len, NULL, 0, 1 << 20);
	is_str(whole, want, "two requests, fed whole");
	is_int(pieces, 4, "four pieces of body, as sent");

	for (cut = 0; cut <= b.len; cut++) {
		got = run(b.p, b.len, &cut, 1, 1 << 20);
		bad += strcmp(got, whole) != 0;
		free(got);
	}
	is_int(bad, 0, "the same at every split point");
	for (i = 0, bad = 0; i + 7 < b.len; i += 3) {
		cuts[0] = i;
		cuts[1] = i + 5;
		got = run(b.p, b.len, cuts, 2, 1 << 20);
		bad += strcmp(got, whole) != 0;
		free(got);
	}
	is_int(bad, 0, "the same with pairs of split points");
	every = malloc(b.len * sizeof(*every));
	for (i = 0; i < b.len; i++)
		every[i] = i;
	got = run(b.p, b.len, every, b.len, 1 << 20);
	is_str(got, whole, "byte by byte");
	free(got);
	free(every);

	got = run(b.p, b.len, NULL, 0, 2);
	is_str(got, whole, "max_data 2: the same events");
	is_int(longest, 2, "... in pieces of at most 2 bytes");
	is_int(pieces, 10, "... 10 of them");
	free(got);
	free(whole);
	buf_free(&b);
}

/* Each case: records in, events out. */
static void
test_cases(void)
{
	struct buf b = BUF_INIT, big = BUF_INIT;
	char *got;

	/* A role other than responder is refused; the next request runs. */
	begin(&b, 3, 2, 0);
	rec(&b, FCGI_PARAMS, 3, "\1\1ab", 4, 0);
	begin(&b, 4, FCGI_RESPONDER, 0);
	rec(&b, FCGI_PARAMS, 4, "\1\1ab", 4, 0);
	rec(&b, FCGI_PARAMS, 4, NULL, 0, 0);
	got = run(b.p, b.len, NULL, 0, 100);
	is_str(got, "R3,3P{a=b;}", "authorizer refused (UNKNOWN_ROLE), its "
	    "records ignored, a responder after it runs");
	free(got);

	/* A second id while one is active: CANT_MPX_CONN. */
	buf_reset(&b);
	begin(&b, 1, FCGI_RESPONDER, FCGI_KEEP_CONN);
	begin(&b, 2, FCGI_RESPONDER, 0);
	rec(&b, FCGI_PARAMS, 1, NULL, 0, 0);
	rec(&b, FCGI_STDIN, 1, NULL, 0, 0);
	got = run(b.p, b.len, NULL, 0, 100);
	is_str(got, "R2,1P{}kE", "a second request id is refused");
	free(got);

	/* The same id again while active: an error. */
	buf_reset(&b);
	begin(&b, 1, FCGI_RESPONDER, 0);
	begin(&b, 1, FCGI_RESPONDER, 0);
	got = run(b.p, b.len, NULL, 0, 100);
	is_str(got, "X", "BEGIN_REQUEST twice for one id");
	free(got);

	/* Abort while the body comes. */
	buf_reset(&b);
	begin(&b, 1, FCGI_RESPONDER, 0);
	rec(&b, FCGI_PARAMS, 1, NULL, 0, 0);
	rec(&b, FCGI_STDIN, 1, "ab", 2, 0);
	rec(&b, FCGI_ABORT_REQUEST, 9, NULL, 0, 0);
	rec(&b, FCGI_ABORT_REQUEST, 1, NULL, 0, 0);
	got = run(b.p, b.len, NULL, 0, 100);
	is_str(got, "P{}IabA", "ABORT_REQUEST of another id ignored, ours "
	    "reported");
	free(got);

	/* Management records. */
	buf_reset(&b);
	rec(&b, FCGI_GET_VALUES, 0, "\x0e\0FCGI_MAX_CONNS", 16, 0);
	rec(&b, 42, 0, "xyz", 3, 5);
	rec(&b, 42, 7, "xyz", 3, 0);
	rec(&b, FCGI_GET_VALUES, 7, "\x0e\0FCGI_MAX_CONNS", 16, 0);
	got = run(b.p, b.len, NULL, 0, 100);
	is_str(got, "G16U42", "GET_VALUES and an unknown type with id "
	    "0; not with another id");
	free(got);

	/* Errors, and they stay errors. */
	buf_reset(&b);
	buf_add(&b, "\2\1\0\1\0\0\0\0", 8);
	got = run(b.p, b.len, NULL, 0, 100);
	is_str(got, "X", "version 2");
	free(got);
	buf_reset(&b);
	begin(&b, 0, FCGI_RESPONDER, 0);
	got = run(b.p, b.len, NULL, 0, 100);
	is_str(got, "X", "BEGIN_REQUEST with id 0");
	free(got);
	buf_reset(&b);
	rec(&b, FCGI_BEGIN_REQUEST, 1, "\0\1", 2, 0);
	got = run(b.p, b.len, NULL, 0, 100);
	is_str(got, "X", "short BEGIN_REQUEST");
	free(got);
	buf_reset(&b);
	begin(&b, 1, FCGI_RESPONDER, 0);
	rec(&b, FCGI_STDIN, 1, "x", 1, 0);
	got = run(b.p, b.len, NULL, 0, 100);
	is_str(got, "X", "STDIN before the parameters ended");
	free(got);
	buf_reset(&b);
	begin(&b, 1, FCGI_RESPONDER, 0);
	rec(&b, FCGI_PARAMS, 1, NULL, 0, 0);
	rec(&b, FCGI_PARAMS, 1, "\1\1ab", 4, 0);
	got = run(b.p, b.len, NULL, 0, 100);
	is_str(got, "P{}X", "PARAMS after they ended");
	free(got);

	/* Parameters beyond the limit (4096 in run()). */
	buf_reset(&b);
	begin(&b, 1, FCGI_RESPONDER, 0);
	buf_grow(&big, 3000);
	memset(big.p, 'p', 3000);
	rec(&b, FCGI_PARAMS, 1, big.p, 3000, 0);
	rec(&b, FCGI_PARAMS, 1, big.p, 1096, 0);
	rec(&b, FCGI_PARAMS, 1, "x", 1, 0);
	got = run(b.p, b.len, NULL, 0, 100);
	is_str(got, "X", "parameters over the limit");
	free(got);
	buf_free(&big);
	buf_free(&b);

	/* After an error every call says so and consumes nothing. */
	{
		struct fcgi_parser p;
		struct fcgi_event_info ev;

		fcgi_parser_init(&p, 100);
		is_int(fcgi_parse(&p, "\3\1\0\1\0\0\0\0", 8, 10, &ev), 8,
		    "a bad header is consumed");
		is_int(ev.type, FCGI_EV_ERROR, "... and is an error");
		ok(p.error != NULL, "... with a reason");
		is_int(fcgi_parse(&p, "\1\1\0\1\0\0\0\0", 8, 10, &ev), 0,
		    "then nothing is consumed");
		is_int(ev.type, FCGI_EV_ERROR, "... and it stays an error");
		fcgi_parser_free(&p);
	}
}

static int
stop_at_b(void *ctx, const char *n, size_t nl, const char *v, size_t vl)
{
	(void)v;
	(void)vl;
	(*(int *)ctx)++;
	return nl == 1 && n[0] == 'b' ? 7 : 0;
}

static void
test_pairs(void)
{
	struct buf b = BUF_INIT, out = BUF_INIT;
	char name[200];
	int count = 0;

	memset(name, 'n', sizeof(name));
	fcgi_pair_add(&b, name, 127, "v", 1);
	fcgi_pair_add(&b, name, 128, "", 0);
	fcgi_pair_add(&b, name, 200, name, 130);
	is_int(b.len, 2 + 127 + 1 + 5 + 128 + 8 + 200 + 130,
	    "lengths: 1 byte up to 127, 4 bytes from 128");
	ok((unsigned char)b.p[0] == 127 && (unsigned char)b.p[130] == 0x80 &&
	    (unsigned char)b.p[133] == 128, "the long form sets the top bit");
	is_int(fcgi_pairs(b.p, b.len, add_pair, &out), 0, "they decode");
	is_int(out.len, 127 + 3 + 128 + 2 + 200 + 130 + 2, "... whole");
	buf_free(&out);
	is_int(fcgi_pairs(b.p, b.len - 1, add_pair, &out), -1,
	    "a value cut short is malformed");
	buf_free(&out);
	is_int(fcgi_pairs("\x80\0\0", 3, add_pair, &out), -1,
	    "a length cut short is malformed");
	is_int(fcgi_pairs("\x05\0ab", 4, add_pair, &out), -1,
	    "a name longer than the rest is malformed");
	is_int(fcgi_pairs("\xff\xff\xff\xff\xff\xff\xff\xff", 8, add_pair,
	    &out), -1, "huge lengths are malformed");
	is_int(fcgi_pairs("", 0, add_pair, &out), 0, "no pairs");
	buf_free(&out);
	is_int(fcgi_pairs("\1\0a\1\0b\1\0c", 9, stop_at_b, &count), 7,
	    "the callback's value stops the walk");
	is_int(count, 2, "... after the second pair");
	buf_free(&b);
}

static void
test_writer(void)
{
	unsigned char end[FCGI_END_LEN], rej[16], unk[16];
	struct buf b = BUF_INIT;
	static const unsigned char want_end[FCGI_END_LEN] = {
		1, 6, 0x12, 0x34, 0, 0, 0, 0,
		1, 3, 0x12, 0x34, 0, 8, 0, 0,  0, 0, 0, 0, 0, 0, 0, 0 };
	static const unsigned char want_rej[16] = {
		1, 3, 0, 9, 0, 8, 0, 0,  0, 0, 0, 0, 1, 0, 0, 0 };
	static const unsigned char want_unk[16] = {
		1, 11, 0, 0, 0, 8, 0, 0,  42, 0, 0, 0, 0, 0, 0, 0 };
	static const char want_values[] = "\1\12\0\0\0\x36\0\0"
	    "\x0f\1FCGI_MPXS_CONNS0" "\x0e\2FCGI_MAX_CONNS64"
	    "\x0d\3FCGI_MAX_REQS128";
	struct buf q = BUF_INIT;

	fcgi_end(end, 0x1234, FCGI_REQUEST_COMPLETE);
	ok(memcmp(end, want_end, sizeof(end)) == 0,
	    "end: empty STDOUT, then END_REQUEST");
	fcgi_end_request(rej, 9, FCGI_CANT_MPX_CONN);
	ok(memcmp(rej, want_rej, sizeof(rej)) == 0, "END_REQUEST refusing");
	fcgi_unknown_type(unk, 42);
	ok(memcmp(unk, want_unk, sizeof(unk)) == 0, "UNKNOWN_TYPE");

	fcgi_pair_add(&q, "FCGI_MPXS_CONNS", 15, "", 0);
	fcgi_pair_add(&q, "OTHER", 5, "", 0);
	fcgi_pair_add(&q, "FCGI_MAX_CONNS", 14, "", 0);
	fcgi_pair_add(&q, "FCGI_MAX_REQS", 13, "", 0);
	fcgi_get_values_result(q.p, q.len, 64, 128, &b);
	is_int(b.len, sizeof(want_values) - 1, "GET_VALUES_RESULT length");
	ok(b.len == sizeof(want_values) - 1 &&
	    memcmp(b.p, want_values, b.len) == 0,
	    "GET_VALUES_RESULT: the known names, in the query's order");
	buf_free(&q);
	buf_free(&b);
	fcgi_get_values_result("\x80", 1, 1, 1, &b);
	is_int(b.len, 8, "a malformed query: an empty answer");
	buf_free(&b);
}

int
main(void)
{
	test_splits();
	test_cases();
	test_pairs();
	test_writer();
	return tap_done();
}
