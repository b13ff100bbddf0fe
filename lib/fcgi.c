#include <stdio.h>
#include <string.h>

#include "fcgi.h"

void
fcgi_parser_init(struct fcgi_parser *p, size_t max_params)
{
	memset(p, 0, sizeof(*p));
	p->max_params = max_params;
}

void
fcgi_parser_free(struct fcgi_parser *p)
{
	buf_free(&p->params);
	buf_free(&p->small);
}

void
fcgi_parser_next(struct fcgi_parser *p)
{
	p->phase = FCGI_IDLE;
	p->req_id = 0;
	p->keep_conn = false;
	buf_free(&p->params);
}

static void
fail(struct fcgi_parser *p, struct fcgi_event_info *ev, const char *why)
{
	p->error = why;
	ev->type = FCGI_EV_ERROR;
}

/* A BEGIN_REQUEST record is complete. */
static void
begin(struct fcgi_parser *p, struct fcgi_event_info *ev)
{
	unsigned role = (unsigned)p->begin[0] << 8 | p->begin[1];

	if (p->blen < 8 || p->id == 0) {
		fail(p, ev, "malformed BEGIN_REQUEST");
		return;
	}
	if (p->phase != FCGI_IDLE) {
		if (p->id == p->req_id) {
			fail(p, ev, "BEGIN_REQUEST for the active request");
			return;
		}
		ev->type = FCGI_EV_REJECT;
		ev->id = p->id;
		ev->status = FCGI_CANT_MPX_CONN;
		return;
	}
	if (role != FCGI_RESPONDER) {
		ev->type = FCGI_EV_REJECT;
		ev->id = p->id;
		ev->status = FCGI_UNKNOWN_ROLE;
		return;
	}
	p->phase = FCGI_IN_PARAMS;
	p->req_id = p->id;
	p->keep_conn = (p->begin[2] & FCGI_KEEP_CONN) != 0;
	buf_reset(&p->params);
}

/*
 * Takes up to n bytes of the current record's content (all of them
 * except for a piece of the body, bounded by max_data) and returns how
 * many; sets *ev when the record makes an event.  n is 0 only for a
 * record without content, which is then complete.
 */
static size_t
content(struct fcgi_parser *p, const char *d, size_t n, size_t max_data,
    struct fcgi_event_info *ev)
{
	bool active = p->phase != FCGI_IDLE && p->id == p->req_id;
	bool empty = p->left == 0;
	size_t k;

	switch (p->type) {
	case FCGI_BEGIN_REQUEST:
		k = sizeof(p->begin) - p->blen < n ?
		    sizeof(p->begin) - p->blen : n;
		memcpy(p->begin + p->blen, d, k);
		p->blen += k;
		p->left -= n;
		if (p->left == 0)
			begin(p, ev);
		return n;
	case FCGI_ABORT_REQUEST:
		p->left -= n;
		if (p->left == 0 && active) {
			p->phase = FCGI_IN_DONE;
			ev->type = FCGI_EV_ABORT;
		}
		return n;
	case FCGI_PARAMS:
		if (!active)
			break;
		if (p->phase != FCGI_IN_PARAMS) {
			fail(p, ev, "PARAMS after the parameters ended");
			return 0;
		}
		if (empty) {
			p->phase = FCGI_IN_STDIN;
			ev->type = FCGI_EV_PARAMS;
			return 0;
		}
		if (p->params.len + n > p->max_params) {
			fail(p, ev, "parameters too large");
			return 0;
		}
		buf_add(&p->params, d, n);
		p->left -= n;
		return n;
	case FCGI_STDIN:
		if (!active)
			break;
		if (p->phase != FCGI_IN_STDIN) {
			fail(p, ev, p->phase == FCGI_IN_PARAMS ?
			    "STDIN before the parameters ended" :
			    "STDIN after its end");
			return 0;
		}
		if (empty) {
			p->phase = FCGI_IN_DONE;
			ev->type = FCGI_EV_STDIN_END;
			return 0;
		}
		k = n < max_data ? n : max_data;
		p->left -= k;
		ev->type = FCGI_EV_STDIN;
		ev->data = d;
		ev->len = k;
		return k;
	case FCGI_GET_VALUES:
		if (p->id != 0)
			break;
		if (n > 0)
			buf_add(&p->small, d, n);
		p->left -= n;
		if (p->left == 0) {
			ev->type = FCGI_EV_GET_VALUES;
			ev->data = p->small.p != NULL ? p->small.p : "";
			ev->len = p->small.len;
		}
		return n;
	case FCGI_DATA:
		break;
	default:
		p->left -= n;
		if (p->left == 0 && p->id == 0) {
			ev->type = FCGI_EV_UNKNOWN;
			ev->rtype = p->type;
		}
		return n;
	}
	/* Ignored: records of inactive requests, FCGI_DATA. */
	p->left -= n;
	return n;
}

