/*
 * Miky's settings from the environment: one table in config.c says what
 * each is, its default and bounds.  Loaded once at start; read-only after.
 */
#ifndef MIKY_APP_CONFIG_H
#define MIKY_APP_CONFIG_H

#include <stdio.h>

struct app_config {
	const char	*database_url;
	const char	*jwt_secret;
	const char	*public_base_url;
	const char	*listen;
	long long	 workers;
	long long	 threads;
	long long	 queue_ms;
	long long	 io_timeout_ms;
	long long	 db_pool;
	long long	 db_lanes;
	long long	 drain_seconds;
	long long	 statement_timeout_ms;
	long long	 db_connect_timeout_ms;
	long long	 thread_stack_kb;
	long long	 hash_concurrency;
	long long	 standin_delay_ms;
	const char	*openai_api_key;
	const char	*openai_base_url;
	const char	*stripe_secret_key;
	const char	*stripe_webhook_secret;
	const char	*stripe_api_base;
	long long	 stripe_timeout_ms;
	const char	*smtp_url;
	const char	*mail_from;
	const char	*mail_dir;
	long long	 mail_max_attempts;
	long long	 mail_retry_base_s;
	long long	 address_fails;
	long long	 sweep_ms;
	long long	 hold_grace_ms;
	long long	 mail_retention_days;
	long long	 pending_days;
	const char	*cors_origins;
	const char	*log_level;
};

extern struct app_config conf;

/* app_config_load() flags: what a subcommand can do without. */
#define CONF_NO_JWT	0x01	/* signs no tokens (the mailer) */

/*
 * Loads and checks every setting, writing one line per problem to errs.
 * Returns the number of problems.  Workers and threads left at 0 are
 * sized from the CPU count.  JWT_SECRET is required unless CONF_NO_JWT.
 */
int	app_config_load(FILE *errs, unsigned flags);
void	app_config_dump(FILE *);

#endif
