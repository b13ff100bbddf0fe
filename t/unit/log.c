/*
 * lib/log.c: whatever text a message, the request context or the extra
 * fields carry -- CR, LF, quotes, backslashes, braces, control
 * characters, U+2028, bytes that are not UTF-8, a multi-byte character
 * cut by the 1 KiB message limit -- every call writes exactly one line,
 * valid UTF-8, that parses as one JSON object whose fields hold the text
 * (invalid bytes as U+FFFD).
 */
#include <stdlib.h>
#include <unistd.h>

#include <cJSON.h>

#include "lib/buf.h"
#include "lib/jsonw.h"
#include "lib/log.h"
#include "lib/utf8.h"
#include "t/unit/tap.h"

static int pipefd[2], saved_stderr;

/* Starts capturing stderr. */
static void
capture(void)
{
	fflush(stderr);
	if (pipe(pipefd) != 0)
		abort();
	saved_stderr = dup(STDERR_FILENO);
	dup2(pipefd[1], STDERR_FILENO);
	close(pipefd[1]);
}

/* Stops capturing; returns what was written (free it). */
static char *
captured(size_t *len)
{
	struct buf b = BUF_INIT;
	char chunk[4096];
	ssize_t n;

	dup2(saved_stderr, STDERR_FILENO);
	close(saved_stderr);
	while ((n = read(pipefd[0], chunk, sizeof(chunk))) > 0)
		buf_add(&b, chunk, (size_t)n);
	close(pipefd[0]);
	*len = b.len;
	if (b.p == NULL)
		buf_puts(&b, "");
	return b.p;
}

/*
 * The output of one call is a single line: valid UTF-8, one JSON
 * object.  Returns the object (cJSON_Delete it) or NULL.
 */
static cJSON *
one_line(const char *out, size_t len, const char *what, size_t i)
{
	char name[64];
	const char *nl = memchr(out, '\n', len);
	cJSON *o;

	snprintf(name, sizeof(name), "%s %zu", what, i);
	ok(nl != NULL && (size_t)(nl - out) == len - 1, "%s: exactly one "
	    "line", name);
	ok(utf8_valid(out, len), "%s: valid UTF-8", name);
	o = cJSON_ParseWithLength(out, len);
	ok(cJSON_IsObject(o), "%s: one JSON object", name);
	return o;
}

static const char *
field(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

int
main(void)
{
	static const char *const nasty[] = {
		"plain",
		"CR\rLF\nCRLF\r\n",
		"\"},{\"level\":\"crit\",\"msg\":\"forged",
		"back\\slash \\\" \\n \\u0000",
		"\n{\"ts\":\"x\",\"level\":\"crit\"}\n",
		"tab\tbell\a esc\x1b del\x7f nul-free \x01\x1f",
		"line sep \xe2\x80\xa8 para sep \xe2\x80\xa9",
		"not utf-8: \xff\xfe \xc0\xaf \xed\xa0\x80 \xf4\x90\x80\x80 "
		    "cut \xe2\x82",
		"é ü € 😀",
	};
	char big[1500], *out;
	size_t i, len;
	cJSON *o;

	for (i = 0; i < sizeof(nasty) / sizeof(nasty[0]); i++) {
		capture();
		log_info("message: %s", nasty[i]);
		out = captured(&len);
		o = one_line(out, len, "message", i);
		if (utf8_valid(nasty[i], strlen(nasty[i]))) {
			char want[256];

			snprintf(want, sizeof(want), "message: %s", nasty[i]);
			is_str(field(o, "msg"), want, "the message comes back "
			    "as it was (%zu)", i);
		} else
			ok(field(o, "msg") != NULL && strstr(field(o, "msg"),
			    "\xef\xbf\xbd") != NULL, "invalid bytes read as "
			    "U+FFFD (%zu)", i);
		is_str(field(o, "level"), "info", "the level is not forged "
		    "(%zu)", i);
		cJSON_Delete(o);
		free(out);

		/* The same text as the request context and extra fields. */
		capture();
		log_set_context(nasty[i], nasty[i]);
		log_set_user(nasty[i]);
		{
			struct buf b = BUF_INIT;
			struct jw w;

			jw_init(&w, &b);
			w.comma[0] = false;
			jw_kstr(&w, "path", nasty[i]);
			jw_kstr(&w, "error", nasty[i]);
			log_fields(LOG_WARN, nasty[i], b.p);
			buf_free(&b);
		}
		log_clear_context();
		out = captured(&len);
		o = one_line(out, len, "context and fields", i);
		ok(field(o, "request_id") && field(o, "route") &&
		    field(o, "user_id") && field(o, "path") &&
		    field(o, "error") && field(o, "msg"), "every field is a "
		    "string (%zu)", i);
		if (utf8_valid(nasty[i], strlen(nasty[i])))
			is_str(field(o, "path"), nasty[i], "a field comes back "
			    "as it was (%zu)", i);
		is_str(field(o, "level"), "warn", "the level is not forged "
		    "(%zu)", i);
		cJSON_Delete(o);
		free(out);
	}

	/* A message cut at its 1 KiB limit inside a 4-byte character. */
	for (i = 0; i + 4 < sizeof(big); i += 4)
		memcpy(big + i, "😀", 4);
	big[i] = '\0';
	for (len = 0; len < 4; len++) {
		const char *p;

		capture();
		log_info("%.*s%s", (int)len, "xxx", big);
		out = captured(&i);
		o = one_line(out, i, "a long message", len);
		p = field(o, "msg");
		ok(p != NULL && strlen(p) > 1000 && strlen(p) < 1100,
		    "cut near 1 KiB, %zu byte(s) off a character boundary",
		    len);
		cJSON_Delete(o);
		free(out);
	}
	return tap_done();
}
