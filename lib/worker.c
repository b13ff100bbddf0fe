#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "arena.h"
#include "buf.h"
#include "clock.h"
#include "conn.h"
#include "jsonw.h"
#include "log.h"
#include "metrics.h"
#include "request.h"
#include "server.h"
#include "worker.h"
#include "xalloc.h"

/* Parameters beyond this refuse the request (nginx sends a few KiB). */
#define MAX_PARAMS	(256 * 1024)
/*
 * A kept connection without a request for this long is closed.  Longer
 * than nginx's own upstream keepalive_timeout (60 s), so that nginx,
 * which knows when it will use a connection, is the one to close it.
 */
#define IDLE_MS		75000
/* How long a half-closed connection may take to end. */
#define LINGER_MS	2000
/* When draining, how long a connection may stall with nothing under way. */
#define DRAIN_GRACE_MS	1000
/* Bytes read from one connection per turn, so none hogs a thread. */
#define READ_BUDGET	(256 * 1024)
#define SWEEP_MS	1000
/* How often the main thread looks for requests while every thread is busy. */
#define OVERFLOW_MS	10
#define ACCEPT_BATCH	16
#define MIN_QUEUE	64

/*
 * struct conn.state: a generation, counted up each time the structure
 * is used for a new connection, and one of these.  A connection is armed
 * in the epoll set only while IDLE or REARM; whoever turns that into
 * BUSY (compare-and-swap) owns it.  Structures are never freed while the
 * worker runs (they are reused), so a thread holding a stale event can
 * always make the attempt; the generation makes it fail.
 */
#define ST_MASK		7u
enum {
	CS_IDLE,	/* armed; the sweep may close it */
	CS_REARM,	/* being armed again by its owner; not to be closed */
	CS_BUSY,	/* owned by a thread (or the main thread) */
	CS_QUEUED,	/* its request waits in the queue for a thread */
	CS_DEAD,	/* closed; on the spare list */
};

/* What reading a connection came to. */
enum readable { RD_READY, RD_ARMED, RD_CLOSED };

enum after { AFTER_CLOSE, AFTER_KEEP, AFTER_SKIP, AFTER_LINGER };

static const struct server_config *cfg;
static int		 listen_fd = -1, ep = -1, ctl = -1;
static int		 qfd = -1, stopfd = -1, sigfd = -1, wakefd = -1;
static char		 tag_listen, tag_queue, tag_stop, tag_signal, tag_wake;
static atomic_int	 draining, stopping;

/* Counts, for the decisions to accept, to start a thread, to refuse. */
static atomic_int	 idle;		/* threads waiting in epoll_wait */
static atomic_int	 live;		/* threads started */
static atomic_int	 busy;		/* requests being served */
static atomic_int	 fresh;		/* connections with no request yet */
static atomic_int	 q_len;
static atomic_bool	 listening;
static atomic_llong	 accept_resume_ms;

/* Every connection, and the spare structures, under reg_mu. */
static pthread_mutex_t	 reg_mu = PTHREAD_MUTEX_INITIALIZER;
static struct conn	*all, *spare;
static atomic_int	 nconns;

/* Requests waiting for a thread, under q_mu. */
static pthread_mutex_t	 q_mu = PTHREAD_MUTEX_INITIALIZER;
static struct conn	*q_head, *q_tail;
static int		 max_queue;

/* Threads, under t_mu. */
static pthread_mutex_t	 t_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_t	*tids;
static int		 ntids;
static pthread_attr_t	 thread_attr;

/* The main thread's. */
static struct arena	*main_arena;
static struct buf	 main_scratch;
static int64_t		 drain_deadline_ms;

int
worker_draining(void)
{
	return atomic_load(&draining);
}

int
server_draining(void)
{
	return worker_draining();
}

static void
kick(int fd)
{
	uint64_t one = 1;

	(void)!write(fd, &one, sizeof(one));
}

/* --- requests ---------------------------------------------------------------- */

/*
 * Writes the request's log line and counts it.  `b` is the thread's
 * scratch buffer, reused from one request to the next.
 */
