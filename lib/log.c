#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "clock.h"
#include "log.h"
#include "utf8.h"

static enum log_level	 min_level = LOG_INFO;
static const char	*process = "miky";
static pid_t		 pid;		/* 0: not known yet */

/*
 * Each thread keeps its line buffers and the text of the current second,
 * so that a line costs no allocation and no time formatting, only its
 * one write(2).  The buffers are freed when the thread ends.
 */
struct tls {
	struct buf	 line, fixed;
	time_t		 sec;
	char		 ts[RFC3339_LEN];
};
static pthread_key_t	 tls_key;
static pthread_once_t	 tls_once = PTHREAD_ONCE_INIT;

static _Thread_local const char	*ctx_request_id;
static _Thread_local const char	*ctx_route;
static _Thread_local const char	*ctx_user;

static const char *const level_names[] = {
	"debug", "info", "warn", "error", "crit"
};

void
log_set_level(enum log_level l)
{
	min_level = l;
}

int
log_parse_level(const char *s, enum log_level *out)
{
	size_t i;

	for (i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
		if (strcmp(s, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	return -1;
}

void
log_set_process(const char *name)
{
	process = name;
	pid = getpid();
}

static void
tls_free(void *p)
{
	struct tls *t = p;

	buf_free(&t->line);
	buf_free(&t->fixed);
	free(t);
}

static void
tls_init(void)
{
	pthread_key_create(&tls_key, tls_free);
}

static struct tls *
tls(void)
{
	struct tls *t;

	pthread_once(&tls_once, tls_init);
	if ((t = pthread_getspecific(tls_key)) == NULL) {
		if ((t = calloc(1, sizeof(*t))) == NULL)
			return NULL;
		t->sec = -1;
		pthread_setspecific(tls_key, t);
	}
	return t;
}

/* The time now in RFC 3339 with milliseconds, the second's part cached. */
static void
now_rfc3339(struct tls *t, char out[RFC3339_LEN])
{
	struct timespec ts;
	int ms;

	clock_gettime(CLOCK_REALTIME, &ts);
	if (ts.tv_sec != t->sec) {
		clock_rfc3339(t->ts, (int64_t)ts.tv_sec * 1000);
		t->sec = ts.tv_sec;
	}
	memcpy(out, t->ts, RFC3339_LEN);
	ms = (int)(ts.tv_nsec / 1000000);
	/* "....:SS.mmmZ": the milliseconds sit before the Z. */
	out[RFC3339_LEN - 5] = (char)('0' + ms / 100);
	out[RFC3339_LEN - 4] = (char)('0' + ms / 10 % 10);
	out[RFC3339_LEN - 3] = (char)('0' + ms % 10);
}

void
log_set_context(const char *request_id, const char *route)
{
	ctx_request_id = request_id;
	ctx_route = route;
	ctx_user = NULL;
}

void
log_set_user(const char *user_id)
{
	ctx_user = user_id;
}

void
log_clear_context(void)
{
	ctx_request_id = ctx_route = ctx_user = NULL;
}

/*
 * Copies a JSON line, each byte that does not start a valid UTF-8
 * sequence written as U+FFFD.  Escaping already kept quotes, control
 * characters and newlines out of the values; this keeps the line valid
 * UTF-8 too, whatever bytes a client put in a path or a cut of a long
 * message fell inside a character, so a strict JSON parser reads every
 * line.  Invalid bytes can only sit inside string values: the line's
 * own syntax is ASCII.
 */
static void
valid_utf8(struct buf *out, const struct buf *in)
{
	size_t i = 0, len;

	while (i < in->len) {
		if ((len = utf8_seq(in->p + i, in->len - i)) > 0) {
			buf_add(out, in->p + i, len);
			i += len;
		} else {
			buf_puts(out, "\xef\xbf\xbd");
			i++;
		}
	}
}

/* Builds the whole line and writes it at once. */
static void
emit(enum log_level level, const char *msg, const char *fields)
{
	struct tls *t = tls(), fallback = { BUF_INIT, BUF_INIT, -1, "" };
	char ts[RFC3339_LEN];
	struct buf *b;

	if (t == NULL)
		t = &fallback;
	b = &t->line;
	buf_reset(b);
	if (pid == 0)
		pid = getpid();
	now_rfc3339(t, ts);
	buf_puts(b, "{\"ts\":\"");
	buf_puts(b, ts);
	buf_puts(b, "\",\"level\":\"");
	buf_puts(b, level_names[level]);
	buf_puts(b, "\",\"proc\":\"");
	buf_puts(b, process);
	buf_printf(b, "\",\"pid\":%d,\"msg\":", (int)pid);
	buf_json_str(b, msg);
	if (ctx_request_id != NULL) {
		buf_puts(b, ",\"request_id\":");
		buf_json_str(b, ctx_request_id);
	}
	if (ctx_route != NULL) {
		buf_puts(b, ",\"route\":");
		buf_json_str(b, ctx_route);
	}
	if (ctx_user != NULL) {
		buf_puts(b, ",\"user_id\":");
		buf_json_str(b, ctx_user);
	}
	if (fields != NULL && *fields != '\0') {
		buf_putc(b, ',');
		buf_puts(b, fields);
	}
	buf_puts(b, "}\n");
	if (utf8_valid(b->p, b->len))
		(void)!write(STDERR_FILENO, b->p, b->len);
	else {
		buf_reset(&t->fixed);
		valid_utf8(&t->fixed, b);
		(void)!write(STDERR_FILENO, t->fixed.p, t->fixed.len);
	}
	if (t == &fallback) {
		buf_free(&fallback.line);
		buf_free(&fallback.fixed);
	}
}

static void
vlog(enum log_level level, int with_errno, const char *fmt, va_list ap)
{
	int saved = errno;
	char msg[1024];
	size_t n;

	if (level < min_level)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (with_errno) {
		n = strlen(msg);
		snprintf(msg + n, sizeof(msg) - n, ": %s", strerror(saved));
	}
	emit(level, msg, NULL);
	errno = saved;
}

#define LOG_FN(name, level, with_errno)			\
void							\
name(const char *fmt, ...)				\
{							\
	va_list ap;					\
							\
	va_start(ap, fmt);				\
	vlog(level, with_errno, fmt, ap);		\
	va_end(ap);					\
}

LOG_FN(log_debug, LOG_DEBUG, 0)
LOG_FN(log_info, LOG_INFO, 0)
LOG_FN(log_warn, LOG_WARN, 1)
LOG_FN(log_warnx, LOG_WARN, 0)
LOG_FN(log_err, LOG_ERR, 1)
LOG_FN(log_errx, LOG_ERR, 0)
LOG_FN(log_crit, LOG_CRIT, 0)

void
log_fields(enum log_level level, const char *msg, const char *fields)
{
	if (level >= min_level)
		emit(level, msg, fields);
}
