/*
 * Paged lists: `limit` (1..max, default def) and an opaque `cursor`
 * (base64url of the sort key of the last row served), answered with
 * `next_cursor` (null on the last page).
 */
#ifndef MIKY_APP_LIST_H
#define MIKY_APP_LIST_H

#include "lib/jsonw.h"

struct request;

struct list_page {
	int		 limit;
	const char	*cursor;	/* the decoded key, or NULL */
	const char	*param;		/* its query parameter's name */
};

/*
 * Reads `limit` and the cursor from the query parameter named `param`
 * ("cursor", or "before" for a conversation's messages).  Returns 0, or
 * -1 after replying 400.
 */
int	list_page_or_reply(struct request *, int def, int max,
	    const char *param, struct list_page *);
/* Writes "next_cursor": the encoded key, or null. */
void	list_next_cursor(struct request *, struct jw *, const char *key);
/* Writes the encoded key (or null) as a value. */
void	list_cursor_value(struct request *, struct jw *, const char *key);
/* True if a decoded cursor is a positive decimal integer (an id). */
int	list_cursor_is_int(const char *);
void	list_reply_bad_cursor(struct request *, const struct list_page *);

/*
 * Lists ordered by (timestamp, uuid) use the key "us,uuid": the
 * timestamp in microseconds (api_us() in SQL), and the row's id.
 * list_us_id_cursor_or_reply() splits the page's decoded cursor into
 * arena copies (both NULL without one); 0, or -1 after replying 400.
 * list_us_id_key() is the key of a result row from its two columns.
 */
struct pg_result;
int	list_us_id_cursor_or_reply(struct request *, const struct list_page *,
	    const char **us, const char **id);
const char *list_us_id_key(struct request *, const struct pg_result *,
	    int row, int us_col, int id_col);

#endif
