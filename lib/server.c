#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fcgiapp.h>

#include "arena.h"
#include "buf.h"
#include "clock.h"
#include "jsonw.h"
#include "listen.h"
#include "log.h"
#include "metrics.h"
#include "request.h"
#include "server.h"
#include "xalloc.h"

/* A worker that dies sooner than this after its start is restarted
 * only after the same delay, so a crash loop does not spin. */
#define RESPAWN_MIN_MS	1000

struct child {
	pid_t	 pid;
	int	 generation;
	int64_t	 started_ms;
	int64_t	 respawn_at_ms;	/* > 0: a slot waiting to be refilled */
};

static const struct server_config *cfg;
static int		 listen_fd = -1;
static char		*bound_path;	/* unix socket we created, or NULL */

/* Worker state. */
static atomic_int	 draining;
static int		 wake_pipe[2] = { -1, -1 };
static pthread_mutex_t	 live_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t	 live_cv = PTHREAD_COND_INITIALIZER;
static int		 live_threads;

int
server_draining(void)
{
	return atomic_load(&draining);
}

/* Writes the access log line and counts the request. */
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
serve(FCGX_Request *fr, struct arena *a)
{
	struct request r;

	req_init(&r, fr, a);
	metrics_inflight(1);
	log_set_context(r.request_id, NULL);
	cfg->handle(&r);
	if (!r.replied)
		reply_error(&r, 500, "internal_error",
		    "Something went wrong on our side.", NULL);
	finish_request(&r);
	log_clear_context();
	metrics_inflight(-1);
	req_done(&r);
}

static void *
thread_main(void *arg)
{
	struct epoll_event ev, evs[2];
	FCGX_Request fr;
	struct arena *a = arena_new();
	int ep, rc;

	(void)arg;
	FCGX_InitRequest(&fr, listen_fd, 0);
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0) {
		log_crit("epoll_create1: %s", strerror(errno));
		_exit(71);
	}
	ev = (struct epoll_event){ .events = EPOLLIN | EPOLLEXCLUSIVE,
	    .data.fd = listen_fd };
	epoll_ctl(ep, EPOLL_CTL_ADD, listen_fd, &ev);
	ev = (struct epoll_event){ .events = EPOLLIN, .data.fd = wake_pipe[0] };
	epoll_ctl(ep, EPOLL_CTL_ADD, wake_pipe[0], &ev);

	while (!atomic_load(&draining)) {
		if (epoll_wait(ep, evs, 2, -1) < 0 && errno != EINTR) {
			log_warn("epoll_wait");
			break;
		}
		if (atomic_load(&draining))
			break;
		rc = FCGX_Accept_r(&fr);
		if (rc < 0) {
			/* Another thread took the connection, or it was
			 * gone before we got it. */
			if (rc != -EAGAIN && rc != -EWOULDBLOCK &&
			    rc != -EINTR && rc != -ECONNABORTED)
				log_warnx("FastCGI accept failed (%d)", rc);
			continue;
		}
		serve(&fr, a);
		FCGX_Finish_r(&fr);
		arena_reset(a);
	}
	close(ep);
	arena_free(a);
	pthread_mutex_lock(&live_mu);
	live_threads--;
	pthread_cond_signal(&live_cv);
	pthread_mutex_unlock(&live_mu);
	return NULL;
}

/* Waits until every thread has ended or the deadline passed. */
static int
wait_threads(int64_t deadline_ms)
{
	struct timespec ts;
	int left;

	pthread_mutex_lock(&live_mu);
	while (live_threads > 0) {
		int64_t now = clock_ms();

		if (now >= deadline_ms)
			break;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		pthread_cond_timedwait(&live_cv, &live_mu, &ts);
	}
	left = live_threads;
	pthread_mutex_unlock(&live_mu);
	return left;
}

static void __attribute__((noreturn))
worker_main(pid_t master)
{
	pthread_attr_t attr;
	pthread_t *tids;
	sigset_t set;
	int i, sig, left;

	log_set_process("worker");
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() != master)
		_exit(0);
	if (pipe2(wake_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
		log_crit("pipe: %s", strerror(errno));
		_exit(71);
	}
	if (cfg->worker_init != NULL && cfg->worker_init() != 0) {
		log_crit("worker initialisation failed");
		_exit(71);
	}
	/*
	 * The stop signals stay blocked from the fork on (they come to
	 * sigwait below, and threads inherit the mask); SIGCHLD, which
	 * the master blocks, is let through.
	 */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGQUIT);
	pthread_sigmask(SIG_SETMASK, &set, NULL);

	pthread_attr_init(&attr);
	if (cfg->thread_stack > 0)
		pthread_attr_setstacksize(&attr, cfg->thread_stack);
	tids = xcalloc((size_t)cfg->threads, sizeof(*tids));
	live_threads = cfg->threads;
	for (i = 0; i < cfg->threads; i++)
		if (pthread_create(&tids[i], &attr, thread_main, NULL) != 0) {
			log_crit("pthread_create failed");
			_exit(71);
		}
	pthread_attr_destroy(&attr);

	do {
		if (sigwait(&set, &sig) != 0)
			sig = SIGTERM;
	} while (sig == SIGHUP);

	atomic_store(&draining, 1);
	(void)!write(wake_pipe[1], "x", 1);
	left = wait_threads(clock_ms() + (int64_t)cfg->drain_seconds * 1000);
	if (left > 0) {
		log_warnx("drain timed out with %d requests in flight", left);
		_exit(1);
	}
	for (i = 0; i < cfg->threads; i++)
		pthread_join(tids[i], NULL);
	free(tids);
	if (cfg->worker_exit != NULL)
		cfg->worker_exit();
	exit(0);
}

