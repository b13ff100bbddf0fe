/*
 * POST /api/payments/webhook: Stripe's events, verified, then applied
 * exactly once.
 *
 * Checks, in order: STRIPE_WEBHOOK_SECRET is set (else 503, and Stripe
 * delivers again later); the body fits 1 MiB (the route's limit, before
 * a byte is read); the Stripe-Signature header over the raw bytes,
 * before any parsing (lib/hooksig.h: any v1 may match, compared in
 * constant time, the timestamp within 300 s either way; else 400
 * invalid_signature); then JSON (400 invalid_json) and the event's
 * shape (400 invalid_input).  A signed event is answered 200 once it is
 * recorded, whether it changed anything or not; an event of a type Miky
 * does not act on is recorded as 'ignored'.
 *
 * Exactly once.  Each event is applied in one transaction that first
 * records its id in stripe_events (INSERT ... ON CONFLICT DO NOTHING):
 *  - a replay finds the id recorded, changes nothing and answers 200;
 *  - a concurrent delivery of the same event waits on the first one's
 *    uncommitted row, then finds it recorded (the first committed) or
 *    records it itself (the first rolled back);
 *  - when anything fails -- the database is down, a statement fails --
 *    the whole transaction rolls back, the event stays unrecorded, and
 *    the answer is 5xx, so Stripe delivers it again later and it is
 *    applied then, once.
 * Stripe sends several events about one payment, and the same payment
 * may come under several event ids, so every grant is also unique on
 * its business key: a pack's credits on its Checkout Session, a plan's
 * monthly credits on its invoice (invoice.paid is the only event that
 * grants them, and only for an invoice that starts or renews a period).
 * The payment's transaction row is inserted or moved to 'completed' by
 * one statement that grants the credits with their ledger row in the
 * same breath, and a row moves to 'completed' only once; the ledger's
 * unique (reason, ref) would refuse a second grant even so.  A refund
 * moves a transaction to 'refunded' once, and takes its credits back
 * in the same statement.  Referral rewards move their referral's status
 * once (referrals.h).  So any mix of duplicate, concurrent and
 * reordered deliveries grants once.
 *
 * Order.  The subscription mirror on users takes an event only if it is
 * not older (by its `created`) than the last one applied, and a
 * canceled subscription stays canceled (STMT_SUB_APPLY), so reordered
 * deliveries end in Stripe's latest state.  Payments only move forward
 * (pending -> completed | failed, failed -> completed; completed and
 * refunded are final): a late "unpaid" changes nothing.
 *
 * Lock order.  Every transaction that changes money takes its row locks
 * in this order, so none waits in a cycle:
 *  1. the event's id in stripe_events (the webhook only, first);
 *  2. the paying user's row (STMT_PAYER_LOCK, STMT_USER_LOCK: FOR NO
 *     KEY UPDATE), as chat turns, credit holds and cash-outs do;
 *  3. that user's referrer's row (referrals.c).  An invitee's account
 *     is always newer than its referrer's, so chains of such locks run
 *     from newer accounts to older ones and cannot close a cycle;
 *  4. the rows written under those locks: transactions, referrals and
 *     the ledgers.
 * No transaction waits on (1) while holding (2) or (3): the event is
 * recorded before anything else.  Reads that find the user (by Stripe
 * customer, or a payment by its charge) take no lock.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "app.h"
#include "events.h"
#include "config.h"
#include "mail.h"
#include "referrals.h"
#include "settings.h"
#include "sql.h"
#include "stripe.h"
#include "lib/clock.h"
#include "lib/hooksig.h"
#include "lib/log.h"
#include "lib/num.h"

#define TOLERANCE_S	300

struct event {
	struct request	*r;
	const char	*id;
	const char	*type;
	char		 created[24];	/* unix seconds, as text */
	const cJSON	*obj;		/* data.object */
	const char	*user;		/* the payer, once locked */
	const PGresult	*payer;		/* STMT_PAYER_LOCK's row */
};

