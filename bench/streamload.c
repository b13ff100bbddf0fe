/*
 * streamload: many chat streams at once, for the streaming capacity run
 * (bench/run.pl, target `streams`).  In C, with one epoll loop, so that
 * ten thousand open streams cost the client next to nothing and the run
 * measures nginx and the app.
 *
 *	streamload PORT TOKENS_FILE N RATE
 *
 * Opens N connections to nginx on 127.0.0.1:PORT, RATE a second, each a
 * streamed POST /api/chat/send with the next token of TOKENS_FILE (one a
 * line), and reads the events as they come.  It prints to stdout
 *
 *	open N			once every stream has had its `start` event
 *	STREAMS n=... done=... error=... cut=... ...	when all have ended
 *
 * A stream is done when it ends after a `done` event, error after an
 * `error` event, cut when the connection ends without either (or never
 * got a 200).  Latencies are from the request's sending: to `start`, to
 * the first `delta`.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct stream {
	int		 fd;
	size_t		 sent;		/* bytes of the request written */
	long long	 t0;		/* µs, request started */
	long long	 t_start;	/* `start` seen, 0: not yet */
	long long	 t_delta;	/* first `delta`, 0: not yet */
	long		 deltas;
	int		 end;		/* 0 open, 1 done, 2 error, 3 cut */
	int		 ok;		/* HTTP 200 seen */
	char		 tail[32];	/* the last bytes, for split markers */
	size_t		 ntail;
};

static char		**tokens;
static size_t		 ntokens;
static struct stream	*st;

static long long
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int
cmp_ll(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;

	return x < y ? -1 : x > y;
}

/* The p-th percentile (0..100) of the non-zero values, in ms. */
static double
pct_ms(long long *v, int n, double p)
{
	int k;

	if (n == 0)
		return -1;
	qsort(v, (size_t)n, sizeof(*v), cmp_ll);
	k = (int)((double)(n - 1) * p / 100.0);
	return (double)v[k] / 1000.0;
}

static void
read_tokens(const char *path)
{
	FILE *f = fopen(path, "r");
	char line[4096];
	size_t cap = 0;

	if (f == NULL) {
		perror(path);
		exit(1);
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		line[strcspn(line, "\r\n ")] = '\0';
		if (line[0] == '\0')
			continue;
		if (ntokens == cap) {
			cap = cap * 2 + 64;
			tokens = realloc(tokens, cap * sizeof(*tokens));
		}
		tokens[ntokens++] = strdup(line);
	}
	fclose(f);
	if (ntokens == 0) {
		fprintf(stderr, "streamload: no tokens in %s\n", path);
		exit(1);
	}
}

static char *
request_of(int i, size_t *len)
{
	char body[128], *req;
	int n;

	n = snprintf(body, sizeof(body), "{\"content\":\"bench stream %d\","
	    "\"stream\":true}", i);
	*len = (size_t)asprintf(&req, "POST /api/chat/send HTTP/1.1\r\n"
	    "Host: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
	    "Content-Type: application/json\r\nAccept: text/event-stream\r\n"
	    "Connection: close\r\nContent-Length: %d\r\n\r\n%s",
	    tokens[(size_t)i % ntokens], n, body);
	return req;
}

/* Looks for the markers in what came, joined to the tail of before. */
static void
scan(struct stream *s, const char *p, size_t n)
{
	char buf[32 + 65536];
	size_t len = s->ntail + n, i;

	memcpy(buf, s->tail, s->ntail);
	memcpy(buf + s->ntail, p, n);
	if (!s->ok && len >= 12 && memcmp(buf, "HTTP/1.1 200", 12) == 0)
		s->ok = 1;
	for (i = 0; i + 12 <= len; i++) {
		if (buf[i] != 'e' || memcmp(buf + i, "event: ", 7) != 0)
			continue;
		if (memcmp(buf + i + 7, "delta", 5) == 0) {
			if (s->deltas++ == 0)
				s->t_delta = now_us();
		} else if (memcmp(buf + i + 7, "start", 5) == 0)
			s->t_start = now_us();
		else if (memcmp(buf + i + 7, "done\n", 5) == 0)
			s->end = 1;
		else if (memcmp(buf + i + 7, "error", 5) == 0)
			s->end = 2;
		i += 11;
	}
	/*
	 * Keep the last 11 bytes: a marker (12) split across reads is found
	 * next time, and none is counted twice (it does not fit in them).
	 */
	s->ntail = len < 11 ? len : 11;
	memcpy(s->tail, buf + len - s->ntail, s->ntail);
}

