#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
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

/*
 * One labelled series.  A slot goes free -> being written -> ready once,
 * claimed with a compare-and-swap, so processes that make the same
 * series at once agree on one slot: they probe the same sequence, and a
 * loser waits for the winner's values before comparing.
 */
enum { SLOT_FREE, SLOT_WRITING, SLOT_READY };
struct series {
	atomic_int		state;
	int			family;
	char			v1[METRICS_VALUE_MAX + 1];
	char			v2[METRICS_VALUE_MAX + 1];
	atomic_uint_least64_t	count;
};

struct shm {
	struct route_stats	route[METRICS_MAX_ROUTES + 1];
	atomic_int_least64_t	inflight;
	atomic_uint_least64_t	pool_waits;
	atomic_uint_least64_t	pool_wait_us;
	atomic_uint_least64_t	batch_reads;
	atomic_uint_least64_t	batch_keys;
	atomic_uint_least64_t	worker_restarts;
	atomic_int_least64_t	counter[METRICS_MAX_COUNTERS];
	struct series		series[METRICS_MAX_SERIES];
	atomic_uint_least64_t	other[METRICS_MAX_FAMILIES];	/* table full */
};

struct counter_def {
	const char	*name;
	const char	*help;
	int		 is_gauge;
};

struct family_def {
	const char	*name;
	const char	*help;
	const char	*label[2];
};

static struct shm		*shm;
static struct family_def	 families[METRICS_MAX_FAMILIES];
static int			 nfamilies;
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

int
metrics_family(const char *name, const char *help, const char *label1,
    const char *label2)
{
	if (nfamilies == METRICS_MAX_FAMILIES)
		return -1;
	families[nfamilies] = (struct family_def){ name, help,
	    { label1, label2 } };
	return nfamilies++;
}

/* A label value as it may appear between quotes in the text format. */
static void
clean_value(char *out, const char *in)
{
	size_t i;
	char c;

	for (i = 0; in != NULL && in[i] != '\0' && i < METRICS_VALUE_MAX;
	    i++) {
		c = in[i];
		out[i] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '_' || c == '.' ||
		    c == ':' || c == '-' ? c : '_';
	}
	out[i] = '\0';
}

/* FNV-1a over the family and both values. */
static size_t
series_hash(int family, const char *v1, const char *v2)
{
	uint64_t h = 1469598103934665603ULL ^ (uint64_t)family;
	const char *p;

	for (p = v1; *p != '\0'; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	h = (h ^ 0xff) * 1099511628211ULL;
	for (p = v2; *p != '\0'; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	return (size_t)(h % METRICS_MAX_SERIES);
}

/*
 * Waits (briefly) for a slot being written by another process; false
 * if it never became ready (its writer died mid-way), then it is
 * skipped.
 */
static bool
slot_ready(struct series *s)
{
	int i;

	for (i = 0; i < 10000; i++) {
		if (atomic_load(&s->state) == SLOT_READY)
			return true;
		sched_yield();
	}
	return false;
}

/* The series of (family, v1, v2), made if need be; NULL when full. */
static struct series *
series_find(int family, const char *v1, const char *v2)
{
	size_t i, n, at = series_hash(family, v1, v2);
	struct series *s;
	int st;

	for (n = 0; n < METRICS_MAX_SERIES; n++) {
		i = (at + n) % METRICS_MAX_SERIES;
		s = &shm->series[i];
		st = atomic_load(&s->state);
		if (st == SLOT_FREE) {
			if (atomic_compare_exchange_strong(&s->state, &st,
			    SLOT_WRITING)) {
				s->family = family;
				memcpy(s->v1, v1, strlen(v1) + 1);
				memcpy(s->v2, v2, strlen(v2) + 1);
				atomic_store(&s->state, SLOT_READY);
				return s;
			}
		}
		if (!slot_ready(s))
			continue;
		if (s->family == family && strcmp(s->v1, v1) == 0 &&
		    strcmp(s->v2, v2) == 0)
			return s;
	}
	return NULL;
}

void
metrics_count(int family, const char *v1, const char *v2)
{
	char a[METRICS_VALUE_MAX + 1], b[METRICS_VALUE_MAX + 1];
	struct series *s;

	if (shm == NULL || family < 0 || family >= nfamilies)
		return;
	clean_value(a, v1);
	clean_value(b, families[family].label[1] != NULL ? v2 : NULL);
	if ((s = series_find(family, a, b)) != NULL)
		atomic_fetch_add(&s->count, 1);
	else
		atomic_fetch_add(&shm->other[family], 1);
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
metrics_batch(int keys)
{
	if (shm == NULL)
		return;
	atomic_fetch_add(&shm->batch_reads, 1);
	atomic_fetch_add(&shm->batch_keys, (uint64_t)keys);
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

static void
render_families(struct buf *b)
{
	const struct family_def *f;
	struct series *s;
	int i, k;

	for (i = 0; i < nfamilies; i++) {
		f = &families[i];
		buf_printf(b, "# HELP %s %s\n# TYPE %s counter\n", f->name,
		    f->help, f->name);
		for (k = 0; k < METRICS_MAX_SERIES; k++) {
			s = &shm->series[k];
			if (atomic_load(&s->state) != SLOT_READY ||
			    s->family != i)
				continue;
			buf_printf(b, "%s{%s=\"%s\"", f->name, f->label[0],
			    s->v1);
			if (f->label[1] != NULL)
				buf_printf(b, ",%s=\"%s\"", f->label[1], s->v2);
			buf_printf(b, "} %llu\n",
			    (unsigned long long)atomic_load(&s->count));
		}
		if (atomic_load(&shm->other[i]) == 0)
			continue;
		buf_printf(b, "%s{%s=\"other\"", f->name, f->label[0]);
		if (f->label[1] != NULL)
			buf_printf(b, ",%s=\"other\"", f->label[1]);
		buf_printf(b, "} %llu\n",
		    (unsigned long long)atomic_load(&shm->other[i]));
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
	buf_printf(b, "# HELP miky_db_batch_reads_total Shared reads by key "
	    "(the user rows of access tokens).\n"
	    "# TYPE miky_db_batch_reads_total counter\n"
	    "miky_db_batch_reads_total %llu\n"
	    "# HELP miky_db_batch_keys_total Keys those reads read: over the "
	    "reads, the keys a round trip served.\n"
	    "# TYPE miky_db_batch_keys_total counter\n"
	    "miky_db_batch_keys_total %llu\n",
	    (unsigned long long)atomic_load(&shm->batch_reads),
	    (unsigned long long)atomic_load(&shm->batch_keys));
	buf_printf(b, "# HELP miky_worker_restarts_total Workers restarted "
	    "after dying.\n# TYPE miky_worker_restarts_total counter\n"
	    "miky_worker_restarts_total %llu\n",
	    (unsigned long long)atomic_load(&shm->worker_restarts));
	for (i = 0; i < ndefs; i++)
		buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s %lld\n",
		    defs[i].name, defs[i].help, defs[i].name,
		    defs[i].is_gauge ? "gauge" : "counter", defs[i].name,
		    (long long)atomic_load(&shm->counter[i]));
	render_families(b);
}