static void
finish_request(struct request *r, struct buf *b)
{
	struct jw w;
	int64_t us = clock_us() - r->started_us;

	metrics_request(r->route_index, r->status, us);
	buf_reset(b);
	jw_init(&w, b);
	w.comma[0] = false;
	jw_kstr(&w, "method", r->method);
	jw_kstr(&w, "path", r->route != NULL ? r->route->pattern : r->path);
	jw_kint(&w, "status", r->status);
	buf_printf(b, ",\"duration_ms\":%lld.%03lld", (long long)(us / 1000),
	    (long long)(us % 1000));
	if (r->error_code != NULL)
		jw_kstr(&w, "error", r->error_code);
	if (r->client_gone)
		jw_kbool(&w, "client_gone", true);
	log_fields(r->status >= 500 ? LOG_WARN : LOG_INFO, "request", b->p);
}

static void
serve(struct conn *c, struct arena *a, struct buf *scratch)
{
	struct request r;

	req_init(&r, c, a);
	metrics_inflight(1);
	log_set_context(r.request_id, NULL);
	cfg->handle(&r);
	if (!r.replied)
		reply_error(&r, 500, "internal_error",
		    "Something went wrong on our side.", NULL);
	/* A streamed answer ends here. */
	if (!c->ended && !r.client_gone)
		req_writev(&r, NULL, 0, true);
	finish_request(&r, scratch);
	log_clear_context();
	metrics_inflight(-1);
	req_done(&r);
}

/*
 * What becomes of a connection whose request was answered: closed
 * (broken, or done with), kept for the next request, kept while the
 * rest of an unread body is skipped (then kept or closed), or, when
 * nginx will not reuse it and part of the body is unread, half-closed
 * and read to its end before it is closed.  A connection nginx keeps
 * (FCGI_KEEP_CONN) is never closed here while it may be used: nginx may
 * already be sending the next request on it, and a POST that meets a
 * closed connection is not retried (a 502).  The FastCGI spec leaves
 * such a connection to the web server; nginx bounds how many it keeps.
 * Only a draining worker closes them, as it must.  A plain close with data
 * unread would make nginx's writes of the body fail, and nginx then
 * reports an error instead of the answer it already has; with our half
 * closed, it sees the answer end, stops sending and closes (libfcgi
 * does the same).
 */
static enum after
after_response(struct conn *c)
{
	bool body_done;

	if (c->broken || c->aborted || !c->ended)
		return AFTER_CLOSE;
	body_done = conn_skip_body(c);
	if (c->broken)
		return AFTER_CLOSE;
	if (!c->parser.keep_conn || (body_done && atomic_load(&draining))) {
		if (body_done)
			return AFTER_CLOSE;
		shutdown(c->fd, SHUT_WR);
		c->linger = true;
		return AFTER_LINGER;
	}
	if (!body_done) {
		c->discard = true;
		return AFTER_SKIP;
	}
	conn_next_request(c);
	return AFTER_KEEP;
}

/* --- connections ----------------------------------------------------------- */

static unsigned
state_of(const struct conn *c)
{
	return atomic_load(&c->state) & ST_MASK;
}

/* Only the owner changes the state this way. */
static void
set_state(struct conn *c, unsigned st)
{
	atomic_store(&c->state, (atomic_load(&c->state) & ~ST_MASK) | st);
}

/* From IDLE or REARM to BUSY, if it is still so. */
static bool
take(struct conn *c)
{
	unsigned v = atomic_load(&c->state);

	return ((v & ST_MASK) == CS_IDLE || (v & ST_MASK) == CS_REARM) &&
	    atomic_compare_exchange_strong(&c->state, &v,
	    (v & ~ST_MASK) | CS_BUSY);
}

static void
arm(struct conn *c, int op)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLONESHOT,
	    .data.ptr = c };

	if (epoll_ctl(ep, op, c->fd, &ev) != 0)
		log_warn("epoll_ctl");
}

/*
 * The owner gives a connection back to the epoll set.  REARM keeps the
 * sweep away while the descriptor is armed again (it must not be
 * closed, and its number reused, in between); then it is IDLE, unless
 * an event took it already.
 */
