#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
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
/* Bytes read from one connection per wake-up, so none hogs the poller. */
#define READ_BUDGET	(256 * 1024)
#define SWEEP_MS	1000
/* How long a half-closed connection may take to end. */
#define LINGER_MS	2000
/* When draining, how long a connection may stall with nothing under way. */
#define DRAIN_GRACE_MS	1000
#define ACCEPT_BATCH	64
#define MIN_QUEUE	64

/* struct conn.state */
enum {
	CS_IDLE,	/* armed in the epoll set; the poller's */
	CS_REARM,	/* a thread gave it back; the poller's once armed */
	CS_QUEUED,	/* waiting for a thread */
	CS_BUSY,	/* a thread serves its request */
	CS_DEAD,	/* closed by a thread; the poller frees it */
};

static const struct server_config *cfg;
static int		 listen_fd = -1, ep = -1, wake_fd = -1, sig_fd = -1;
static char		 tag_listen, tag_wake, tag_signal;
static atomic_int	 draining;

/* The poller's own. */
static struct conn	*all;		/* every open connection */
static struct arena	*poller_arena;
static bool		 listening;
static int64_t		 accept_resume_ms, drain_deadline_ms;
static int64_t		 next_expiry_ms = INT64_MAX;
static pthread_t	*tids;
static int		 ntids;
static pthread_attr_t	 thread_attr;
static int		 max_queue;
static int		 fresh;		/* accepted, first request not yet in */

/* Shared with the threads, under mu. */
static pthread_mutex_t	 mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t	 cv = PTHREAD_COND_INITIALIZER;
static struct conn	*q_head, *q_tail;
static int		 q_len, idle, live, busy;
static bool		 stopping;
static struct conn	*dead;
/* The poller stopped accepting because every thread is taken. */
static atomic_bool	 full;

static bool	on_readable(struct conn *, int64_t);

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

/* Writes the request's log line and counts it. */
static void
finish_request(struct request *r)
{
	struct buf b = BUF_INIT;
	struct jw w;
	int64_t us = clock_us() - r->started_us;

	metrics_request(r->route_index, r->status, us);
	jw_init(&w, &b);
	w.comma[0] = false;
	jw_kstr(&w, "method", r->method);
	jw_kstr(&w, "path", r->route != NULL ? r->route->pattern : r->path);
	jw_kint(&w, "status", r->status);
	buf_printf(&b, ",\"duration_ms\":%.3f", (double)us / 1000.0);
	if (r->error_code != NULL)
		jw_kstr(&w, "error", r->error_code);
	if (r->client_gone)
		jw_kbool(&w, "client_gone", true);
	log_fields(r->status >= 500 ? LOG_WARN : LOG_INFO, "request", b.p);
	buf_free(&b);
}

static void
serve(struct conn *c, struct arena *a)
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
		req_write(&r, NULL, 0, true);
	finish_request(&r);
	log_clear_context();
	metrics_inflight(-1);
	req_done(&r);
}

enum after { AFTER_CLOSE, AFTER_KEEP, AFTER_SKIP, AFTER_LINGER };

/*
 * What becomes of a connection whose request was answered: closed
 * (broken, or done with), kept for the next request, kept while the
 * rest of an unread body is skipped (then kept or closed), or, when
 * nginx will not reuse it and part of the body is unread, half-closed
 * and read to its end before it is closed.  A plain close with data
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

static void
arm(struct conn *c, int fd, int op)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLONESHOT,
	    .data.ptr = c };

	if (epoll_ctl(ep, op, fd, &ev) != 0)
		log_warn("epoll_ctl");
}

/* The poller closes and frees a connection it owns. */
static void
drop(struct conn *c)
{
	if (c->fresh)
		fresh--;
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		all = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	conn_close(c);
	free(c);
}

/* --- request threads ----------------------------------------------------- */

/* A thread closes a connection; the poller frees it later. */
static void
bury(struct conn *c)
{
	conn_close(c);
	atomic_store(&c->state, CS_DEAD);
	pthread_mutex_lock(&mu);
	c->qnext = dead;
	dead = c;
	pthread_mutex_unlock(&mu);
}

/*
 * A thread is done with a request.  The connection's next request may
 * already be in the bytes read while skipping the body (nginx sends it
 * as soon as it has our END_REQUEST): then the thread serves it too, as
 * the poller would not hear of bytes no longer in the socket.  Returns
 * true for that; else the connection is closed or given back to the
 * poller, and arming it is the last touch: from then on the poller may
 * take it at any moment.
 */
