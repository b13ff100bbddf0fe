#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cJSON.h>

#include "ai.h"
#include "config.h"
#include "lib/buf.h"
#include "lib/clock.h"
#include "lib/http.h"
#include "lib/jsonw.h"
#include "lib/log.h"
#include "lib/sse.h"
#include "lib/xalloc.h"

#define SSE_MAX_EVENT	(1024 * 1024)
#define BACKOFF_MS	250

/* State of one streamed completion. */
struct stream {
	const struct ai_turn	*turn;
	struct ai_result	*res;
	struct sse_reader	 sse;
	bool			 done;		/* [DONE] seen */
	bool			 failed;	/* an error event in the stream */
	bool			 cancelled;	/* on_delta said stop */
};

static void
request_body(const struct ai_turn *t, struct buf *b)
{
	struct jw w;
	size_t i;

	jw_init(&w, b);
	jw_obj(&w);
	jw_kstr(&w, "model", t->model);
	jw_karr(&w, "messages");
	for (i = 0; i < t->nmsgs; i++) {
		jw_obj(&w);
		jw_kstr(&w, "role", t->msgs[i].role);
		jw_kstr(&w, "content", t->msgs[i].content);
		jw_end(&w);
	}
	jw_end(&w);
	/* Always bounded: the answer's length, its cost and its time. */
	jw_kint(&w, "max_tokens", t->max_tokens);
	jw_kbool(&w, "stream", true);
	jw_kobj(&w, "stream_options");
	jw_kbool(&w, "include_usage", true);
	jw_end(&w);
	jw_end(&w);
}

static int
on_event(void *ctx, const char *event, const char *data, size_t len)
{
	struct stream *s = ctx;
	const cJSON *choices, *delta, *content, *usage, *v;
	cJSON *root;

	(void)event;
	if (len == 6 && memcmp(data, "[DONE]", 6) == 0) {
		s->done = true;
		return 0;
	}
	/*
	 * A chunk that is not JSON, or one that reports an error, ends the
	 * answer as a failure; none of its text goes anywhere but a count
	 * in the log.
	 */
	if ((root = cJSON_ParseWithLength(data, len)) == NULL ||
	    cJSON_GetObjectItemCaseSensitive(root, "error") != NULL) {
		log_warnx("model stream sent %s (%zu bytes); answer ended",
		    root == NULL ? "a malformed chunk" : "an error", len);
		s->failed = true;
		cJSON_Delete(root);
		return 1;
	}
	choices = cJSON_GetObjectItemCaseSensitive(root, "choices");
	delta = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(choices, 0),
	    "delta");
	content = cJSON_GetObjectItemCaseSensitive(delta, "content");
	if (cJSON_IsString(content) && content->valuestring[0] != '\0') {
		size_t n = strlen(content->valuestring);

		if (s->turn->on_delta(s->turn->ctx, content->valuestring,
		    n) != 0) {
			s->cancelled = true;
			cJSON_Delete(root);
			return 1;
		}
		s->res->delivered += n;
	}
	usage = cJSON_GetObjectItemCaseSensitive(root, "usage");
	if ((v = cJSON_GetObjectItemCaseSensitive(usage, "prompt_tokens")) &&
	    cJSON_IsNumber(v))
		s->res->prompt_tokens = (long long)v->valuedouble;
	if ((v = cJSON_GetObjectItemCaseSensitive(usage,
	    "completion_tokens")) && cJSON_IsNumber(v))
		s->res->completion_tokens = (long long)v->valuedouble;
	cJSON_Delete(root);
	return 0;
}

static int
on_data(void *ctx, const char *p, size_t n)
{
	struct stream *s = ctx;

	return sse_feed(&s->sse, p, n) != 0;
}

/* Sleeps ms, or less if the watched descriptor hangs up (returns -1). */
static int
pause_ms(int ms, int watch_fd)
{
	struct pollfd pfd = { watch_fd, POLLRDHUP, 0 };
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	if (watch_fd < 0) {
		nanosleep(&ts, NULL);
		return 0;
	}
	if (poll(&pfd, 1, ms) > 0 &&
	    (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR)))
		return -1;
	return 0;
}

