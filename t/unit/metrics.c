/*
 * lib/metrics.c: requests counted by route and status, latency
 * histograms with cumulative buckets, +Inf, _sum and _count, gauges and
 * defined counters, all in exact Prometheus text, and shared with a
 * forked child as with workers.
 */
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/metrics.h"
#include "t/unit/tap.h"

static const char *const route_names[] = { "health", "login" };

/* The bucket bounds as the exposition must spell them. */
static const char *const le[] = {
	"0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25",
	"0.5", "1", "2.5", "5", "10", "30", "60", "+Inf"
};

/* Appends the expected histogram of one route: cum[] per bucket. */
static void
hist(struct buf *b, const char *route, const unsigned cum[16],
    const char *sum)
{
	int i;

	for (i = 0; i < 16; i++)
		buf_printf(b, "miky_http_request_duration_seconds_bucket{route="
		    "\"%s\",le=\"%s\"} %u\n", route, le[i], cum[i]);
	buf_printf(b, "miky_http_request_duration_seconds_sum{route=\"%s\"} "
	    "%s\n", route, sum);
	buf_printf(b, "miky_http_request_duration_seconds_count{route=\"%s\"} "
	    "%u\n", route, cum[15]);
}

static int
has_line(const char *text, const char *line)
{
	size_t n = strlen(line);
	const char *p;

	for (p = text; (p = strstr(p, line)) != NULL; p++)
		if ((p == text || p[-1] == '\n') && p[n] == '\n')
			return 1;
	return 0;
}

static void
test_empty(void)
{
	struct buf b = BUF_INIT;

	metrics_request(0, 200, 10);	/* before init: ignored */
	metrics_render(&b);
	ok(b.len == 0, "nothing rendered before metrics_init");
	is_int(metrics_init(route_names, 2), 0, "metrics_init");
	metrics_render(&b);
	ok(strstr(b.p, "miky_http_requests_total{") == NULL,
	    "no request lines before any request");
	ok(strstr(b.p, "_bucket{") == NULL, "no histogram before any request");
	ok(has_line(b.p, "# TYPE miky_http_requests_total counter"),
	    "TYPE line of the request counter");
	ok(has_line(b.p, "# TYPE miky_http_request_duration_seconds "
	    "histogram"), "TYPE line of the histogram");
	ok(has_line(b.p, "miky_http_requests_in_flight 0"), "in flight 0");
	buf_free(&b);
}

/*
 * Labelled counters: series made on first use, shared with a child,
 * values cleaned, and "other" once the table is full.
 */
static void
test_families(void)
{
	struct buf b = BUF_INIT;
	char v[32];
	int hooks, admin, status, i;
	pid_t pid;

	hooks = metrics_family("miky_unit_webhooks_total", "Webhooks.",
	    "type", "outcome");
	admin = metrics_family("miky_unit_admin_total", "Admin actions.",
	    "action", NULL);
	ok(hooks >= 0 && admin == hooks + 1, "two families defined");
	metrics_render(&b);
	ok(has_line(b.p, "# TYPE miky_unit_webhooks_total counter"),
	    "a family without series renders its TYPE");
	ok(strstr(b.p, "miky_unit_webhooks_total{") == NULL,
	    "and no sample");
	metrics_count(hooks, "invoice.paid", "applied");
	metrics_count(hooks, "invoice.paid", "applied");
	metrics_count(hooks, "invoice.paid", "duplicate");
	metrics_count(hooks, "bad\"type}\n", "x y");
	metrics_count(admin, "user.update", "ignored");
	metrics_count(admin + 5, "x", "y");	/* no such family: ignored */
	fflush(stdout);
	if ((pid = fork()) == 0) {
		metrics_count(hooks, "invoice.paid", "applied");
		metrics_count(hooks, "charge.refunded", "applied");
		_exit(0);
	}
	ok(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status),
	    "a forked worker counted events");
	buf_reset(&b);
	metrics_render(&b);
	ok(has_line(b.p, "miky_unit_webhooks_total{type=\"invoice.paid\","
	    "outcome=\"applied\"} 3"), "one series, counted by both "
	    "processes");
	ok(has_line(b.p, "miky_unit_webhooks_total{type=\"charge.refunded\","
	    "outcome=\"applied\"} 1"), "a series made by the child");
	ok(has_line(b.p, "miky_unit_webhooks_total{type=\"invoice.paid\","
	    "outcome=\"duplicate\"} 1"), "another outcome, another series");
	ok(has_line(b.p, "miky_unit_webhooks_total{type=\"bad_type__\","
	    "outcome=\"x_y\"} 1"), "values cleaned for the text format");
	ok(has_line(b.p, "miky_unit_admin_total{action=\"user.update\"} 1"),
	    "a family of one label ignores the second value");
	for (i = 0; i < METRICS_MAX_SERIES + 10; i++) {
		snprintf(v, sizeof(v), "t%d", i);
		metrics_count(hooks, v, "applied");
	}
	buf_reset(&b);
	metrics_render(&b);
	ok(strstr(b.p, "miky_unit_webhooks_total{type=\"other\","
	    "outcome=\"other\"}") != NULL, "past the table, \"other\"");
	ok(has_line(b.p, "miky_unit_webhooks_total{type=\"invoice.paid\","
	    "outcome=\"applied\"} 3"), "earlier series unharmed");
	buf_free(&b);
}

