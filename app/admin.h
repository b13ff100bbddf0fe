/*
 * What the admin API's files share (admin.c, admin_money.c,
 * admin_settings.c).  The routes are ADMIN: routes.c has checked the
 * caller before any of this runs.  Every change is written to
 * admin_audit in the transaction that makes it, and noted as an event
 * (events.h) once committed.
 */
#ifndef MIKY_APP_ADMIN_H
#define MIKY_APP_ADMIN_H

#include <libpq-fe.h>

#include "list.h"
#include "lib/jsonw.h"

struct request;

/*
 * Begins the transaction of an admin list, with plans made for the
 * parameters at hand (STMT_CUSTOM_PLANS), and reads its page: `limit`
 * and the (time, id) cursor.  Returns 0, or -1 after replying.
 */
int	admin_list_begin_or_reply(struct request *, struct list_page *,
	    const char **us, const char **id);

/*
 * Ends the list's transaction and answers {key: [...], next_cursor}:
 * one object per row (render from column obj_col) up to the page's
 * limit; res holds one row more when there is a next page, whose cursor
 * is the last row's columns us_col and id_col.
 */
void	admin_list_reply(struct request *, const char *key, PGresult *res,
	    const struct list_page *, int us_col, int id_col, int obj_col,
	    void (*render)(struct jw *, const PGresult *, int, int));

/*
 * A query parameter that must be one of `words` when given: *out set
 * (NULL when absent or empty) and 0 returned, or -1 after replying 400
 * naming it.
 */
int	admin_word_or_reply(struct request *, const char *param,
	    const char *const *words, const char **out);

/*
 * Writes the admin_audit row of a change by the caller, in the
 * caller's transaction: what it did (`action`, e.g. "user.update") to
 * what (target type and id), and the fields changed before and after
 * as JSON object texts.  Returns 0, or -1 after replying.
 */
int	admin_audit_or_reply(struct request *, const char *action,
	    const char *target_type, const char *target_id, const char *before,
	    const char *after);

/* Notes a committed admin change (events.h) with its target. */
void	admin_event(const char *action, const char *target_id);

#endif
