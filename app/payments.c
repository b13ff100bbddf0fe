/*
 * /api/payments: the plans and credit packs, Stripe Checkout for a
 * subscription or a pack, changes to the subscription, and the caller's
 * transactions.  Prices come from the plans and credit_packs settings,
 * never from the client.  What a payment grants is applied by the
 * webhook (webhook.c), never here: Checkout only starts a payment.
 *
 * Each handler reads what it needs, gives its database connection back,
 * and only then calls Stripe (stripe.h), so no connection waits on the
 * network.
 */
#include <stdio.h>
#include <string.h>

#include "app.h"
#include "config.h"
#include "list.h"
#include "render.h"
#include "session.h"
#include "settings.h"
#include "sql.h"
#include "stripe.h"
#include "lib/clock.h"
#include "lib/jsonw.h"
#include "lib/log.h"
#include "lib/url.h"

static const char *const paid_plans[] = { "plus", "business", NULL };

enum { PP_PLAN };
const struct jfield payments_plan_in[] = {
	[PP_PLAN] = { "plan", JF_WORD, JF_REQUIRED, 0, 0, paid_plans },
	{ NULL }
};

enum { PK_PACK };
const struct jfield payments_pack_in[] = {
	[PK_PACK] = { "pack", JF_STRING, JF_REQUIRED | JF_TRIM, 1, 32 },
	{ NULL }
};

enum { PC_AT_END };
const struct jfield payments_cancel_in[] = {
	[PC_AT_END] = { "at_period_end", JF_BOOL, 0, 0, 0 },
	{ NULL }
};

/* The caller's Stripe state (STMT_PAY_STATE). */
struct pay_state {
	const PGresult	*row;
	const char	*customer;
	const char	*sub;
	const char	*status;
};

static int
state_or_reply(struct request *r, struct pay_state *ps)
{
	if ((ps->row = sql_row_or_reply(r, STMT_PAY_STATE, ARGS(
	    app_req(r)->user->id))) == NULL)
		return -1;
	ps->customer = sql_str(ps->row, 0, PS_CUSTOMER);
	ps->sub = sql_str(ps->row, 0, PS_SUB);
	ps->status = sql_str(ps->row, 0, PS_STATUS);
	return 0;
}

/* A subscription that counts as one: active, trialing or past_due. */
static bool
live(const char *status)
{
	return status != NULL && (strcmp(status, "active") == 0 ||
	    strcmp(status, "trialing") == 0 || strcmp(status, "past_due") == 0);
}

/*
 * The caller's Stripe customer, created once.  Its Idempotency-Key is
 * derived from the user, so concurrent first purchases (and retries)
 * get the same customer from Stripe, and the first to store it wins the
 * conditional update; the others read it back.  Returns the customer
 * id, or NULL after replying.  No connection is held on return.
 */
static const char *
customer_or_reply(struct request *r, const struct pay_state *ps)
{
	struct user *u = app_req(r)->user;
	struct buf form = BUF_INIT;
	const cJSON *c;
	const char *id;
	PGresult *res;
	struct pay_state again;

	if (ps->customer != NULL) {
		sql_release(r);
		return ps->customer;
	}
	sql_release(r);
	url_form_add(&form, "email", sql_str(ps->row, 0, PS_EMAIL));
	url_form_add(&form, "metadata[user_id]", u->id);
	c = stripe_call_or_reply(r, "POST", "/v1/customers", &form,
	    arena_printf(r->arena, "miky-customer-%s", u->id));
	buf_free(&form);
	if (c == NULL)
		return NULL;
	if ((id = stripe_str(c, "id")) == NULL) {
		log_errx("stripe: a customer without an id");
		reply_error(r, 502, "upstream_error", "The payment provider "
		    "answered something unexpected.", NULL);
		return NULL;
	}
	if ((res = sql_run_or_reply(r, STMT_PAY_SET_CUSTOMER, ARGS(u->id,
	    id))) == NULL)
		return NULL;
	if (sql_rows(res) == 0) {
		if (state_or_reply(r, &again) != 0)
			return NULL;
		if (again.customer == NULL || strcmp(again.customer, id) != 0)
			log_warnx("stripe: customer %s of user %s not stored: "
			    "the user has %s", id, u->id, again.customer ?
			    again.customer : "none");
		id = again.customer;
	}
	sql_release(r);
	if (id == NULL)
		reply_error(r, 404, "not_found", "No such account.", NULL);
	return id;
}