/*
 * Each thread holding a stream uses a handful of descriptors (the
 * FastCGI connection, the upstream one, epoll and curl's own), so a
 * worker with hundreds of threads needs more than the usual soft limit.
 */
static void
raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* Master side. */

static struct child	*children;
static int		 nchildren;

static void
spawn(struct child *c, int generation)
{
	pid_t master = getpid(), pid = fork();

	if (pid < 0) {
		log_warn("fork");
		c->pid = 0;
		c->respawn_at_ms = clock_ms() + RESPAWN_MIN_MS;
		return;
	}
	if (pid == 0)
		worker_main(master);
	c->pid = pid;
	c->generation = generation;
	c->started_ms = clock_ms();
	c->respawn_at_ms = 0;
}

static struct child *
free_slot(void)
{
	int i;

	for (i = 0; i < nchildren; i++)
		if (children[i].pid == 0 && children[i].respawn_at_ms == 0)
			return &children[i];
	children = xrealloc(children, sizeof(*children) *
	    (size_t)(nchildren + 1));
	memset(&children[nchildren], 0, sizeof(*children));
	return &children[nchildren++];
}

static void
log_death(pid_t pid, int status)
{
	char fields[96];

	if (WIFSIGNALED(status)) {
		snprintf(fields, sizeof(fields), "\"worker\":%d,\"signal\":%d",
		    (int)pid, WTERMSIG(status));
		log_fields(LOG_WARN, "worker died", fields);
	} else if (WEXITSTATUS(status) != 0) {
		snprintf(fields, sizeof(fields), "\"worker\":%d,\"status\":%d",
		    (int)pid, WEXITSTATUS(status));
		log_fields(LOG_WARN, "worker exited", fields);
	}
}

/* Collects dead workers; those of the current generation come back. */
static void
reap(int generation, int stopping)
{
	pid_t pid;
	int status, i;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (i = 0; i < nchildren; i++)
			if (children[i].pid == pid)
				break;
		if (i == nchildren)
			continue;
		children[i].pid = 0;
		if (stopping || children[i].generation != generation)
			continue;
		log_death(pid, status);
		metrics_worker_restart();
		children[i].respawn_at_ms = clock_ms() -
		    children[i].started_ms < RESPAWN_MIN_MS ?
		    clock_ms() + RESPAWN_MIN_MS : 1;
	}
}

static int
live_children(void)
{
	int i, n = 0;

	for (i = 0; i < nchildren; i++)
		n += children[i].pid != 0;
	return n;
}

static void
signal_generation(int generation, int sig, int all)
{
	int i;

	for (i = 0; i < nchildren; i++)
		if (children[i].pid != 0 &&
		    (all || children[i].generation == generation))
			kill(children[i].pid, sig);
}

static void
respawn_due(int generation)
{
	int64_t now = clock_ms();
	int i;

	for (i = 0; i < nchildren; i++)
		if (children[i].pid == 0 && children[i].respawn_at_ms != 0 &&
		    children[i].respawn_at_ms <= now)
			spawn(&children[i], generation);
}

int
server_run(const struct server_config *c)
{
	struct timespec tick = { 0, 200 * 1000 * 1000 };
	sigset_t set;
	siginfo_t info;
	int generation = 0, stopping = 0, i, sig, flags;
	int64_t kill_at = 0;

	cfg = c;
	signal(SIGPIPE, SIG_IGN);
	raise_fd_limit();
	if (FCGX_Init() != 0) {
		log_crit("FCGX_Init failed");
		return 1;
	}
	listen_fd = listen_open(cfg->listen, &bound_path);
	if (listen_fd < 0)
		return 1;
	flags = fcntl(listen_fd, F_GETFL);
	fcntl(listen_fd, F_SETFL, flags | O_NONBLOCK);

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGQUIT);
	sigprocmask(SIG_BLOCK, &set, NULL);

	for (i = 0; i < cfg->workers; i++)
		spawn(free_slot(), generation);
	log_info("serving with %d workers of %d threads", cfg->workers,
	    cfg->threads);

	for (;;) {
		sig = sigtimedwait(&set, &info, &tick);
		if (sig == SIGCHLD || sig < 0)
			reap(generation, stopping);
		if ((sig == SIGTERM || sig == SIGINT || sig == SIGQUIT) &&
		    !stopping) {
			log_info("draining workers and stopping");
			stopping = 1;
			kill_at = clock_ms() +
			    ((int64_t)cfg->drain_seconds + 5) * 1000;
			signal_generation(generation, SIGTERM, 1);
			for (i = 0; i < nchildren; i++)
				children[i].respawn_at_ms = 0;
		}
		if (sig == SIGHUP && !stopping) {
			log_info("replacing workers");
			for (i = 0; i < nchildren; i++)
				children[i].respawn_at_ms = 0;
			generation++;
			for (i = 0; i < cfg->workers; i++)
				spawn(free_slot(), generation);
			signal_generation(generation - 1, SIGTERM, 0);
			/* Older generations were signalled before. */
		}
		if (stopping) {
			if (live_children() == 0)
				break;
			if (clock_ms() >= kill_at) {
				log_warnx("workers did not drain in time");
				signal_generation(generation, SIGKILL, 1);
				kill_at = clock_ms() + 60000;
			}
			continue;
		}
		respawn_due(generation);
	}
	if (bound_path != NULL)
		unlink(bound_path);
	free(bound_path);
	free(children);
	log_info("stopped");
	return 0;
}
