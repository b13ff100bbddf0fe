#include <string.h>

#include "render.h"
#include "sql.h"

/*
 * An object is a list of fields, each the JSON name and the kind of the
 * column at the same position from the object's first column.
 */
enum kind { STR, INT, BOOL, TS };

struct field {
	const char	*name;
	enum kind	 kind;
};

/* Writes the members of fields f from column col on; returns the next. */
static int
members(struct jw *w, const struct field *f, const PGresult *res, int row,
    int col)
{
	const char *v;

	for (; f->name != NULL; f++, col++) {
		v = sql_str(res, row, col);
		jw_key(w, f->name);
		if (v == NULL)
			jw_null(w);
		else if (f->kind == INT)
			jw_int(w, sql_int(res, row, col));
		else if (f->kind == BOOL)
			jw_bool(w, sql_bool(res, row, col));
		else if (f->kind == TS)
			render_ts(w, v);
		else
			jw_strn(w, v, sql_len(res, row, col));
	}
	return col;
}

/* An object of fields f, then (if not NULL) of fields more after them. */
static void
render2(struct jw *w, const struct field *f, const struct field *more,
    const PGresult *res, int row, int col)
{
	jw_obj(w);
	col = members(w, f, res, row, col);
	if (more != NULL)
		members(w, more, res, row, col);
	jw_end(w);
}

static void
render(struct jw *w, const struct field *f, const PGresult *res, int row,
    int col)
{
	render2(w, f, NULL, res, row, col);
}

/* In the order of the *_COLS lists of render.h. */
static const struct field user_fields[] = {
	{ "id", STR }, { "email", STR }, { "first_name", STR },
	{ "last_name", STR }, { "credits", INT }, { "plan", STR },
	{ "role", STR }, { "language", STR }, { "email_verified", BOOL },
	{ "referral_code", STR }, { "referrals_count", INT },
	{ "cash_earned_cents", INT }, { "cash_paid_out_cents", INT },
	{ "subscription_status", STR }, { "created_at", TS },
	{ "updated_at", TS }, { NULL, STR }
};

static const struct field conversation_fields[] = {
	{ "id", STR }, { "title", STR }, { "persona", STR },
	{ "message_count", INT }, { "created_at", TS }, { "updated_at", TS },
	{ NULL, STR }
};

static const struct field message_fields[] = {
	{ "id", STR }, { "conversation_id", STR }, { "sender", STR },
	{ "content", STR }, { "persona", STR }, { "credits_consumed", INT },
	{ "created_at", TS }, { NULL, STR }
};

static const struct field ledger_fields[] = {
	{ "delta", INT }, { "balance_after", INT }, { "reason", STR },
	{ "created_at", TS }, { NULL, STR }
};

static const struct field transaction_fields[] = {
	{ "id", STR }, { "type", STR }, { "amount_cents", INT },
	{ "credits", INT }, { "status", STR }, { "created_at", TS },
	{ NULL, STR }
};

static const struct field referral_fields[] = {
	{ "first_name", STR }, { "status", STR }, { "created_at", TS },
	{ "credits_awarded", INT }, { "cash_awarded_cents", INT },
	{ NULL, STR }
};

/* What admins see besides, in the order of the ADMIN_*_COLS lists. */
static const struct field admin_user_fields[] = {
	{ "banned", BOOL }, { NULL, STR }
};

static const struct field admin_conversation_fields[] = {
	{ "user_id", STR }, { "user_email", STR }, { NULL, STR }
};

static const struct field admin_transaction_fields[] = {
	{ "user_id", STR }, { "user_email", STR }, { "method", STR },
	{ "destination", STR }, { NULL, STR }
};

#define NFIELDS(a)	(sizeof(a) / sizeof((a)[0]) - 1)
_Static_assert(NFIELDS(user_fields) == USER_NCOLS, "USER_COLS");
_Static_assert(NFIELDS(conversation_fields) == CONV_NCOLS, "CONV_COLS");
_Static_assert(NFIELDS(message_fields) == MSG_NCOLS, "MSG_COLS");
_Static_assert(NFIELDS(ledger_fields) == LEDGER_NCOLS, "LEDGER_COLS");
_Static_assert(NFIELDS(transaction_fields) == TX_NCOLS, "TX_COLS");
_Static_assert(NFIELDS(referral_fields) == REFERRAL_NCOLS, "REFERRAL_COLS");
_Static_assert(NFIELDS(user_fields) + NFIELDS(admin_user_fields) ==
    ADMIN_USER_NCOLS, "ADMIN_USER_COLS");
_Static_assert(NFIELDS(conversation_fields) +
    NFIELDS(admin_conversation_fields) == ADMIN_CONV_NCOLS,
    "ADMIN_CONV_COLS");
_Static_assert(NFIELDS(transaction_fields) +
    NFIELDS(admin_transaction_fields) == ADMIN_TX_NCOLS, "ADMIN_TX_COLS");

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
render_user(struct jw *w, const PGresult *res, int row, int col)
{
	render(w, user_fields, res, row, col);
}

void
render_conversation(struct jw *w, const PGresult *res, int row, int col)
{
	render(w, conversation_fields, res, row, col);
}

void
render_message(struct jw *w, const PGresult *res, int row, int col)
{
	render(w, message_fields, res, row, col);
}

void
render_ledger(struct jw *w, const PGresult *res, int row, int col)
{
	render(w, ledger_fields, res, row, col);
}

void
render_transaction(struct jw *w, const PGresult *res, int row, int col)
{
	render(w, transaction_fields, res, row, col);
}

void
render_referral(struct jw *w, const PGresult *res, int row, int col)
{
	render(w, referral_fields, res, row, col);
}

void
render_admin_user(struct jw *w, const PGresult *res, int row, int col)
{
	render2(w, user_fields, admin_user_fields, res, row, col);
}

void
render_admin_conversation(struct jw *w, const PGresult *res, int row,
    int col)
{
	render2(w, conversation_fields, admin_conversation_fields, res, row,
	    col);
}

void
render_admin_transaction(struct jw *w, const PGresult *res, int row,
    int col)
{
	render2(w, transaction_fields, admin_transaction_fields, res, row, col);
}
