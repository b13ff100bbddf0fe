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
};

int
mail_queue_or_reply(struct request *r, enum mail_template t,
    const char *user_id, const char *to, const char *language,
    const char *first_name, const char *token)
{
	struct buf payload = BUF_INIT, link = BUF_INIT;
	struct jw w;
	const char *params[5];
	PGresult *res;

	buf_printf(&link, "%s%s", conf.public_base_url, templates[t].path);
	if (token != NULL)
		buf_printf(&link, "?token=%s", token);
	jw_init(&w, &payload);
	jw_obj(&w);
	jw_kstr(&w, "first_name", first_name);
	jw_kstr(&w, "link", link.p);
	jw_end(&w);
	params[0] = user_id;
	params[1] = to;
	params[2] = templates[t].name;
	params[3] = language;
	params[4] = payload.p;
	res = sql_run_or_reply(r, STMT_OUTBOX_INSERT, params);
	buf_free(&payload);
	buf_free(&link);
	return res != NULL ? 0 : -1;
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
