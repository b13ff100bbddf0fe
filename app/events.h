/*
 * Money and admin events, for operators: each is counted in a labelled
 * Prometheus counter (GET /api/metrics) and written as one JSON log line
 * ("msg":"event", with the request's id, route and user added by the
 * logger), so a dashboard can graph them and a log search can find each
 * one.  Call event_note() after the change has committed, never for a
 * change that was rolled back.
 *
 *	event_note(EV_WEBHOOK, "invoice.paid", "applied", NULL);
 *	event_later(r, EV_GRANT, "purchase", "granted");  (in a transaction)
 *
 * Kinds and outcomes are short words from a fixed set in the code (a
 * Stripe event type is fine: there are a bounded number); never user
 * input, which would make a series per value.
 */
#ifndef MIKY_APP_EVENTS_H
#define MIKY_APP_EVENTS_H

enum event_family {
	EV_WEBHOOK,	/* miky_webhook_events_total{type, outcome} */
	EV_GRANT,	/* miky_grants_total{reason, outcome}: credits, cash */
	EV_CLAWBACK,	/* miky_clawbacks_total{kind, outcome} */
	EV_CASHOUT,	/* miky_cashouts_total{status, outcome} */
	EV_ADMIN,	/* miky_admin_actions_total{action, outcome} */
	EV__MAX
};

/*
 * Inside the request's transaction: notes the event when sql_commit()
 * commits it (sql.c calls events_commit()), and forgets it if the
 * transaction rolls back or never commits (events_drop()).  Kind and
 * outcome are copied.
 */
struct request;
void	event_later(struct request *, enum event_family, const char *kind,
	    const char *outcome);
void	events_commit(struct request *);
void	events_drop(struct request *);

/* Defines the counters; once, before the workers are forked. */
int	events_init(void);

/*
 * Records one event.  `fields`, if not NULL, are more members for the
 * log line: a JSON object's body without braces, made with the JSON
 * writer (jw) so that every value is escaped.
 */
void	event_note(enum event_family, const char *kind, const char *outcome,
	    const char *fields);

#endif