static bool
hand_back(struct conn *c)
{
	struct fcgi_event_info ev;
	int fd = c->fd;

	if (after_response(c) == AFTER_CLOSE) {
		bury(c);
		return false;
	}
	if (!c->discard && c->in_off < c->in_len) {
		c->timeout_ms = 0;
		switch (conn_next(c, SIZE_MAX, &ev)) {
		case FCGI_EV_PARAMS:
			c->timeout_ms = cfg->io_timeout_ms;
			return true;
		case FCGI_EV_MORE:
			c->timeout_ms = cfg->io_timeout_ms;
			break;
		default:
			bury(c);
			return false;
		}
	}
	c->last_ms = clock_ms();
	atomic_store(&c->state, CS_REARM);
	arm(c, fd, EPOLL_CTL_MOD);
	return false;
}

static void
wake_poller(void)
{
	uint64_t one = 1;

	(void)!write(wake_fd, &one, sizeof(one));
}

static void *
thread_main(void *arg)
{
	struct arena *a = arena_new();
	struct conn *c;

	(void)arg;
	pthread_mutex_lock(&mu);
	for (;;) {
		while (q_head == NULL && !stopping) {
			idle++;
			pthread_cond_wait(&cv, &mu);
			idle--;
		}
		if (q_head == NULL)
			break;
		c = q_head;
		q_head = c->qnext;
		if (q_head == NULL)
			q_tail = NULL;
		q_len--;
		busy++;
		pthread_mutex_unlock(&mu);

		atomic_store(&c->state, CS_BUSY);
		do {
			serve(c, a);
			arena_reset(a);
		} while (hand_back(c));

		pthread_mutex_lock(&mu);
		busy--;
		if ((busy == 0 && q_head == NULL && atomic_load(&draining)) ||
		    (atomic_load(&full) && busy + q_len < cfg->threads))
			wake_poller();
	}
	pthread_mutex_unlock(&mu);
	arena_free(a);
	return NULL;
}

static void
start_thread(void)
{
	static int64_t warned_ms;

	if (ntids < cfg->threads &&
	    pthread_create(&tids[ntids], &thread_attr, thread_main, NULL) == 0) {
		ntids++;
		return;
	}
	pthread_mutex_lock(&mu);
	live--;
	pthread_mutex_unlock(&mu);
	if (clock_ms() - warned_ms > 10000) {
		warned_ms = clock_ms();
		log_warnx("could not start a request thread (%d running)",
		    ntids);
	}
}

/* --- the poller ------------------------------------------------------------- */

/* The poller re-arms a connection it owns. */
static void
rearm(struct conn *c)
{
	atomic_store(&c->state, CS_IDLE);
	arm(c, c->fd, EPOLL_CTL_MOD);
}

/*
 * Every thread is busy and the request waited its time, or the queue is
 * full: the poller answers 503 itself, without waiting on the socket.
 */
static void
refuse(struct conn *c)
{
	struct request r;

	c->timeout_ms = 0;
	req_init(&r, c, poller_arena);
	log_set_context(r.request_id, NULL);
	req_add_header(&r, "Retry-After", "1");
	reply_error(&r, 503, "unavailable",
	    "The service is busy; please try again in a moment.", NULL);
	finish_request(&r);
	log_clear_context();
	req_done(&r);
	arena_reset(poller_arena);
	if (after_response(c) == AFTER_CLOSE)
		drop(c);
	else if (!c->discard && c->in_off < c->in_len) {
		/* The next request is among the bytes read. */
		atomic_store(&c->state, CS_IDLE);
		on_readable(c, clock_ms());
	} else
		rearm(c);
}

static void
enqueue(struct conn *c, int64_t now)
{
	bool spawn;

	atomic_store(&c->state, CS_QUEUED);
	c->timeout_ms = cfg->io_timeout_ms;
	c->queued_ms = now;
	c->qnext = NULL;
	pthread_mutex_lock(&mu);
	if (q_len >= max_queue) {
		pthread_mutex_unlock(&mu);
		refuse(c);
		return;
	}
	if (q_tail != NULL)
		q_tail->qnext = c;
	else
		q_head = c;
	q_tail = c;
	q_len++;
	spawn = q_len > idle && live < cfg->threads;
	if (spawn)
		live++;
	pthread_cond_signal(&cv);
	pthread_mutex_unlock(&mu);
	if (now + cfg->queue_ms < next_expiry_ms)
		next_expiry_ms = now + cfg->queue_ms;
	if (spawn)
		start_thread();
}

/* Answers 503 to requests that waited too long for a thread. */
static void
expire(int64_t now)
{
	struct conn *late = NULL, **tail = &late, *c;

	if (now < next_expiry_ms)
		return;
	pthread_mutex_lock(&mu);
	while (q_head != NULL && now - q_head->queued_ms >= cfg->queue_ms) {
		c = q_head;
		q_head = c->qnext;
		if (q_head == NULL)
			q_tail = NULL;
		q_len--;
		c->qnext = NULL;
		*tail = c;
		tail = &c->qnext;
	}
	next_expiry_ms = q_head != NULL ? q_head->queued_ms + cfg->queue_ms :
	    INT64_MAX;
	pthread_mutex_unlock(&mu);
	while ((c = late) != NULL) {
		late = c->qnext;
		refuse(c);
	}
}