int
main(void)
{
	static const unsigned health[16] = {
		2, 2, 3, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4
	};
	static const unsigned login[16] = {
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 2
	};
	static const unsigned unmatched[16] = {
		1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2
	};
	struct buf b = BUF_INIT, want = BUF_INIT;
	int events, queue, status;
	pid_t pid;

	events = metrics_define("miky_unit_events_total", "Events seen.", 0);
	queue = metrics_define("miky_unit_queue", "Queue length.", 1);
	is_int(events, 0, "first defined counter id");
	is_int(queue, 1, "second defined counter id");
	test_empty();

	metrics_request(0, 200, 500);
	metrics_request(0, 200, 1000);		/* on the 0.001 bound: le */
	metrics_request(0, 404, 3000);
	metrics_request(1, 201, 2000000);
	metrics_request(1, 418, 61000000);	/* other status, +Inf only */
	metrics_request(-1, 404, 100);		/* unmatched */
	metrics_request(7, 405, 2500);		/* out of range: unmatched */
	metrics_inflight(2);
	metrics_inflight(-1);
	metrics_pool_wait(1500);
	metrics_pool_wait(1500);
	metrics_batch(1);
	metrics_batch(5);
	metrics_worker_restart();
	metrics_add(events, 3);
	metrics_add(events, 2);
	metrics_add(queue, 7);
	metrics_add(queue, -10);
	metrics_add(5, 100);			/* undefined ids: ignored */
	metrics_add(-1, 100);

	/* A worker's counts land in the shared region. */
	fflush(stdout);
	if ((pid = fork()) == 0) {
		metrics_request(0, 500, 10000);
		_exit(0);
	}
	ok(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status),
	    "a forked worker counted a request");

	metrics_render(&b);
	ok(has_line(b.p, "miky_http_requests_total{route=\"health\","
	    "status=\"200\"} 2"), "counter line for health 200");
	ok(has_line(b.p, "miky_http_requests_total{route=\"health\","
	    "status=\"500\"} 1"), "the child's request is seen");
	ok(has_line(b.p, "miky_http_requests_total{route=\"login\","
	    "status=\"other\"} 1"), "unknown status counted as other");
	ok(has_line(b.p, "miky_http_request_duration_seconds_bucket{route="
	    "\"health\",le=\"0.001\"} 2"), "1000 us falls in le=0.001");
	ok(has_line(b.p, "miky_http_request_duration_seconds_bucket{route="
	    "\"login\",le=\"+Inf\"} 2"), "+Inf holds every request");
	ok(has_line(b.p, "miky_http_request_duration_seconds_count{route="
	    "\"health\"} 4"), "_count of health");

	buf_puts(&want, "# HELP miky_http_requests_total Requests answered, "
	    "by route and status.\n"
	    "# TYPE miky_http_requests_total counter\n"
	    "miky_http_requests_total{route=\"health\",status=\"200\"} 2\n"
	    "miky_http_requests_total{route=\"health\",status=\"404\"} 1\n"
	    "miky_http_requests_total{route=\"health\",status=\"500\"} 1\n"
	    "miky_http_requests_total{route=\"login\",status=\"201\"} 1\n"
	    "miky_http_requests_total{route=\"login\",status=\"other\"} 1\n"
	    "miky_http_requests_total{route=\"unmatched\",status=\"404\"} 1\n"
	    "miky_http_requests_total{route=\"unmatched\",status=\"405\"} 1\n"
	    "# HELP miky_http_request_duration_seconds Time from accept to "
	    "the end of the response.\n"
	    "# TYPE miky_http_request_duration_seconds histogram\n");
	hist(&want, "health", health, "0.014500");
	hist(&want, "login", login, "63.000000");
	hist(&want, "unmatched", unmatched, "0.002600");
	buf_puts(&want, "# HELP miky_http_requests_in_flight Requests being "
	    "served now.\n"
	    "# TYPE miky_http_requests_in_flight gauge\n"
	    "miky_http_requests_in_flight 1\n"
	    "# HELP miky_db_pool_waits_total Times a request had to wait for "
	    "a database connection.\n"
	    "# TYPE miky_db_pool_waits_total counter\n"
	    "miky_db_pool_waits_total 2\n"
	    "# HELP miky_db_pool_wait_seconds_total Time spent waiting for a "
	    "database connection.\n"
	    "# TYPE miky_db_pool_wait_seconds_total counter\n"
	    "miky_db_pool_wait_seconds_total 0.003000\n"
	    "# HELP miky_db_batch_reads_total Shared reads by key (the user "
	    "rows of access tokens).\n"
	    "# TYPE miky_db_batch_reads_total counter\n"
	    "miky_db_batch_reads_total 2\n"
	    "# HELP miky_db_batch_keys_total Keys those reads read: over the "
	    "reads, the keys a round trip served.\n"
	    "# TYPE miky_db_batch_keys_total counter\n"
	    "miky_db_batch_keys_total 6\n"
	    "# HELP miky_worker_restarts_total Workers restarted after "
	    "dying.\n"
	    "# TYPE miky_worker_restarts_total counter\n"
	    "miky_worker_restarts_total 1\n"
	    "# HELP miky_unit_events_total Events seen.\n"
	    "# TYPE miky_unit_events_total counter\n"
	    "miky_unit_events_total 5\n"
	    "# HELP miky_unit_queue Queue length.\n"
	    "# TYPE miky_unit_queue gauge\n"
	    "miky_unit_queue -3\n");
	is_str(b.p, want.p, "the whole exposition, line for line");

	buf_reset(&b);
	metrics_render(&b);
	is_str(b.p, want.p, "rendering does not change the counts");
	buf_free(&b);
	buf_free(&want);
	test_families();
	return tap_done();
}