static void
rearm(struct conn *c)
{
	unsigned expect;

	c->timeout_ms = cfg->io_timeout_ms;
	set_state(c, CS_REARM);
	expect = atomic_load(&c->state);
	arm(c, EPOLL_CTL_MOD);
	atomic_compare_exchange_strong(&c->state, &expect,
	    (expect & ~ST_MASK) | CS_IDLE);
}

/* The owner closes a connection; its structure goes to the spares. */
static void
drop(struct conn *c)
{
	if (c->fresh) {
		c->fresh = false;
		atomic_fetch_sub(&fresh, 1);
	}
	conn_close(c);
	set_state(c, CS_DEAD);
	pthread_mutex_lock(&reg_mu);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		all = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	c->next = spare;
	c->prev = NULL;
	spare = c;
	nconns--;
	pthread_mutex_unlock(&reg_mu);
}

static bool
room(void)
{
	return atomic_load(&busy) + atomic_load(&q_len) +
	    atomic_load(&fresh) < cfg->threads;
}

/*
 * A worker accepts connections only while it has a thread to spare, so
 * that the others take new connections when it is full.  And with more
 * than one worker, it takes one connection at a time and then goes to
 * the back of the line: EPOLLEXCLUSIVE wakes the first worker in the
 * listening socket's queue that has a thread waiting, which would
 * otherwise be the same one each time, and nginx keeps the connections
 * it opens (so the requests sent on them later, the database
 * connections and the hashing slots of that worker all follow).
 * Re-registering puts this worker last.  rotate is false when only the
 * wish to listen may have changed.
 */
static void
listening_update(bool rotate)
{
	static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	struct epoll_event ev = { .events = EPOLLIN | EPOLLEXCLUSIVE,
	    .data.ptr = &tag_listen };
	bool want;

	want = room() && !atomic_load(&draining) &&
	    clock_ms() >= atomic_load(&accept_resume_ms);
	if (want == atomic_load(&listening) && !(rotate && want))
		return;
	pthread_mutex_lock(&mu);
	want = room() && !atomic_load(&draining) &&
	    clock_ms() >= atomic_load(&accept_resume_ms);
	if (rotate && want && atomic_load(&listening)) {
		if (epoll_ctl(ep, EPOLL_CTL_DEL, listen_fd, &ev) != 0)
			log_warn("epoll_ctl (listen)");
		atomic_store(&listening, false);
	}
	if (want != atomic_load(&listening)) {
		if (epoll_ctl(ep, want ? EPOLL_CTL_ADD : EPOLL_CTL_DEL,
		    listen_fd, &ev) != 0)
			log_warn("epoll_ctl (listen)");
		atomic_store(&listening, want);
	}
	pthread_mutex_unlock(&mu);
}

static void
update_listening(void)
{
	listening_update(false);
}

static void
accept_some(void)
{
	static atomic_llong warned_ms;
	struct conn *c;
	unsigned gen;
	int64_t now;
	int fd, i;

	for (i = 0; i < (cfg->workers > 1 ? 1 : ACCEPT_BATCH) && room(); i++) {
		fd = accept4(listen_fd, NULL, NULL,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM) {
				/* Level-triggered: pause, or it would spin. */
				now = clock_ms();
				if (now - atomic_load(&warned_ms) > 10000) {
					atomic_store(&warned_ms, now);
					log_warn("accept");
				}
				atomic_store(&accept_resume_ms, now + 100);
				kick(wakefd);
			}
			break;
		}
		pthread_mutex_lock(&reg_mu);
		if ((c = spare) != NULL) {
			spare = c->next;
			gen = (atomic_load(&c->state) & ~ST_MASK) + ST_MASK + 1;
		} else {
			c = xmalloc(sizeof(*c));
			gen = 0;
		}
		conn_init(c, fd, MAX_PARAMS, cfg->io_timeout_ms);
		c->last_ms = clock_ms();
		c->fresh = true;
		c->next = all;
		if (all != NULL)
			all->prev = c;
		all = c;
		nconns++;
		pthread_mutex_unlock(&reg_mu);
		atomic_fetch_add(&fresh, 1);
		atomic_store(&c->state, gen | CS_IDLE);
		arm(c, EPOLL_CTL_ADD);
	}
	listening_update(i > 0 && cfg->workers > 1);
}

