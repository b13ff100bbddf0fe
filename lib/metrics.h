/*
 * Request metrics shared by every worker process: the master maps one
 * anonymous shared memory region before forking, workers add to it with
 * atomic operations, and any worker renders the sums in the Prometheus
 * text format.  Counters survive a worker's restart.
 */
#ifndef MIKY_METRICS_H
#define MIKY_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define METRICS_MAX_ROUTES	96
#define METRICS_MAX_COUNTERS	32

/*
 * Maps the region; route_names[i] labels route i (a request that matched
 * no route is counted as "unmatched").  Call once, before forking.
 * Returns 0 or -1.
 */
int	metrics_init(const char *const *route_names, size_t nroutes);

/*
 * Defines a counter or gauge rendered as `name` with a HELP line; call
 * before forking.  Returns its id for metrics_add().
 */
int	metrics_define(const char *name, const char *help, int is_gauge);
void	metrics_add(int id, int64_t delta);

/* route -1 means unmatched. */
void	metrics_request(int route, int status, int64_t duration_us);
void	metrics_inflight(int delta);
void	metrics_pool_wait(int64_t waited_us);
void	metrics_worker_restart(void);

/* Appends the exposition text. */
void	metrics_render(struct buf *);

#endif
