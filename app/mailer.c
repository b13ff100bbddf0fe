/*
 * `miky mailer`: sends the mail queued in email_outbox.
 *
 * One row at a time, each in its own transaction: the row is claimed
 * with FOR UPDATE SKIP LOCKED, sent, and marked sent (or given a later
 * try, or dead) before COMMIT.  Any number of mailers on any hosts
 * share the queue this way; none sends a row another one holds, and a
 * row marked sent is never claimed again.  Delivery is at least once:
 * if the server took a mail and the COMMIT then fails, the row is sent
 * again later.  A failed attempt keeps its Message-ID for the retries,
 * so a mail that arrived despite an error (a timeout after DATA) can be
 * recognised as the same.  A row that can never be sent (no http(s)
 * link, a header that would break the message) is dead at once.
 *
 * The mailer sleeps on LISTEN miky_outbox (the outbox's insert trigger
 * notifies), waking when the next retry is due and every 30 s anyway.
 * Without SMTP_URL each mail becomes a file <id>-<template>.eml in
 * MIKY_MAIL_DIR.  SIGTERM or SIGINT: the mail being sent is finished,
 * then the mailer exits with 0.  The link of a mail is built as it is
 * sent, and the token it carries leaves the row with the sending
 * (mail.c); sent rows are purged by the janitor (janitor.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "app.h"
#include "config.h"
#include "mail.h"
#include "sql.h"
#include "lib/clock.h"
#include "lib/db.h"
#include "lib/http.h"
#include "lib/jsonw.h"
#include "lib/log.h"
#include "lib/mime.h"
#include "lib/num.h"
#include "lib/smtp.h"
#include "lib/token.h"
#include "lib/xalloc.h"

#define POLL_MS		30000		/* sleep at most, without a NOTIFY */
#define BUSY_MS		1000		/* due rows all held by other mailers */
#define RECONNECT_MS	5000
#define RETRY_CAP_MS	(3600 * 1000LL)
#define SMTP_CONNECT_MS	10000L
#define SMTP_TIMEOUT_MS	60000L
#define ERROR_MAX	512

struct mailer {
	struct db	*db;		/* NULL: none at the moment */
	int		 backend_pid;	/* of the connection that listens */
	int		 sigfd;
	bool		 stop;
	char		 from[321];	/* envelope sender, from MAIL_FROM */
};

/* The row being sent; strings point into the claim's result. */
struct outbox {
	const char	*id;
	const char	*to;
	const char	*template;
	long long	 attempt;	/* this one, counted from 1 */
	char		 message_id[MIME_MSGID_MAX];
};

/* True once SIGTERM or SIGINT came (they are read from a signalfd). */
static bool
stopping(struct mailer *m)
{
	struct signalfd_siginfo si;

	while (read(m->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (!m->stop)
			log_info("signal %u: stopping", si.ssi_signo);
		m->stop = true;
	}
	return m->stop;
}

static void
drop_db(struct mailer *m)
{
	db_release(m->db);
	m->db = NULL;
	m->backend_pid = 0;
}

/*
 * Makes sure there is a connection and that it listens: a new one, or
 * one that db_begin() reopened after it died, does not yet.  Returns 0,
 * or -1 if no connection can be had now.
 */
static int
ready(struct mailer *m)
{
	struct db_err err;
	PGresult *res;
	PGconn *conn;

	if (m->db == NULL && (m->db = db_acquire(&err)) == NULL)
		return -1;
	conn = db_conn(m->db);
	if (PQbackendPID(conn) == m->backend_pid)
		return 0;
	res = PQexec(conn, "LISTEN miky_outbox");
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		log_warnx("LISTEN miky_outbox: %s", PQresultErrorMessage(res));
		PQclear(res);
		drop_db(m);
		return -1;
	}
	PQclear(res);
	m->backend_pid = PQbackendPID(conn);
	log_info("listening on miky_outbox");
	return 0;
}

