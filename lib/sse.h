/*
 * An incremental reader of Server-Sent Events (the WHATWG "event stream"
 * format), for model APIs that stream their answers.  Bytes are fed as
 * they arrive, split anywhere; lines may end in CRLF, LF or CR (also
 * split across feeds); comment lines are skipped; several data lines
 * make one event joined by newlines; a blank line dispatches.
 */
#ifndef MIKY_SSE_H
#define MIKY_SSE_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

/*
 * Called per event: the type ("message" when none was given) and the
 * data (NUL-terminated, len bytes).  A non-zero return stops the feed
 * and is returned by sse_feed().
 */
typedef int (*sse_event_fn)(void *ctx, const char *event, const char *data,
    size_t len);

struct sse_reader {
	struct buf	 line;		/* the line being read */
	struct buf	 data;		/* data lines of the current event */
	struct buf	 event;		/* its type */
	bool		 skip_lf;	/* the last byte fed was a CR */
	bool		 has_data;
	size_t		 max;		/* bytes allowed per event */
	sse_event_fn	 fn;
	void		*ctx;
};

void	sse_init(struct sse_reader *, size_t max_event, sse_event_fn, void *);
/*
 * Feeds n bytes.  Returns 0, the callback's non-zero value, or -1 when
 * an event grows past max_event (the stream is then unusable).
 */
int	sse_feed(struct sse_reader *, const char *, size_t n);
void	sse_free(struct sse_reader *);

#endif
