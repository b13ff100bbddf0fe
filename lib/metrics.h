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

/*
 * Labelled counters, for events (webhooks by type and outcome, admin
 * actions...).  A family is a metric name with one or two label names,
 * defined before forking (returns its id, or -1 when there are too many);
 * metrics_count(family, v1, v2) adds one to the series of those label
 * values (v2 ignored for a family of one label), made in shared memory
 * on first use.  Values are cut to METRICS_VALUE_MAX bytes and any byte
 * outside [A-Za-z0-9_.:-] becomes '_', so no value can break the text
 * format; once METRICS_MAX_SERIES series exist, new ones are counted
 * under the values "other".  A family with no series yet still renders
 * its HELP and TYPE lines.
 */
#define METRICS_MAX_FAMILIES	16
#define METRICS_MAX_SERIES	512
#define METRICS_VALUE_MAX	47
int	metrics_family(const char *name, const char *help, const char *label1,
	    const char *label2);
void	metrics_count(int family, const char *v1, const char *v2);

/* route -1 means unmatched. */
void	metrics_request(int route, int status, int64_t duration_us);
void	metrics_inflight(int delta);
void	metrics_pool_wait(int64_t waited_us);
/* One shared read of `keys` keys (lib/dbbatch.h). */
void	metrics_batch(int keys);
void	metrics_worker_restart(void);

/* Appends the exposition text. */
void	metrics_render(struct buf *);

#endif