/* Frees the notifications libpq has read; returns how many. */
static int
drain_notifies(PGconn *conn)
{
	PGnotify *n;
	int count = 0;

	while ((n = PQnotifies(conn)) != NULL) {
		PQfreemem(n);
		count++;
	}
	return count;
}

/*
 * Sleeps up to ms, until a notification or a signal.  A notification
 * libpq already read while a statement ran means new work: no sleep.
 */
static void
idle(struct mailer *m, int64_t ms)
{
	struct pollfd pfd[2] = { { m->sigfd, POLLIN, 0 }, { -1, POLLIN, 0 } };
	PGconn *conn = m->db != NULL ? db_conn(m->db) : NULL;

	if (conn != NULL) {
		if (drain_notifies(conn) > 0)
			return;
		pfd[1].fd = PQsocket(conn);
	}
	if (poll(pfd, 2, (int)ms) <= 0 || conn == NULL || pfd[1].revents == 0)
		return;
	if (PQconsumeInput(conn) == 0 || PQstatus(conn) != CONNECTION_OK) {
		log_warnx("database connection lost: %s", PQerrorMessage(conn));
		drop_db(m);
		return;
	}
	drain_notifies(conn);
}

/*
 * Milliseconds to sleep: until the next row is due,
 * at most POLL_MS.  Rows due already are held by other mailers (ours
 * found none to claim): look again in BUSY_MS.
 */
static int64_t
next_wait_ms(struct mailer *m)
{
	int64_t wait = POLL_MS;
	struct db_err err;
	PGresult *res;
	long long due;

	if ((res = db_exec(m->db, STMT_OUTBOX_NEXT_DUE, NO_ARGS, &err)) ==
	    NULL)
		return BUSY_MS;
	if (PQntuples(res) == 1 && !sql_null(res, 0, SQL_ONLY)) {
		due = sql_int(res, 0, SQL_ONLY);
		if (due <= 0)
			wait = BUSY_MS;
		else if (due + 10 < wait)
			wait = due + 10;	/* due by then on any clock */
	}
	PQclear(res);
	return wait;
}

/*
 * base * 2^(attempt - 1), at most an hour, less up to a fifth at
 * random, so that mails failing together do not retry together.
 */
static int64_t
backoff_ms(long long attempt)
{
	int64_t d = conf.mail_retry_base_s * 1000;
	uint32_t r;
	long long i;

	for (i = 1; i < attempt && d < RETRY_CAP_MS; i++)
		d *= 2;
	if (d > RETRY_CAP_MS)
		d = RETRY_CAP_MS;
	token_random(&r, sizeof(r));
	return d - (int64_t)(r % (uint32_t)(d / 5 + 1));
}

/*
 * Builds the message of the claimed row into msg.  Returns 0, or -1
 * with the reason in err: this row can never be sent.
 */
static int
compose(const struct outbox *o, const PGresult *res, struct buf *msg,
    char *err, size_t errlen)
{
	struct mail_content c = { 0 };
	struct buf link = BUF_INIT;
	struct mime_msg mm;
	int t = mail_template_lookup(o->template), rc = -1;

	if (t < 0) {
		snprintf(err, errlen, "unknown template");
		return -1;
	}
	mail_link(&link, t, sql_str(res, 0, OC_TOKEN));
	if (mail_render(&c, t, sql_str(res, 0, OC_LANGUAGE),
	    sql_str(res, 0, OC_FIRST_NAME), link.p) != 0) {
		snprintf(err, errlen, "the link is not http(s)");
		goto out;
	}
	mm = (struct mime_msg){ conf.mail_from, o->to, c.subject,
	    o->message_id, clock_unix(), c.text.p, c.html.p };
	if (mime_build(msg, &mm) != 0) {
		snprintf(err, errlen, "a header would hold a control "
		    "character or invalid UTF-8");
		goto out;
	}
	rc = 0;
out:
	mail_content_free(&c);
	buf_free(&link);
	return rc;
}

