#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <stdint.h>
#include <sys/random.h>
#include <sys/socket.h>

#include "clock.h"
#include "log.h"
#include "num.h"
#include "request.h"
#include "url.h"
#include "xalloc.h"

static void
set_request_id(struct request *r)
{
	const char *given = req_param(r, "REQUEST_ID");
	unsigned char rnd[16];
	size_t i, n;

	if (given != NULL && (n = strlen(given)) > 0 && n <= REQ_ID_MAX) {
		for (i = 0; i < n; i++)
			if (!isalnum((unsigned char)given[i]) &&
			    given[i] != '-' && given[i] != '_')
				break;
		if (i == n) {
			memcpy(r->request_id, given, n + 1);
			return;
		}
	}
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		memset(rnd, 0, sizeof(rnd));
	for (i = 0; i < sizeof(rnd); i++)
		snprintf(r->request_id + 2 * i, 3, "%02x", rnd[i]);
}

struct params {
	struct request	*r;
	size_t		 cap;
};

/* FNV-1a: most lookups then compare no string but the one they find. */
static uint32_t
name_hash(const char *p, size_t n)
{
	uint32_t h = 2166136261u;

	while (n-- > 0)
		h = (h ^ (unsigned char)*p++) * 16777619u;
	return h;
}

static int
add_param(void *ctx, const char *name, size_t nlen, const char *value,
    size_t vlen)
{
	struct params *ps = ctx;
	struct request *r = ps->r;

	if (r->nparams == ps->cap) {
		const char **n, **v;
		uint32_t *h;

		ps->cap = ps->cap * 2 + 32;
		n = arena_alloc(r->arena, ps->cap * sizeof(*n));
		v = arena_alloc(r->arena, ps->cap * sizeof(*v));
		h = arena_alloc(r->arena, ps->cap * sizeof(*h));
		if (r->nparams > 0) {
			memcpy(n, r->param_names, r->nparams * sizeof(*n));
			memcpy(v, r->param_values, r->nparams * sizeof(*v));
			memcpy(h, r->param_hashes, r->nparams * sizeof(*h));
		}
		r->param_names = n;
		r->param_values = v;
		r->param_hashes = h;
	}
	r->param_hashes[r->nparams] = name_hash(name, nlen);
	r->param_names[r->nparams] = arena_strndup(r->arena, name, nlen);
	r->param_values[r->nparams++] = arena_strndup(r->arena, value, vlen);
	return 0;
}

void
req_init(struct request *r, struct conn *c, struct arena *a)
{
	struct params ps = { r, 0 };
	const char *uri, *q, *cl;
	long long n;

	memset(r, 0, sizeof(*r));
	r->conn = c;
	r->arena = a;
	r->started_us = clock_us();
	r->route_index = -1;
	r->content_length = -1;
	/* A malformed block keeps the pairs before the fault. */
	(void)fcgi_pairs(c->parser.params.p, c->parser.params.len, add_param,
	    &ps);
	buf_free(&c->parser.params);

	r->method = req_param(r, "REQUEST_METHOD");
	if (r->method == NULL)
		r->method = "GET";
	uri = req_param(r, "REQUEST_URI");
	if (uri == NULL)
		uri = "/";
	q = strchr(uri, '?');
	r->path = q != NULL ? arena_strndup(a, uri, (size_t)(q - uri)) : uri;
	r->nsegs = url_split_path(a, r->path, r->segs, REQ_MAX_SEGS);
	r->path_ok = r->nsegs != (size_t)-1;
	if (!r->path_ok)
		r->nsegs = 0;
	r->nquery = url_parse_query(a, q != NULL ? q + 1 : "", r->query,
	    REQ_MAX_QUERY);
	r->query_ok = r->nquery != (size_t)-1;
	if (!r->query_ok)
		r->nquery = 0;
	r->content_type = req_param(r, "CONTENT_TYPE");
	cl = req_param(r, "CONTENT_LENGTH");
	if (cl != NULL && *cl != '\0' &&
	    num_parse(cl, 0, (long long)1 << 40, &n) == 0)
		r->content_length = n;
	r->remote_addr = req_param(r, "REMOTE_ADDR");
	set_request_id(r);
}

void
req_done(struct request *r)
{
	buf_free(&r->headers);
}

const char *
req_param(const struct request *r, const char *name)
{
	uint32_t h = name_hash(name, strlen(name));
	size_t i;

	for (i = 0; i < r->nparams; i++)
		if (r->param_hashes[i] == h &&
		    strcmp(r->param_names[i], name) == 0)
			return r->param_values[i];
	return NULL;
}

int
req_fd(const struct request *r)
{
	return r->conn->fd;
}

const char *
req_query(const struct request *r, const char *key)
{
	size_t i;

	for (i = 0; i < r->nquery; i++)
		if (strcmp(r->query[i].key, key) == 0)
			return r->query[i].value;
	return NULL;
}

bool
req_content_type_is(const struct request *r, const char *type)
{
	size_t n = strlen(type);
	const char *ct = r->content_type;

	if (ct == NULL || strncasecmp(ct, type, n) != 0)
		return false;
	ct += n;
	while (*ct == ' ' || *ct == '\t')
		ct++;
	return *ct == '\0' || *ct == ';';
}