/*
 * Finds and locks the payer: by Stripe customer, else by the user id
 * we put in the metadata.  1 (ev->user set), 0 if no such user (the
 * event changes nothing: logged), -1 with *err set.
 */
static int
payer_locked(struct event *ev, const char *customer, const char *user,
    struct db_err *err)
{
	PGresult *res;

	if (user != NULL && !json_uuid_ok(user))
		user = NULL;
	if (customer == NULL && user == NULL) {
		log_warnx("stripe event %s (%s) names no customer of ours",
		    ev->id, ev->type);
		return 0;
	}
	if ((res = sql_run(ev->r, STMT_PAYER_LOCK, ARGS(customer, user),
	    err)) == NULL)
		return -1;
	if (sql_rows(res) == 0) {
		log_warnx("stripe event %s (%s): no account for customer %s "
		    "or user %s", ev->id, ev->type, customer ? customer : "-",
		    user ? user : "-");
		return 0;
	}
	ev->payer = res;
	ev->user = sql_str(res, 0, PL_ID);
	return 1;
}

/* A plan named in metadata, if it is a plan one can pay for. */
static const char *
paid_plan(struct event *ev, const char *id, struct plan *p)
{
	if (id == NULL || strcmp(id, "free") == 0 ||
	    settings_plan(settings_for(ev->r), id, p) != 0)
		return NULL;
	return p->id;
}

/* The plan of a Stripe price, else the one the metadata names. */
static const char *
plan_of(struct event *ev, const char *price, const char *meta_plan,
    struct plan *p)
{
	if (price != NULL && settings_plan_by_price(settings_for(ev->r), price,
	    p) == 0)
		return p->id;
	return paid_plan(ev, meta_plan, p);
}

/*
 * Moves the subscription mirror (STMT_SUB_APPLY); logs if ignored.  An
 * event that is not `clocked` applies only to a mirror that has taken
 * no event yet, and does not move its clock.
 */
static int
sub_apply(struct event *ev, const char *sub, const char *status,
    const char *plan, long long period_end, int cancel, bool clocked,
    struct db_err *err)
{
	char end[24];
	PGresult *res;

	snprintf(end, sizeof(end), "%lld", period_end);
	if ((res = sql_run(ev->r, STMT_SUB_APPLY, ARGS(ev->user, sub, status,
	    plan, period_end > 0 ? end : NULL, cancel < 0 ? NULL : cancel ?
	    "true" : "false", clocked ? ev->created : NULL), err)) == NULL)
		return -1;
	if (sql_rows(res) == 0)
		log_info("stripe event %s (%s): older than the subscription "
		    "state, or another subscription's: not applied", ev->id,
		    ev->type);
	return 0;
}

/*
 * A payment recorded (STMT_CHECKOUT_RECORD, STMT_INVOICE_RECORD, a row
 * only when it moved): its credits, if it completed with some, were
 * granted with it (`reason` the ledger's).
 */
static void
granted(struct event *ev, const PGresult *pay, const char *reason)
{
	if (sql_rows(pay) > 0 && strcmp(sql_str(pay, 0, PY_STATUS),
	    "completed") == 0 && sql_int(pay, 0, PY_CREDITS) > 0)
		event_later(ev->r, EV_GRANT, reason, "granted");
}

/* A payment that completed: the referral of its payer may qualify. */
static int
paid(struct event *ev, const PGresult *pay, struct db_err *err)
{
	if (sql_rows(pay) == 0 || strcmp(sql_str(pay, 0, PY_STATUS),
	    "completed") != 0 || sql_int(pay, 0, PY_AMOUNT) <= 0)
		return 0;
	return referral_qualify(ev->r, ev->user, sql_str(pay, 0, PY_ID), err);
}

/* --- Checkout ------------------------------------------------------------- */

