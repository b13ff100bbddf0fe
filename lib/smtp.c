#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "smtp.h"
#include "xalloc.h"

/* What is left of the message for curl to read. */
struct source {
	const char	*p;
	size_t		 left;
};

static size_t
on_read(char *dst, size_t size, size_t n, void *arg)
{
	struct source *src = arg;
	size_t len = size * n;

	if (len > src->left)
		len = src->left;
	memcpy(dst, src->p, len);
	src->p += len;
	src->left -= len;
	return len;
}

bool
smtp_host_is_loopback(const char *url)
{
	struct in6_addr a6;
	struct in_addr a4;
	char *host = NULL, *h, *pct;
	bool loop = false;
	size_t n;
	CURLU *u;

	if ((u = curl_url()) == NULL)
		xoom();
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
		goto out;
	h = host;
	n = strlen(h);
	/* An IPv6 literal comes in brackets, perhaps with a zone. */
	if (n >= 2 && h[0] == '[' && h[n - 1] == ']') {
		h[n - 1] = '\0';
		h++;
		if ((pct = strchr(h, '%')) != NULL)
			*pct = '\0';
		loop = inet_pton(AF_INET6, h, &a6) == 1 &&
		    (IN6_IS_ADDR_LOOPBACK(&a6) || (IN6_IS_ADDR_V4MAPPED(&a6) &&
		    a6.s6_addr[12] == 127));
	} else if (inet_pton(AF_INET, h, &a4) == 1)
		loop = (ntohl(a4.s_addr) >> 24) == 127;
	else
		loop = strcasecmp(h, "localhost") == 0 ||
		    strcasecmp(h, "localhost.") == 0;
out:
	curl_free(host);
	curl_url_cleanup(u);
	return loop;
}

int
smtp_send(const struct smtp_msg *m, char *err, size_t errlen)
{
	char detail[CURL_ERROR_SIZE] = "";
	struct source src = { m->data, m->len };
	struct curl_slist *rcpt;
	CURLcode rc;
	CURL *h;
	long code = 0;

	if ((h = curl_easy_init()) == NULL) {
		snprintf(err, errlen, "curl setup failed");
		return -1;
	}
	/* curl puts a bare address in angle brackets itself. */
	if ((rcpt = curl_slist_append(NULL, m->rcpt)) == NULL)
		xoom();
	curl_easy_setopt(h, CURLOPT_URL, m->url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_MAIL_FROM, m->from);
	curl_easy_setopt(h, CURLOPT_MAIL_RCPT, rcpt);
	curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
	curl_easy_setopt(h, CURLOPT_READDATA, &src);
	curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)m->len);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, detail);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, m->connect_timeout_ms);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, m->timeout_ms);
	/* smtps:// is TLS from the first byte; smtp:// must go to TLS. */
	curl_easy_setopt(h, CURLOPT_USE_SSL, smtp_host_is_loopback(m->url) ?
	    (long)CURLUSESSL_TRY : (long)CURLUSESSL_ALL);
	rc = curl_easy_perform(h);
	if (rc != CURLE_OK) {
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
		/* The detail, when there is one, says more than the code. */
		snprintf(err, errlen, "%s", *detail != '\0' ? detail :
		    curl_easy_strerror(rc));
		if (code != 0) {
			size_t n = strlen(err);

			snprintf(err + n, errlen - n, " (SMTP %ld)", code);
		}
	}
	curl_slist_free_all(rcpt);
	curl_easy_cleanup(h);
	return rc == CURLE_OK ? 0 : -1;
}