/*
 * The dev mailbox: writes the message to a hidden temporary file and
 * renames it into place, so a reader never sees half a mail.
 */
static int
write_eml(const struct outbox *o, const struct buf *msg, char *err,
    size_t errlen)
{
	char *path = xasprintf("%s/%s-%s.eml", conf.mail_dir, o->id,
	    o->template);
	char *tmp = xasprintf("%s/.%s-%s.eml.tmp", conf.mail_dir, o->id,
	    o->template);
	const char *what = "open";
	size_t off;
	ssize_t w;
	int fd, rc = -1;

	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
	    0640)) == -1)
		goto out;
	what = "write";
	for (off = 0; off < msg->len; off += (size_t)w)
		if ((w = write(fd, msg->p + off, msg->len - off)) < 0)
			goto out;
	what = "fsync";
	if (fsync(fd) != 0)
		goto out;
	what = "close";
	w = close(fd);
	fd = -1;
	if (w != 0)
		goto out;
	what = "rename";
	if (rename(tmp, path) != 0)
		goto out;
	rc = 0;
out:
	if (rc != 0) {
		snprintf(err, errlen, "%s %s: %s", what, tmp, strerror(errno));
		if (fd != -1)
			close(fd);
		unlink(tmp);
	}
	free(tmp);
	free(path);
	return rc;
}

static int
deliver(const struct mailer *m, const struct outbox *o,
    const struct buf *msg, char *err, size_t errlen)
{
	struct smtp_msg s = { conf.smtp_url, m->from, o->to, msg->p,
	    msg->len, SMTP_CONNECT_MS, SMTP_TIMEOUT_MS };

	if (conf.smtp_url == NULL)
		return write_eml(o, msg, err, errlen);
	return smtp_send(&s, err, errlen);
}

/* One line per attempt: the row, never its address, link or token. */
static void
log_attempt(const struct outbox *o, const char *status, const char *err,
    int64_t retry_ms)
{
	struct buf b = BUF_INIT;
	struct jw w;
	bool sent = strcmp(status, "sent") == 0;

	jw_init(&w, &b);
	jw_kraw(&w, "outbox_id", o->id);
	jw_kstr(&w, "template", o->template);
	jw_kint(&w, "attempt", o->attempt);
	jw_kstr(&w, "transport", conf.smtp_url != NULL ? "smtp" : "file");
	jw_kstr(&w, "message_id", o->message_id);
	jw_kstr(&w, "status", status);
	if (!sent)
		jw_kstr(&w, "error", err);
	if (strcmp(status, "pending") == 0)
		jw_kint(&w, "retry_in_ms", retry_ms);
	log_fields(sent ? LOG_INFO : LOG_WARN, sent ? "mail sent" :
	    "mail failed", b.p);
	buf_free(&b);
}

/*
 * Claims one due row and sends it, in one transaction.  Returns 1 if a
 * row was handled (sent or not), 0 if none is due, -1 if the database
 * failed; the caller then gives the connection up.
 */