/* Reads a half-closed connection to its end, then closes it. */
static enum readable
linger(struct conn *c)
{
	char trash[16 * 1024];
	ssize_t n;
	int i;

	for (i = 0; i < 16; i++) {
		n = read(c->fd, trash, sizeof(trash));
		if (n > 0 || (n < 0 && errno == EINTR))
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		drop(c);
		return RD_CLOSED;
	}
	rearm(c);
	return RD_ARMED;
}

/*
 * Reads and parses a connection one owns, without waiting, until a
 * request's parameters are complete (RD_READY: the caller serves it),
 * the bytes run out (it is armed again), or it ends (closed).
 */
static enum readable
on_readable(struct conn *c)
{
	struct fcgi_event_info ev;
	size_t budget = READ_BUDGET;
	ssize_t n;

	c->timeout_ms = 0;
	if (c->linger)
		return linger(c);
	c->last_ms = clock_ms();
	for (;;) {
		switch (conn_next(c, SIZE_MAX, &ev)) {
		case FCGI_EV_PARAMS:
			if (c->fresh) {
				c->fresh = false;
				atomic_fetch_sub(&fresh, 1);
			}
			c->timeout_ms = cfg->io_timeout_ms;
			return RD_READY;
		case FCGI_EV_STDIN:
			/* The body of a request answered without it. */
			continue;
		case FCGI_EV_STDIN_END:
			c->discard = false;
			if (!c->parser.keep_conn || atomic_load(&draining)) {
				drop(c);
				return RD_CLOSED;
			}
			conn_next_request(c);
			continue;
		case FCGI_EV_MORE:
			break;
		default:
			drop(c);
			return RD_CLOSED;
		}
		if (c->broken) {
			drop(c);
			return RD_CLOSED;
		}
		if (budget == 0) {
			rearm(c);
			return RD_ARMED;
		}
		n = conn_fill(c, budget);
		if (n > 0) {
			budget -= (size_t)n;
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (c->parser.phase == FCGI_IDLE)
				conn_trim(c);
			rearm(c);
			return RD_ARMED;
		}
		drop(c);
		return RD_CLOSED;
	}
}

/* --- the queue, for requests that find every thread busy ----------------- */

static void
enqueue(struct conn *c)
{
	c->queued_ms = clock_ms();
	c->qnext = NULL;
	set_state(c, CS_QUEUED);
	pthread_mutex_lock(&q_mu);
	if (q_tail != NULL)
		q_tail->qnext = c;
	else
		q_head = c;
	q_tail = c;
	atomic_fetch_add(&q_len, 1);
	pthread_mutex_unlock(&q_mu);
	kick(qfd);
}

static struct conn *
dequeue(void)
{
	struct conn *c;

	if (atomic_load(&q_len) == 0)
		return NULL;
	pthread_mutex_lock(&q_mu);
	if ((c = q_head) != NULL) {
		q_head = c->qnext;
		if (q_head == NULL)
			q_tail = NULL;
		atomic_fetch_sub(&q_len, 1);
	}
	pthread_mutex_unlock(&q_mu);
	/* More waiting, and a thread in epoll_wait to take it. */
	if (c != NULL && atomic_load(&q_len) > 0 && atomic_load(&idle) > 0)
		kick(qfd);
	return c;
}

/*
 * Every thread is busy and the request waited its time, or the queue is
 * full: the main thread answers 503 itself, without waiting on the
 * socket.
 */
static void
refuse(struct conn *c)
{
	struct request r;

	c->timeout_ms = 0;
	req_init(&r, c, main_arena);
	log_set_context(r.request_id, NULL);
	req_add_header(&r, "Retry-After", "1");
	reply_error(&r, 503, "unavailable",
	    "The service is busy; please try again in a moment.", NULL);
	finish_request(&r, &main_scratch);
	log_clear_context();
	req_done(&r);
	arena_reset(main_arena);
	switch (after_response(c)) {
	case AFTER_CLOSE:
		drop(c);
		break;
	default:
		/* The next request may be among the bytes read already. */
		if (!c->discard && c->in_off < c->in_len &&
		    on_readable(c) == RD_READY) {
			enqueue(c);
			break;
		}
		rearm(c);
		break;
	}
}