int
main(int argc, char *argv[])
{
	struct sockaddr_in sin = { .sin_family = AF_INET,
	    .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct rlimit rl;
	struct epoll_event ev, evs[512];
	static char rbuf[65536];
	char **reqs;
	size_t *rlen;
	long long t0, next_open, *v;
	int n, rate, ep, i, k, opened = 0, ended = 0, started = 0;
	int announced = 0, one = 1, cnt[4] = { 0 };
	long deltas = 0;

	if (argc != 5) {
		fprintf(stderr, "usage: streamload PORT TOKENS N RATE\n");
		return 2;
	}
	sin.sin_port = htons((unsigned short)atoi(argv[1]));
	read_tokens(argv[2]);
	n = atoi(argv[3]);
	rate = atoi(argv[4]);
	rl.rlim_cur = rl.rlim_max = (rlim_t)n + 256;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
		getrlimit(RLIMIT_NOFILE, &rl);
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	st = calloc((size_t)n, sizeof(*st));
	reqs = calloc((size_t)n, sizeof(*reqs));
	rlen = calloc((size_t)n, sizeof(*rlen));
	for (i = 0; i < n; i++)
		reqs[i] = request_of(i, &rlen[i]);
	ep = epoll_create1(0);
	t0 = now_us();
	next_open = t0;
	setvbuf(stdout, NULL, _IOLBF, 0);
	while (ended < n) {
		long long now = now_us();

		/* Open the streams due by now, RATE a second. */
		while (opened < n && next_open <= now) {
			struct stream *s = &st[opened];

			s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
			if (s->fd < 0) {
				perror("streamload: socket");
				s->end = 3;
				ended++;
			} else {
				setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one,
				    sizeof(one));
				if (connect(s->fd, (struct sockaddr *)&sin,
				    sizeof(sin)) != 0 && errno != EINPROGRESS) {
					close(s->fd);
					s->end = 3;
					ended++;
				} else {
					ev = (struct epoll_event){ .events = EPOLLIN |
					    EPOLLOUT, .data.u32 = (uint32_t)opened };
					epoll_ctl(ep, EPOLL_CTL_ADD, s->fd, &ev);
				}
			}
			s->t0 = now;
			opened++;
			next_open = t0 + (long long)opened * 1000000 / rate;
		}
		k = epoll_wait(ep, evs, 512, opened < n ? 1 : 100);
		for (i = 0; i < k; i++) {
			struct stream *s = &st[evs[i].data.u32];
			ssize_t r;

			if (s->end == 3 || s->fd < 0)
				continue;
			if ((evs[i].events & EPOLLOUT) && s->sent < rlen[s - st]) {
				r = write(s->fd, reqs[s - st] + s->sent,
				    rlen[s - st] - s->sent);
				if (r > 0)
					s->sent += (size_t)r;
				if (s->sent == rlen[s - st]) {
					ev = (struct epoll_event){ .events = EPOLLIN,
					    .data.u32 = evs[i].data.u32 };
					epoll_ctl(ep, EPOLL_CTL_MOD, s->fd, &ev);
				}
			}
			if (!(evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
				continue;
			while ((r = read(s->fd, rbuf, sizeof(rbuf))) > 0) {
				int had = s->t_start != 0;

				scan(s, rbuf, (size_t)r);
				if (!had && s->t_start != 0)
					started++;
			}
			if (r == 0 || (r < 0 && errno != EAGAIN)) {
				close(s->fd);
				s->fd = -1;
				if (s->end == 0 || !s->ok)
					s->end = 3;
				ended++;
			}
		}
		if (!announced && opened == n && started + ended >= n) {
			printf("open %d\n", started);
			announced = 1;
		}
	}
	v = calloc((size_t)n, sizeof(*v));
	for (i = 0; i < n; i++) {
		cnt[st[i].end]++;
		deltas += st[i].deltas;
	}
	printf("STREAMS n=%d done=%d error=%d cut=%d deltas=%ld seconds=%.1f",
	    n, cnt[1], cnt[2], cnt[3], deltas, (double)(now_us() - t0) / 1e6);
	for (i = k = 0; i < n; i++)
		if (st[i].t_start)
			v[k++] = st[i].t_start - st[i].t0;
	printf(" start_p50_ms=%.0f start_p99_ms=%.0f", pct_ms(v, k, 50),
	    pct_ms(v, k, 99));
	for (i = k = 0; i < n; i++)
		if (st[i].t_delta)
			v[k++] = st[i].t_delta - st[i].t0;
	printf(" first_delta_p50_ms=%.0f first_delta_p99_ms=%.0f\n",
	    pct_ms(v, k, 50), pct_ms(v, k, 99));
	return 0;
}
