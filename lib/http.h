/*
 * An HTTP client over libcurl for calls to outside APIs (the model
 * provider, Stripe).  One call is one http_perform(): the body streams
 * to a callback as it arrives, and four clocks bound the wait — to
 * connect, to the first byte of the answer, between bytes, and in all —
 * so a stuck peer cannot hold a thread for long.  An optional file
 * descriptor is watched while waiting: if it hangs up (our own client
 * went away), the transfer is cancelled at once.
 */
#ifndef MIKY_HTTP_H
#define MIKY_HTTP_H

#include <stddef.h>

#include <curl/curl.h>

#include "buf.h"

enum http_status {
	HTTP_DONE,		/* a response arrived (any status code) */
	HTTP_CONNECT_FAILED,	/* refused, unresolvable, TLS failure */
	HTTP_TIMEOUT_CONNECT,
	HTTP_TIMEOUT_FIRST_BYTE,
	HTTP_TIMEOUT_IDLE,
	HTTP_TIMEOUT_TOTAL,
	HTTP_CANCELLED,		/* on_data asked to stop */
	HTTP_WATCH_HUP,		/* the watched descriptor hung up */
	HTTP_FAILED,		/* the connection broke mid-answer, etc. */
};

struct http_call {
	const char		*method;	/* "POST", "GET"... */
	const char		*url;
	struct curl_slist	*headers;	/* owned by the caller */
	const char		*body;		/* or NULL */
	size_t			 body_len;
	curl_mime		*mime;		/* multipart body instead */
	int			 connect_ms;
	int			 first_byte_ms;
	int			 idle_ms;
	int			 total_ms;
	/*
	 * Receives the body of a 2xx answer as it comes; non-zero stops the
	 * transfer (HTTP_CANCELLED).  The body of any other status never
	 * reaches it: it is read and dropped, so an error page cannot pass
	 * for content.  NULL: the body, whatever the status, is collected
	 * in `body` below.
	 */
	int			(*on_data)(void *ctx, const char *, size_t);
	void			*ctx;
	int			 watch_fd;	/* -1: none */
};

struct http_result {
	enum http_status	 status;
	long			 code;		/* HTTP status, 0 if none */
	int			 retry_after_s;	/* Retry-After, -1 if absent */
	struct buf		 body;		/* when on_data is NULL */
	char			 error[CURL_ERROR_SIZE];
};

/* Once per process, before threads (curl_global_init). */
int		 http_global_init(void);
/* Performs the call; *res is filled in all cases.  http_result_free() it. */
enum http_status http_perform(const struct http_call *, struct http_result *);
void		 http_result_free(struct http_result *);
const char	*http_status_name(enum http_status);

#endif