/* One attempt; returns the HTTP status or -1 with res->outcome set. */
static long
attempt(const struct ai_turn *t, struct ai_result *res, const char *body,
    size_t body_len, int total_ms, int *retry_after_s)
{
	struct stream s = { .turn = t, .res = res };
	struct http_call c = { 0 };
	struct http_result hr;
	struct curl_slist *h = NULL;
	char *auth = xasprintf("Authorization: Bearer %s", conf.openai_api_key);
	char *url = xasprintf("%s/chat/completions", conf.openai_base_url);
	long code;

	h = curl_slist_append(h, auth);
	h = curl_slist_append(h, "Content-Type: application/json");
	h = curl_slist_append(h, "Accept: text/event-stream");
	sse_init(&s.sse, SSE_MAX_EVENT, on_event, &s);
	c.method = "POST";
	c.url = url;
	c.headers = h;
	c.body = body;
	c.body_len = body_len;
	c.connect_ms = t->connect_ms;
	c.first_byte_ms = t->first_token_ms;
	c.idle_ms = t->idle_ms;
	c.total_ms = total_ms;
	c.on_data = on_data;
	c.ctx = &s;
	c.watch_fd = t->watch_fd;

	http_perform(&c, &hr);
	code = hr.code;
	*retry_after_s = hr.retry_after_s;
	if (s.cancelled || hr.status == HTTP_WATCH_HUP)
		res->outcome = AI_CANCELLED;
	else if (hr.status == HTTP_TIMEOUT_CONNECT ||
	    hr.status == HTTP_TIMEOUT_FIRST_BYTE ||
	    hr.status == HTTP_TIMEOUT_IDLE || hr.status == HTTP_TIMEOUT_TOTAL)
		res->outcome = AI_TIMEOUT;
	else if (hr.status == HTTP_DONE && code == 200 && s.done && !s.failed)
		res->outcome = AI_OK;
	else
		res->outcome = AI_UPSTREAM;
	if (res->outcome != AI_OK && res->outcome != AI_CANCELLED)
		log_warnx("model call: %s, HTTP %ld%s%s",
		    http_status_name(hr.status), code, hr.error[0] ? ": " : "",
		    hr.error);
	http_result_free(&hr);
	sse_free(&s.sse);
	curl_slist_free_all(h);
	free(auth);
	free(url);
	return code;
}

/*
 * The stand-in: a deterministic answer, streamed in pieces with a short
 * pause, that says plainly it is not a real model.
 */
static void
standin(const struct ai_turn *t, struct ai_result *res, int64_t deadline)
{
	const char *last = t->nmsgs > 0 ? t->msgs[t->nmsgs - 1].content : "";
	struct buf b = BUF_INIT;
	size_t i, start = 0, quote = strlen(last) > 80 ? 80 : strlen(last);
	int words = 0;

	/* Cut the quote on a character boundary. */
	while (quote > 0 && quote < strlen(last) &&
	    ((unsigned char)last[quote] & 0xc0) == 0x80)
		quote--;
	buf_puts(&b, "[Local stand-in model: no OPENAI_API_KEY is set, so this "
	    "is not a real AI answer.] You wrote: \"");
	buf_add(&b, last, quote);
	buf_printf(&b, "%s\". Set OPENAI_API_KEY to talk to %s.",
	    quote < strlen(last) ? "..." : "", t->model);
	res->standin = true;
	res->outcome = AI_OK;
	for (i = 0; i <= b.len; i++) {
		if (i < b.len && (b.p[i] != ' ' || ++words % 3 != 0))
			continue;
		if (i > start) {
			if (t->on_delta(t->ctx, b.p + start, i - start) != 0) {
				res->outcome = AI_CANCELLED;
				break;
			}
			res->delivered += i - start;
		}
		start = i;
		if (conf.standin_delay_ms > 0 && i < b.len &&
		    pause_ms((int)conf.standin_delay_ms, t->watch_fd) != 0) {
			res->outcome = AI_CANCELLED;
			break;
		}
		if (i < b.len && clock_ms() >= deadline) {
			res->outcome = AI_TIMEOUT;
			break;
		}
	}
	res->prompt_tokens = 0;
	for (i = 0; i < t->nmsgs; i++)
		res->prompt_tokens += (long long)strlen(t->msgs[i].content) / 4;
	res->completion_tokens = (long long)b.len / 4;
	buf_free(&b);
}

