/*
 * Referral rewards (see referrals.h) and /api/referrals: the caller's
 * statistics, share link and cash-outs.
 */
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "app.h"
#include "events.h"
#include "config.h"
#include "mail.h"
#include "referrals.h"
#include "render.h"
#include "session.h"
#include "settings.h"
#include "sql.h"
#include "lib/jsonw.h"
#include "lib/log.h"

/* Invitees /stats lists, oldest first (the export has them all). */
#define STATS_REFERRALS	"1000"

/* Tells the referrer of a reward that landed (RW_* row), if it did. */
static int
tell(struct request *r, enum mail_template t, const PGresult *rw,
    const char *referrer, struct db_err *err)
{
	if (sql_rows(rw) == 0 || sql_int(rw, 0, RW_AMOUNT) <= 0 ||
	    sql_null(rw, 0, RW_EMAIL))
		return 0;
	return mail_queue(r, t, referrer, sql_str(rw, 0, RW_EMAIL),
	    sql_str(rw, 0, RW_LANGUAGE), sql_str(rw, 0, RW_FIRST_NAME), NULL,
	    err);
}

/* Qualifies referral `id` of `referrer` (locked) at payment `tx`. */
static int
qualify_locked(struct request *r, const char *id, const char *referrer,
    const char *tx, struct db_err *err)
{
	char cents[24];
	PGresult *rw;

	snprintf(cents, sizeof(cents), "%lld",
	    settings_int(settings_for(r), SET_REFERRAL_CASH_CENTS));
	if ((rw = sql_run(r, STMT_REFERRAL_QUALIFY, ARGS(id, tx, cents),
	    err)) == NULL)
		return -1;
	if (sql_rows(rw) > 0)
		event_later(r, EV_GRANT, "referral_cash", sql_int(rw, 0,
		    RW_AMOUNT) > 0 ? "granted" : "capped");
	return tell(r, MAIL_REFERRAL_CASH, rw, referrer, err);
}

/*
 * The referral of `referee` if its status is `status`, with its
 * referrer's row locked: 1 (*ref set), 0 if there is none such, -1.
 * A referrer deleted meanwhile took the referral with it.
 */
static int
referral_locked(struct request *r, enum stmt s, const char *key,
    const char *status, PGresult **ref, struct db_err *err)
{
	PGresult *res;

	if ((*ref = sql_run(r, s, ARGS(key), err)) == NULL)
		return -1;
	if (sql_rows(*ref) == 0 || (status != NULL &&
	    strcmp(sql_str(*ref, 0, RF_STATUS), status) != 0))
		return 0;
	if ((res = sql_run(r, STMT_USER_LOCK, ARGS(sql_str(*ref, 0,
	    RF_REFERRER)), err)) == NULL)
		return -1;
	return sql_rows(res) > 0;
}

int
referral_activate(struct request *r, const char *referee, struct db_err *err)
{
	const struct settings *s = settings_for(r);
	char credits[24], cap[24];
	PGresult *ref, *rw, *paid;
	const char *id, *referrer;
	int rc;

	if ((rc = referral_locked(r, STMT_REFERRAL_OF, referee, "pending",
	    &ref, err)) <= 0)
		return rc;
	id = sql_str(ref, 0, RF_ID);
	referrer = sql_str(ref, 0, RF_REFERRER);
	snprintf(credits, sizeof(credits), "%lld",
	    settings_int(s, SET_REFERRAL_CREDITS));
	snprintf(cap, sizeof(cap), "%lld",
	    settings_int(s, SET_REFERRAL_MONTHLY_CAP));
	if ((rw = sql_run(r, STMT_REFERRAL_ACTIVATE, ARGS(id, credits, cap),
	    err)) == NULL || tell(r, MAIL_REFERRAL_CREDITS, rw, referrer,
	    err) != 0)
		return -1;
	if (sql_rows(rw) == 0)
		return 0;
	event_later(r, EV_GRANT, "referral", sql_int(rw, 0, RW_AMOUNT) > 0 ?
	    "granted" : "capped");
	/* A payment made before the activation qualifies it now. */
	if ((paid = sql_run(r, STMT_FIRST_PAYMENT, ARGS(referee), err)) ==
	    NULL)
		return -1;
	if (sql_rows(paid) == 0)
		return 0;
	return qualify_locked(r, id, referrer, sql_str(paid, 0, SQL_ONLY),
	    err);
}

int
referral_qualify(struct request *r, const char *referee,
    const char *transaction, struct db_err *err)
{
	PGresult *ref;
	int rc;

	if ((rc = referral_locked(r, STMT_REFERRAL_OF, referee, "activated",
	    &ref, err)) <= 0)
		return rc;
	return qualify_locked(r, sql_str(ref, 0, RF_ID), sql_str(ref, 0,
	    RF_REFERRER), transaction, err);
}

