#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "clock.h"
#include "http.h"
#include "log.h"
#include "num.h"

struct transfer {
	const struct http_call	*call;
	struct http_result	*res;
	CURL			*h;
	int64_t			 last_data_ms;
	bool			 got_data;
	bool			 cancelled;
};

int
http_global_init(void)
{
	return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

const char *
http_status_name(enum http_status s)
{
	static const char *const names[] = {
		"done", "connect failed", "connect timeout",
		"first byte timeout", "idle timeout", "total timeout",
		"cancelled", "client gone", "failed"
	};

	return (size_t)s < sizeof(names) / sizeof(names[0]) ? names[s] : "?";
}

static size_t
on_body(char *p, size_t size, size_t n, void *arg)
{
	struct transfer *t = arg;
	size_t len = size * n;
	long code = 0;

	t->got_data = true;
	t->last_data_ms = clock_ms();
	if (t->call->on_data == NULL) {
		buf_add(&t->res->body, p, len);
		return len;
	}
	/*
	 * Only a success's body streams to the caller: the text of an error
	 * answer (a 401 naming the key, a proxy's page) must not end up
	 * where the caller sends what it receives.  It is read and dropped.
	 */
	curl_easy_getinfo(t->h, CURLINFO_RESPONSE_CODE, &code);
	if (code < 200 || code > 299)
		return len;
	if (t->call->on_data(t->call->ctx, p, len) != 0) {
		t->cancelled = true;
		return 0;	/* curl stops with CURLE_WRITE_ERROR */
	}
	return len;
}

/* Picks Retry-After (delta-seconds form) out of the response headers. */
static size_t
on_header(char *p, size_t size, size_t n, void *arg)
{
	struct transfer *t = arg;
	size_t len = size * n, k;
	long long v;

	if (len > 12 && strncasecmp(p, "Retry-After:", 12) == 0) {
		const char *s = p + 12;
		size_t rest = len - 12;

		while (rest > 0 && (*s == ' ' || *s == '\t'))
			s++, rest--;
		for (k = 0; k < rest && s[k] >= '0' && s[k] <= '9'; k++)
			;
		if (k > 0 && num_parsen(s, k, 0, 3600, &v) == 0)
			t->res->retry_after_s = (int)v;
	}
	return len;
}

static CURL *
easy_for(const struct http_call *c, struct transfer *t)
{
	CURL *h = curl_easy_init();

	if (h == NULL)
		return NULL;
	curl_easy_setopt(h, CURLOPT_URL, c->url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, c->headers);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, t);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, t);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, t->res->error);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)c->connect_ms);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)c->total_ms);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	if (c->mime != NULL)
		curl_easy_setopt(h, CURLOPT_MIMEPOST, c->mime);
	else if (c->body != NULL) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, c->body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
		    (curl_off_t)c->body_len);
	}
	if (c->method != NULL && strcmp(c->method, "GET") != 0 &&
	    strcmp(c->method, "POST") != 0)
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, c->method);
	else if (c->method != NULL && strcmp(c->method, "GET") == 0)
		curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
	return h;
}

/* Which of our own clocks ran out, if any. */
static enum http_status
expired(const struct http_call *c, const struct transfer *t, CURL *h,
    int64_t start)
{
	int64_t now = clock_ms();
	curl_off_t connected = 0;

	if (!t->got_data) {
		curl_easy_getinfo(h, CURLINFO_CONNECT_TIME_T, &connected);
		if (connected > 0 && c->first_byte_ms > 0 &&
		    now - start > c->first_byte_ms)
			return HTTP_TIMEOUT_FIRST_BYTE;
	} else if (c->idle_ms > 0 && now - t->last_data_ms > c->idle_ms)
		return HTTP_TIMEOUT_IDLE;
	return HTTP_DONE;
}

