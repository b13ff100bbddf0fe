#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app.h"
#include "config.h"
#include "sql.h"
#include "stripe.h"
#include "lib/http.h"
#include "lib/log.h"
#include "lib/token.h"
#include "lib/xalloc.h"

#define CONNECT_MS	5000
#define PAUSE_MS	250		/* before the 2nd try; doubles */
#define PAUSE_MAX_MS	2000
#define LOG_BODY_MAX	300		/* of Stripe's error, in the log */

bool
stripe_ready_or_reply(struct request *r)
{
	if (conf.stripe_secret_key != NULL)
		return true;
	reply_error(r, 503, "unavailable", "Payments are not available "
	    "right now.", NULL);
	return false;
}

static void
free_tree(void *p)
{
	cJSON_Delete(p);
}

/* True if an attempt's outcome is worth another try with the same key. */
static bool
retryable(const struct http_result *hr)
{
	if (hr->status != HTTP_DONE)
		return true;	/* connect failure, timeout, cut answer */
	return hr->code >= 500 || hr->code == 429 || hr->code == 409;
}

static void
pause_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

const cJSON *
stripe_call_or_reply(struct request *r, const char *method, const char *path,
    const struct buf *form, const char *idempotency_key)
{
	bool post = strcmp(method, "POST") == 0;
	struct curl_slist *h = NULL;
	struct http_call c = { 0 };
	struct http_result hr = { 0 };
	char *auth, *url, *idem = NULL, key[TOKEN_LEN + 1];
	cJSON *out = NULL;
	long pause = PAUSE_MS;
	int attempt;

	sql_assert_none(r, "a Stripe call");
	auth = xasprintf("Authorization: Bearer %s", conf.stripe_secret_key);
	url = xasprintf("%s%s", conf.stripe_api_base, path);
	h = curl_slist_append(h, auth);
	h = curl_slist_append(h, "Accept: application/json");
	if (post) {
		if (idempotency_key == NULL) {
			token_new(key);
			idempotency_key = key;
		}
		idem = xasprintf("Idempotency-Key: %s", idempotency_key);
		h = curl_slist_append(h, idem);
		h = curl_slist_append(h, "Content-Type: "
		    "application/x-www-form-urlencoded");
	}
	c.method = method;
	c.url = url;
	c.headers = h;
	c.body = post ? (form != NULL && form->p != NULL ? form->p : "") :
	    NULL;
	c.body_len = post && form != NULL ? form->len : 0;
	c.total_ms = (int)conf.stripe_timeout_ms;	/* one attempt */
	c.connect_ms = c.total_ms < CONNECT_MS ? c.total_ms : CONNECT_MS;
	c.watch_fd = -1;	/* a payment step finishes even if the client left */
	for (attempt = 1; attempt <= STRIPE_ATTEMPTS; attempt++) {
		if (attempt > 1) {
			if (hr.retry_after_s > 0 && hr.retry_after_s * 1000L >
			    pause)
				pause = hr.retry_after_s * 1000L;
			pause_ms(pause < PAUSE_MAX_MS ? pause : PAUSE_MAX_MS);
			pause *= 2;
			http_result_free(&hr);
		}
		http_perform(&c, &hr);
		if (hr.status == HTTP_DONE && hr.code >= 200 && hr.code < 300)
			break;
		log_warnx("stripe %s %s: %s, HTTP %ld (attempt %d of %d): %.*s",
		    method, path, http_status_name(hr.status), hr.code, attempt,
		    STRIPE_ATTEMPTS, (int)(hr.body.len < LOG_BODY_MAX ?
		    hr.body.len : LOG_BODY_MAX), hr.body.p != NULL ? hr.body.p :
		    "");
		if (!retryable(&hr))
			break;
	}
	if (hr.status == HTTP_DONE && hr.code >= 200 && hr.code < 300) {
		out = cJSON_ParseWithLength(hr.body.p != NULL ? hr.body.p : "",
		    hr.body.len);
		if (out != NULL && !cJSON_IsObject(out)) {
			cJSON_Delete(out);
			out = NULL;
		}
		if (out == NULL)
			log_errx("stripe %s %s: the answer is not a JSON object",
			    method, path);
		else
			arena_cleanup(r->arena, free_tree, out);
	}
	http_result_free(&hr);
	curl_slist_free_all(h);
	free(auth);
	free(url);
	free(idem);
	if (out == NULL)
		reply_error(r, 502, "upstream_error", "The payment provider "
		    "could not be reached; please try again.", NULL);
	return out;
}

const cJSON *
stripe_get(const cJSON *v, const char *path)
{
	const char *p = path, *dot;
	char step[64];
	size_t n;
	char *end;
	long i;

	while (v != NULL && *p != '\0') {
		dot = strchr(p, '.');
		n = dot != NULL ? (size_t)(dot - p) : strlen(p);
		if (n == 0 || n >= sizeof(step))
			return NULL;
		memcpy(step, p, n);
		step[n] = '\0';
		if (cJSON_IsArray(v)) {
			i = strtol(step, &end, 10);
			v = *end == '\0' && i >= 0 ? cJSON_GetArrayItem(v,
			    (int)i) : NULL;
		} else if (cJSON_IsObject(v))
			v = cJSON_GetObjectItemCaseSensitive(v, step);
		else
			v = NULL;
		p += n + (dot != NULL);
	}
	return v;
}

const char *
stripe_str(const cJSON *v, const char *path)
{
	v = stripe_get(v, path);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

long long
stripe_int(const cJSON *v, const char *path, long long def)
{
	v = stripe_get(v, path);
	if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) ||
	    fabs(v->valuedouble) > 9e15)
		return def;
	return (long long)v->valuedouble;
}

int
stripe_bool(const cJSON *v, const char *path)
{
	v = stripe_get(v, path);
	return cJSON_IsBool(v) ? cJSON_IsTrue(v) : -1;
}

const char *
stripe_id(const cJSON *v, const char *path)
{
	const cJSON *f = stripe_get(v, path);

	if (cJSON_IsString(f))
		return f->valuestring;
	return cJSON_IsObject(f) ? stripe_str(f, "id") : NULL;
}
