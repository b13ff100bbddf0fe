#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "listen.h"
#include "log.h"
#include "metrics.h"
#include "server.h"
#include "worker.h"
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

/*
 * Each request holding a stream uses a few descriptors (the FastCGI
 * connection, the model's, and curl's own), and idle kept connections
 * one each, so a worker with thousands of streams needs far more than
 * the usual soft limit: the master raises it to the hard limit, and when
 * it may (root, or CAP_SYS_RESOURCE) the hard limit to FD_WANTED first.
 */
#define FD_WANTED	65536

static void
raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return;
	if (rl.rlim_max < FD_WANTED) {
		struct rlimit more = { FD_WANTED, FD_WANTED };

		if (setrlimit(RLIMIT_NOFILE, &more) == 0)
			return;
	}
	if (rl.rlim_cur < rl.rlim_max) {
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
		worker_main(cfg, listen_fd, master);
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