/*
 * Milliseconds until the nearest of our clocks, at most WAIT_MAX_MS
 * (curl_multi_poll() shortens it for curl's own timers).  A transfer
 * that waits for data wakes when it comes or a clock runs out, not on a
 * schedule: thousands of streams each woken four times a second cost
 * more than the data they carried.
 */
#define WAIT_MAX_MS	5000

static int
wait_budget(const struct http_call *c, const struct transfer *t,
    int64_t start)
{
	int64_t now = clock_ms(), left = WAIT_MAX_MS, d;

	if (!t->got_data && c->first_byte_ms > 0)
		d = start + c->first_byte_ms - now;
	else if (t->got_data && c->idle_ms > 0)
		d = t->last_data_ms + c->idle_ms - now;
	else
		d = left;
	if (d < left)
		left = d;
	return left > 0 ? (int)left : 0;
}

static enum http_status
from_curl(CURLcode rc, const struct transfer *t, long code)
{
	switch (rc) {
	case CURLE_OK:
		return HTTP_DONE;
	case CURLE_WRITE_ERROR:
		return t->cancelled ? HTTP_CANCELLED : HTTP_FAILED;
	case CURLE_OPERATION_TIMEDOUT:
		if (code == 0 && !t->got_data)
			return HTTP_TIMEOUT_CONNECT;
		return HTTP_TIMEOUT_TOTAL;
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
		return HTTP_CONNECT_FAILED;
	default:
		return HTTP_FAILED;
	}
}

enum http_status
http_perform(const struct http_call *c, struct http_result *res)
{
	struct transfer t = { c, res, NULL, 0, false, false };
	struct curl_waitfd wfd;
	CURLM *m = NULL;
	CURL *h = NULL;
	CURLMsg *msg;
	int running = 1, left, watch = c->watch_fd;
	int64_t start = clock_ms();
	enum http_status st = HTTP_FAILED;

	memset(res, 0, sizeof(*res));
	res->retry_after_s = -1;
	if ((m = curl_multi_init()) == NULL ||
	    (h = t.h = easy_for(c, &t)) == NULL ||
	    curl_multi_add_handle(m, h) != CURLM_OK) {
		snprintf(res->error, sizeof(res->error), "curl setup failed");
		goto out;
	}
	wfd.fd = watch;
	wfd.events = CURL_WAIT_POLLIN;
	while (running) {
		if (curl_multi_perform(m, &running) != CURLM_OK)
			goto out;
		if (!running)
			break;
		if ((st = expired(c, &t, h, start)) != HTTP_DONE)
			goto out;
		wfd.revents = 0;
		curl_multi_poll(m, watch >= 0 ? &wfd : NULL, watch >= 0 ? 1 : 0,
		    wait_budget(c, &t, start), NULL);
		if (watch >= 0 && wfd.revents != 0) {
			/*
			 * Our client's connection is readable: a hang-up means
			 * the client went away.  Plain data (a record we did
			 * not read) is not a hang-up; stop watching then, or
			 * the poll would spin.
			 */
			struct pollfd pfd = { watch, POLLIN | POLLRDHUP, 0 };

			if (poll(&pfd, 1, 0) > 0 &&
			    (pfd.revents & (POLLHUP | POLLRDHUP | POLLERR))) {
				st = HTTP_WATCH_HUP;
				goto out;
			}
			watch = -1;
		}
	}
	st = HTTP_FAILED;
	while ((msg = curl_multi_info_read(m, &left)) != NULL)
		if (msg->msg == CURLMSG_DONE) {
			curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &res->code);
			st = from_curl(msg->data.result, &t, res->code);
		}
out:
	if (h != NULL && res->code == 0)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &res->code);
	if (m != NULL && h != NULL)
		curl_multi_remove_handle(m, h);
	if (h != NULL)
		curl_easy_cleanup(h);
	if (m != NULL)
		curl_multi_cleanup(m);
	res->status = st;
	return st;
}

void
http_result_free(struct http_result *res)
{
	buf_free(&res->body);
}
