/*
 * What the parts of Miky share: access levels of the route table, the
 * per-request state, the dispatcher and the handlers it calls.
 */
#ifndef MIKY_APP_H
#define MIKY_APP_H

#include "lib/request.h"

enum access {
	PUBLIC,		/* anyone */
	USER,		/* a valid access token of a user not banned */
	ADMIN,		/* a USER whose role is admin */
};

struct db;
struct user;

struct event_later;

#define APP_PREFETCH	4

struct app_req {
	struct db	*db;		/* borrowed connection, if any */
	struct user	*user;		/* USER and ADMIN routes */
	struct event_later *later;	/* events awaiting commit (events.h) */
	/* sql_prefetch(): reads sent along with the next statement. */
	struct sql_pre {
		int		 stmt;
		const char	**params;
		int		 nparams;
		bool		 sent;
		struct pg_result *res;	/* NULL: failed, or taken */
	}		 pre[APP_PREFETCH];
	int		 npre;
	/* The route's: its reads, given once the token names the user. */
	void		(*prefetch)(struct request *, const char *user_id);
};

static inline struct app_req *
app_req(struct request *r)
{
	return r->app;
}

/* routes.c */
int	routes_init(void);
void	app_handle(struct request *);

/*
 * Prefetch functions (sql_prefetch()): the reads a route's handler will
 * make, for the common case, so that they travel with the user's row.
 */
void	conv_list_prefetch(struct request *, const char *user_id);
void	conv_get_prefetch(struct request *, const char *user_id);

/* auth.c */
extern const struct jfield auth_signup_in[], auth_email_in[], auth_verify_in[],
    auth_signin_in[], auth_reset_in[], auth_refresh_in[], auth_logout_in[];
void	auth_signup(struct request *);
void	auth_verify_email(struct request *);
void	auth_resend_verification(struct request *);
void	auth_signin(struct request *);
void	auth_forgot_password(struct request *);
void	auth_reset_password(struct request *);
void	auth_refresh_token(struct request *);
void	auth_logout(struct request *);

/* user.c */
extern const struct jfield user_profile_in[], user_referral_in[],
    user_password_in[], user_delete_in[];
void	user_profile(struct request *);
void	user_profile_update(struct request *);
void	user_credits(struct request *);
void	user_verify_referral(struct request *);
/*
 * The active account whose referral code this is (either case): a row
 * (id, first_name), or NULL after replying `status` invalid_referral_code
 * (api.md: 400 at sign-up, 404 when checking a code) or an error.
 */
struct pg_result;
struct pg_result *referrer_or_reply(struct request *, const char *code,
	    int status);
void	user_change_password(struct request *);
void	user_export(struct request *);
void	user_delete(struct request *);

/* conversations.c */
extern const struct jfield conv_create_in[], conv_update_in[];
void	conv_list(struct request *);
void	conv_create(struct request *);
void	conv_get(struct request *);
void	conv_update(struct request *);
void	conv_delete(struct request *);
void	personas_list(struct request *);

/* payments.c */
extern const struct jfield payments_plan_in[], payments_pack_in[],
    payments_cancel_in[];
void	payments_plans(struct request *);
void	payments_create_subscription(struct request *);
void	payments_update_subscription(struct request *);
void	payments_cancel_subscription(struct request *);
void	payments_buy_credits(struct request *);
void	payments_transactions(struct request *);

/* webhook.c */
void	payments_webhook(struct request *);

/* referrals.c */
extern const struct jfield referrals_cashout_in[];
void	referrals_stats(struct request *);
void	referrals_share_link(struct request *);
void	referrals_cashout(struct request *);

/* admin.c, admin_money.c, admin_settings.c */
extern const struct jfield admin_user_in[], admin_tx_in[];
extern struct jfield admin_settings_in[];	/* from settings.c's table */
void	admin_settings_init(void);
void	admin_stats(struct request *);
void	admin_users(struct request *);
void	admin_user_update(struct request *);
void	admin_conversations(struct request *);
void	admin_transactions(struct request *);
void	admin_transaction_update(struct request *);
void	admin_settings_get(struct request *);
void	admin_settings_put(struct request *);

/* ops.c */
void	ops_health(struct request *);
void	ops_metrics(struct request *);

/* checkledger.c: `miky check-ledger`; returns the exit status. */
int	check_ledger_main(int argc, char *argv[]);

/* migrate.c */
int	migrate_run(const char *conninfo);

/* serve.c */
int	serve_main(void);

/* mailer.c */
int	mailer_main(void);

#endif
