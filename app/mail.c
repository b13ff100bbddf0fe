#include <string.h>

#include "app.h"
#include "config.h"
#include "mail.h"
#include "sql.h"
#include "lib/jsonw.h"

static const struct {
	const char	*name;		/* email_outbox.template */
	const char	*path;		/* page the link opens, or NULL */
} templates[MAIL__MAX] = {
	[MAIL_VERIFY] = { "verify", "/verify-email" },
	[MAIL_RESET] = { "reset", "/reset-password" },
	[MAIL_ALREADY_REGISTERED] = { "already_registered", "/signin" },
	[MAIL_PASSWORD_CHANGED] = { "password_changed", "/forgot-password" },
	[MAIL_REFERRAL_CREDITS] = { "referral_credits", "/invite" },
	[MAIL_REFERRAL_CASH] = { "referral_cash", "/invite" },
	[MAIL_PAYMENT_FAILED] = { "payment_failed", "/plans" },
};

/*
 * The payload keeps the token only until the mailer sends the mail
 * (STMT_OUTBOX_SENT drops it) and no link at all: the mailer builds it
 * then, with the token in the fragment, which no server log, proxy or
 * Referer header sees.  A verification mail may reach anyone, so it
 * carries no text the signer-up chose: no name.
 */
int
mail_queue(struct request *r, enum mail_template t, const char *user_id,
    const char *to, const char *language, const char *first_name,
    const char *token, struct db_err *err)
{
	struct buf payload = BUF_INIT;
	struct jw w;
	PGresult *res;

	jw_init(&w, &payload);
	jw_obj(&w);
	if (t != MAIL_VERIFY)
		jw_kstr(&w, "first_name", first_name);
	if (token != NULL)
		jw_kstr(&w, "token", token);
	jw_end(&w);
	res = sql_run(r, STMT_OUTBOX_INSERT, ARGS(user_id, to,
	    templates[t].name, language, payload.p), err);
	buf_free(&payload);
	return res != NULL ? 0 : -1;
}

int
mail_queue_or_reply(struct request *r, enum mail_template t,
    const char *user_id, const char *to, const char *language,
    const char *first_name, const char *token)
{
	struct db_err err;

	if (mail_queue(r, t, user_id, to, language, first_name, token,
	    &err) == 0)
		return 0;
	reply_db_error(r, &err);
	return -1;
}

void
mail_link(struct buf *b, enum mail_template t, const char *token)
{
	buf_printf(b, "%s%s", conf.public_base_url, templates[t].path);
	if (token != NULL)
		buf_printf(b, "#token=%s", token);
}

const char *
mail_template_name(enum mail_template t)
{
	return templates[t].name;
}

int
mail_template_lookup(const char *name)
{
	int t;

	for (t = 0; t < MAIL__MAX; t++)
		if (strcmp(templates[t].name, name) == 0)
			return t;
	return -1;
}
