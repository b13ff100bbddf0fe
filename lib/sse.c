#include <string.h>

#include "sse.h"

void
sse_init(struct sse_reader *s, size_t max_event, sse_event_fn fn, void *ctx)
{
	memset(s, 0, sizeof(*s));
	s->max = max_event;
	s->fn = fn;
	s->ctx = ctx;
}

void
sse_free(struct sse_reader *s)
{
	buf_free(&s->line);
	buf_free(&s->data);
	buf_free(&s->event);
}

/* A blank line: hand over the event, if it has data, and start anew. */
static int
dispatch(struct sse_reader *s)
{
	int rc = 0;

	if (s->has_data)
		rc = s->fn(s->ctx, s->event.len > 0 ? s->event.p : "message",
		    s->data.p != NULL ? s->data.p : "", s->data.len);
	buf_reset(&s->data);
	buf_reset(&s->event);
	s->has_data = false;
	return rc;
}

/* One complete line (without its end). */
static int
line(struct sse_reader *s)
{
	const char *p = s->line.p != NULL ? s->line.p : "", *colon, *value;
	size_t n = s->line.len, flen, vlen;

	if (n == 0)
		return dispatch(s);
	if (p[0] == ':')
		return 0;
	colon = memchr(p, ':', n);
	flen = colon != NULL ? (size_t)(colon - p) : n;
	value = colon != NULL ? colon + 1 : p + n;
	if (colon != NULL && *value == ' ')
		value++;
	vlen = (size_t)(p + n - value);
	if (flen == 4 && memcmp(p, "data", 4) == 0) {
		if (s->has_data)
			buf_putc(&s->data, '\n');
		buf_add(&s->data, value, vlen);
		s->has_data = true;
	} else if (flen == 5 && memcmp(p, "event", 5) == 0) {
		buf_reset(&s->event);
		buf_add(&s->event, value, vlen);
	}
	/* id, retry and unknown fields do not matter here. */
	return 0;
}

int
sse_feed(struct sse_reader *s, const char *p, size_t n)
{
	size_t i, start = 0;
	int rc;

	for (i = 0; i < n; i++) {
		if (p[i] != '\r' && p[i] != '\n')
			continue;
		if (p[i] == '\n' && s->skip_lf && i == start &&
		    s->line.len == 0) {
			/* The LF of a CRLF whose CR ended the last line. */
			s->skip_lf = false;
			start = i + 1;
			continue;
		}
		buf_add(&s->line, p + start, i - start);
		s->skip_lf = p[i] == '\r';
		rc = line(s);
		buf_reset(&s->line);
		start = i + 1;
		if (rc != 0)
			return rc;
		if (s->data.len + s->event.len > s->max)
			return -1;
	}
	if (start < n) {
		s->skip_lf = false;
		buf_add(&s->line, p + start, n - start);
		if (s->line.len + s->data.len > s->max)
			return -1;
	}
	return 0;
}
