/*
 * The FastCGI server: a master process that owns the listen socket and
 * preforks workers, each a poller thread and a pool of request threads
 * (lib/worker.h).
 *
 * Master: takes the socket from fd 0 (spawn-fcgi), from systemd socket
 * activation (LISTEN_FDS), or binds `listen` (a path for a unix socket,
 * or host:port).  It restarts a worker that dies, replaces all workers
 * on SIGHUP (new ones start before old ones drain), and on SIGTERM or
 * SIGINT drains every worker and exits.
 *
 * Worker: threads wait for connections with epoll (EPOLLEXCLUSIVE, so
 * one connection wakes one thread) on the non-blocking listen socket
 * and on a wake-up pipe.  On SIGTERM the worker stops accepting, lets
 * in-flight requests finish within `drain_seconds`, and exits.  SIGPIPE
 * is ignored: a client that went away only makes writes fail.
 */
#ifndef MIKY_SERVER_H
#define MIKY_SERVER_H

#include <stddef.h>

struct request;

struct server_config {
	const char	*listen;	/* NULL: fd 0 or systemd must be a socket */
	int		 workers;
	int		 threads;	/* at most, per worker */
	int		 drain_seconds;
	/* A read from or write to nginx stalled this long fails. */
	int		 io_timeout_ms;
	/* A request waits this long for a thread, then gets 503. */
	int		 queue_ms;
	size_t		 thread_stack;	/* bytes; 0: the default */
	/* In each worker after fork, before its threads start; 0 = ok. */
	int		(*worker_init)(void);
	/* In each worker after its threads ended. */
	void		(*worker_exit)(void);
	/*
	 * Serves one request; must answer it (or the server sends 500).
	 * The server then writes the access log line and the metrics.
	 */
	void		(*handle)(struct request *);
};

/* Runs the master until it is told to stop.  Returns the exit status. */
int	server_run(const struct server_config *);

/* True once the worker was told to drain (for long-running handlers). */
int	server_draining(void);

#endif
