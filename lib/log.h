/*
 * Logging: one JSON object per line on stderr, written with a single
 * write(2) so lines from threads and processes never interleave.  Every
 * line carries the time, level and pid, and the request id and route of
 * the request the calling thread is serving, if any.  Messages are
 * printf formats (always literals); the result is JSON-escaped, so
 * untrusted text cannot forge fields or lines.
 *
 *	log_info	normal events
 *	log_warn	something failed; appends strerror(errno)
 *	log_warnx	something failed; no errno
 *	log_err		an internal error the client sees as 500; with errno
 *	log_errx	the same without errno
 *	log_crit	the process cannot go on
 */
#ifndef MIKY_LOG_H
#define MIKY_LOG_H

#include <stdarg.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERR, LOG_CRIT };

/* Lines below this level are dropped (MIKY_LOG_LEVEL). */
void	log_set_level(enum log_level);
int	log_parse_level(const char *, enum log_level *);
/* The subcommand ("serve", "worker", "mailer"...) written in each line. */
void	log_set_process(const char *);

/*
 * Per-thread request context added to every line; the strings must live
 * until log_clear_context().  user_id may be set later, once known.
 */
void	log_set_context(const char *request_id, const char *route);
void	log_set_user(const char *user_id);
void	log_clear_context(void);

#define LOG_FMT __attribute__((format(printf, 1, 2)))
void	log_debug(const char *, ...) LOG_FMT;
void	log_info(const char *, ...) LOG_FMT;
void	log_warn(const char *, ...) LOG_FMT;
void	log_warnx(const char *, ...) LOG_FMT;
void	log_err(const char *, ...) LOG_FMT;
void	log_errx(const char *, ...) LOG_FMT;
void	log_crit(const char *, ...) LOG_FMT;
#undef LOG_FMT

/*
 * Writes a line with extra fields: `fields` is a JSON object body without
 * braces (`"status":200,"route":"x"`) built with the JSON writer.
 */
void	log_fields(enum log_level, const char *msg, const char *fields);

#endif
