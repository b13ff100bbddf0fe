#include <errno.h>
#include <stdint.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn.h"
#include "xalloc.h"

/* Enough for nginx's whole request head in one read, most of the time. */
#define IN_SIZE		(16 * 1024)
/* iovecs per sendmsg(); a response rarely needs more than four. */
#define OUT_IOV		64

static unsigned	 lim_conns = 1024, lim_reqs = 1024;

/*
 * Each thread keeps one spare input buffer: a request's connection
 * takes it when bytes come and gives it back when it goes idle, so a
 * request costs no allocation of IN_SIZE (which would also make malloc
 * consolidate its small chunks each time).
 */
static pthread_key_t	 spare_key;
static pthread_once_t	 spare_once = PTHREAD_ONCE_INIT;

static void
spare_init(void)
{
	pthread_key_create(&spare_key, free);
}

static char *
in_buffer(void)
{
	char *p;

	pthread_once(&spare_once, spare_init);
	if ((p = pthread_getspecific(spare_key)) != NULL) {
		pthread_setspecific(spare_key, NULL);
		return p;
	}
	return xmalloc(IN_SIZE);
}

static void
in_release(char *p)
{
	pthread_once(&spare_once, spare_init);
	if (pthread_getspecific(spare_key) == NULL)
		pthread_setspecific(spare_key, p);
	else
		free(p);
}

void
conn_limits(unsigned max_conns, unsigned max_reqs)
{
	lim_conns = max_conns;
	lim_reqs = max_reqs;
}

void
conn_init(struct conn *c, int fd, size_t max_params, int timeout_ms)
{
	memset(c, 0, sizeof(*c));
	c->fd = fd;
	c->timeout_ms = timeout_ms;
	fcgi_parser_init(&c->parser, max_params);
}

void
conn_close(struct conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	fcgi_parser_free(&c->parser);
	if (c->in != NULL)
		in_release(c->in);
	c->in = NULL;
	c->in_off = c->in_len = 0;
}

void
conn_trim(struct conn *c)
{
	if (c->in != NULL && c->in_off == c->in_len) {
		in_release(c->in);
		c->in = NULL;
		c->in_off = c->in_len = 0;
	}
}

void
conn_next_request(struct conn *c)
{
	fcgi_parser_next(&c->parser);
	c->ended = false;
	conn_trim(c);
}

ssize_t
conn_fill(struct conn *c, size_t max)
{
	ssize_t n;

	if (c->in == NULL)
		c->in = in_buffer();
	if (c->in_off == c->in_len)
		c->in_off = c->in_len = 0;
	else if (c->in_off > 0 && c->in_len == IN_SIZE) {
		memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
		c->in_len -= c->in_off;
		c->in_off = 0;
	}
	if (max > IN_SIZE - c->in_len)
		max = IN_SIZE - c->in_len;
	do
		n = read(c->fd, c->in + c->in_len, max);
	while (n < 0 && errno == EINTR);
	if (n > 0)
		c->in_len += (size_t)n;
	return n;
}

/* Waits until fd is ready for `events`; 0, or -1 after the timeout. */
static int
wait_fd(struct conn *c, short events)
{
	struct pollfd pfd = { c->fd, events, 0 };
	int n;

	if (c->timeout_ms <= 0)
		return -1;
	do
		n = poll(&pfd, 1, c->timeout_ms);
	while (n < 0 && errno == EINTR);
	return n > 0 ? 0 : -1;
}

/* Writes all of iov[0..n) (modified on the way); 0 or -1. */
static int
write_all(struct conn *c, struct iovec *iov, int n)
{
	struct msghdr m = { 0 };
	ssize_t w;

	if (c->broken)
		return -1;
	while (n > 0) {
		m.msg_iov = iov;
		m.msg_iovlen = (size_t)n;
		w = sendmsg(c->fd, &m, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if ((errno == EAGAIN || errno == EWOULDBLOCK) &&
			    wait_fd(c, POLLOUT) == 0)
				continue;
			c->broken = true;
			return -1;
		}
		while (n > 0 && (size_t)w >= iov->iov_len) {
			w -= (ssize_t)iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (char *)iov->iov_base + w;
			iov->iov_len -= (size_t)w;
		}
	}
	return 0;
}

static int
write_raw(struct conn *c, const void *p, size_t n)
{
	struct iovec iov = { (void *)(uintptr_t)p, n };

	return write_all(c, &iov, 1);
}