void
ai_run(const struct ai_turn *t, struct ai_result *res)
{
	struct buf body = BUF_INIT;
	int64_t deadline = clock_ms() + t->total_ms;
	int tries, retry_after, wait, left;
	long code;

	memset(res, 0, sizeof(*res));
	if (conf.openai_api_key == NULL) {
		standin(t, res, deadline);
		return;
	}
	request_body(t, &body);
	for (tries = 0;; tries++) {
		left = (int)(deadline - clock_ms());
		if (left <= 0) {
			res->outcome = AI_TIMEOUT;
			break;
		}
		code = attempt(t, res, body.p, body.len, left, &retry_after);
		/* Only a failure before any text may be retried. */
		if (res->outcome == AI_OK || res->outcome == AI_CANCELLED ||
		    res->delivered > 0 || tries >= t->max_retries ||
		    !(code == 429 || code >= 500 || code == 0))
			break;
		if (res->outcome == AI_TIMEOUT && code == 0)
			break;
		wait = retry_after >= 0 ? retry_after * 1000 :
		    BACKOFF_MS << tries;
		if (wait >= (int)(deadline - clock_ms()))
			break;
		log_info("model answered %ld; retrying in %d ms", code, wait);
		if (pause_ms(wait, t->watch_fd) != 0) {
			res->outcome = AI_CANCELLED;
			break;
		}
	}
	buf_free(&body);
}

static size_t
copy_text(const char *json, size_t n, char **text)
{
	cJSON *root = cJSON_ParseWithLength(json, n);
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "text");
	size_t len = 0;

	if (cJSON_IsString(v)) {
		*text = xstrdup(v->valuestring);
		len = strlen(*text) + 1;
	}
	cJSON_Delete(root);
	return len;
}

/* The audio, read by libcurl from the request's body where it lies. */
struct upload {
	const char	*p;
	size_t		 len, at;
};

static size_t
upload_read(char *out, size_t size, size_t n, void *arg)
{
	struct upload *u = arg;
	size_t k = size * n < u->len - u->at ? size * n : u->len - u->at;

	memcpy(out, u->p + u->at, k);
	u->at += k;
	return k;
}

/* A retried or redirected upload starts again from the top. */
static int
upload_seek(void *arg, curl_off_t offset, int origin)
{
	struct upload *u = arg;

	if (origin != SEEK_SET || offset < 0 || (size_t)offset > u->len)
		return CURL_SEEKFUNC_FAIL;
	u->at = (size_t)offset;
	return CURL_SEEKFUNC_OK;
}

enum ai_outcome
ai_transcribe(const struct ai_audio *a, char **text)
{
	struct upload up = { a->data, a->len, 0 };
	struct http_call c = { 0 };
	struct http_result hr;
	struct curl_slist *h = NULL;
	curl_mime *mime;
	curl_mimepart *part;
	char *auth, *url;
	enum ai_outcome out = AI_UPSTREAM;
	CURL *easy;

	*text = NULL;
	if (conf.openai_api_key == NULL) {
		*text = xasprintf("[Local stand-in transcription: no "
		    "OPENAI_API_KEY is set. Received %zu bytes of %s.]",
		    a->len, a->content_type);
		return AI_OK;
	}
	if ((easy = curl_easy_init()) == NULL)
		return AI_UPSTREAM;
	mime = curl_mime_init(easy);
	part = curl_mime_addpart(mime);
	curl_mime_name(part, "file");
	/* No copy of up to 25 MiB: libcurl reads it from the body. */
	curl_mime_data_cb(part, (curl_off_t)a->len, upload_read, upload_seek,
	    NULL, &up);
	curl_mime_filename(part, a->filename);
	curl_mime_type(part, a->content_type);
	part = curl_mime_addpart(mime);
	curl_mime_name(part, "model");
	curl_mime_data(part, "whisper-1", CURL_ZERO_TERMINATED);
	if (a->language != NULL) {
		part = curl_mime_addpart(mime);
		curl_mime_name(part, "language");
		curl_mime_data(part, a->language, CURL_ZERO_TERMINATED);
	}
	auth = xasprintf("Authorization: Bearer %s", conf.openai_api_key);
	url = xasprintf("%s/audio/transcriptions", conf.openai_base_url);
	h = curl_slist_append(h, auth);
	c.method = "POST";
	c.url = url;
	c.headers = h;
	c.mime = mime;
	c.connect_ms = 5000;
	c.total_ms = a->total_ms;
	c.watch_fd = -1;
	http_perform(&c, &hr);
	if (hr.status == HTTP_DONE && hr.code == 200 &&
	    copy_text(hr.body.p, hr.body.len, text) > 0)
		out = AI_OK;
	else if (hr.status >= HTTP_TIMEOUT_CONNECT &&
	    hr.status <= HTTP_TIMEOUT_TOTAL)
		out = AI_TIMEOUT;
	else
		log_warnx("transcription: %s, HTTP %ld",
		    http_status_name(hr.status), hr.code);
	http_result_free(&hr);
	curl_mime_free(mime);
	curl_easy_cleanup(easy);
	curl_slist_free_all(h);
	free(auth);
	free(url);
	return out;
}