size_t
fcgi_parse(struct fcgi_parser *p, const char *in, size_t len,
    size_t max_data, struct fcgi_event_info *ev)
{
	size_t used = 0, k;

	memset(ev, 0, sizeof(*ev));
	if (p->error != NULL) {
		ev->type = FCGI_EV_ERROR;
		return 0;
	}
	if (max_data == 0)
		max_data = 1;
	for (;;) {
		if (p->hlen == FCGI_HEADER_LEN && p->left == 0) {
			/* Content done: the padding, then the next record. */
			k = len - used < p->pad ? len - used : p->pad;
			used += k;
			p->pad -= k;
			if (p->pad > 0)
				break;
			p->hlen = 0;
		}
		if (p->hlen < FCGI_HEADER_LEN) {
			if (used == len)
				break;
			k = FCGI_HEADER_LEN - p->hlen;
			if (k > len - used)
				k = len - used;
			memcpy(p->hdr + p->hlen, in + used, k);
			p->hlen += k;
			used += k;
			if (p->hlen < FCGI_HEADER_LEN)
				break;
			if (p->hdr[0] != 1) {
				fail(p, ev, "not FastCGI version 1");
				return used;
			}
			p->type = p->hdr[1];
			p->id = (unsigned)p->hdr[2] << 8 | p->hdr[3];
			p->left = (size_t)p->hdr[4] << 8 | p->hdr[5];
			p->pad = p->hdr[6];
			p->blen = 0;
			buf_reset(&p->small);
			if (p->left == 0) {
				content(p, NULL, 0, max_data, ev);
				if (ev->type != FCGI_EV_MORE)
					return used;
			}
			continue;
		}
		if (used == len)
			break;
		k = len - used < p->left ? len - used : p->left;
		used += content(p, in + used, k, max_data, ev);
		if (ev->type != FCGI_EV_MORE)
			return used;
	}
	return used;
}

/* Reads one length of a pair: 1 byte, or 4 with the top bit set. */
static int
pair_len(const unsigned char **p, const unsigned char *end, size_t *out)
{
	const unsigned char *s = *p;

	if (s >= end)
		return -1;
	if (s[0] < 0x80) {
		*out = s[0];
		*p = s + 1;
		return 0;
	}
	if (end - s < 4)
		return -1;
	*out = (size_t)(s[0] & 0x7f) << 24 | (size_t)s[1] << 16 |
	    (size_t)s[2] << 8 | s[3];
	*p = s + 4;
	return 0;
}

int
fcgi_pairs(const char *p, size_t n,
    int (*fn)(void *, const char *, size_t, const char *, size_t), void *ctx)
{
	const unsigned char *s = (const unsigned char *)p, *end = s + n;
	size_t nlen, vlen;
	int rc;

	while (s < end) {
		if (pair_len(&s, end, &nlen) != 0 ||
		    pair_len(&s, end, &vlen) != 0 ||
		    nlen > (size_t)(end - s) || vlen > (size_t)(end - s) - nlen)
			return -1;
		rc = fn(ctx, (const char *)s, nlen, (const char *)s + nlen,
		    vlen);
		if (rc != 0)
			return rc;
		s += nlen + vlen;
	}
	return 0;
}

