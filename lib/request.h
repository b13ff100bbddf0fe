/*
 * One FastCGI request and its response.  A request is set up from the
 * FastCGI parameters by req_init() (method, path split into decoded
 * segments, query, request id), its body is read only on demand and
 * only after its length was checked, and everything it allocates lives
 * in its arena.
 *
 * Responses: reply_*() write status, headers and body in one go;
 * sse_*() stream Server-Sent Events, flushing each one.  Every response
 * carries X-Request-Id, Cache-Control: no-store and
 * X-Content-Type-Options: nosniff, plus headers queued with
 * req_add_header().  A write that fails marks the client gone.
 */
#ifndef MIKY_REQUEST_H
#define MIKY_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <fcgiapp.h>

#include "arena.h"
#include "buf.h"
#include "json.h"
#include "router.h"
#include "url.h"

#define REQ_MAX_SEGS	16
#define REQ_MAX_QUERY	32
#define REQ_ID_MAX	64

struct request {
	FCGX_Request	*fcgi;
	struct arena	*arena;
	int64_t		 started_us;

	const char	*method;
	const char	*path;		/* raw, without the query */
	char		*segs[REQ_MAX_SEGS];	/* percent-decoded */
	size_t		 nsegs;
	bool		 path_ok;	/* false: too many segments, bad escape */
	struct url_kv	 query[REQ_MAX_QUERY];
	size_t		 nquery;
	bool		 query_ok;	/* false: bad escape or too many */
	const char	*content_type;
	long long	 content_length;	/* -1: none given */
	char		 request_id[REQ_ID_MAX + 1];
	const char	*remote_addr;

	char		*body;		/* NUL-terminated once read */
	size_t		 body_len;

	/* Set by the dispatcher. */
	int		 route_index;	/* -1 until matched */
	const struct route *route;
	const char	*params[ROUTE_MAX_PARAMS];
	struct jvalue	 in[JSON_MAX_FIELDS];	/* validated JSON body */
	void		*app;		/* the app's per-request state */
	const char	*user_id;	/* for the log line, once known */

	/* Response state. */
	int		 status;
	bool		 replied;
	bool		 streaming;
	bool		 client_gone;
	const char	*error_code;	/* for the log line */
	struct buf	 headers;	/* queued "Name: value\r\n" lines */
};

/* Sets up r from the FastCGI request; all memory comes from `a`. */
void		 req_init(struct request *, FCGX_Request *, struct arena *);
/* Releases what req_init() took outside the arena. */
void		 req_done(struct request *);

/* A FastCGI parameter ("HTTP_AUTHORIZATION", "REMOTE_ADDR"), or NULL. */
const char	*req_param(const struct request *, const char *);
/* The first value of a query parameter, decoded, or NULL. */
const char	*req_query(const struct request *, const char *);
/* True if the Content-Type's media type is `type` (parameters ignored). */
bool		 req_content_type_is(const struct request *, const char *type);

/*
 * Reads the body (CONTENT_LENGTH bytes) into r->body.  The caller has
 * checked the length against its limit.  Returns 0, or -1 if the client
 * sent less than it announced.
 */
int		 req_read_body(struct request *);

/* Queues a response header; name and value are copied. */
void		 req_add_header(struct request *, const char *name,
		    const char *value);

/* Writes a complete response.  body may be NULL for none. */
void		 reply(struct request *, int status, const char *content_type,
		    const char *body, size_t len);
void		 reply_json(struct request *, int status, const struct buf *);
void		 reply_empty(struct request *, int status);
/*
 * Writes {"error":{"code","message","field"?}}.  A 401 also gets
 * WWW-Authenticate: Bearer.  message must be safe for clients.
 */
void		 reply_error(struct request *, int status, const char *code,
		    const char *message, const char *field);

/*
 * Starts a response whose body follows in pieces written with
 * req_write(), ended by the request's end; it has no Content-Length
 * (nginx sends it chunked).  Returns -1 if the client is gone.
 */
int		 reply_start(struct request *, int status,
		    const char *content_type);
/*
 * Ends a started response that cannot be completed: the connection to
 * the web server is shut down without FastCGI's end-of-request record,
 * so the client's transfer is cut short (no last chunk) rather than
 * passed off as whole.
 */
void		 reply_abort(struct request *);

/* Starts a text/event-stream response (200).  Returns -1 if gone. */
int		 sse_start(struct request *);
/* Sends one event with a JSON data line and flushes.  -1 if gone. */
int		 sse_event(struct request *, const char *event,
		    const char *json, size_t len);
/* Sends an SSE comment line (keep-alive).  -1 if gone. */
int		 sse_comment(struct request *, const char *text);

/* Writes raw bytes of a streamed response and flushes.  -1 if gone. */
int		 req_write(struct request *, const char *, size_t, bool flush);

const char	*http_reason(int status);

#endif