/* A credit pack's Checkout Session, recorded as `status`. */
static int
pack_checkout(struct event *ev, const char *status, struct db_err *err)
{
	const cJSON *s = ev->obj;
	const char *credits = stripe_str(s, "metadata.credits");
	char amount[24];
	PGresult *pay;
	long long n;

	if (credits == NULL || num_parse(credits, 1, 100000000, &n) != 0 ||
	    stripe_str(s, "metadata.pack") == NULL) {
		log_errx("stripe event %s: Checkout Session %s of a pack "
		    "without its pack or credits", ev->id, stripe_str(s, "id"));
		return 0;
	}
	snprintf(amount, sizeof(amount), "%lld", stripe_int(s, "amount_total",
	    0));
	if ((pay = sql_run(ev->r, STMT_CHECKOUT_RECORD, ARGS(ev->user,
	    stripe_str(s, "id"), status, amount, credits, stripe_str(s,
	    "metadata.pack"), stripe_id(s, "payment_intent")), err)) == NULL)
		return -1;
	granted(ev, pay, "purchase");
	return paid(ev, pay, err);
}

/*
 * checkout.session.completed and the async outcomes: `status` is what
 * the event says of the payment, or NULL to read payment_status.
 */
static int
checkout(struct event *ev, const char *status, struct db_err *err)
{
	const cJSON *s = ev->obj;
	const char *mode = stripe_str(s, "mode");
	const char *pay = stripe_str(s, "payment_status");
	const char *user = stripe_str(s, "metadata.user_id");
	const char *customer = stripe_id(s, "customer"), *sub;
	struct plan p;
	int rc;

	if (stripe_str(s, "id") == NULL || mode == NULL) {
		log_errx("stripe event %s: a Checkout Session without id or "
		    "mode", ev->id);
		return 0;
	}
	if (user == NULL)
		user = stripe_str(s, "client_reference_id");
	if ((rc = payer_locked(ev, customer, user, err)) <= 0)
		return rc;
	if (status == NULL)
		status = pay != NULL && (strcmp(pay, "paid") == 0 ||
		    strcmp(pay, "no_payment_required") == 0) ? "completed" :
		    "pending";
	if (strcmp(mode, "payment") == 0) {
		const char *kind = stripe_str(s, "metadata.kind");

		if (kind == NULL || strcmp(kind, "pack") != 0)
			return 0;	/* not one of ours */
		return pack_checkout(ev, status, err);
	}
	if (strcmp(mode, "subscription") != 0)
		return 0;
	if (customer != NULL && sql_run(ev->r, STMT_CUSTOMER_LINK,
	    ARGS(ev->user, customer), err) == NULL)
		return -1;
	if ((sub = stripe_id(s, "subscription")) == NULL)
		return 0;
	/*
	 * Paid: the subscription is active.  The Checkout's word is the
	 * weakest -- Stripe sends it after the subscription's own events --
	 * so it counts only until one of those arrived, and sets no clock.
	 */
	return sub_apply(ev, sub, strcmp(status, "completed") == 0 ? "active" :
	    NULL, paid_plan(ev, stripe_str(s, "metadata.plan"), &p), 0, -1,
	    false, err);
}

static int
on_checkout_completed(struct event *ev, struct db_err *err)
{
	return checkout(ev, NULL, err);
}

static int
on_checkout_succeeded(struct event *ev, struct db_err *err)
{
	return checkout(ev, "completed", err);
}

static int
on_checkout_failed(struct event *ev, struct db_err *err)
{
	return checkout(ev, "failed", err);
}

/* --- invoices --------------------------------------------------------------- */

/* What an invoice says, in the shapes of older and newer API versions. */
struct invoice {
	const char	*id;
	const char	*sub;
	const char	*reason;	/* billing_reason */
	const char	*plan;		/* NULL: unknown */
	long long	 period_end;
	struct plan	 p;
};