int
referral_clawback(struct request *r, const char *transaction,
    struct db_err *err)
{
	PGresult *ref, *res;
	int rc;

	if ((rc = referral_locked(r, STMT_REFERRAL_BY_TX, transaction, NULL,
	    &ref, err)) <= 0)
		return rc;
	if ((res = sql_run(r, STMT_REFERRAL_CLAWBACK, ARGS(sql_str(ref, 0,
	    RF_ID), sql_str(ref, 0, RF_REFERRER)), err)) == NULL)
		return -1;
	if (sql_rows(res) > 0) {
		log_info("referral %s: %lld cents clawed back after the refund "
		    "of %s", sql_str(ref, 0, RF_ID), sql_int(res, 0, SQL_ONLY),
		    transaction);
		event_later(r, EV_CLAWBACK, "cash", sql_int(res, 0, SQL_ONLY) >
		    0 ? "taken" : "none_left");
	}
	return 0;
}

/* Appends the canonical form of one part of an address to out. */
static size_t
canon(char *out, size_t at, size_t cap, const char *p, size_t n,
    bool drop_dots)
{
	size_t i;

	for (i = 0; i < n && at + 1 < cap; i++) {
		if (drop_dots && p[i] == '.')
			continue;
		out[at++] = (char)tolower((unsigned char)p[i]);
	}
	out[at] = '\0';
	return at;
}

static void
mailbox(const char *addr, char *out, size_t cap)
{
	const char *at = strrchr(addr, '@'), *plus;
	size_t local, n;
	bool gmail;

	if (at == NULL) {
		canon(out, 0, cap, addr, strlen(addr), false);
		return;
	}
	gmail = strcasecmp(at + 1, "gmail.com") == 0 ||
	    strcasecmp(at + 1, "googlemail.com") == 0;
	local = (size_t)(at - addr);
	if ((plus = memchr(addr, '+', local)) != NULL)
		local = (size_t)(plus - addr);
	n = canon(out, 0, cap, addr, local, gmail);
	canon(out, n, cap, gmail ? "@gmail.com" : at, gmail ? 10 :
	    strlen(at), false);
}

bool
referral_same_mailbox(const char *a, const char *b)
{
	char ca[320], cb[320];

	mailbox(a, ca, sizeof(ca));
	mailbox(b, cb, sizeof(cb));
	return strcmp(ca, cb) == 0;
}

/* --- /api/referrals ------------------------------------------------------- */

void
referrals_stats(struct request *r)
{
	struct user *u = app_req(r)->user;
	struct buf b = BUF_INIT;
	struct jw w;
	PGresult *st, *list;
	long long avail;
	int i;

	if ((st = sql_row_or_reply(r, STMT_REFERRAL_STATS, ARGS(u->id))) ==
	    NULL || (list = sql_run_or_reply(r, STMT_EXPORT_REFERRALS,
	    ARGS(u->id, NULL, NULL, STATS_REFERRALS))) == NULL)
		return;
	avail = sql_int(st, 0, SS_EARNED) - sql_int(st, 0, SS_PAID) -
	    sql_int(st, 0, SS_PENDING);
	jw_init(&w, &b);
	jw_obj(&w);
	jw_kstr(&w, "referral_code", sql_str(st, 0, SS_CODE));
	jw_kint(&w, "referrals_count", sql_int(st, 0, SS_COUNT));
	jw_kint(&w, "credits_earned", sql_int(st, 0, SS_CREDITS));
	jw_kint(&w, "cash_earned_cents", sql_int(st, 0, SS_EARNED));
	jw_kint(&w, "cash_paid_out_cents", sql_int(st, 0, SS_PAID));
	jw_kint(&w, "cash_pending_cents", sql_int(st, 0, SS_PENDING));
	jw_kint(&w, "cash_available_cents", avail > 0 ? avail : 0);
	jw_karr(&w, "referrals");
	for (i = 0; i < sql_rows(list); i++)
		render_referral(&w, list, i, EK__N);
	jw_end(&w);
	jw_end(&w);
	reply_json(r, 200, &b);
	buf_free(&b);
}

