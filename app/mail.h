/*
 * Queuing mail: a row in email_outbox, written in the caller's
 * transaction, so the mail goes out if and only if the event that
 * caused it is committed.  `miky mailer` renders and sends it.
 */
#ifndef MIKY_APP_MAIL_H
#define MIKY_APP_MAIL_H

struct request;

enum mail_template {
	MAIL_VERIFY,
	MAIL_RESET,
	MAIL_ALREADY_REGISTERED,
	MAIL_PASSWORD_CHANGED,
	MAIL__MAX
};

/*
 * Queues template for user_id at `to`.  `token` (may be NULL) becomes a
 * link under PUBLIC_BASE_URL.  Returns 0, or -1 after replying.
 */
int	mail_queue_or_reply(struct request *, enum mail_template,
	    const char *user_id, const char *to, const char *language,
	    const char *first_name, const char *token);

#endif
