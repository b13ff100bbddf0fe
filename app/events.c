#include <stdio.h>

#include "app.h"
#include "events.h"
#include "lib/buf.h"
#include "lib/jsonw.h"
#include "lib/log.h"
#include "lib/metrics.h"

static const struct {
	const char	*family;	/* the log line's "event" */
	const char	*metric;
	const char	*help;
	const char	*label[2];
} defs[EV__MAX] = {
	[EV_WEBHOOK] = { "webhook", "miky_webhook_events_total",
	    "Stripe webhook events received, by type and outcome.",
	    { "type", "outcome" } },
	[EV_GRANT] = { "grant", "miky_grants_total",
	    "Credits and referral cash granted (and admin credit changes), "
	    "by reason and outcome.", { "reason", "outcome" } },
	[EV_CLAWBACK] = { "clawback", "miky_clawbacks_total",
	    "Credits or referral cash taken back after a refund.",
	    { "kind", "outcome" } },
	[EV_CASHOUT] = { "cashout", "miky_cashouts_total",
	    "Cash-outs requested, completed and failed.",
	    { "status", "outcome" } },
	[EV_ADMIN] = { "admin", "miky_admin_actions_total",
	    "Changes made through the admin API, by action and outcome.",
	    { "action", "outcome" } },
};

static int	ids[EV__MAX];

int
events_init(void)
{
	int i;

	for (i = 0; i < EV__MAX; i++)
		if ((ids[i] = metrics_family(defs[i].metric, defs[i].help,
		    defs[i].label[0], defs[i].label[1])) < 0)
			return -1;
	return 0;
}

void
event_note(enum event_family f, const char *kind, const char *outcome,
    const char *fields)
{
	struct buf b = BUF_INIT;
	struct jw w;

	metrics_count(ids[f], kind, outcome);
	jw_init(&w, &b);
	jw_obj(&w);
	jw_kstr(&w, "event", defs[f].family);
	jw_kstr(&w, defs[f].label[0], kind);
	jw_kstr(&w, defs[f].label[1], outcome);
	jw_end(&w);
	/* The members without the braces, then the caller's. */
	b.p[--b.len] = '\0';
	if (fields != NULL && *fields != '\0')
		buf_printf(&b, ",%s", fields);
	log_fields(LOG_INFO, "event", b.p + 1);
	buf_free(&b);
}

/* An event waiting for its transaction's commit (app_req()->later). */
struct event_later {
	enum event_family	 family;
	const char		*kind;
	const char		*outcome;
	struct event_later	*next;
};

void
event_later(struct request *r, enum event_family f, const char *kind,
    const char *outcome)
{
	struct app_req *ar = app_req(r);
	struct event_later *e = arena_zalloc(r->arena, sizeof(*e)), **tail;

	e->family = f;
	e->kind = arena_strdup(r->arena, kind);
	e->outcome = arena_strdup(r->arena, outcome);
	for (tail = &ar->later; *tail != NULL; tail = &(*tail)->next)
		;
	*tail = e;
}

void
events_commit(struct request *r)
{
	struct event_later *e;

	for (e = app_req(r)->later; e != NULL; e = e->next)
		event_note(e->family, e->kind, e->outcome, NULL);
	app_req(r)->later = NULL;
}

void
events_drop(struct request *r)
{
	app_req(r)->later = NULL;
}