int
req_read_body(struct request *r)
{
	size_t want = r->content_length > 0 ? (size_t)r->content_length : 0;
	ssize_t got = 0;
	char extra[512];

	r->body = arena_alloc(r->arena, want + 1);
	r->body_len = 0;
	while (r->body_len < want) {
		got = conn_read_body(r->conn, r->body + r->body_len,
		    want - r->body_len);
		if (got <= 0)
			break;
		r->body_len += (size_t)got;
	}
	r->body[r->body_len] = '\0';
	/*
	 * Read on to the end of the stream (nginx's empty closing record),
	 * so the socket holds nothing unread: a streaming handler watches
	 * it and takes readability for the client hanging up.
	 */
	while (r->body_len == want && got >= 0 &&
	    (got = conn_read_body(r->conn, extra, sizeof(extra))) > 0)
		;
	return r->body_len == want && got == 0 ? 0 : -1;
}

void
req_add_header(struct request *r, const char *name, const char *value)
{
	buf_printf(&r->headers, "%s: %s\r\n", name, value);
}

const char *
http_reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 402: return "Payment Required";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 409: return "Conflict";
	case 413: return "Content Too Large";
	case 415: return "Unsupported Media Type";
	case 429: return "Too Many Requests";
	case 500: return "Internal Server Error";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	default: return "Unknown";
	}
}

int
req_writev(struct request *r, const struct iovec *iov, int n, bool end)
{
	if (r->client_gone)
		return -1;
	if (conn_send(r->conn, iov, n, end) != 0) {
		r->client_gone = true;
		return -1;
	}
	return 0;
}

int
req_write(struct request *r, const char *p, size_t n)
{
	struct iovec iov = { (void *)(uintptr_t)p, n };

	return req_writev(r, &iov, 1, false);
}

/* Status line and the headers every response carries. */
static void
head(struct request *r, struct buf *h, int status, const char *content_type)
{
	r->status = status;
	r->replied = true;
	buf_printf(h, "Status: %d %s\r\n", status, http_reason(status));
	if (content_type != NULL)
		buf_printf(h, "Content-Type: %s\r\n", content_type);
	buf_printf(h, "X-Request-Id: %s\r\n"
	    "Cache-Control: no-store\r\n"
	    "X-Content-Type-Options: nosniff\r\n", r->request_id);
	if (r->headers.len > 0)
		buf_add(h, r->headers.p, r->headers.len);
}

/*
 * One system call for the whole answer: the head, the body where the
 * caller has it, and the end of the request.
 */
void
reply(struct request *r, int status, const char *content_type,
    const char *body, size_t len)
{
	struct buf h = BUF_INIT;
	struct iovec iov[2];

	if (r->replied) {
		log_errx("reply after the response was sent");
		return;
	}
	head(r, &h, status, body != NULL ? content_type : NULL);
	if (body != NULL)
		buf_printf(&h, "Content-Length: %zu\r\n", len);
	buf_puts(&h, "\r\n");
	iov[0] = (struct iovec){ h.p, h.len };
	iov[1] = (struct iovec){ (void *)(uintptr_t)body, len };
	req_writev(r, iov, body != NULL && len > 0 ? 2 : 1, true);
	buf_free(&h);
}

void
reply_json(struct request *r, int status, const struct buf *b)
{
	reply(r, status, "application/json", b->p != NULL ? b->p : "",
	    b->len);
}

void
reply_empty(struct request *r, int status)
{
	reply(r, status, NULL, NULL, 0);
}

void
reply_error(struct request *r, int status, const char *code,
    const char *message, const char *field)
{
	struct buf b = BUF_INIT;

	if (r->replied) {
		/* A stream already started reports errors as events. */
		log_warnx("error %s after the response was sent", code);
		return;
	}
	r->error_code = code;
	if (status == 401)
		req_add_header(r, "WWW-Authenticate", "Bearer");
	buf_puts(&b, "{\"error\":{\"code\":");
	buf_json_str(&b, code);
	buf_puts(&b, ",\"message\":");
	buf_json_str(&b, message);
	if (field != NULL) {
		buf_puts(&b, ",\"field\":");
		buf_json_str(&b, field);
	}
	buf_puts(&b, "}}");
	reply_json(r, status, &b);
	buf_free(&b);
}

int
reply_start(struct request *r, int status, const char *content_type)
{
	struct buf h = BUF_INIT;
	int rc;

	if (r->replied) {
		log_errx("reply after the response was sent");
		return -1;
	}
	r->streaming = true;
	head(r, &h, status, content_type);
	buf_puts(&h, "\r\n");
	rc = req_write(r, h.p, h.len);
	buf_free(&h);
	return rc;
}

void
reply_abort(struct request *r)
{
	r->client_gone = true;
	r->error_code = "aborted";
	r->conn->broken = true;
	shutdown(r->conn->fd, SHUT_RDWR);
}

int
sse_start(struct request *r)
{
	struct buf h = BUF_INIT;
	struct iovec iov;
	int rc;

	r->streaming = true;
	head(r, &h, 200, "text/event-stream; charset=utf-8");
	/* nginx: never buffer this response, whatever the location says. */
	buf_puts(&h, "X-Accel-Buffering: no\r\n\r\n");
	iov = (struct iovec){ h.p, h.len };
	rc = req_writev(r, &iov, 1, false);
	buf_free(&h);
	return rc;
}

int
sse_event(struct request *r, const char *event, const char *json, size_t len)
{
	struct iovec iov[5] = {
		{ "event: ", 7 },
		{ (void *)(uintptr_t)event, strlen(event) },
		{ "\ndata: ", 7 },
		{ (void *)(uintptr_t)json, len },
		{ "\n\n", 2 },
	};

	/* JSON from the writer has no raw newlines, so one data line. */
	return req_writev(r, iov, 5, false);
}

int
sse_comment(struct request *r, const char *text)
{
	struct iovec iov[3] = {
		{ ": ", 2 },
		{ (void *)(uintptr_t)text, strlen(text) },
		{ "\n\n", 2 },
	};

	return req_writev(r, iov, 3, false);
}
