#include <stdlib.h>
#include <string.h>

#include "render.h"

/* A column: text, or NULL for SQL NULL. */
static const char *
col_str(const PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? NULL : PQgetvalue(res, row, col);
}

static void
kstr(struct jw *w, const char *k, const PGresult *res, int row, int col)
{
	jw_kstr(w, k, col_str(res, row, col));
}

static void
kint(struct jw *w, const char *k, const PGresult *res, int row, int col)
{
	jw_kint(w, k, atoll(PQgetvalue(res, row, col)));
}

static void
kbool(struct jw *w, const char *k, const PGresult *res, int row, int col)
{
	jw_kbool(w, k, *PQgetvalue(res, row, col) == 't');
}

static void
kts(struct jw *w, const char *k, const PGresult *res, int row, int col)
{
	jw_key(w, k);
	render_ts(w, PQgetvalue(res, row, col));
}

/*
 * "2026-11-26 12:58:08.447123+00" (or without a fraction) becomes
 * "2026-11-26T12:58:08.447Z": the fraction cut to milliseconds.
 */
void
render_ts(struct jw *w, const char *s)
{
	char out[sizeof("2026-11-26T12:58:08.447Z")];
	size_t i, n = 0;

	if (strlen(s) < 19) {
		jw_str(w, s);
		return;
	}
	memcpy(out, s, 19);
	out[10] = 'T';
	out[19] = '.';
	if (s[19] == '.')
		for (i = 20; n < 3 && s[i] >= '0' && s[i] <= '9'; i++)
			out[20 + n++] = s[i];
	while (n < 3)
		out[20 + n++] = '0';
	out[23] = 'Z';
	out[24] = '\0';
	jw_str(w, out);
}

void
render_user(struct jw *w, const PGresult *res, int row, int c)
{
	jw_obj(w);
	kstr(w, "id", res, row, c);
	kstr(w, "email", res, row, c + 1);
	kstr(w, "first_name", res, row, c + 2);
	kstr(w, "last_name", res, row, c + 3);
	kint(w, "credits", res, row, c + 4);
	kstr(w, "plan", res, row, c + 5);
	kstr(w, "role", res, row, c + 6);
	kstr(w, "language", res, row, c + 7);
	kbool(w, "email_verified", res, row, c + 8);
	kstr(w, "referral_code", res, row, c + 9);
	kint(w, "referrals_count", res, row, c + 10);
	kint(w, "cash_earned_cents", res, row, c + 11);
	kint(w, "cash_paid_out_cents", res, row, c + 12);
	kstr(w, "subscription_status", res, row, c + 13);
	kts(w, "created_at", res, row, c + 14);
	kts(w, "updated_at", res, row, c + 15);
	jw_end(w);
}

void
render_conversation(struct jw *w, const PGresult *res, int row, int c)
{
	jw_obj(w);
	kstr(w, "id", res, row, c);
	kstr(w, "title", res, row, c + 1);
	kstr(w, "persona", res, row, c + 2);
	kint(w, "message_count", res, row, c + 3);
	kts(w, "created_at", res, row, c + 4);
	kts(w, "updated_at", res, row, c + 5);
	jw_end(w);
}

void
render_message(struct jw *w, const PGresult *res, int row, int c)
{
	jw_obj(w);
	kstr(w, "id", res, row, c);
	kstr(w, "conversation_id", res, row, c + 1);
	kstr(w, "sender", res, row, c + 2);
	kstr(w, "content", res, row, c + 3);
	kstr(w, "persona", res, row, c + 4);
	kint(w, "credits_consumed", res, row, c + 5);
	kts(w, "created_at", res, row, c + 6);
	jw_end(w);
}

void
render_ledger(struct jw *w, const PGresult *res, int row, int c)
{
	jw_obj(w);
	kint(w, "delta", res, row, c);
	kint(w, "balance_after", res, row, c + 1);
	kstr(w, "reason", res, row, c + 2);
	kts(w, "created_at", res, row, c + 3);
	jw_end(w);
}

void
render_transaction(struct jw *w, const PGresult *res, int row, int c)
{
	jw_obj(w);
	kstr(w, "id", res, row, c);
	kstr(w, "type", res, row, c + 1);
	kint(w, "amount_cents", res, row, c + 2);
	kint(w, "credits", res, row, c + 3);
	kstr(w, "status", res, row, c + 4);
	kts(w, "created_at", res, row, c + 5);
	jw_end(w);
}
