#include <string.h>

#include "app.h"
#include "sql.h"
#include "list.h"
#include "lib/b64.h"
#include "lib/num.h"
#include "lib/utf8.h"

#define CURSOR_MAX	256

void
list_reply_bad_cursor(struct request *r, const struct list_page *lp)
{
	reply_error(r, 400, "invalid_input", "The cursor is not valid; use "
	    "the cursor of a previous page.", lp->param);
}

int
list_page_or_reply(struct request *r, int def, int max, const char *param,
    struct list_page *lp)
{
	const char *limit = req_query(r, "limit");
	const char *cursor = req_query(r, param);
	unsigned char *raw;
	long long n;
	long len;

	lp->limit = def;
	lp->cursor = NULL;
	lp->param = param;
	if (limit != NULL) {
		if (num_parse(limit, 1, max, &n) != 0) {
			reply_error(r, 400, "invalid_input", arena_printf(
			    r->arena, "limit must be an integer from 1 to %d.",
			    max), "limit");
			return -1;
		}
		lp->limit = (int)n;
	}
	if (cursor == NULL || *cursor == '\0')
		return 0;
	raw = arena_alloc(r->arena, CURSOR_MAX + 1);
	if (strlen(cursor) > B64URL_LEN(CURSOR_MAX) ||
	    (len = b64url_decode(cursor, strlen(cursor), raw)) <= 0 ||
	    memchr(raw, '\0', (size_t)len) != NULL ||
	    !utf8_valid((char *)raw, (size_t)len)) {
		list_reply_bad_cursor(r, lp);
		return -1;
	}
	raw[len] = '\0';
	lp->cursor = (char *)raw;
	return 0;
}

void
list_cursor_value(struct request *r, struct jw *w, const char *key)
{
	char *enc;

	if (key == NULL) {
		jw_null(w);
		return;
	}
	enc = arena_alloc(r->arena, B64URL_LEN(strlen(key)) + 1);
	b64url_encode((const unsigned char *)key, strlen(key), enc);
	jw_str(w, enc);
}

void
list_next_cursor(struct request *r, struct jw *w, const char *key)
{
	jw_key(w, "next_cursor");
	list_cursor_value(r, w, key);
}

int
list_cursor_is_int(const char *s)
{
	long long n;

	return num_parse(s, 1, (long long)1 << 62, &n) == 0;
}

int
list_us_id_cursor_or_reply(struct request *r, const struct list_page *lp,
    const char **us, const char **id)
{
	const char *cursor = lp->cursor;
	const char *comma = cursor != NULL ? strchr(cursor, ',') : NULL;
	long long v;

	*us = *id = NULL;
	if (cursor == NULL)
		return 0;
	if (comma == NULL || num_parsen(cursor, (size_t)(comma - cursor), 0,
	    (long long)1 << 60, &v) != 0 || !json_uuid_ok(comma + 1)) {
		list_reply_bad_cursor(r, lp);
		return -1;
	}
	*us = arena_strndup(r->arena, cursor, (size_t)(comma - cursor));
	*id = comma + 1;
	return 0;
}

const char *
list_us_id_key(struct request *r, const PGresult *res, int row, int us_col,
    int id_col)
{
	return arena_printf(r->arena, "%s,%s", sql_str(res, row, us_col),
	    sql_str(res, row, id_col));
}