/* Answers 503 to requests that waited too long for a thread. */
static void
expire(void)
{
	struct conn *late = NULL, **tail = &late, *c;
	int64_t now = clock_ms();

	if (atomic_load(&q_len) == 0)
		return;
	pthread_mutex_lock(&q_mu);
	while ((c = q_head) != NULL && (now - c->queued_ms >= cfg->queue_ms ||
	    atomic_load(&q_len) > max_queue)) {
		q_head = c->qnext;
		if (q_head == NULL)
			q_tail = NULL;
		atomic_fetch_sub(&q_len, 1);
		c->qnext = NULL;
		*tail = c;
		tail = &c->qnext;
	}
	pthread_mutex_unlock(&q_mu);
	while ((c = late) != NULL) {
		late = c->qnext;
		set_state(c, CS_BUSY);
		refuse(c);
	}
}

/* --- request threads ----------------------------------------------------- */

static void	start_thread(void);

/*
 * Serves the request on a connection one owns, and the next ones as
 * long as they are already among the bytes read (nginx sends the next
 * request as soon as it has our END_REQUEST, and skipping an unread body
 * may read it: the epoll set would not hear of it).  Then the connection
 * is closed or armed again.
 */
static void
run(struct conn *c, struct arena *a, struct buf *scratch)
{
	struct fcgi_event_info ev;
	bool again;

	atomic_fetch_add(&busy, 1);
	do {
		again = false;
		serve(c, a, scratch);
		arena_reset(a);
		switch (after_response(c)) {
		case AFTER_CLOSE:
			drop(c);
			break;
		case AFTER_KEEP:
			if (c->in_off < c->in_len) {
				c->timeout_ms = 0;
				switch (conn_next(c, SIZE_MAX, &ev)) {
				case FCGI_EV_PARAMS:
					c->timeout_ms = cfg->io_timeout_ms;
					again = true;
					continue;
				case FCGI_EV_MORE:
					break;
				default:
					drop(c);
					continue;
				}
			}
			c->last_ms = clock_ms();
			rearm(c);
			break;
		default:
			c->last_ms = clock_ms();
			rearm(c);
			break;
		}
	} while (again);
	atomic_fetch_sub(&busy, 1);
	update_listening();
	if (atomic_load(&draining))
		kick(wakefd);
}

static void *
thread_main(void *arg)
{
	struct arena *a = arena_new();
	struct buf scratch = BUF_INIT;
	struct epoll_event ev;
	struct conn *c;
	uint64_t v;
	int n;

	(void)arg;
	while (!atomic_load(&stopping)) {
		if ((c = dequeue()) != NULL) {
			set_state(c, CS_BUSY);
			run(c, a, &scratch);
			continue;
		}
		atomic_fetch_add(&idle, 1);
		n = epoll_wait(ep, &ev, 1, -1);
		/* The last one waiting: start another, if there is room. */
		if (atomic_fetch_sub(&idle, 1) == 1 && n > 0 &&
		    ev.data.ptr != &tag_stop)
			start_thread();
		if (n <= 0)
			continue;
		if (ev.data.ptr == &tag_listen)
			accept_some();
		else if (ev.data.ptr == &tag_queue)
			(void)!read(qfd, &v, sizeof(v));
		else if (ev.data.ptr == &tag_stop)
			continue;
		else if (take(c = ev.data.ptr) && on_readable(c) == RD_READY)
			run(c, a, &scratch);
	}
	buf_free(&scratch);
	arena_free(a);
	return NULL;
}

