/*
 * /api/admin/settings: the business settings of settings.c's table.
 *
 * The body of a PUT is checked against that table before anything is
 * written: a key the table does not have is refused by the route's
 * field spec (made from the table), and each value by its own check,
 * the first failing key in the table's order named.  Then every value
 * is written in one transaction with an audit row per change (old and
 * new value); at commit the trigger on admin_settings notifies every
 * worker of every host, which reload at once (settings.c).
 */
#include <stdlib.h>

#include "admin.h"
#include "app.h"
#include "session.h"
#include "settings.h"
#include "sql.h"
#include "lib/json.h"
#include "lib/xalloc.h"

/* The body's values land in the request's r->in[], one per setting. */
_Static_assert(SET__MAX <= JSON_MAX_FIELDS, "more settings than r->in holds");

struct jfield admin_settings_in[SET__MAX + 1];

void
admin_settings_init(void)
{
	int i;

	for (i = 0; i < SET__MAX; i++)
		admin_settings_in[i] = (struct jfield){ setting_defs[i].key,
		    JF_ANY, 0, 0, 0, NULL };
}

static void
reply_settings(struct request *r, const PGresult *rows)
{
	struct buf b = BUF_INIT;
	struct jw w;

	jw_init(&w, &b);
	jw_obj(&w);
	jw_key(&w, "settings");
	settings_write(&w, rows);
	jw_end(&w);
	reply_json(r, 200, &b);
	buf_free(&b);
}

void
admin_settings_get(struct request *r)
{
	PGresult *rows;

	if ((rows = sql_run_or_reply(r, STMT_SETTINGS_ALL, NO_ARGS)) != NULL)
		reply_settings(r, rows);
}

/* The first given value that fails its check: 0, or -1 after a 400. */
static int
check_all_or_reply(struct request *r)
{
	const struct setting_def *d;
	const char *why;
	int i;

	for (i = 0; i < SET__MAX; i++) {
		if (r->in[i].node == NULL ||
		    (why = settings_check(i, r->in[i].node)) == NULL)
			continue;
		d = &setting_defs[i];
		reply_error(r, 400, "invalid_input", d->type == SETTING_INT ?
		    arena_printf(r->arena, "Setting '%s' must be an integer "
		    "from %lld to %lld.", d->key, d->min, d->max) :
		    arena_printf(r->arena, "Setting '%s' is not valid: %s.",
		    d->key, why), d->key);
		return -1;
	}
	return 0;
}

/* The value as JSON text, in the request's arena. */
static const char *
json_text(struct request *r, const cJSON *v)
{
	char *p = cJSON_PrintUnformatted(v), *copy;

	if (p == NULL)
		xoom();
	copy = arena_strdup(r->arena, p);
	free(p);
	return copy;
}

void
admin_settings_put(struct request *r)
{
	bool changed[SET__MAX] = { 0 };
	PGresult *res, *rows;
	int i;

	if (check_all_or_reply(r) != 0 || sql_begin_or_reply(r) != 0)
		return;
	for (i = 0; i < SET__MAX; i++) {
		if (r->in[i].node == NULL)
			continue;
		if ((res = sql_run_or_reply(r, STMT_SETTING_PUT, ARGS(
		    setting_defs[i].key, json_text(r, r->in[i].node),
		    app_req(r)->user->id, r->remote_addr))) == NULL)
			return;
		changed[i] = sql_rows(res) > 0;
	}
	if ((rows = sql_run_or_reply(r, STMT_SETTINGS_ALL, NO_ARGS)) == NULL ||
	    sql_commit_or_reply(r) != 0)
		return;
	for (i = 0; i < SET__MAX; i++)
		if (changed[i])
			admin_event("settings.update", setting_defs[i].key);
	reply_settings(r, rows);
}