/* The fields every Checkout Session of ours has. */
static void
checkout_common(struct request *r, struct buf *form, const char *customer,
    const char *kind)
{
	const char *uid = app_req(r)->user->id;

	url_form_add(form, "customer", customer);
	url_form_add(form, "client_reference_id", uid);
	url_form_add(form, "success_url", arena_printf(r->arena,
	    "%s/billing/success?session_id={CHECKOUT_SESSION_ID}",
	    conf.public_base_url));
	url_form_add(form, "cancel_url", arena_printf(r->arena,
	    "%s/billing/cancel", conf.public_base_url));
	url_form_add(form, "line_items[0][quantity]", "1");
	url_form_add(form, "metadata[user_id]", uid);
	url_form_add(form, "metadata[kind]", kind);
}

/* Creates the session and answers {checkout_url, session_id}. */
static void
checkout(struct request *r, const struct buf *form)
{
	const cJSON *s = stripe_call_or_reply(r, "POST",
	    "/v1/checkout/sessions", form, NULL);
	struct buf b = BUF_INIT;
	struct jw w;

	if (s == NULL)
		return;
	if (stripe_str(s, "url") == NULL || stripe_str(s, "id") == NULL) {
		log_errx("stripe: a Checkout Session without url or id");
		reply_error(r, 502, "upstream_error", "The payment provider "
		    "answered something unexpected.", NULL);
		return;
	}
	jw_init(&w, &b);
	jw_obj(&w);
	jw_kstr(&w, "checkout_url", stripe_str(s, "url"));
	jw_kstr(&w, "session_id", stripe_str(s, "id"));
	jw_end(&w);
	reply_json(r, 200, &b);
	buf_free(&b);
}

static void
unsellable(struct request *r, const char *what)
{
	log_warnx("%s has no stripe_price_id: it cannot be sold", what);
	reply_error(r, 503, "unavailable", "This plan cannot be bought right "
	    "now.", NULL);
}

void
payments_create_subscription(struct request *r)
{
	const char *plan_id = paid_plans[r->in[PP_PLAN].i];
	struct buf form = BUF_INIT;
	struct pay_state ps;
	struct plan plan;
	const char *customer;

	if (!stripe_ready_or_reply(r))
		return;
	if (settings_plan(settings_for(r), plan_id, &plan) != 0 ||
	    plan.price_id == NULL) {
		unsellable(r, plan_id);
		return;
	}
	if (state_or_reply(r, &ps) != 0)
		return;
	if (live(ps.status)) {
		reply_error(r, 409, "conflict", "You already have a "
		    "subscription: change or cancel it instead.", NULL);
		return;
	}
	if ((customer = customer_or_reply(r, &ps)) == NULL)
		return;
	url_form_add(&form, "mode", "subscription");
	checkout_common(r, &form, customer, "subscription");
	url_form_add(&form, "line_items[0][price]", plan.price_id);
	url_form_add(&form, "metadata[plan]", plan.id);
	url_form_add(&form, "subscription_data[metadata][user_id]",
	    app_req(r)->user->id);
	url_form_add(&form, "subscription_data[metadata][plan]", plan.id);
	checkout(r, &form);
	buf_free(&form);
}

void
payments_buy_credits(struct request *r)
{
	const struct settings *s = settings_for(r);
	struct buf form = BUF_INIT;
	struct pay_state ps;
	struct pack pack;
	const char *customer;
	char n[24];

	if (!stripe_ready_or_reply(r))
		return;
	if (settings_pack(s, r->in[PK_PACK].s, &pack) != 0) {
		reply_error(r, 400, "invalid_input", "No such credit pack.",
		    "pack");
		return;
	}
	if (state_or_reply(r, &ps) != 0 ||
	    (customer = customer_or_reply(r, &ps)) == NULL)
		return;
	url_form_add(&form, "mode", "payment");
	checkout_common(r, &form, customer, "pack");
	if (pack.price_id != NULL)
		url_form_add(&form, "line_items[0][price]", pack.price_id);
	else {
		snprintf(n, sizeof(n), "%lld", pack.price_cents);
		url_form_add(&form, "line_items[0][price_data][currency]",
		    settings_currency(s));
		url_form_add(&form, "line_items[0][price_data][unit_amount]", n);
		url_form_add(&form,
		    "line_items[0][price_data][product_data][name]",
		    arena_printf(r->arena, "%lld Miky credits", pack.credits));
	}
	snprintf(n, sizeof(n), "%lld", pack.credits);
	url_form_add(&form, "metadata[pack]", pack.id);
	url_form_add(&form, "metadata[credits]", n);
	url_form_add(&form, "payment_intent_data[metadata][user_id]",
	    app_req(r)->user->id);
	url_form_add(&form, "payment_intent_data[metadata][pack]", pack.id);
	checkout(r, &form);
	buf_free(&form);
}

