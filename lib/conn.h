/*
 * One FastCGI connection from the web server: a non-blocking socket,
 * the bytes received and not yet parsed, and the parser's state
 * (lib/fcgi.h).  Its owner is either the worker's poller, while the
 * connection waits for a request, or the one thread serving its
 * request (lib/server.c moves it between them).
 *
 * The thread reads the body and writes the response as if the socket
 * were blocking, but every wait is bounded by the connection's timeout:
 * a web server that stops reading (its client reads one byte a second)
 * or stops sending makes the call fail instead of holding the thread,
 * and the connection is then marked broken and closed after the
 * request.  Management records and refused BEGIN_REQUESTs are answered
 * here, whoever reads.
 */
#ifndef MIKY_CONN_H
#define MIKY_CONN_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "fcgi.h"

struct conn {
	int			 fd;
	struct fcgi_parser	 parser;
	char			*in;		/* received, not yet parsed */
	size_t			 in_off;	/* parsed up to here */
	size_t			 in_len;
	int			 timeout_ms;	/* a stalled read or write */
	bool			 ended;		/* END_REQUEST sent */
	bool			 broken;	/* close it after the request */
	bool			 aborted;	/* ABORT_REQUEST received */

	/* The server's (lib/server.c). */
	atomic_uint		 state;
	int64_t			 last_ms;	/* last activity */
	int64_t			 queued_ms;
	bool			 discard;	/* answered; skip the body */
	bool			 fresh;		/* no request yet */
	bool			 linger;	/* half-closed, read to its end */
	struct conn		*prev, *next;	/* every connection */
	struct conn		*qnext;		/* run queue, dead list */
};

/* Sizes the answers to FCGI_GET_VALUES; once, before any connection. */
void	conn_limits(unsigned max_conns, unsigned max_reqs);

/* Sets up c for the accepted non-blocking socket fd. */
void	conn_init(struct conn *, int fd, size_t max_params, int timeout_ms);
/* Closes the socket and frees what c holds (not c itself). */
void	conn_close(struct conn *);
/* Frees the input buffer when it holds nothing (an idle connection). */
void	conn_trim(struct conn *);
/* After a request's end: ready for the connection's next one. */
void	conn_next_request(struct conn *);

/*
 * Reads what the socket has, without waiting, up to `max` bytes.
 * Returns the count, 0 when the peer closed, -1 with errno (EAGAIN: no
 * data yet).
 */
ssize_t	conn_fill(struct conn *, size_t max);
/*
 * The next event from the bytes already received: answers management
 * records and refused requests itself (without waiting when the timeout
 * is 0) and returns FCGI_EV_PARAMS, STDIN (at most max_data bytes),
 * STDIN_END, ABORT, ERROR, or MORE when the bytes ran out.
 */
enum fcgi_event conn_next(struct conn *, size_t max_data,
	    struct fcgi_event_info *);

/*
 * Skips the rest of the body among the bytes received or ready to be
 * read, without waiting.  Returns true once the body has ended.
 */
bool	conn_skip_body(struct conn *);

/*
 * Reads up to n bytes of the request's body, waiting for them.  Returns
 * the count, 0 at the body's end, -1 when the peer closed, stalled past
 * the timeout, aborted or broke the protocol (c->broken or c->aborted
 * then says which).
 */
ssize_t	conn_read_body(struct conn *, char *, size_t n);

/*
 * Sends the concatenation of iov[0..n) as the request's output, split
 * into records, in as few system calls as it can; with `end`, the end of
 * the request follows (FCGI_END_REQUEST).  Returns 0, or -1 if the peer
 * is gone or stalled past the timeout (c->broken is set).
 */
int	conn_send(struct conn *, const struct iovec *, int n, bool end);

#endif
