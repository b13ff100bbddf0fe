/*
 * Queuing mail: a row in email_outbox, written in the caller's
 * transaction, so the mail goes out if and only if the event that
 * caused it is committed.  `miky mailer` renders and sends it.
 */
#ifndef MIKY_APP_MAIL_H
#define MIKY_APP_MAIL_H

#include "lib/buf.h"
#include "lib/db.h"

struct request;

enum mail_template {
	MAIL_VERIFY,
	MAIL_RESET,
	MAIL_ALREADY_REGISTERED,
	MAIL_PASSWORD_CHANGED,
	MAIL_REFERRAL_CREDITS,	/* a referral activated: credits earned */
	MAIL_REFERRAL_CASH,	/* a referral qualified: cash earned */
	MAIL_PAYMENT_FAILED,	/* a subscription payment failed */
	MAIL__MAX
};

/*
 * Queues template for user_id at `to`.  `token` (may be NULL) becomes a
 * link under PUBLIC_BASE_URL.  Returns 0, or -1 after replying.
 */
int	mail_queue_or_reply(struct request *, enum mail_template,
	    const char *user_id, const char *to, const char *language,
	    const char *first_name, const char *token);
/* The same without a reply: 0, or -1 with *err set. */
int	mail_queue(struct request *, enum mail_template, const char *user_id,
	    const char *to, const char *language, const char *first_name,
	    const char *token, struct db_err *);

/* Appends the link of a mail: its page, and the token if it has one. */
void	mail_link(struct buf *, enum mail_template, const char *token);

/* A template's name in email_outbox.template, and back (-1: unknown). */
const char	*mail_template_name(enum mail_template);
int		 mail_template_lookup(const char *name);

/* mail_templates.c: what a mail says, in the reader's language. */
struct mail_content {
	const char	*subject;	/* UTF-8, static */
	struct buf	 text;		/* text/plain, LF line ends */
	struct buf	 html;		/* text/html */
};

/*
 * Renders template t for first_name (may be empty) with link, in the
 * language whose code starts with the first two letters of `language`,
 * else English.  Every substituted value is HTML-escaped in the HTML
 * part.  Returns 0, or -1 if link is not an http(s) URL.  The caller
 * frees *c with mail_content_free() in both cases.
 */
int	mail_render(struct mail_content *c, enum mail_template t,
	    const char *language, const char *first_name, const char *link);
void	mail_content_free(struct mail_content *);

#endif
