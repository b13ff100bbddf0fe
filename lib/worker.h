/*
 * A worker process of lib/server.c.  Its main thread is the poller: one
 * epoll set over the listening socket, every FastCGI connection that
 * waits for a request, and the stop signals.  It accepts connections,
 * reads each request's parameters as they come, and hands a request
 * whose parameters are complete to the pool of request threads through
 * a queue; the thread reads the body, answers, and gives the
 * connection back (nginx keeps it for its next request) or closes it.
 *
 * So a kept connection costs a thread only while a request is on it,
 * and a thread is never parked on a slow or idle peer.  Threads are
 * started as requests need them, up to `threads`, and stay.  A request
 * that finds every thread busy waits in the queue at most `queue_ms`
 * (or not at all when the queue is full) and is then answered 503
 * `unavailable` with Retry-After by the poller itself, so it is never
 * held until nginx gives up.
 */
#ifndef MIKY_WORKER_H
#define MIKY_WORKER_H

#include <sys/types.h>

struct server_config;

/* Runs a worker in the child after fork; never returns. */
void	worker_main(const struct server_config *, int listen_fd,
	    pid_t master) __attribute__((noreturn));

/* True once the worker was told to drain. */
int	worker_draining(void);

#endif
