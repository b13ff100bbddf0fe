/*
 * /api/conversations and /api/personas.  Every statement filters by the
 * caller's id, so another user's conversation is simply not found (404).
 */
#include <stdio.h>
#include <string.h>

#include "app.h"
#include "list.h"
#include "render.h"
#include "session.h"
#include "settings.h"
#include "sql.h"
#include "lib/jsonw.h"
#include "lib/num.h"

#define TITLE_MAX	200
/* Page sizes: conversations, and a conversation's messages. */
#define LIST_DEF	20
#define LIST_MAX	100
#define MESSAGES_DEF	50
#define MESSAGES_MAX	200

enum { CC_PERSONA, CC_TITLE };
const struct jfield conv_create_in[] = {
	[CC_PERSONA] = { "persona", JF_WORD, JF_REQUIRED, 0, 0, persona_ids },
	[CC_TITLE] = { "title", JF_STRING, JF_TRIM | JF_LINE, 1, TITLE_MAX },
	{ NULL }
};

enum { CU_TITLE, CU_PERSONA };
const struct jfield conv_update_in[] = {
	[CU_TITLE] = { "title", JF_STRING, JF_TRIM | JF_LINE, 1, TITLE_MAX },
	[CU_PERSONA] = { "persona", JF_WORD, 0, 0, 0, persona_ids },
	{ NULL }
};

/* q as an ILIKE pattern matching it anywhere, wildcards escaped. */
static const char *
like_pattern(struct request *r, const char *q)
{
	struct buf b = BUF_INIT;
	const char *p;
	char *out;

	buf_putc(&b, '%');
	for (p = q; *p != '\0'; p++) {
		if (*p == '%' || *p == '_' || *p == '\\')
			buf_putc(&b, '\\');
		buf_putc(&b, *p);
	}
	buf_putc(&b, '%');
	out = arena_strndup(r->arena, b.p, b.len);
	buf_free(&b);
	return out;
}

/* {"conversation": ...} from CONV_COLS in row 0. */
static void
reply_conversation(struct request *r, int status, const PGresult *res)
{
	struct buf b = BUF_INIT;
	struct jw w;

	jw_init(&w, &b);
	jw_obj(&w);
	jw_key(&w, "conversation");
	render_conversation(&w, res, 0, 0);
	jw_end(&w);
	reply_json(r, status, &b);
	buf_free(&b);
}

/*
 * The limit of a first page (no cursor) as the handler will read it, or
 * 0 when the handler will answer an error or read another page (then
 * nothing is prefetched).
 */
static int
first_page_limit(struct request *r, const char *cursor_param, int def,
    int max)
{
	const char *limit = req_query(r, "limit");
	const char *cursor = req_query(r, cursor_param);
	long long n = def;

	if (cursor != NULL && *cursor != '\0')
		return 0;
	if (limit != NULL && num_parse(limit, 1, max, &n) != 0)
		return 0;
	return (int)n;
}

void
conv_list_prefetch(struct request *r, const char *uid)
{
	const char *q = req_query(r, "q");
	char limit[16];
	int n = first_page_limit(r, "cursor", LIST_DEF, LIST_MAX);

	if (n == 0 || (q != NULL && *q != '\0'))
		return;
	snprintf(limit, sizeof(limit), "%d", n + 1);
	sql_prefetch(r, STMT_CONV_LIST, ARGS(uid, NULL, NULL, NULL, limit));
}

void
conv_list(struct request *r)
{
	const char *q = req_query(r, "q"), *us, *id;
	struct list_page lp;
	struct buf b = BUF_INIT;
	struct jw w;
	PGresult *res;
	char limit[16];
	int i, n;

	if (list_page_or_reply(r, LIST_DEF, LIST_MAX, "cursor", &lp) != 0 ||
	    list_us_id_cursor_or_reply(r, &lp, &us, &id) != 0)
		return;
	if (q != NULL && strlen(q) > TITLE_MAX) {
		reply_error(r, 400, "invalid_input", "q may be at most 200 "
		    "bytes long.", "q");
		return;
	}
	snprintf(limit, sizeof(limit), "%d", lp.limit + 1);
	if ((res = sql_run_or_reply(r, STMT_CONV_LIST, ARGS(
	    app_req(r)->user->id, q != NULL && *q != '\0' ?
	    like_pattern(r, q) : NULL, us, id, limit))) == NULL)
		return;
	n = sql_rows(res);
	jw_init(&w, &b);
	jw_obj(&w);
	jw_karr(&w, "conversations");
	for (i = 0; i < n && i < lp.limit; i++)
		render_conversation(&w, res, i, CL_CONV);
	jw_end(&w);
	list_next_cursor(r, &w, n > lp.limit ? list_us_id_key(r, res,
	    lp.limit - 1, CL_US, CL_ID) : NULL);
	jw_end(&w);
	reply_json(r, 200, &b);
	buf_free(&b);
}