/* Reads a half-closed connection to its end, then closes it. */
static bool
linger(struct conn *c)
{
	char trash[16 * 1024];
	ssize_t n;
	int i;

	for (i = 0; i < 16; i++) {
		n = read(c->fd, trash, sizeof(trash));
		if (n > 0)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			rearm(c);
			return true;
		}
		if (n < 0 && errno == EINTR)
			continue;
		break;
	}
	if (i == 16) {
		rearm(c);
		return true;
	}
	drop(c);
	return false;
}

/*
 * A connection the poller owns is readable: read and parse until a
 * request's parameters are complete (then it goes to a thread), the
 * bytes run out (it is armed again), or it ends.  Returns true when it
 * is still the poller's, armed again.
 */
static bool
on_readable(struct conn *c, int64_t now)
{
	struct fcgi_event_info ev;
	size_t budget = READ_BUDGET;
	ssize_t n;
	int st = atomic_load(&c->state);

	if (st != CS_IDLE && st != CS_REARM)
		return false;
	atomic_store(&c->state, CS_IDLE);
	c->timeout_ms = 0;
	if (c->linger)
		return linger(c);
	c->last_ms = now;
	for (;;) {
		switch (conn_next(c, SIZE_MAX, &ev)) {
		case FCGI_EV_PARAMS:
			if (c->fresh) {
				c->fresh = false;
				fresh--;
			}
			enqueue(c, now);
			return false;
		case FCGI_EV_STDIN:
			/* The body of a request answered without it. */
			continue;
		case FCGI_EV_STDIN_END:
			c->discard = false;
			if (!c->parser.keep_conn || atomic_load(&draining)) {
				drop(c);
				return false;
			}
			conn_next_request(c);
			continue;
		case FCGI_EV_MORE:
			break;
		default:
			drop(c);
			return false;
		}
		if (c->broken) {
			drop(c);
			return false;
		}
		if (budget == 0) {
			rearm(c);
			return true;
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
			return true;
		}
		drop(c);
		return false;
	}
}

static void
listen_on(bool on)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLEXCLUSIVE,
	    .data.ptr = &tag_listen };

	if (on == listening)
		return;
	if (epoll_ctl(ep, on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, listen_fd,
	    &ev) != 0)
		log_warn("epoll_ctl (listen)");
	listening = on;
}

/* A thread to spare, counting the connections with no request yet. */
static bool
room(void)
{
	bool r;

	pthread_mutex_lock(&mu);
	r = busy + q_len + fresh < cfg->threads;
	pthread_mutex_unlock(&mu);
	return r;
}

static void
accept_some(int64_t now)
{
	static int64_t warned_ms;
	struct conn *c;
	int fd, i;

	for (i = 0; i < ACCEPT_BATCH && room(); i++) {
		fd = accept4(listen_fd, NULL, NULL,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM) {
				/* Level-triggered: pause, or it would spin. */
				if (now - warned_ms > 10000) {
					warned_ms = now;
					log_warn("accept");
				}
				listen_on(false);
				accept_resume_ms = now + 100;
			}
			return;
		}
		c = xcalloc(1, sizeof(*c));
		conn_init(c, fd, MAX_PARAMS, cfg->io_timeout_ms);
		c->last_ms = now;
		c->fresh = true;
		fresh++;
		c->next = all;
		if (all != NULL)
			all->prev = c;
		all = c;
		atomic_store(&c->state, CS_IDLE);
		arm(c, fd, EPOLL_CTL_ADD);
	}
}

/* Frees the connections threads closed. */
static void
reap_dead(void)
{
	struct conn *c, *list;

	pthread_mutex_lock(&mu);
	list = dead;
	dead = NULL;
	pthread_mutex_unlock(&mu);
	while ((c = list) != NULL) {
		list = c->qnext;
		c->fd = -1;
		drop(c);
	}
}

/*
 * Closes connections that waited too long for a request.  When the
 * worker drains, it closes every connection with nothing under way: at
 * once those nginx keeps between requests (after a last look for a
 * request on them), and after a moment those with a request begun and
 * stalled, or new ones with none yet (nginx sends it right after it
 * connects).
 */
static void
sweep(int64_t now, bool drain)
{
	struct conn *c, *next;
	int64_t quiet_ms;
	int st;

	for (c = all; c != NULL; c = next) {
		next = c->next;
		st = atomic_load(&c->state);
		if (st != CS_IDLE && st != CS_REARM)
			continue;
		quiet_ms = now - c->last_ms;
		if (quiet_ms > IDLE_MS || (drain && quiet_ms > DRAIN_GRACE_MS) ||
		    (c->linger && quiet_ms > LINGER_MS)) {
			drop(c);
			continue;
		}
		/* A thread that gave it back is done with it by now. */
		if (!drain || c->fresh || c->linger ||
		    (st == CS_REARM && quiet_ms < 100))
			continue;
		if (on_readable(c, now) && c->parser.phase == FCGI_IDLE &&
		    c->in_off == c->in_len)
			drop(c);
	}
}

