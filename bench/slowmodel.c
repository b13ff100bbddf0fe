/*
 * slowmodel: a model server for the streaming capacity run, in C so that
 * a thousand slow streams cost it next to nothing and the run measures
 * Miky, not the fake.  Every POST gets an OpenAI-style chat completion
 * stream: PIECES pieces of content, one every INTERVAL_MS, then a usage
 * chunk and "data: [DONE]", and the connection closes.
 *
 *	slowmodel PORT_FILE [PIECES [INTERVAL_MS]]
 *
 * It listens on a free loopback port, writes the port to PORT_FILE, and
 * runs until killed.  Requests are read up to the end of their headers
 * and body (Content-Length); their content is not looked at.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define MAXCONN	65536

struct conn {
	int	 fd;
	int	 sent;		/* pieces sent; -1: still reading the request */
	long long started;	/* ms, when the request was complete */
	size_t	 got;
	char	 req[16384];
};

static struct conn	*conns[MAXCONN];
static int		 maxfd;
static int		 pieces = 300;
static int		 interval = 100;

/* Tens of thousands of streams: as many descriptors as allowed. */
static void
raise_nofile(void)
{
	struct rlimit rl = { MAXCONN + 64, MAXCONN + 64 };

	if (setrlimit(RLIMIT_NOFILE, &rl) != 0 &&
	    getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
drop(int ep, struct conn *c)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	conns[c->fd] = NULL;
	free(c);
}

static int
say(struct conn *c, const char *s)
{
	size_t n = strlen(s);

	/* Small writes to a socket with room: all or nothing is fine here. */
	return write(c->fd, s, n) == (ssize_t)n ? 0 : -1;
}

/* True once the whole request (headers and Content-Length body) is in. */
static int
complete(struct conn *c)
{
	char *end = memmem(c->req, c->got, "\r\n\r\n", 4), *cl;
	size_t body = 0;

	if (end == NULL)
		return 0;
	c->req[c->got < sizeof(c->req) ? c->got : sizeof(c->req) - 1] = '\0';
	cl = strcasestr(c->req, "\r\nContent-Length:");
	if (cl != NULL && cl < end)
		body = strtoul(cl + 17, NULL, 10);
	return c->got >= (size_t)(end + 4 - c->req) + body ||
	    c->got == sizeof(c->req);
}

static void
on_read(int ep, struct conn *c)
{
	ssize_t n = read(c->fd, c->req + c->got, sizeof(c->req) - c->got);

	if (n <= 0) {
		drop(ep, c);
		return;
	}
	c->got += (size_t)n;
	if (c->sent < 0 && complete(c)) {
		c->sent = 0;
		c->started = now_ms();
		if (say(c, "HTTP/1.1 200 OK\r\n"
		    "Content-Type: text/event-stream\r\n"
		    "Cache-Control: no-cache\r\nConnection: close\r\n\r\n"
		    "data: {\"choices\":[{\"index\":0,\"delta\":"
		    "{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n") != 0)
			drop(ep, c);
	}
}

/*
 * One tick (every 10 ms): each stream whose next piece is due gets it,
 * on its own schedule from when its request came; finished ones end.
 */
static void
tick(int ep)
{
	long long now = now_ms();
	char piece[256];
	int fd;

	for (fd = 0; fd <= maxfd; fd++) {
		struct conn *c = conns[fd];

		if (c == NULL || c->sent < 0 ||
		    now - c->started < (long long)(c->sent + 1) * interval)
			continue;
		if (c->sent < pieces) {
			snprintf(piece, sizeof(piece), "data: {\"choices\":[{"
			    "\"index\":0,\"delta\":{\"content\":\"%sword %d\"}}]}"
			    "\n\n", c->sent == 0 ? "Hello " : " ", c->sent + 1);
			if (say(c, piece) != 0) {
				drop(ep, c);
				continue;
			}
			c->sent++;
			continue;
		}
		snprintf(piece, sizeof(piece), "data: {\"choices\":[],\"usage\":"
		    "{\"prompt_tokens\":100,\"completion_tokens\":%d}}\n\n"
		    "data: [DONE]\n\n", pieces);
		say(c, piece);
		drop(ep, c);
	}
}

int
main(int argc, char *argv[])
{
	struct sockaddr_in sin = { .sin_family = AF_INET,
	    .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sin);
	struct itimerspec its = { { 0, 0 }, { 0, 0 } };
	struct epoll_event ev, evs[256];
	int lfd, tfd, ep, i, n, one = 1;
	FILE *f;

	if (argc < 2) {
		fprintf(stderr, "usage: slowmodel PORT_FILE [PIECES [MS]]\n");
		return 2;
	}
	if (argc > 2)
		pieces = atoi(argv[2]);
	if (argc > 3)
		interval = atoi(argv[3]);
	raise_nofile();
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
	    listen(lfd, 4096) != 0 ||
	    getsockname(lfd, (struct sockaddr *)&sin, &len) != 0) {
		perror("slowmodel: listen");
		return 1;
	}
	if ((f = fopen(argv[1], "w")) == NULL) {
		perror(argv[1]);
		return 1;
	}
	fprintf(f, "%d\n", ntohs(sin.sin_port));
	fclose(f);

	tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
	its.it_interval.tv_nsec = 10 * 1000000L;
	its.it_value = its.it_interval;
	timerfd_settime(tfd, 0, &its, NULL);
	ep = epoll_create1(0);
	ev = (struct epoll_event){ .events = EPOLLIN, .data.fd = lfd };
	epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
	ev = (struct epoll_event){ .events = EPOLLIN, .data.fd = tfd };
	epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev);
	for (;;) {
		n = epoll_wait(ep, evs, 256, -1);
		for (i = 0; i < n; i++) {
			int fd = evs[i].data.fd;

			if (fd == tfd) {
				unsigned long long ticks;

				if (read(tfd, &ticks, sizeof(ticks)) > 0)
					tick(ep);
			} else if (fd == lfd) {
				int cfd;

				while ((cfd = accept4(lfd, NULL, NULL,
				    SOCK_NONBLOCK)) >= 0) {
					struct conn *c;

					if (cfd >= MAXCONN) {
						close(cfd);
						continue;
					}
					setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY,
					    &one, sizeof(one));
					c = calloc(1, sizeof(*c));
					c->fd = cfd;
					c->sent = -1;
					conns[cfd] = c;
					if (cfd > maxfd)
						maxfd = cfd;
					ev = (struct epoll_event){
					    .events = EPOLLIN, .data.fd = cfd };
					epoll_ctl(ep, EPOLL_CTL_ADD, cfd, &ev);
				}
			} else if (conns[fd] != NULL)
				on_read(ep, conns[fd]);
		}
	}
}