static void
start_thread(void)
{
	static int64_t warned_ms;
	int rc = -1;

	pthread_mutex_lock(&t_mu);
	if (ntids < cfg->threads && !atomic_load(&stopping)) {
		rc = pthread_create(&tids[ntids], &thread_attr, thread_main,
		    NULL);
		if (rc == 0) {
			ntids++;
			atomic_fetch_add(&live, 1);
		} else if (clock_ms() - warned_ms > 10000) {
			warned_ms = clock_ms();
			log_warnx("could not start a request thread (%d "
			    "running)", ntids);
		}
	}
	pthread_mutex_unlock(&t_mu);
}

/* --- the main thread ------------------------------------------------------ */

/*
 * Every thread started and busy: requests that come now would wait in
 * the kernel, unseen.  The main thread takes them from the epoll set and
 * queues them for the first thread to free up, or refuses them in time.
 */
static void
overflow(void)
{
	struct epoll_event evs[16];
	struct conn *c;
	uint64_t v;
	int n, i;

	if (atomic_load(&idle) > 0 || atomic_load(&live) < cfg->threads)
		return;
	n = epoll_wait(ep, evs, 16, 0);
	for (i = 0; i < n; i++) {
		if (evs[i].data.ptr == &tag_listen)
			accept_some();
		else if (evs[i].data.ptr == &tag_queue)
			(void)!read(qfd, &v, sizeof(v));
		else if (evs[i].data.ptr == &tag_stop)
			continue;
		else if (take(c = evs[i].data.ptr) &&
		    on_readable(c) == RD_READY) {
			if (atomic_load(&q_len) >= max_queue)
				refuse(c);
			else
				enqueue(c);
		}
	}
	/* A thread may have gone idle meanwhile: the queue is its. */
	if (atomic_load(&q_len) > 0 && atomic_load(&idle) > 0)
		kick(qfd);
}

/*
 * Closes connections that waited too long for a request.  When the
 * worker drains, it closes every connection with nothing under way: at
 * once those nginx keeps between requests (when no request is in their
 * socket), and after a moment those with a request begun and stalled,
 * or new ones with none yet (nginx sends it right after it connects).
 */
/* Whether sweep() closes a connection that is not in use. */
static bool
doomed(struct conn *c, int64_t now, bool drain)
{
	int64_t quiet_ms = now - c->last_ms;
	int pending;

	if (quiet_ms > IDLE_MS || (c->linger && quiet_ms > LINGER_MS))
		return true;
	if (!drain)
		return false;
	return quiet_ms > DRAIN_GRACE_MS || (!c->fresh && !c->linger &&
	    c->parser.phase == FCGI_IDLE && c->in_off == c->in_len &&
	    ioctl(c->fd, FIONREAD, &pending) == 0 && pending == 0);
}

static void
sweep(bool drain)
{
	struct conn *c, *next, *doom = NULL, *keep = NULL;
	int64_t now = clock_ms();

	pthread_mutex_lock(&reg_mu);
	for (c = all; c != NULL; c = next) {
		next = c->next;
		/* A first look, racy; then again once it is ours. */
		if (state_of(c) != CS_IDLE || !doomed(c, now, drain) ||
		    !take(c))
			continue;
		if (doomed(c, now, drain)) {
			c->qnext = doom;
			doom = c;
		} else {
			c->qnext = keep;
			keep = c;
		}
	}
	pthread_mutex_unlock(&reg_mu);
	while ((c = doom) != NULL) {
		doom = c->qnext;
		drop(c);
	}
	/* An event that came while we held them found them taken. */
	while ((c = keep) != NULL) {
		keep = c->qnext;
		rearm(c);
	}
}

static bool
quiet(void)
{
	int n;

	n = atomic_load(&nconns);
	return n == 0 && atomic_load(&busy) == 0 && atomic_load(&q_len) == 0;
}

