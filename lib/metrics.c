#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>

#include "log.h"
#include "metrics.h"

static const int status_codes[] = {
	200, 201, 202, 204, 400, 401, 402, 403, 404, 405, 409, 413, 415,
	429, 500, 502, 503, 504, 0	/* 0: any other */
};
#define NSTATUS (sizeof(status_codes) / sizeof(status_codes[0]))

/* Upper bounds of the latency buckets, in microseconds. */
static const int64_t bucket_us[] = {
	1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
	1000000, 2500000, 5000000, 10000000, 30000000, 60000000
};
#define NBUCKETS (sizeof(bucket_us) / sizeof(bucket_us[0]))

struct route_stats {
	atomic_uint_least64_t	by_status[NSTATUS];
	atomic_uint_least64_t	bucket[NBUCKETS + 1];	/* last: +Inf */
	atomic_uint_least64_t	sum_us;
};

struct shm {
	struct route_stats	route[METRICS_MAX_ROUTES + 1];
	atomic_int_least64_t	inflight;
	atomic_uint_least64_t	pool_waits;
	atomic_uint_least64_t	pool_wait_us;
	atomic_uint_least64_t	worker_restarts;
	atomic_int_least64_t	counter[METRICS_MAX_COUNTERS];
};

struct counter_def {
	const char	*name;
	const char	*help;
	int		 is_gauge;
};

static struct shm		*shm;
static const char *const	*names;
static size_t			 nroutes;
static struct counter_def	 defs[METRICS_MAX_COUNTERS];
static int			 ndefs;

int
metrics_init(const char *const *route_names, size_t n)
{
	void *p;

	if (n > METRICS_MAX_ROUTES) {
		log_crit("too many routes for metrics (%zu)", n);
		return -1;
	}
	p = mmap(NULL, sizeof(struct shm), PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		log_warn("mmap metrics");
		return -1;
	}
	shm = p;	/* zero-filled by the kernel */
	names = route_names;
	nroutes = n;
	return 0;
}

int
metrics_define(const char *name, const char *help, int is_gauge)
{
	if (ndefs == METRICS_MAX_COUNTERS)
		return -1;
	defs[ndefs] = (struct counter_def){ name, help, is_gauge };
	return ndefs++;
}

void
metrics_add(int id, int64_t delta)
{
	if (shm != NULL && id >= 0 && id < ndefs)
		atomic_fetch_add(&shm->counter[id], delta);
}

void
metrics_request(int route, int status, int64_t duration_us)
{
	struct route_stats *s;
	size_t i;

	if (shm == NULL)
		return;
	s = &shm->route[route >= 0 && (size_t)route < nroutes ?
	    (size_t)route : nroutes];
	for (i = 0; i < NSTATUS - 1 && status_codes[i] != status; i++)
		;
	atomic_fetch_add(&s->by_status[i], 1);
	for (i = 0; i < NBUCKETS && duration_us > bucket_us[i]; i++)
		;
	atomic_fetch_add(&s->bucket[i], 1);
	atomic_fetch_add(&s->sum_us, (uint64_t)(duration_us > 0 ?
	    duration_us : 0));
}

void
metrics_inflight(int delta)
{
	if (shm != NULL)
		atomic_fetch_add(&shm->inflight, delta);
}

void
metrics_pool_wait(int64_t waited_us)
{
	if (shm == NULL)
		return;
	atomic_fetch_add(&shm->pool_waits, 1);
	atomic_fetch_add(&shm->pool_wait_us, (uint64_t)waited_us);
}

void
metrics_worker_restart(void)
{
	if (shm != NULL)
		atomic_fetch_add(&shm->worker_restarts, 1);
}

static const char *
route_name(size_t i)
{
	return i < nroutes ? names[i] : "unmatched";
}

static void
render_requests(struct buf *b)
{
	size_t r, k;

	buf_puts(b, "# HELP miky_http_requests_total Requests answered, by "
	    "route and status.\n# TYPE miky_http_requests_total counter\n");
	for (r = 0; r <= nroutes; r++)
		for (k = 0; k < NSTATUS; k++) {
			uint64_t v = atomic_load(&shm->route[r].by_status[k]);

			if (v == 0)
				continue;
			buf_printf(b, "miky_http_requests_total{route=\"%s\","
			    "status=\"", route_name(r));
			if (status_codes[k] != 0)
				buf_printf(b, "%d", status_codes[k]);
			else
				buf_puts(b, "other");
			buf_printf(b, "\"} %llu\n", (unsigned long long)v);
		}
}

static void
render_latency(struct buf *b)
{
	size_t r, k;

	buf_puts(b, "# HELP miky_http_request_duration_seconds Time from "
	    "accept to the end of the response.\n"
	    "# TYPE miky_http_request_duration_seconds histogram\n");
	for (r = 0; r <= nroutes; r++) {
		struct route_stats *s = &shm->route[r];
		uint64_t cum = 0, v;

		for (k = 0; k <= NBUCKETS; k++)
			cum += atomic_load(&s->bucket[k]);
		if (cum == 0)
			continue;
		cum = 0;
		for (k = 0; k <= NBUCKETS; k++) {
			cum += atomic_load(&s->bucket[k]);
			buf_printf(b, "miky_http_request_duration_seconds_bucket"
			    "{route=\"%s\",le=\"", route_name(r));
			if (k < NBUCKETS)
				buf_printf(b, "%g", (double)bucket_us[k] / 1e6);
			else
				buf_puts(b, "+Inf");
			buf_printf(b, "\"} %llu\n", (unsigned long long)cum);
		}
		v = atomic_load(&s->sum_us);
		buf_printf(b, "miky_http_request_duration_seconds_sum{route="
		    "\"%s\"} %.6f\n", route_name(r), (double)v / 1e6);
		buf_printf(b, "miky_http_request_duration_seconds_count{route="
		    "\"%s\"} %llu\n", route_name(r), (unsigned long long)cum);
	}
}

void
metrics_render(struct buf *b)
{
	int i;

	if (shm == NULL)
		return;
	render_requests(b);
	render_latency(b);
	buf_printf(b, "# HELP miky_http_requests_in_flight Requests being "
	    "served now.\n# TYPE miky_http_requests_in_flight gauge\n"
	    "miky_http_requests_in_flight %lld\n",
	    (long long)atomic_load(&shm->inflight));
	buf_printf(b, "# HELP miky_db_pool_waits_total Times a request had "
	    "to wait for a database connection.\n"
	    "# TYPE miky_db_pool_waits_total counter\n"
	    "miky_db_pool_waits_total %llu\n"
	    "# HELP miky_db_pool_wait_seconds_total Time spent waiting for a "
	    "database connection.\n"
	    "# TYPE miky_db_pool_wait_seconds_total counter\n"
	    "miky_db_pool_wait_seconds_total %.6f\n",
	    (unsigned long long)atomic_load(&shm->pool_waits),
	    (double)atomic_load(&shm->pool_wait_us) / 1e6);
	buf_printf(b, "# HELP miky_worker_restarts_total Workers restarted "
	    "after dying.\n# TYPE miky_worker_restarts_total counter\n"
	    "miky_worker_restarts_total %llu\n",
	    (unsigned long long)atomic_load(&shm->worker_restarts));
	for (i = 0; i < ndefs; i++)
		buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s %lld\n",
		    defs[i].name, defs[i].help, defs[i].name,
		    defs[i].is_gauge ? "gauge" : "counter", defs[i].name,
		    (long long)atomic_load(&shm->counter[i]));
}