/* {"subscription": {plan, status, current_period_end, ...}}. */
static void
reply_subscription(struct request *r, const char *plan, const char *status,
    long long period_end, bool cancel)
{
	struct buf b = BUF_INIT;
	struct jw w;
	char ts[RFC3339_LEN];

	jw_init(&w, &b);
	jw_obj(&w);
	jw_kobj(&w, "subscription");
	jw_kstr(&w, "plan", plan);
	jw_kstr(&w, "status", status);
	if (period_end > 0) {
		clock_rfc3339(ts, period_end * 1000);
		jw_kstr(&w, "current_period_end", ts);
	} else
		jw_knull(&w, "current_period_end");
	jw_kbool(&w, "cancel_at_period_end", cancel);
	jw_end(&w);
	jw_end(&w);
	reply_json(r, 200, &b);
	buf_free(&b);
}

/* The same from a Stripe subscription object. */
static void
reply_stripe_subscription(struct request *r, const cJSON *sub,
    const char *plan_hint)
{
	struct plan p;
	const char *plan = plan_hint;

	if (settings_plan_by_price(settings_for(r), stripe_str(sub,
	    "items.data.0.price.id"), &p) == 0)
		plan = p.id;
	reply_subscription(r, plan, stripe_str(sub, "status"),
	    stripe_int(sub, "current_period_end", stripe_int(sub,
	    "items.data.0.current_period_end", 0)),
	    stripe_bool(sub, "cancel_at_period_end") == 1);
}

/*
 * The caller's live subscription, for a change: 0 with the path of the
 * subscription at Stripe, or -1 after replying (409 without one).
 * No connection is held on success.
 */
static int
subscription_or_reply(struct request *r, struct pay_state *ps,
    const char **path)
{
	struct buf p = BUF_INIT;

	if (!stripe_ready_or_reply(r) || state_or_reply(r, ps) != 0)
		return -1;
	sql_release(r);
	if (!live(ps->status) || ps->sub == NULL) {
		reply_error(r, 409, "conflict", "You have no subscription.",
		    NULL);
		return -1;
	}
	buf_puts(&p, "/v1/subscriptions/");
	url_encode(&p, ps->sub);
	*path = arena_strdup(r->arena, p.p);
	buf_free(&p);
	return 0;
}

void
payments_update_subscription(struct request *r)
{
	const char *plan_id = paid_plans[r->in[PP_PLAN].i], *path, *item;
	struct buf form = BUF_INIT;
	struct pay_state ps;
	struct plan plan;
	const cJSON *sub;

	if (subscription_or_reply(r, &ps, &path) != 0)
		return;
	if (settings_plan(settings_for(r), plan_id, &plan) != 0 ||
	    plan.price_id == NULL) {
		unsellable(r, plan_id);
		return;
	}
	if ((sub = stripe_call_or_reply(r, "GET", path, NULL, NULL)) == NULL)
		return;
	if ((item = stripe_str(sub, "items.data.0.id")) == NULL) {
		log_errx("stripe: subscription %s has no item", ps.sub);
		reply_error(r, 502, "upstream_error", "The payment provider "
		    "answered something unexpected.", NULL);
		return;
	}
	url_form_add(&form, "items[0][id]", item);
	url_form_add(&form, "items[0][price]", plan.price_id);
	url_form_add(&form, "proration_behavior", "create_prorations");
	url_form_add(&form, "metadata[plan]", plan.id);
	sub = stripe_call_or_reply(r, "POST", path, &form, NULL);
	buf_free(&form);
	if (sub != NULL)
		reply_stripe_subscription(r, sub, plan.id);
}