void
conv_create(struct request *r)
{
	PGresult *res;

	if ((res = sql_row_or_reply(r, STMT_CONV_CREATE, ARGS(
	    app_req(r)->user->id, r->in[CC_TITLE].present ?
	    r->in[CC_TITLE].s : "New conversation", r->in[CC_PERSONA].s))) !=
	    NULL)
		reply_conversation(r, 201, res);
}

void
conv_get_prefetch(struct request *r, const char *uid)
{
	const char *cid = r->params[0];
	char limit[16];
	int n = first_page_limit(r, "before", MESSAGES_DEF, MESSAGES_MAX);

	if (n == 0)
		return;
	snprintf(limit, sizeof(limit), "%d", n + 1);
	sql_prefetch(r, STMT_CONV_GET, ARGS(cid, uid));
	sql_prefetch(r, STMT_CONV_MESSAGES, ARGS(cid, uid, NULL, NULL, limit));
}

void
conv_get(struct request *r)
{
	const char *cid = r->params[0], *uid = app_req(r)->user->id, *us, *id;
	struct list_page lp;
	struct buf b = BUF_INIT;
	struct jw w;
	PGresult *conv, *res;
	char limit[16];
	int i, n;
	bool more;

	/* `before` is the cursor of this list, `limit` up to 200. */
	if (list_page_or_reply(r, MESSAGES_DEF, MESSAGES_MAX, "before", &lp) !=
	    0 ||
	    list_us_id_cursor_or_reply(r, &lp, &us, &id) != 0)
		return;
	if ((conv = sql_run_or_reply(r, STMT_CONV_GET, ARGS(cid, uid))) ==
	    NULL)
		return;
	if (sql_rows(conv) == 0) {
		reply_error(r, 404, "not_found", "No such conversation.", NULL);
		return;
	}
	snprintf(limit, sizeof(limit), "%d", lp.limit + 1);
	if ((res = sql_run_or_reply(r, STMT_CONV_MESSAGES, ARGS(cid, uid, us,
	    id, limit))) == NULL)
		return;
	/*
	 * Newest first, one row more than asked: the oldest, which says
	 * there is more.  Served oldest first; the cursor is the oldest
	 * served.
	 */
	n = sql_rows(res);
	more = n > lp.limit;
	if (more)
		n = lp.limit;
	jw_init(&w, &b);
	jw_obj(&w);
	jw_key(&w, "conversation");
	render_conversation(&w, conv, 0, 0);
	jw_karr(&w, "messages");
	for (i = n - 1; i >= 0; i--)
		render_message(&w, res, i, CM_MSG);
	jw_end(&w);
	jw_key(&w, "messages_cursor");
	list_cursor_value(r, &w, more ? list_us_id_key(r, res, n - 1, CM_US,
	    CM_ID) : NULL);
	jw_end(&w);
	reply_json(r, 200, &b);
	buf_free(&b);
}

void
conv_update(struct request *r)
{
	const char *cid = r->params[0], *uid = app_req(r)->user->id;
	const char *title = r->in[CU_TITLE].present ? r->in[CU_TITLE].s : NULL;
	const char *persona = r->in[CU_PERSONA].present ?
	    r->in[CU_PERSONA].s : NULL;
	PGresult *res;

	/* Nothing to change: no write, so it keeps its place in the list. */
	res = title == NULL && persona == NULL ?
	    sql_run_or_reply(r, STMT_CONV_GET, ARGS(cid, uid)) :
	    sql_run_or_reply(r, STMT_CONV_UPDATE, ARGS(cid, uid, title,
	    persona));
	if (res == NULL)
		return;
	if (sql_rows(res) == 0)
		reply_error(r, 404, "not_found", "No such conversation.", NULL);
	else
		reply_conversation(r, 200, res);
}

void
conv_delete(struct request *r)
{
	PGresult *res;

	if ((res = sql_run_or_reply(r, STMT_CONV_DELETE, ARGS(r->params[0],
	    app_req(r)->user->id))) == NULL)
		return;
	if (sql_rows(res) == 0)
		reply_error(r, 404, "not_found", "No such conversation.", NULL);
	else
		reply_empty(r, 204);
}

void
personas_list(struct request *r)
{
	const struct settings *s = settings_for(r);
	struct buf b = BUF_INIT;
	struct persona p;
	struct jw w;
	int i;

	jw_init(&w, &b);
	jw_obj(&w);
	jw_karr(&w, "personas");
	for (i = 0; persona_ids[i] != NULL; i++) {
		if (settings_persona(s, persona_ids[i], &p) != 0)
			continue;
		jw_obj(&w);
		jw_kstr(&w, "id", p.id);
		jw_kstr(&w, "name", p.name);
		jw_kstr(&w, "description", p.description);
		jw_kint(&w, "credits_per_message", p.credits);
		jw_end(&w);
	}
	jw_end(&w);
	jw_end(&w);
	reply_json(r, 200, &b);
	buf_free(&b);
}
