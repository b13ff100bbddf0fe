#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
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

void
req_init(struct request *r, FCGX_Request *fcgi, struct arena *a)
{
	const char *uri, *q, *cl;
	long long n;

	memset(r, 0, sizeof(*r));
	r->fcgi = fcgi;
	r->arena = a;
	r->started_us = clock_us();
	r->route_index = -1;
	r->content_length = -1;

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
	return FCGX_GetParam(name, r->fcgi->envp);
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
	int got;

	r->body = arena_alloc(r->arena, want + 1);
	r->body_len = 0;
	while (r->body_len < want) {
		size_t chunk = want - r->body_len;

		if (chunk > 1 << 20)
			chunk = 1 << 20;
		got = FCGX_GetStr(r->body + r->body_len, (int)chunk,
		    r->fcgi->in);
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
	if (r->body_len == want) {
		char extra;

		while (FCGX_GetStr(&extra, 1, r->fcgi->in) > 0)
			;
	}
	return r->body_len == want ? 0 : -1;
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
req_write(struct request *r, const char *p, size_t n, bool flush)
{
	if (r->client_gone)
		return -1;
	while (n > 0) {
		int chunk = n > (1 << 30) ? (1 << 30) : (int)n;

		if (FCGX_PutStr(p, chunk, r->fcgi->out) != chunk)
			goto gone;
		p += chunk;
		n -= (size_t)chunk;
	}
	if (flush && FCGX_FFlush(r->fcgi->out) != 0)
		goto gone;
	return 0;
gone:
	r->client_gone = true;
	return -1;
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

void
reply(struct request *r, int status, const char *content_type,
    const char *body, size_t len)
{
	struct buf h = BUF_INIT;

	if (r->replied) {
		log_errx("reply after the response was sent");
		return;
	}
	head(r, &h, status, body != NULL ? content_type : NULL);
	if (body != NULL)
		buf_printf(&h, "Content-Length: %zu\r\n", len);
	buf_puts(&h, "\r\n");
	if (body != NULL)
		buf_add(&h, body, len);
	req_write(r, h.p, h.len, false);
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
	rc = req_write(r, h.p, h.len, false);
	buf_free(&h);
	return rc;
}

void
reply_abort(struct request *r)
{
	r->client_gone = true;
	r->error_code = "aborted";
	shutdown(r->fcgi->ipcFd, SHUT_RDWR);
}

int
sse_start(struct request *r)
{
	struct buf h = BUF_INIT;
	int rc;

	r->streaming = true;
	head(r, &h, 200, "text/event-stream; charset=utf-8");
	/* nginx: never buffer this response, whatever the location says. */
	buf_puts(&h, "X-Accel-Buffering: no\r\n\r\n");
	rc = req_write(r, h.p, h.len, true);
	buf_free(&h);
	return rc;
}

int
sse_event(struct request *r, const char *event, const char *json, size_t len)
{
	struct buf b = BUF_INIT;
	int rc;

	/* JSON from the writer has no raw newlines, so one data line. */
	buf_printf(&b, "event: %s\ndata: ", event);
	buf_add(&b, json, len);
	buf_puts(&b, "\n\n");
	rc = req_write(r, b.p, b.len, true);
	buf_free(&b);
	return rc;
}

int
sse_comment(struct request *r, const char *text)
{
	struct buf b = BUF_INIT;
	int rc;

	buf_printf(&b, ": %s\n\n", text);
	rc = req_write(r, b.p, b.len, true);
	buf_free(&b);
	return rc;
}
