/*
 * lib/sse.c: the events of a stream do not depend on how its bytes are
 * split across feeds (every split point of a sample, byte by byte, and
 * every pair of split points); LF, CRLF and CR line ends, also a CRLF
 * whose CR and LF come in different feeds; comments; several data lines
 * joined with "\n"; event names, reset after each event; events without
 * data ignored; the size limit; a callback that stops the feed.
 */
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/sse.h"
#include "t/unit/tap.h"

/* What a reader delivered: "name{data}\n" per event. */
struct got {
	struct buf	 out;
	int		 events;
	int		 stop_at;	/* return 7 on this event (1-based) */
	int		 bad_nul;	/* data not NUL-terminated at len */
};

static int
collect(void *ctx, const char *event, const char *data, size_t len)
{
	struct got *g = ctx;

	if (data[len] != '\0')
		g->bad_nul++;
	buf_puts(&g->out, event);
	buf_putc(&g->out, '{');
	buf_add(&g->out, data, len);
	buf_puts(&g->out, "}\n");
	return ++g->events == g->stop_at ? 7 : 0;
}

/*
 * Feeds s in pieces cut at the offsets in cuts[0..ncuts) (ascending)
 * and returns what came out, or "rc=N" when a feed failed.  The caller
 * frees the string.
 */
static char *
run(const char *s, size_t n, const size_t *cuts, size_t ncuts, size_t max,
    int stop_at)
{
	struct sse_reader r;
	struct got g = { BUF_INIT, 0, stop_at, 0 };
	size_t i, from = 0, to;
	int rc = 0;

	sse_init(&r, max, collect, &g);
	for (i = 0; i <= ncuts && rc == 0; i++) {
		to = i < ncuts ? cuts[i] : n;
		rc = sse_feed(&r, s + from, to - from);
		from = to;
	}
	if (rc != 0)
		buf_printf(&g.out, "rc=%d", rc);
	if (g.bad_nul)
		buf_puts(&g.out, "NOT-NUL-TERMINATED");
	sse_free(&r);
	return buf_detach(&g.out);
}

static char *
whole(const char *s, size_t max)
{
	return run(s, strlen(s), NULL, 0, max, 0);
}

static void
events_are(const char *s, const char *want, const char *name)
{
	char *got = whole(s, 4096);

	is_str(got, want, "%s", name);
	free(got);
}

/* A stream with every feature the reader knows about. */
static const char sample[] =
    ": a comment, then an OpenAI-style chunk\n"
    "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n"
    "\n"
    "event: delta\n"
    "data: line one\n"
    "data: line two\n"
    "\n"
    "id: 7\n"
    "retry: 100\n"
    "\n"
    "event: lonely\n"
    "\n"
    "data\n"
    "\n"
    "data:no space\n"
    "data:  two spaces\n"
    ":comment inside an event\n"
    "unknown: field\n"
    "\n"
    "data: [DONE]\n"
    "\n"
    "data: cut off, never dispatched\n";

static const char sample_want[] =
    "message{{\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}}\n"
    "delta{line one\nline two}\n"
    "message{}\n"
    "message{no space\n two spaces}\n"
    "message{[DONE]}\n";

/* sample with every "\n" replaced by eol. */
static char *
with_eol(const char *eol)
{
	struct buf b = BUF_INIT;
	const char *p;

	for (p = sample; *p != '\0'; p++) {
		if (*p == '\n')
			buf_puts(&b, eol);
		else
			buf_putc(&b, *p);
	}
	return buf_detach(&b);
}

static void
test_sample(void)
{
	events_are(sample, sample_want, "the sample in one feed");
	events_are("", "", "an empty stream");
	events_are("data: a\n\ndata: b\n\n", "message{a}\nmessage{b}\n",
	    "two events");
	events_are("event: x\ndata: 1\n\ndata: 2\n\n", "x{1}\nmessage{2}\n",
	    "an event name lasts for one event only");
	events_are("event: x\n\ndata: 2\n\n", "message{2}\n",
	    "the name of an event without data does not leak");
	events_are("event: a\nevent: b\ndata: 1\n\n", "b{1}\n",
	    "the last event line wins");
	events_are("data: 1\n\n\n\n\ndata: 2\n\n", "message{1}\nmessage{2}\n",
	    "extra blank lines dispatch nothing");
	events_are("data: partial", "", "an unfinished line is not an event");
	events_are("data: x\n", "", "an unfinished event is not an event");
	events_are(": only\n: comments\n\n", "", "comments only");
	events_are("data:\n\n", "message{}\n", "empty data");
	events_are("data: \n\n", "message{}\n", "one space is taken away");
	events_are("data\ndata\n\n", "message{\n}\n",
	    "two empty data lines: one newline");
	events_are("data: a:b: c\n\n", "message{a:b: c}\n",
	    "only the first colon splits");
	events_are("Data: no\n\n", "", "field names are case-sensitive");
	events_are("data: é€😀\n\n", "message{é€😀}\n",
	    "UTF-8 passes through");
}