static int
invoice_payer(struct event *ev, struct invoice *in, struct db_err *err)
{
	const cJSON *o = ev->obj;
	const cJSON *meta = stripe_get(o, "parent.subscription_details.metadata");
	const char *price;

	if (meta == NULL)
		meta = stripe_get(o, "subscription_details.metadata");
	in->id = stripe_str(o, "id");
	in->sub = stripe_id(o, "subscription");
	if (in->sub == NULL)
		in->sub = stripe_id(o, "parent.subscription_details.subscription");
	in->reason = stripe_str(o, "billing_reason");
	if (in->reason == NULL)
		in->reason = "";
	price = stripe_str(o, "lines.data.0.price.id");
	if (price == NULL)
		price = stripe_str(o, "lines.data.0.pricing.price_details.price");
	in->plan = plan_of(ev, price, stripe_str(meta, "plan"), &in->p);
	in->period_end = stripe_int(o, "lines.data.0.period.end", 0);
	if (in->id == NULL) {
		log_errx("stripe event %s: an invoice without an id", ev->id);
		return 0;
	}
	return payer_locked(ev, stripe_id(o, "customer"), stripe_str(meta,
	    "user_id"), err);
}

/* Records the invoice as `status` for `amount` cents and `credits`. */
static PGresult *
invoice_record(struct event *ev, const struct invoice *in, const char *status,
    long long amount, long long credits, struct db_err *err)
{
	char a[24], c[24];

	snprintf(a, sizeof(a), "%lld", amount);
	snprintf(c, sizeof(c), "%lld", credits);
	return sql_run(ev->r, STMT_INVOICE_RECORD, ARGS(ev->user, in->id,
	    status, a, c, in->plan, stripe_id(ev->obj, "payment_intent"),
	    stripe_id(ev->obj, "charge")), err);
}

static int
on_invoice_paid(struct event *ev, struct db_err *err)
{
	struct invoice in;
	long long credits = 0;
	PGresult *pay;
	int rc;

	if ((rc = invoice_payer(ev, &in, err)) <= 0)
		return rc;
	/* A period starts or renews: its credits; a proration: none. */
	if (strcmp(in.reason, "subscription_create") == 0 ||
	    strcmp(in.reason, "subscription_cycle") == 0) {
		if (in.plan != NULL)
			credits = in.p.monthly_credits;
		else
			log_errx("stripe event %s: invoice %s is for a price of "
			    "no plan (see the plans setting's stripe_price_id): "
			    "no credits granted", ev->id, in.id);
	}
	if ((pay = invoice_record(ev, &in, "completed", stripe_int(ev->obj,
	    "amount_paid", 0), credits, err)) == NULL)
		return -1;
	granted(ev, pay, "subscription");
	if (paid(ev, pay, err) != 0)
		return -1;
	if (in.sub == NULL)
		return 0;
	return sub_apply(ev, in.sub, "active", in.plan, in.period_end, -1, true,
	    err);
}

static int
on_invoice_failed(struct event *ev, struct db_err *err)
{
	struct invoice in;
	PGresult *pay;
	bool first;
	int rc;

	if ((rc = invoice_payer(ev, &in, err)) <= 0)
		return rc;
	if ((pay = invoice_record(ev, &in, "failed", stripe_int(ev->obj,
	    "amount_due", 0), 0, err)) == NULL)
		return -1;
	/*
	 * A first invoice failing is a Checkout that did not go through:
	 * its buyer saw it there, and there is no plan to lose yet.
	 */
	if (strcmp(in.reason, "subscription_create") == 0)
		return 0;
	first = sql_rows(pay) > 0;	/* the invoice's first failure */
	if (first && mail_queue(ev->r, MAIL_PAYMENT_FAILED, ev->user,
	    sql_str(ev->payer, 0, PL_EMAIL), sql_str(ev->payer, 0,
	    PL_LANGUAGE), sql_str(ev->payer, 0, PL_FIRST_NAME), NULL, err) != 0)
		return -1;
	if (in.sub == NULL)
		return 0;
	return sub_apply(ev, in.sub, "past_due", NULL, 0, -1, true, err);
}

/* --- subscriptions ---------------------------------------------------------- */

static const char *const sub_statuses[] = { "incomplete",
	"incomplete_expired", "trialing", "active", "past_due", "canceled",
	"unpaid", "paused", NULL };