static int
send_one(struct mailer *m)
{
	char err[ERROR_MAX] = "", limit[24], delay[24];
	struct outbox o;
	struct db_err dberr;
	struct buf msg = BUF_INIT;
	PGresult *res = NULL, *upd = NULL;
	int64_t retry_ms = 0;
	bool sent = false, permanent = false;
	int rc = -1;

	if (db_begin(m->db, &dberr) != 0 ||
	    (res = db_exec(m->db, STMT_OUTBOX_CLAIM, NO_ARGS, &dberr)) ==
	    NULL)
		goto out;
	if (PQntuples(res) == 0) {
		db_rollback(m->db);
		rc = 0;
		goto out;
	}
	o.id = sql_str(res, 0, OC_ID);
	o.to = sql_str(res, 0, OC_TO);
	o.template = sql_str(res, 0, OC_TEMPLATE);
	o.attempt = sql_int(res, 0, OC_ATTEMPTS) + 1;
	if (sql_null(res, 0, OC_MESSAGE_ID))
		mime_message_id(conf.mail_from, o.message_id);
	else
		snprintf(o.message_id, sizeof(o.message_id), "%s",
		    sql_str(res, 0, OC_MESSAGE_ID));

	if (compose(&o, res, &msg, err, sizeof(err)) != 0)
		permanent = true;
	else
		sent = deliver(m, &o, &msg, err, sizeof(err)) == 0;

	if (sent)
		upd = db_exec(m->db, STMT_OUTBOX_SENT, ARGS(o.id,
		    o.message_id), &dberr);
	else {
		retry_ms = backoff_ms(o.attempt);
		snprintf(limit, sizeof(limit), "%lld", permanent ? 0 :
		    conf.mail_max_attempts);
		snprintf(delay, sizeof(delay), "%lld", (long long)retry_ms);
		upd = db_exec(m->db, STMT_OUTBOX_FAILED, ARGS(o.id, err, limit,
		    delay, o.message_id), &dberr);
	}
	if (upd == NULL || db_commit(m->db, &dberr) != 0)
		goto out;
	log_attempt(&o, sent ? "sent" : sql_str(upd, 0, SQL_ONLY), err,
	    retry_ms);
	rc = 1;
out:
	if (rc < 0 && sent)
		log_errx("outbox %s: sent, but not marked sent: it will be "
		    "sent again", o.id);
	buf_free(&msg);
	PQclear(upd);
	PQclear(res);
	return rc;
}

/* Signals through a signalfd, the sender address, the dev mailbox. */
static int
setup(struct mailer *m)
{
	sigset_t set;

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	if (sigprocmask(SIG_BLOCK, &set, NULL) != 0 ||
	    (m->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) == -1) {
		log_warn("signalfd");
		return -1;
	}
	if (mime_addr_spec(conf.mail_from, m->from, sizeof(m->from)) != 0 ||
	    strchr(m->from, '@') == NULL) {
		log_errx("MAIL_FROM: no address in it (Name <addr@domain>)");
		return -1;
	}
	if (conf.smtp_url == NULL && mkdir(conf.mail_dir, 0700) != 0 &&
	    errno != EEXIST) {
		log_warn("MIKY_MAIL_DIR: mkdir %s", conf.mail_dir);
		return -1;
	}
	if (http_global_init() != 0) {
		log_errx("curl_global_init failed");
		return -1;
	}
	return 0;
}

int
mailer_main(void)
{
	struct mailer m = { .sigfd = -1 };
	struct db_config dc = {
		.conninfo = conf.database_url,
		.size = 1,
		.statement_timeout_ms = (int)conf.statement_timeout_ms,
		.acquire_timeout_ms = 5000,
		.connect_timeout_ms = (int)conf.db_connect_timeout_ms,
		.stmts = sql_stmts,
		.nstmts = STMT__MAX,
		.application_name = "miky-mailer",
	};
	int n, rc = 1;

	log_set_process("mailer");
	if (setup(&m) != 0 || db_pool_init(&dc) != 0)
		goto out;
	log_info("mailer started, sending %s", conf.smtp_url != NULL ?
	    "over SMTP" : "to files in MIKY_MAIL_DIR");
	while (!stopping(&m)) {
		if (ready(&m) != 0) {
			idle(&m, RECONNECT_MS);
			continue;
		}
		n = 0;
		while (!stopping(&m) && (n = send_one(&m)) > 0)
			;
		if (n < 0) {
			drop_db(&m);
			idle(&m, BUSY_MS);
		} else if (!m.stop && ready(&m) == 0)
			idle(&m, next_wait_ms(&m));
	}
	log_info("mailer stopped");
	rc = 0;
out:
	if (m.db != NULL)
		drop_db(&m);
	db_pool_free();
	if (m.sigfd != -1)
		close(m.sigfd);
	return rc;
}
