#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "clock.h"
#include "log.h"
#include "utf8.h"

static enum log_level	 min_level = LOG_INFO;
static const char	*process = "miky";

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
	char ts[RFC3339_LEN];
	struct buf b = BUF_INIT, line = BUF_INIT;

	clock_rfc3339_now(ts);
	buf_printf(&b, "{\"ts\":\"%s\",\"level\":\"%s\",\"proc\":\"%s\","
	    "\"pid\":%d,\"msg\":", ts, level_names[level], process,
	    (int)getpid());
	buf_json_str(&b, msg);
	if (ctx_request_id != NULL) {
		buf_puts(&b, ",\"request_id\":");
		buf_json_str(&b, ctx_request_id);
	}
	if (ctx_route != NULL) {
		buf_puts(&b, ",\"route\":");
		buf_json_str(&b, ctx_route);
	}
	if (ctx_user != NULL) {
		buf_puts(&b, ",\"user_id\":");
		buf_json_str(&b, ctx_user);
	}
	if (fields != NULL && *fields != '\0') {
		buf_putc(&b, ',');
		buf_puts(&b, fields);
	}
	buf_puts(&b, "}\n");
	if (utf8_valid(b.p, b.len))
		(void)!write(STDERR_FILENO, b.p, b.len);
	else {
		valid_utf8(&line, &b);
		(void)!write(STDERR_FILENO, line.p, line.len);
	}
	buf_free(&b);
	buf_free(&line);
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
