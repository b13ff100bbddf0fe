/*
 * lib/conn.c over a socketpair: a response larger than one record is
 * framed into records of at most 65535 bytes that carry it intact, and
 * ends with an empty STDOUT and END_REQUEST; the body is read in pieces
 * of any size up to its end; management records are answered while
 * reading; skipping a body without waiting; a peer that stops reading
 * or sending makes the call fail (it does not hang) and marks the
 * connection broken; a peer that closed does too.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/conn.h"
#include "t/unit/tap.h"

static int	 peer = -1;

static void
pair(struct conn *c, int timeout_ms)
{
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
		abort();
	fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
	conn_init(c, sv[0], 4096, timeout_ms);
	peer = sv[1];
}

static void
rec(struct buf *b, unsigned type, unsigned id, const char *p, size_t n)
{
	unsigned char h[FCGI_HEADER_LEN];

	fcgi_header(h, type, id, n, 0);
	buf_add(b, h, sizeof(h));
	if (n > 0)
		buf_add(b, p, n);
}

static void
send_all(const struct buf *b)
{
	size_t off = 0;
	ssize_t n;

	while (off < b->len && (n = write(peer, b->p + off, b->len - off)) > 0)
		off += (size_t)n;
}

static void *
reader(void *arg)
{
	struct buf *got = arg;
	char tmp[8192];
	ssize_t n;

	while ((n = read(peer, tmp, sizeof(tmp))) > 0)
		buf_add(got, tmp, (size_t)n);
	return NULL;
}

/* Waits for the parameters of a request on c. */
static enum fcgi_event
params(struct conn *c)
{
	struct fcgi_event_info ev;
	enum fcgi_event e;

	for (;;) {
		e = conn_next(c, SIZE_MAX, &ev);
		if (e != FCGI_EV_MORE)
			return e;
		if (conn_fill(c, 1 << 20) <= 0)
			usleep(1000);
	}
}

static void
test_send(void)
{
	struct conn c;
	struct buf got = BUF_INIT;
	struct iovec iov[3];
	char *data = malloc(150000);
	size_t off = 0, body = 0, i, recs = 0, max = 0;
	pthread_t t;
	int bad = 0;

	for (i = 0; i < 150000; i++)
		data[i] = (char)(i * 7 + i / 256);
	pair(&c, 10000);
	c.parser.req_id = 0x0102;
	pthread_create(&t, NULL, reader, &got);
	iov[0] = (struct iovec){ data, 10 };
	iov[1] = (struct iovec){ data + 10, 100000 };
	iov[2] = (struct iovec){ data + 100010, 49990 };
	is_int(conn_send(&c, iov, 3, false), 0, "150000 bytes sent");
	is_int(conn_send(&c, NULL, 0, true), 0, "then the end");
	ok(c.ended, "the request is ended");
	is_int(conn_send(&c, iov, 1, false), -1, "nothing after the end");
	conn_close(&c);
	pthread_join(t, NULL);
	close(peer);

	while (off + 8 <= got.len) {
		const unsigned char *h = (const unsigned char *)got.p + off;
		size_t len = (size_t)h[4] << 8 | h[5];

		if (h[0] != 1 || h[2] != 1 || h[3] != 2)
			bad++;
		if (h[1] == FCGI_STDOUT && len > 0) {
			if (memcmp(got.p + off + 8, data + body, len) != 0)
				bad++;
			body += len;
			recs++;
			if (len > max)
				max = len;
			off += 8 + len + h[6];
			continue;
		}
		break;
	}
	is_int(bad, 0, "records well formed, carrying the data intact");
	is_int(body, 150000, "all of it");
	is_int(recs, 3, "in three records");
	is_int(max, 65535, "of at most 65535 bytes");
	is_int(got.len - off, 24, "then 24 bytes");
	ok(got.len - off == 24 && memcmp(got.p + off, "\1\6\1\2\0\0\0\0"
	    "\1\3\1\2\0\10\0\0", 16) == 0 && got.p[off + 20] == 0,
	    "an empty STDOUT and END_REQUEST (complete)");
	buf_free(&got);
	free(data);
}