void
payments_cancel_subscription(struct request *r)
{
	bool at_end = !r->in[PC_AT_END].present || r->in[PC_AT_END].b;
	struct buf form = BUF_INIT;
	struct pay_state ps;
	const char *path, *plan;
	const cJSON *sub;
	char ended[24];

	if (subscription_or_reply(r, &ps, &path) != 0)
		return;
	plan = sql_str(ps.row, 0, PS_PLAN);
	if (at_end) {
		url_form_add(&form, "cancel_at_period_end", "true");
		sub = stripe_call_or_reply(r, "POST", path, &form, NULL);
		buf_free(&form);
	} else
		sub = stripe_call_or_reply(r, "DELETE", path, NULL, NULL);
	if (sub == NULL)
		return;
	/*
	 * Cancelled now: the mirror says so at once, on Stripe's clock (a
	 * canceled subscription stays canceled whatever event comes late).
	 */
	if (!at_end && stripe_int(sub, "canceled_at", 0) > 0) {
		snprintf(ended, sizeof(ended), "%lld", stripe_int(sub,
		    "canceled_at", 0));
		if (sql_run_or_reply(r, STMT_SUB_APPLY, ARGS(
		    app_req(r)->user->id, ps.sub, "canceled", NULL, NULL, NULL,
		    ended)) == NULL)
			return;
	}
	reply_stripe_subscription(r, sub, plan);
}

void
payments_plans(struct request *r)
{
	const struct settings *s = settings_for(r);
	const cJSON *pack;
	struct buf b = BUF_INIT;
	struct plan p;
	struct jw w;
	int i;

	jw_init(&w, &b);
	jw_obj(&w);
	/* Every price is in this currency: clients must not guess it. */
	jw_kstr(&w, "currency", settings_currency(s));
	jw_karr(&w, "plans");
	for (i = 0; plan_ids[i] != NULL; i++) {
		if (settings_plan(s, plan_ids[i], &p) != 0)
			continue;
		jw_obj(&w);
		jw_kstr(&w, "id", p.id);
		jw_kstr(&w, "name", p.name);
		jw_kint(&w, "price_cents", p.price_cents);
		jw_kint(&w, "monthly_credits", p.monthly_credits);
		jw_end(&w);
	}
	jw_end(&w);
	jw_karr(&w, "credit_packs");
	cJSON_ArrayForEach(pack, settings_json(s, SET_CREDIT_PACKS)) {
		struct pack k;

		if (settings_pack(s, stripe_str(pack, "id"), &k) != 0)
			continue;
		jw_obj(&w);
		jw_kstr(&w, "id", k.id);
		jw_kint(&w, "credits", k.credits);
		jw_kint(&w, "price_cents", k.price_cents);
		jw_end(&w);
	}
	jw_end(&w);
	jw_end(&w);
	reply_json(r, 200, &b);
	buf_free(&b);
}

void
payments_transactions(struct request *r)
{
	struct list_page lp;
	struct buf b = BUF_INIT;
	struct jw w;
	const char *us, *id;
	PGresult *res;
	char limit[16];
	int i, n;

	if (list_page_or_reply(r, 20, 100, "cursor", &lp) != 0 ||
	    list_us_id_cursor_or_reply(r, &lp, &us, &id) != 0)
		return;
	snprintf(limit, sizeof(limit), "%d", lp.limit + 1);
	if ((res = sql_run_or_reply(r, STMT_TX_PAGE, ARGS(app_req(r)->user->id,
	    us, id, limit))) == NULL)
		return;
	n = sql_rows(res);
	jw_init(&w, &b);
	jw_obj(&w);
	jw_karr(&w, "transactions");
	for (i = 0; i < n && i < lp.limit; i++)
		render_transaction(&w, res, i, XP_TX);
	jw_end(&w);
	list_next_cursor(r, &w, n > lp.limit ? list_us_id_key(r, res,
	    lp.limit - 1, XP_US, XP_ID) : NULL);
	jw_end(&w);
	reply_json(r, 200, &b);
	buf_free(&b);
}
