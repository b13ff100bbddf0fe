/*
 * The FastCGI protocol (version 1, responder role), with no I/O: a
 * parser that turns the bytes a web server sends into events, the
 * decoding of name-value pairs, and the records an application sends
 * back.  lib/conn.c puts it on a socket.
 *
 * The parser is incremental: it takes whatever bytes arrived, in
 * pieces of any size, and stops at each event, saying how many bytes
 * it consumed.  One request at a time per connection (FCGI_MPXS_CONNS
 * is 0, as for nginx, which never multiplexes): a BEGIN_REQUEST for a
 * second id while one is active is answered FCGI_CANT_MPX_CONN, records
 * of inactive ids are ignored, as the specification says.
 */
#ifndef MIKY_FCGI_H
#define MIKY_FCGI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define FCGI_HEADER_LEN		8
#define FCGI_MAX_CONTENT	65535

enum fcgi_type {
	FCGI_BEGIN_REQUEST = 1,
	FCGI_ABORT_REQUEST,
	FCGI_END_REQUEST,
	FCGI_PARAMS,
	FCGI_STDIN,
	FCGI_STDOUT,
	FCGI_STDERR,
	FCGI_DATA,
	FCGI_GET_VALUES,
	FCGI_GET_VALUES_RESULT,
	FCGI_UNKNOWN_TYPE,
};

#define FCGI_RESPONDER		1
#define FCGI_KEEP_CONN		1

/* protocolStatus of END_REQUEST. */
enum fcgi_proto_status {
	FCGI_REQUEST_COMPLETE,
	FCGI_CANT_MPX_CONN,
	FCGI_OVERLOADED,
	FCGI_UNKNOWN_ROLE,
};

enum fcgi_event {
	FCGI_EV_MORE,		/* every byte consumed; feed more */
	FCGI_EV_PARAMS,		/* the request's parameters are complete */
	FCGI_EV_STDIN,		/* a piece of the body: data, len */
	FCGI_EV_STDIN_END,	/* the body is complete */
	FCGI_EV_ABORT,		/* the web server gave up the request */
	FCGI_EV_GET_VALUES,	/* a management query: data, len (whole) */
	FCGI_EV_UNKNOWN,	/* a record of a type we do not know: rtype */
	FCGI_EV_REJECT,		/* answer END_REQUEST(id, status) */
	FCGI_EV_ERROR,		/* the stream breaks the protocol: close */
};

enum fcgi_phase {
	FCGI_IDLE,		/* between requests */
	FCGI_IN_PARAMS,		/* BEGIN_REQUEST seen, parameters coming */
	FCGI_IN_STDIN,		/* parameters done, body coming */
	FCGI_IN_DONE,		/* body done: the response is being made */
};

struct fcgi_event_info {
	enum fcgi_event	 type;
	const char	*data;		/* STDIN: into the input; GET_VALUES */
	size_t		 len;
	unsigned	 id;		/* REJECT */
	unsigned	 status;	/* REJECT: enum fcgi_proto_status */
	unsigned	 rtype;		/* UNKNOWN */
};

struct fcgi_parser {
	/* The record being read. */
	unsigned char	 hdr[FCGI_HEADER_LEN];
	size_t		 hlen;		/* header bytes so far */
	unsigned	 type;
	unsigned	 id;
	size_t		 left;		/* content bytes still to come */
	size_t		 pad;		/* padding bytes still to come */
	unsigned char	 begin[8];	/* BEGIN_REQUEST body so far */
	size_t		 blen;
	struct buf	 small;		/* GET_VALUES content so far */

	/* The request. */
	enum fcgi_phase	 phase;
	unsigned	 req_id;	/* 0: none */
	bool		 keep_conn;
	struct buf	 params;	/* raw name-value pairs */
	size_t		 max_params;
	const char	*error;		/* after FCGI_EV_ERROR: why */
};

/* max_params bounds the parameters' size (the request is refused). */
void	fcgi_parser_init(struct fcgi_parser *, size_t max_params);
/* Frees what the parser holds. */
void	fcgi_parser_free(struct fcgi_parser *);
/*
 * After the response's END_REQUEST: ready for the connection's next
 * request (the parameters are dropped).
 */
void	fcgi_parser_next(struct fcgi_parser *);

/*
 * Consumes bytes of `in` up to the next event and returns how many; the
 * event is in *ev (FCGI_EV_MORE once all of `in` is consumed without
 * one).  A piece of the body is at most max_data bytes and points into
 * `in`.  After FCGI_EV_ERROR every call returns 0 and the error again.
 */
size_t	fcgi_parse(struct fcgi_parser *, const char *in, size_t len,
	    size_t max_data, struct fcgi_event_info *ev);

/*
 * Calls fn for each name-value pair of a parameter block, in order;
 * stops at fn's first non-zero value and returns it.  Returns -1 if the
 * block is malformed (after the pairs before the fault).
 */
int	fcgi_pairs(const char *p, size_t n,
	    int (*fn)(void *ctx, const char *name, size_t nlen,
	    const char *value, size_t vlen), void *ctx);

/* Appends one name-value pair in the protocol's encoding. */
void	fcgi_pair_add(struct buf *, const char *name, size_t nlen,
	    const char *value, size_t vlen);

/* Writes a record header. */
void	fcgi_header(unsigned char h[FCGI_HEADER_LEN], unsigned type,
	    unsigned id, size_t content_len, unsigned pad);

/*
 * The end of a request: an empty FCGI_STDOUT record (the end of the
 * output) and FCGI_END_REQUEST with the given status; 24 bytes.
 */
#define FCGI_END_LEN	24
void	fcgi_end(unsigned char out[FCGI_END_LEN], unsigned id,
	    unsigned proto_status);
/* Only FCGI_END_REQUEST, for a refused BEGIN_REQUEST; 16 bytes. */
void	fcgi_end_request(unsigned char out[16], unsigned id,
	    unsigned proto_status);
/* FCGI_UNKNOWN_TYPE for a record type; 16 bytes. */
void	fcgi_unknown_type(unsigned char out[16], unsigned type);
/*
 * FCGI_GET_VALUES_RESULT answering the query in (data, len): the
 * variables we know (FCGI_MAX_CONNS, FCGI_MAX_REQS, FCGI_MPXS_CONNS),
 * others left out as the specification says.
 */
void	fcgi_get_values_result(const char *data, size_t len,
	    unsigned max_conns, unsigned max_reqs, struct buf *out);

#endif