static void
test_nul(void)
{
	static const char s[] = "data: a\0b\n\n";
	struct sse_reader r;
	struct got g = { BUF_INIT, 0, 0, 0 };

	sse_init(&r, 100, collect, &g);
	is_int(sse_feed(&r, s, sizeof(s) - 1), 0, "NUL inside data: fed");
	is_int(g.out.len, strlen("message{") + 3 + 2, "NUL inside data: kept, length 3");
	ok(memcmp(g.out.p, "message{a\0b}\n", 13) == 0, "NUL inside data: bytes");
	is_int(g.bad_nul, 0, "data is NUL-terminated after len");
	sse_free(&r);
	buf_free(&g.out);
}

/* Every split point, byte by byte, and every pair of split points. */
static void
test_splits(const char *s, const char *name)
{
	size_t n = strlen(s), i, j, cuts[2], bad = 0, pairs = 0;
	char *want = whole(s, 4096), *got;
	size_t *every;

	for (i = 0; i <= n; i++) {
		cuts[0] = i;
		got = run(s, n, cuts, 1, 4096, 0);
		if (strcmp(got, want) != 0 && bad++ == 0)
			printf("# split at %zu: got '%s'\n", i, got);
		free(got);
	}
	ok(bad == 0, "%s: the same events split at each of %zu points", name,
	    n + 1);

	every = malloc(sizeof(*every) * (n + 1));
	for (i = 0; i < n; i++)
		every[i] = i + 1;
	got = run(s, n, every, n > 0 ? n - 1 : 0, 4096, 0);
	is_str(got, want, "%s: the same events fed byte by byte", name);
	free(got);
	free(every);

	bad = 0;
	for (i = 0; i <= n; i++)
		for (j = i; j <= n; j++) {
			cuts[0] = i;
			cuts[1] = j;
			got = run(s, n, cuts, 2, 4096, 0);
			pairs++;
			if (strcmp(got, want) != 0 && bad++ == 0)
				printf("# split at %zu and %zu: got '%s'\n", i,
				    j, got);
			free(got);
		}
	ok(bad == 0, "%s: the same events split in three, %zu ways", name,
	    pairs);
	free(want);
}

static void
test_line_ends(void)
{
	static const char *const eols[] = { "\r\n", "\r", "\n" };
	static const char *const names[] = { "CRLF", "CR", "LF" };
	size_t i;
	char *s, *name;

	for (i = 0; i < 3; i++) {
		s = with_eol(eols[i]);
		events_are(s, sample_want, names[i]);
		name = malloc(32);
		snprintf(name, 32, "sample with %s", names[i]);
		test_splits(s, name);
		free(name);
		free(s);
	}
	events_are("data: a\r\ndata: b\rdata: c\n\r\n", "message{a\nb\nc}\n",
	    "mixed line ends in one event");
	events_are("data: x\r\rdata: y\r\r", "message{x}\nmessage{y}\n",
	    "CR CR is a line and a blank line");
	events_are("data: x\n\rdata: y\r\n\n", "message{x}\nmessage{y}\n",
	    "LF then CR is two line ends");
	events_are("data: x\r\n\r\n", "message{x}\n", "CRLF CRLF");
	events_are("\r\n\r\ndata: x\r\n\r\n", "message{x}\n",
	    "leading blank lines");
}