static int
subscription(struct event *ev, bool deleted, struct db_err *err)
{
	const cJSON *s = ev->obj;
	const char *status = deleted ? "canceled" : stripe_str(s, "status");
	const char *price = stripe_str(s, "items.data.0.price.id");
	struct plan p;
	long long end;
	size_t i;
	int rc;

	for (i = 0; status != NULL && sub_statuses[i] != NULL &&
	    strcmp(sub_statuses[i], status) != 0; i++)
		;
	if (stripe_str(s, "id") == NULL || status == NULL ||
	    sub_statuses[i] == NULL) {
		log_errx("stripe event %s: a subscription without id or with "
		    "an unknown status", ev->id);
		return 0;
	}
	if ((rc = payer_locked(ev, stripe_id(s, "customer"), stripe_str(s,
	    "metadata.user_id"), err)) <= 0)
		return rc;
	end = stripe_int(s, "current_period_end", stripe_int(s,
	    "items.data.0.current_period_end", 0));
	return sub_apply(ev, stripe_str(s, "id"), status, plan_of(ev, price,
	    stripe_str(s, "metadata.plan"), &p), end, stripe_bool(s,
	    "cancel_at_period_end"), true, err);
}

static int
on_subscription_updated(struct event *ev, struct db_err *err)
{
	return subscription(ev, false, err);
}

static int
on_subscription_deleted(struct event *ev, struct db_err *err)
{
	return subscription(ev, true, err);
}

/* --- refunds ---------------------------------------------------------------- */

/*
 * charge.refunded: a charge refunded in full refunds its payment: the
 * transaction, the credits it granted as far as they are unspent, and
 * the referral cash it earned as far as it is still available.  A
 * partial refund changes nothing here (logged); when the rest is
 * refunded, the event that says so does it all.
 */
static int
on_charge_refunded(struct event *ev, struct db_err *err)
{
	const cJSON *c = ev->obj;
	PGresult *tx, *lock, *res;

	if (stripe_bool(c, "refunded") != 1) {
		log_info("stripe event %s: charge %s refunded in part (%lld of "
		    "%lld): left as it is", ev->id, stripe_str(c, "id") ?
		    stripe_str(c, "id") : "-", stripe_int(c, "amount_refunded",
		    0), stripe_int(c, "amount", 0));
		return 0;
	}
	if ((tx = sql_run(ev->r, STMT_TX_BY_CHARGE, ARGS(stripe_id(c,
	    "payment_intent"), stripe_str(c, "id"), stripe_id(c, "invoice")),
	    err)) == NULL)
		return -1;
	if (sql_rows(tx) == 0) {
		log_warnx("stripe event %s: no payment of ours for charge %s",
		    ev->id, stripe_str(c, "id") ? stripe_str(c, "id") : "-");
		return 0;
	}
	ev->user = sql_str(tx, 0, TC_USER);
	if ((lock = sql_run(ev->r, STMT_USER_LOCK, ARGS(ev->user), err)) ==
	    NULL || (res = sql_run(ev->r, STMT_TX_REFUND, ARGS(sql_str(tx, 0,
	    TC_ID)), err)) == NULL)
		return -1;
	if (sql_rows(lock) == 0 || sql_rows(res) == 0)
		return 0;	/* refunded before, or the account is gone */
	log_info("transaction %s refunded: %lld credits taken back",
	    sql_str(tx, 0, TC_ID), sql_int(res, 0, TR_TAKEN));
	event_later(ev->r, EV_CLAWBACK, "credits", sql_int(res, 0, TR_TAKEN) >
	    0 ? "taken" : "none_left");
	return referral_clawback(ev->r, sql_str(tx, 0, TC_ID), err);
}

/* --- the endpoint ------------------------------------------------------------ */

static const struct {
	const char	*type;
	int		(*apply)(struct event *, struct db_err *);
} handlers[] = {
	{ "checkout.session.completed", on_checkout_completed },
	{ "checkout.session.async_payment_succeeded", on_checkout_succeeded },
	{ "checkout.session.async_payment_failed", on_checkout_failed },
	{ "invoice.paid", on_invoice_paid },
	{ "invoice.payment_failed", on_invoice_failed },
	{ "customer.subscription.created", on_subscription_updated },
	{ "customer.subscription.updated", on_subscription_updated },
	{ "customer.subscription.deleted", on_subscription_deleted },
	{ "charge.refunded", on_charge_refunded },
};