enum fcgi_event
conn_next(struct conn *c, size_t max_data, struct fcgi_event_info *ev)
{
	unsigned char rec[16];
	struct buf b = BUF_INIT;
	size_t used;

	for (;;) {
		used = fcgi_parse(&c->parser, c->in != NULL ? c->in +
		    c->in_off : "", c->in_len - c->in_off, max_data, ev);
		c->in_off += used;
		switch (ev->type) {
		case FCGI_EV_REJECT:
			fcgi_end_request(rec, ev->id, ev->status);
			write_raw(c, rec, 16);
			continue;
		case FCGI_EV_UNKNOWN:
			fcgi_unknown_type(rec, ev->rtype);
			write_raw(c, rec, 16);
			continue;
		case FCGI_EV_GET_VALUES:
			fcgi_get_values_result(ev->data, ev->len, lim_conns,
			    lim_reqs, &b);
			write_raw(c, b.p, b.len);
			buf_free(&b);
			continue;
		case FCGI_EV_ABORT:
			c->aborted = true;
			return ev->type;
		case FCGI_EV_ERROR:
			c->broken = true;
			return ev->type;
		default:
			return ev->type;
		}
	}
}

ssize_t
conn_read_body(struct conn *c, char *p, size_t n)
{
	struct fcgi_event_info ev;
	ssize_t got;

	if (c->parser.phase == FCGI_IN_DONE)
		return c->aborted ? -1 : 0;
	if (c->broken || c->parser.phase != FCGI_IN_STDIN)
		return -1;
	for (;;) {
		switch (conn_next(c, n, &ev)) {
		case FCGI_EV_STDIN:
			memcpy(p, ev.data, ev.len);
			return (ssize_t)ev.len;
		case FCGI_EV_STDIN_END:
			return 0;
		case FCGI_EV_MORE:
			break;
		default:
			return -1;
		}
		got = conn_fill(c, IN_SIZE);
		if (got > 0)
			continue;
		if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) &&
		    wait_fd(c, POLLIN) == 0)
			continue;
		c->broken = true;
		return -1;
	}
}

bool
conn_skip_body(struct conn *c)
{
	struct fcgi_event_info ev;
	int saved = c->timeout_ms;
	bool done = false;

	c->timeout_ms = 0;
	while (c->parser.phase == FCGI_IN_STDIN && !c->broken) {
		switch (conn_next(c, SIZE_MAX, &ev)) {
		case FCGI_EV_STDIN:
			continue;
		case FCGI_EV_MORE:
			if (conn_fill(c, IN_SIZE) > 0)
				continue;
			break;
		default:
			break;
		}
		break;
	}
	done = c->parser.phase == FCGI_IN_DONE;
	c->timeout_ms = saved;
	return done;
}

int
conn_send(struct conn *c, const struct iovec *data, int n, bool end)
{
	struct iovec out[OUT_IOV];
	unsigned char hdr[OUT_IOV][FCGI_HEADER_LEN], tail[FCGI_END_LEN];
	size_t total = 0, rec_left = 0, off, take;
	int i, k = 0;

	if (c->broken || c->ended)
		return -1;
	for (i = 0; i < n; i++)
		total += data[i].iov_len;
	for (i = 0; i < n; i++) {
		for (off = 0; off < data[i].iov_len; off += take) {
			/* Room for a header, a piece and the tail. */
			if (k > OUT_IOV - 3) {
				if (write_all(c, out, k) != 0)
					return -1;
				k = 0;
			}
			if (rec_left == 0) {
				rec_left = total < FCGI_MAX_CONTENT ? total :
				    FCGI_MAX_CONTENT;
				fcgi_header(hdr[k], FCGI_STDOUT,
				    c->parser.req_id, rec_left, 0);
				out[k].iov_base = hdr[k];
				out[k++].iov_len = FCGI_HEADER_LEN;
			}
			take = data[i].iov_len - off;
			if (take > rec_left)
				take = rec_left;
			out[k].iov_base = (char *)data[i].iov_base + off;
			out[k++].iov_len = take;
			rec_left -= take;
			total -= take;
		}
	}
	if (end) {
		fcgi_end(tail, c->parser.req_id, FCGI_REQUEST_COMPLETE);
		out[k].iov_base = tail;
		out[k++].iov_len = sizeof(tail);
	}
	if (k > 0 && write_all(c, out, k) != 0)
		return -1;
	if (end)
		c->ended = true;
	return 0;
}