/* Returns true when a stop signal came. */
static bool
on_signal(void)
{
	struct signalfd_siginfo si;
	bool stop = false;

	while (read(sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
		if (si.ssi_signo != SIGHUP)
			stop = true;
	return stop;
}

static void
main_loop(void)
{
	struct epoll_event evs[4];
	int64_t now, next_sweep = clock_ms() + SWEEP_MS;
	uint64_t v;
	int n, i, timeout;

	for (;;) {
		timeout = atomic_load(&q_len) > 0 ||
		    (atomic_load(&idle) == 0 &&
		    atomic_load(&live) >= cfg->threads) ? OVERFLOW_MS :
		    atomic_load(&draining) ? 50 : SWEEP_MS;
		n = epoll_wait(ctl, evs, 4, timeout);
		for (i = 0; i < n; i++) {
			if (evs[i].data.ptr == &tag_wake)
				(void)!read(wakefd, &v, sizeof(v));
			else if (on_signal() && !atomic_load(&draining)) {
				atomic_store(&draining, 1);
				drain_deadline_ms = clock_ms() +
				    (int64_t)cfg->drain_seconds * 1000;
				update_listening();
				sweep(true);
			}
		}
		overflow();
		expire();
		now = clock_ms();
		if (now >= next_sweep) {
			sweep(atomic_load(&draining));
			next_sweep = now + (atomic_load(&draining) ? 50 :
			    SWEEP_MS);
		}
		update_listening();
		if (!atomic_load(&draining))
			continue;
		if (quiet())
			return;
		if (now >= drain_deadline_ms) {
			log_warnx("drain timed out with %d requests in flight",
			    atomic_load(&busy) + atomic_load(&q_len));
			_exit(1);
		}
	}
}

static int
add_fd(int e, int fd, uint32_t events, void *tag)
{
	struct epoll_event ev = { .events = events, .data.ptr = tag };

	return epoll_ctl(e, EPOLL_CTL_ADD, fd, &ev);
}

static void
setup(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGQUIT);
	ep = epoll_create1(EPOLL_CLOEXEC);
	ctl = epoll_create1(EPOLL_CLOEXEC);
	qfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	stopfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (ep < 0 || ctl < 0 || qfd < 0 || stopfd < 0 || wakefd < 0 ||
	    sigfd < 0 || add_fd(ep, qfd, EPOLLIN | EPOLLET, &tag_queue) ||
	    add_fd(ep, stopfd, EPOLLIN, &tag_stop) ||
	    add_fd(ctl, wakefd, EPOLLIN, &tag_wake) ||
	    add_fd(ctl, sigfd, EPOLLIN, &tag_signal)) {
		log_crit("worker setup: %s", strerror(errno));
		_exit(71);
	}
	update_listening();
}

void
worker_main(const struct server_config *c, int fd, pid_t master)
{
	struct conn *cn;
	sigset_t set;
	int i, n;

	cfg = c;
	listen_fd = fd;
	log_set_process("worker");
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() != master)
		_exit(0);
	/*
	 * The stop signals stay blocked from the fork on (they come to the
	 * signalfd, and threads inherit the mask); SIGCHLD, which the
	 * master blocks, is let through.
	 */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGQUIT);
	pthread_sigmask(SIG_SETMASK, &set, NULL);
	if (cfg->worker_init != NULL && cfg->worker_init() != 0) {
		log_crit("worker initialisation failed");
		_exit(71);
	}
	conn_limits((unsigned)cfg->threads, (unsigned)cfg->threads);
	pthread_attr_init(&thread_attr);
	if (cfg->thread_stack > 0)
		pthread_attr_setstacksize(&thread_attr, cfg->thread_stack);
	tids = xcalloc((size_t)cfg->threads, sizeof(*tids));
	max_queue = cfg->threads * 4 > MIN_QUEUE ? cfg->threads * 4 :
	    MIN_QUEUE;
	main_arena = arena_new();
	setup();
	start_thread();

	main_loop();

	atomic_store(&stopping, 1);
	kick(stopfd);
	/* No thread starts once stopping is set and the lock was free. */
	pthread_mutex_lock(&t_mu);
	n = ntids;
	pthread_mutex_unlock(&t_mu);
	for (i = 0; i < n; i++)
		pthread_join(tids[i], NULL);
	free(tids);
	while ((cn = all) != NULL)
		drop(cn);
	while ((cn = spare) != NULL) {
		spare = cn->next;
		free(cn);
	}
	arena_free(main_arena);
	buf_free(&main_scratch);
	if (cfg->worker_exit != NULL)
		cfg->worker_exit();
	exit(0);
}