/* A CR that ends one feed and the LF that starts the next are one end. */
static void
test_crlf_across_feeds(void)
{
	static const char s[] = "data: a\r\ndata: b\r\n\r\n";
	size_t cuts[3];
	char *got;

	cuts[0] = 8;	/* after "data: a\r" */
	got = run(s, strlen(s), cuts, 1, 100, 0);
	is_str(got, "message{a\nb}\n",
	    "a CR/LF pair split across feeds is one line end");
	free(got);

	cuts[0] = 8;
	cuts[1] = 17;	/* after "data: b\r" */
	cuts[2] = 19;	/* after "\r\n\r" */
	got = run(s, strlen(s), cuts, 3, 100, 0);
	is_str(got, "message{a\nb}\n", "three CR/LF pairs split");
	free(got);

	/* A feed that is a lone LF after a CR, then a blank line. */
	cuts[0] = 8;
	cuts[1] = 9;
	got = run("data: a\r\n\r\n", 11, cuts, 2, 100, 0);
	is_str(got, "message{a}\n", "CR | LF | CRLF");
	free(got);

	/* A CR, then a feed of other bytes: the next LF is a line end. */
	cuts[0] = 8;
	got = run("data: a\rdata: b\n\n", 17, cuts, 1, 100, 0);
	is_str(got, "message{a\nb}\n", "CR | more: no LF is swallowed later");
	free(got);
}

static void
test_max(void)
{
	char *got;
	size_t cuts[1];

	got = whole("data: 0123456789abcdef\n\n", 16);
	is_str(got, "message{0123456789abcdef}\n", "data of exactly max bytes");
	free(got);
	got = whole("data: 0123456789abcdefX\n\n", 16);
	is_str(got, "rc=-1", "data of max + 1 bytes: -1");
	free(got);
	got = whole("data: 01234567\ndata: 89abcdef\n\n", 16);
	is_str(got, "rc=-1", "data lines adding up past max: -1");
	free(got);
	got = whole("data: 0123456789abcdef0123", 16);
	is_str(got, "rc=-1", "an unfinished line past max: -1");
	free(got);
	got = whole("event: 0123456789abcdefXY\ndata: 1\n\n", 16);
	is_str(got, "rc=-1", "an event name past max: -1");
	free(got);
	got = whole("data: 0123456789\n\ndata: 0123456789\n\n"
	    "data: 0123456789\n\n", 16);
	is_str(got, "message{0123456789}\nmessage{0123456789}\n"
	    "message{0123456789}\n", "the limit is per event");
	free(got);
	cuts[0] = 10;
	got = run("data: 0123456789abcdefX\n\n", 25, cuts, 1, 16, 0);
	is_str(got, "rc=-1", "past max across feeds: -1");
	free(got);
	got = whole("data: ok\n\ndata: 0123456789abcdefXYZ\n\n", 16);
	is_str(got, "message{ok}\nrc=-1", "events before the big one arrive");
	free(got);
}

static void
test_stop(void)
{
	char *got;
	size_t cuts[1];

	got = run("data: 1\n\ndata: 2\n\ndata: 3\n\n", 27, NULL, 0, 100, 2);
	is_str(got, "message{1}\nmessage{2}\nrc=7",
	    "a callback's non-zero value stops the feed and is returned");
	free(got);
	got = run("data: 1\n\ndata: 2\n\ndata: 3\n\n", 27, NULL, 0, 100, 1);
	is_str(got, "message{1}\nrc=7", "stopped at the first event");
	free(got);
	cuts[0] = 12;
	got = run("data: 1\n\ndata: 2\n\ndata: 3\n\n", 27, cuts, 1, 100, 2);
	is_str(got, "message{1}\nmessage{2}\nrc=7", "stopped in a later feed");
	free(got);
}

/* The reader may be fed again after an event and freed at any point. */
static void
test_reuse(void)
{
	struct sse_reader r;
	struct got g = { BUF_INIT, 0, 0, 0 };

	sse_init(&r, 100, collect, &g);
	is_int(sse_feed(&r, "data: a\n\n", 9), 0, "feed 1");
	is_int(sse_feed(&r, "", 0), 0, "an empty feed");
	is_int(sse_feed(&r, "data: b\n\nda", 11), 0, "feed 2, ending mid-line");
	is_int(g.events, 2, "two events so far");
	sse_free(&r);	/* with a line pending: nothing leaks */
	is_str(g.out.p, "message{a}\nmessage{b}\n", "both delivered");
	buf_free(&g.out);
}

int
main(void)
{
	test_sample();
	test_nul();
	test_splits(sample, "sample with LF");
	test_line_ends();
	test_crlf_across_feeds();
	test_max();
	test_stop();
	test_reuse();
	return tap_done();
}