/*
 * A worker accepts connections only while it has a thread to spare, so
 * that the others take new connections when it is full: whichever
 * poller is idle first would otherwise take them all (EPOLLEXCLUSIVE
 * wakes the first waiting one), and with them the requests nginx sends
 * on them later.
 */
static void
update_listening(int64_t now)
{
	bool r = room();

	atomic_store(&full, !r);
	listen_on(r && !atomic_load(&draining) && now >= accept_resume_ms);
}

static bool
quiet(void)
{
	bool q;

	pthread_mutex_lock(&mu);
	q = busy == 0 && q_head == NULL;
	pthread_mutex_unlock(&mu);
	return q && all == NULL;
}

/* Returns true when a stop signal came. */
static bool
on_signal(void)
{
	struct signalfd_siginfo si;
	bool stop = false;

	while (read(sig_fd, &si, sizeof(si)) == (ssize_t)sizeof(si))
		if (si.ssi_signo != SIGHUP)
			stop = true;
	return stop;
}

static int
poll_timeout(int64_t now, int64_t next_sweep)
{
	int64_t t = next_sweep;

	if (next_expiry_ms < t)
		t = next_expiry_ms;
	if (!listening && !atomic_load(&draining) && accept_resume_ms < t)
		t = accept_resume_ms;
	return t <= now ? 0 : (int)(t - now);
}

static void
poll_loop(void)
{
	struct epoll_event evs[64];
	int64_t now = clock_ms(), next_sweep = now + SWEEP_MS;
	uint64_t v;
	bool drain_now;
	int n, i;

	for (;;) {
		n = epoll_wait(ep, evs, 64, poll_timeout(now, next_sweep));
		if (n < 0 && errno != EINTR) {
			log_crit("epoll_wait: %s", strerror(errno));
			_exit(71);
		}
		now = clock_ms();
		drain_now = false;
		for (i = 0; i < n; i++) {
			void *p = evs[i].data.ptr;

			if (p == &tag_listen && listening)
				accept_some(now);
			else if (p == &tag_wake)
				(void)!read(wake_fd, &v, sizeof(v));
			else if (p == &tag_signal) {
				if (on_signal() && !atomic_load(&draining))
					drain_now = true;
			} else
				on_readable(p, now);
		}
		reap_dead();
		expire(now);
		if (drain_now) {
			atomic_store(&draining, 1);
			drain_deadline_ms = now +
			    (int64_t)cfg->drain_seconds * 1000;
			listen_on(false);
			sweep(now, true);
			next_sweep = now + 50;
		} else if (now >= next_sweep) {
			sweep(now, atomic_load(&draining));
			next_sweep = now + (atomic_load(&draining) ? 50 : SWEEP_MS);
		}
		update_listening(now);
		if (atomic_load(&draining)) {
			if (quiet())
				return;
			if (now >= drain_deadline_ms) {
				pthread_mutex_lock(&mu);
				n = busy + q_len;
				pthread_mutex_unlock(&mu);
				log_warnx("drain timed out with %d requests "
				    "in flight", n);
				_exit(1);
			}
		}
	}
}

static void
setup_poller(void)
{
	struct epoll_event ev;
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGQUIT);
	ep = epoll_create1(EPOLL_CLOEXEC);
	wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	sig_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (ep < 0 || wake_fd < 0 || sig_fd < 0) {
		log_crit("worker setup: %s", strerror(errno));
		_exit(71);
	}
	ev = (struct epoll_event){ .events = EPOLLIN, .data.ptr = &tag_wake };
	epoll_ctl(ep, EPOLL_CTL_ADD, wake_fd, &ev);
	ev = (struct epoll_event){ .events = EPOLLIN,
	    .data.ptr = &tag_signal };
	epoll_ctl(ep, EPOLL_CTL_ADD, sig_fd, &ev);
	listen_on(true);
}

void
worker_main(const struct server_config *c, int fd, pid_t master)
{
	sigset_t set;
	int i;

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
	poller_arena = arena_new();
	setup_poller();

	poll_loop();

	pthread_mutex_lock(&mu);
	stopping = true;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
	for (i = 0; i < ntids; i++)
		pthread_join(tids[i], NULL);
	free(tids);
	reap_dead();
	while (all != NULL)
		drop(all);
	arena_free(poller_arena);
	if (cfg->worker_exit != NULL)
		cfg->worker_exit();
	exit(0);
}