static void
put_len(struct buf *b, size_t n)
{
	unsigned char l[4];

	if (n < 0x80) {
		buf_putc(b, (char)n);
		return;
	}
	l[0] = (unsigned char)(n >> 24 | 0x80);
	l[1] = (unsigned char)(n >> 16);
	l[2] = (unsigned char)(n >> 8);
	l[3] = (unsigned char)n;
	buf_add(b, l, 4);
}

void
fcgi_pair_add(struct buf *b, const char *name, size_t nlen,
    const char *value, size_t vlen)
{
	put_len(b, nlen);
	put_len(b, vlen);
	buf_add(b, name, nlen);
	buf_add(b, value, vlen);
}

void
fcgi_header(unsigned char h[FCGI_HEADER_LEN], unsigned type, unsigned id,
    size_t content_len, unsigned pad)
{
	h[0] = 1;
	h[1] = (unsigned char)type;
	h[2] = (unsigned char)(id >> 8);
	h[3] = (unsigned char)id;
	h[4] = (unsigned char)(content_len >> 8);
	h[5] = (unsigned char)content_len;
	h[6] = (unsigned char)pad;
	h[7] = 0;
}

void
fcgi_end_request(unsigned char out[16], unsigned id, unsigned proto_status)
{
	fcgi_header(out, FCGI_END_REQUEST, id, 8, 0);
	memset(out + 8, 0, 8);		/* appStatus 0, reserved */
	out[12] = (unsigned char)proto_status;
}

void
fcgi_end(unsigned char out[FCGI_END_LEN], unsigned id, unsigned proto_status)
{
	fcgi_header(out, FCGI_STDOUT, id, 0, 0);
	fcgi_end_request(out + 8, id, proto_status);
}

void
fcgi_unknown_type(unsigned char out[16], unsigned type)
{
	fcgi_header(out, FCGI_UNKNOWN_TYPE, 0, 8, 0);
	memset(out + 8, 0, 8);
	out[8] = (unsigned char)type;
}

struct values {
	struct buf	*content;
	unsigned	 max_conns, max_reqs;
};

static int
value_of(void *ctx, const char *name, size_t nlen, const char *v, size_t vlen)
{
	struct values *vs = ctx;
	char num[16];
	int n = -1;

	(void)v;
	(void)vlen;
	if (nlen == 14 && memcmp(name, "FCGI_MAX_CONNS", 14) == 0)
		n = snprintf(num, sizeof(num), "%u", vs->max_conns);
	else if (nlen == 13 && memcmp(name, "FCGI_MAX_REQS", 13) == 0)
		n = snprintf(num, sizeof(num), "%u", vs->max_reqs);
	else if (nlen == 15 && memcmp(name, "FCGI_MPXS_CONNS", 15) == 0)
		n = snprintf(num, sizeof(num), "0");
	/* Bounded, whatever the query repeats. */
	if (n > 0 && vs->content->len + nlen + (size_t)n + 2 <= 1024)
		fcgi_pair_add(vs->content, name, nlen, num, (size_t)n);
	return 0;
}

void
fcgi_get_values_result(const char *data, size_t len, unsigned max_conns,
    unsigned max_reqs, struct buf *out)
{
	struct buf content = BUF_INIT;
	struct values vs = { &content, max_conns, max_reqs };
	unsigned char h[FCGI_HEADER_LEN];

	(void)fcgi_pairs(data, len, value_of, &vs);
	fcgi_header(h, FCGI_GET_VALUES_RESULT, 0, content.len, 0);
	buf_add(out, h, sizeof(h));
	if (content.len > 0)
		buf_add(out, content.p, content.len);
	buf_free(&content);
}