#define NHANDLERS	(sizeof(handlers) / sizeof(handlers[0]))

/* Any failure to apply is 5xx: Stripe delivers again, later. */
static void
reply_retry(struct request *r, const struct db_err *err)
{
	if (err->status >= 500)
		reply_db_error(r, err);
	else
		reply_error(r, 500, "internal_error", "The event could not be "
		    "applied; it will be retried.", NULL);
}

void
payments_webhook(struct request *r)
{
	struct event ev = { .r = r };
	struct db_err err = { 0 };
	enum hooksig_result v;
	struct jerror jerr;
	const cJSON *root;
	PGresult *rec;
	int64_t t;
	size_t i;

	if (conf.stripe_webhook_secret == NULL) {
		reply_error(r, 503, "unavailable", "Payments are not available "
		    "right now.", NULL);
		return;
	}
	if (req_read_body(r) != 0) {
		reply_error(r, 400, "invalid_json", "The request body is "
		    "incomplete.", NULL);
		return;
	}
	v = hooksig_verify(req_param(r, "HTTP_STRIPE_SIGNATURE"), r->body,
	    r->body_len, conf.stripe_webhook_secret,
	    strlen(conf.stripe_webhook_secret), clock_unix(), TOLERANCE_S, &t);
	if (v != HOOKSIG_OK) {
		log_warnx("stripe webhook refused: signature %s",
		    hooksig_result_name(v));
		event_note(EV_WEBHOOK, "unknown", "bad_signature", NULL);
		reply_error(r, 400, "invalid_signature", "The Stripe signature "
		    "is missing, does not match, or is too old.", NULL);
		return;
	}
	if ((root = json_parse(r->arena, r->body, r->body_len, &jerr)) ==
	    NULL) {
		reply_error(r, 400, jerr.code, jerr.message, NULL);
		return;
	}
	ev.id = stripe_str(root, "id");
	ev.type = stripe_str(root, "type");
	ev.obj = stripe_get(root, "data.object");
	snprintf(ev.created, sizeof(ev.created), "%lld", stripe_int(root,
	    "created", -1));
	if (ev.id == NULL || ev.type == NULL || !cJSON_IsObject(ev.obj) ||
	    stripe_int(root, "created", -1) < 0 || strlen(ev.id) > 255) {
		reply_error(r, 400, "invalid_input", "This is not a Stripe "
		    "event.", NULL);
		return;
	}
	for (i = 0; i < NHANDLERS && strcmp(handlers[i].type, ev.type) != 0;
	    i++)
		;
	if (sql_begin(r, &err) != 0 || (rec = sql_run(r, STMT_EVENT_RECORD,
	    ARGS(ev.id, ev.type, r->body, i < NHANDLERS ? "handled" :
	    "ignored", ev.created), &err)) == NULL)
		goto fail;
	if (sql_rows(rec) > 0 && i < NHANDLERS &&
	    handlers[i].apply(&ev, &err) != 0)
		goto fail;
	if (sql_commit(r, &err) != 0)
		goto fail;
	if (sql_rows(rec) == 0)
		log_info("stripe event %s (%s) seen before: nothing to do",
		    ev.id, ev.type);
	/* Types Miky does not handle are counted together. */
	event_note(EV_WEBHOOK, i < NHANDLERS ? ev.type : "other",
	    sql_rows(rec) == 0 ? "duplicate" : i < NHANDLERS ? "applied" :
	    "ignored", NULL);
	reply(r, 200, "application/json", "{\"received\":true}", 17);
	return;
fail:
	sql_rollback(r);
	log_warnx("stripe event %s (%s) not applied (%s): Stripe will retry",
	    ev.id, ev.type, err.sqlstate[0] ? err.sqlstate : "no database");
	event_note(EV_WEBHOOK, i < NHANDLERS ? ev.type : "other", "failed",
	    NULL);
	reply_retry(r, &err);
}