static void
test_read(void)
{
	struct conn c;
	struct buf in = BUF_INIT, out = BUF_INIT;
	char tmp[3];
	ssize_t n;
	int calls = 0;

	pair(&c, 10000);
	rec(&in, FCGI_GET_VALUES, 0, "\x0f\0FCGI_MPXS_CONNS", 17);
	rec(&in, FCGI_BEGIN_REQUEST, 1, "\0\1\1\0\0\0\0\0", 8);
	rec(&in, FCGI_PARAMS, 1, "\1\1ab", 4);
	rec(&in, FCGI_PARAMS, 1, NULL, 0);
	rec(&in, FCGI_STDIN, 1, "hello ", 6);
	rec(&in, 42, 0, NULL, 0);
	rec(&in, FCGI_STDIN, 1, "world", 5);
	rec(&in, FCGI_STDIN, 1, NULL, 0);
	send_all(&in);
	is_int(params(&c), FCGI_EV_PARAMS, "the parameters");
	ok(c.parser.keep_conn, "... with FCGI_KEEP_CONN");
	while ((n = conn_read_body(&c, tmp, sizeof(tmp))) > 0) {
		buf_add(&out, tmp, (size_t)n);
		calls++;
	}
	is_int(n, 0, "the body's end");
	is_str(out.p, "hello world", "the body, read 3 bytes at a time");
	ok(calls >= 4, "in %d reads", calls);
	is_int(conn_read_body(&c, tmp, sizeof(tmp)), 0, "still the end");
	ok(conn_skip_body(&c), "nothing to skip");
	/* What we answered: GET_VALUES_RESULT, then UNKNOWN_TYPE. */
	buf_free(&out);
	n = read(peer, tmp, 1);
	is_int(n, 1, "an answer came back");
	is_int(tmp[0], 1, "... a record");
	{
		char rest[64];
		ssize_t k = read(peer, rest, sizeof(rest));

		/* 26 bytes of answer (one pair), then 16; one byte read. */
		ok(k == 26 + 16 - 1 && rest[0] == FCGI_GET_VALUES_RESULT &&
		    rest[26] == FCGI_UNKNOWN_TYPE && rest[33] == 42,
		    "GET_VALUES_RESULT, then UNKNOWN_TYPE (42)");
	}
	conn_close(&c);
	close(peer);
	buf_free(&in);

	/* A body that arrives later: not skipped without waiting. */
	pair(&c, 10000);
	buf_reset(&in);
	rec(&in, FCGI_BEGIN_REQUEST, 1, "\0\1\0\0\0\0\0\0", 8);
	rec(&in, FCGI_PARAMS, 1, NULL, 0);
	rec(&in, FCGI_STDIN, 1, "abc", 3);
	send_all(&in);
	is_int(params(&c), FCGI_EV_PARAMS, "parameters, body half sent");
	ok(!conn_skip_body(&c), "the body has not ended: not skipped");
	ok(!c.broken, "... and nothing broke");
	buf_reset(&in);
	rec(&in, FCGI_STDIN, 1, NULL, 0);
	send_all(&in);
	ok(conn_skip_body(&c), "its end came: skipped");
	is_int(c.parser.phase, FCGI_IN_DONE, "the body is done");
	conn_close(&c);
	close(peer);

	/* The peer stops sending: the read fails after the timeout. */
	pair(&c, 100);
	buf_reset(&in);
	rec(&in, FCGI_BEGIN_REQUEST, 1, "\0\1\0\0\0\0\0\0", 8);
	rec(&in, FCGI_PARAMS, 1, NULL, 0);
	rec(&in, FCGI_STDIN, 1, "ab", 2);
	send_all(&in);
	params(&c);
	is_int(conn_read_body(&c, tmp, sizeof(tmp)), 2, "what came");
	is_int(conn_read_body(&c, tmp, sizeof(tmp)), -1,
	    "then a stalled peer fails the read");
	ok(c.broken, "... and the connection is broken");
	conn_close(&c);
	close(peer);

	/* The peer closes mid-body. */
	pair(&c, 10000);
	send_all(&in);
	close(peer);
	params(&c);
	is_int(conn_read_body(&c, tmp, sizeof(tmp)), 2, "what came");
	is_int(conn_read_body(&c, tmp, sizeof(tmp)), -1,
	    "then the closed peer fails the read");
	conn_close(&c);
	buf_free(&in);
}

static void
test_stalled_writer(void)
{
	struct conn c;
	struct iovec iov;
	char *big = calloc(1, 8 << 20);
	int rcv = 4096;

	pair(&c, 100);
	setsockopt(peer, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
	iov = (struct iovec){ big, 8 << 20 };
	is_int(conn_send(&c, &iov, 1, false), -1,
	    "a peer that reads nothing fails the write");
	ok(c.broken, "... and the connection is broken");
	is_int(conn_send(&c, &iov, 1, true), -1, "later writes fail at once");
	conn_close(&c);
	close(peer);

	pair(&c, 10000);
	close(peer);
	iov = (struct iovec){ big, 10 };
	is_int(conn_send(&c, &iov, 1, true), -1, "a peer that closed: fails");
	conn_close(&c);
	free(big);
}

int
main(void)
{
	test_send();
	test_read();
	test_stalled_writer();
	return tap_done();
}