void
referrals_share_link(struct request *r)
{
	struct user *u = app_req(r)->user;
	const char *code = sql_str(u->row, 0, u->col + USER_REFERRAL_CODE);
	bool it = u->language != NULL && strncmp(u->language, "it", 2) == 0;
	struct buf b = BUF_INIT, url = BUF_INIT;
	struct jw w;

	buf_printf(&url, "%s/signup?ref=%s", conf.public_base_url, code);
	jw_init(&w, &b);
	jw_obj(&w);
	jw_kstr(&w, "referral_code", code);
	jw_kstr(&w, "url", url.p);
	jw_kstr(&w, "share_text", arena_printf(r->arena, it ?
	    "Sto usando Miky, la chat AI con dieci esperti a tua "
	    "disposizione. Iscriviti con il mio link: %s" :
	    "I'm using Miky, the AI chat with ten experts at your side. "
	    "Join with my link: %s", url.p));
	jw_end(&w);
	reply_json(r, 200, &b);
	buf_free(&b);
	buf_free(&url);
}

static const char *const cashout_methods[] = { "paypal", "bank", NULL };
enum { CO_AMOUNT, CO_METHOD, CO_DEST };
const struct jfield referrals_cashout_in[] = {
	[CO_AMOUNT] = { "amount_cents", JF_INT, JF_REQUIRED, 1, 100000000 },
	[CO_METHOD] = { "method", JF_WORD, JF_REQUIRED, 0, 0, cashout_methods },
	[CO_DEST] = { "destination", JF_STRING, JF_REQUIRED | JF_TRIM |
	    JF_LINE, 3, 320 },
	{ NULL }
};

/*
 * An IBAN (ISO 13616) with its spaces taken out and its letters upper
 * case, if its check digits are right (mod 97 = 1); else NULL.
 */
static const char *
iban(struct request *r, const char *s)
{
	char *out = arena_alloc(r->arena, strlen(s) + 1), *o = out;
	unsigned rem = 0;
	size_t i, n;

	for (; *s != '\0'; s++) {
		if (*s == ' ')
			continue;
		if (!isalnum((unsigned char)*s))
			return NULL;
		*o++ = (char)toupper((unsigned char)*s);
	}
	*o = '\0';
	n = strlen(out);
	if (n < 15 || n > 34 || !isalpha((unsigned char)out[0]) ||
	    !isalpha((unsigned char)out[1]) || !isdigit((unsigned char)out[2]) ||
	    !isdigit((unsigned char)out[3]))
		return NULL;
	/* The first four characters go to the end; letters count 10..35. */
	for (i = 0; i < n; i++) {
		char c = out[(i + 4) % n];

		if (isdigit((unsigned char)c))
			rem = (rem * 10 + (unsigned)(c - '0')) % 97;
		else
			rem = (rem * 100 + (unsigned)(c - 'A' + 10)) % 97;
	}
	return rem == 1 ? out : NULL;
}

void
referrals_cashout(struct request *r)
{
	struct user *u = app_req(r)->user;
	long long min = settings_int(settings_for(r), SET_CASHOUT_MIN_CENTS);
	long long amount = r->in[CO_AMOUNT].i;
	const char *method = cashout_methods[r->in[CO_METHOD].i];
	const char *dest = r->in[CO_DEST].s;
	char cents[24];
	struct buf b = BUF_INIT;
	struct jw w;
	PGresult *res;

	if (amount < min) {
		reply_error(r, 400, "invalid_input", arena_printf(r->arena,
		    "The smallest cash-out is %lld cents.", min),
		    "amount_cents");
		return;
	}
	if (strcmp(method, "paypal") == 0) {
		char *lower = arena_strdup(r->arena, dest), *c;

		for (c = lower; *c != '\0'; c++)
			*c = (char)tolower((unsigned char)*c);
		dest = json_email_ok(lower) ? lower : NULL;
	} else
		dest = iban(r, dest);
	if (dest == NULL) {
		reply_error(r, 400, "invalid_input", strcmp(method, "paypal")
		    == 0 ? "The destination must be the email address of a "
		    "PayPal account." : "The destination must be a valid "
		    "IBAN.", "destination");
		return;
	}
	snprintf(cents, sizeof(cents), "%lld", amount);
	if (sql_begin_or_reply(r) != 0 || (res = sql_run_or_reply(r,
	    STMT_USER_LOCK, ARGS(u->id))) == NULL ||
	    (res = sql_run_or_reply(r, STMT_CASHOUT, ARGS(u->id, cents, method,
	    dest))) == NULL)
		return;
	if (sql_rows(res) == 0) {
		sql_rollback(r);
		reply_error(r, 400, "invalid_input", "That is more than your "
		    "available cash.", "amount_cents");
		return;
	}
	if (sql_commit_or_reply(r) != 0)
		return;
	event_note(EV_CASHOUT, "requested", "ok", NULL);
	jw_init(&w, &b);
	jw_obj(&w);
	jw_key(&w, "transaction");
	render_transaction(&w, res, 0, 0);
	jw_end(&w);
	reply_json(r, 201, &b);
	buf_free(&b);
}
