#include <stdlib.h>
#include <unistd.h>

#include "config.h"
#include "lib/config.h"
#include "lib/log.h"

struct app_config conf;

#define JWT_DESC	"at least 32 bytes, e.g. openssl rand -base64 48"

static const struct config_var vars[] = {
	{ "DATABASE_URL", CONFIG_SECRET, NULL, 1, 4096, true, NULL,
	    "libpq connection string", &conf.database_url, NULL },
	/* Required, but not by every subcommand: app_config_load(). */
	{ "JWT_SECRET", CONFIG_SECRET, NULL, 32, 4096, false, NULL, JWT_DESC,
	    &conf.jwt_secret, NULL },
	{ "PUBLIC_BASE_URL", CONFIG_URL, "http://127.0.0.1:8080", 0, 0, false,
	    "http,https", "origin used in mails and share links",
	    &conf.public_base_url, NULL },
	{ "MIKY_LISTEN", CONFIG_STR, NULL, 1, 200, false, NULL,
	    "socket path or host:port when fd 0 is not a socket",
	    &conf.listen, NULL },
	{ "MIKY_WORKERS", CONFIG_INT, "0", 0, 256, false, NULL,
	    "worker processes (0: one per CPU)", NULL, &conf.workers },
	{ "MIKY_THREADS", CONFIG_INT, "64", 1, 16384, false, NULL,
	    "threads per worker at most (each serves one request at a time)",
	    NULL, &conf.threads },
	{ "MIKY_QUEUE_MS", CONFIG_INT, "2000", 0, 60000, false, NULL,
	    "how long a request waits for a free thread before a 503", NULL,
	    &conf.queue_ms },
	{ "MIKY_IO_TIMEOUT_MS", CONFIG_INT, "60000", 100, 3600000, false, NULL,
	    "a read from or write to nginx stalled this long ends the request",
	    NULL, &conf.io_timeout_ms },
	{ "MIKY_DB_POOL", CONFIG_INT, "8", 1, 256, false, NULL,
	    "database connections per worker", NULL, &conf.db_pool },
	{ "MIKY_DB_LANES", CONFIG_INT, "0", 0, 256, false, NULL,
	    "user-row reads in flight at once over all workers (0: one per "
	    "four CPUs)", NULL, &conf.db_lanes },
	{ "MIKY_DRAIN_SECONDS", CONFIG_INT, "150", 1, 3600, false, NULL,
	    "grace period for in-flight requests on stop or reload", NULL,
	    &conf.drain_seconds },
	{ "MIKY_STATEMENT_TIMEOUT_MS", CONFIG_INT, "5000", 100, 600000, false,
	    NULL, "PostgreSQL statement_timeout", NULL,
	    &conf.statement_timeout_ms },
	{ "MIKY_DB_CONNECT_TIMEOUT_MS", CONFIG_INT, "1500", 100, 60000, false,
	    NULL, "time to connect to PostgreSQL before a request gets 503",
	    NULL, &conf.db_connect_timeout_ms },
	{ "MIKY_THREAD_STACK_KB", CONFIG_INT, "256", 64, 65536, false, NULL,
	    "stack size of each request thread", NULL, &conf.thread_stack_kb },
	{ "MIKY_HASH_CONCURRENCY", CONFIG_INT, "2", 1, 64, false, NULL,
	    "password hashes at once per worker (19 MiB each)", NULL,
	    &conf.hash_concurrency },
	{ "OPENAI_API_KEY", CONFIG_SECRET, NULL, 1, 512, false, NULL,
	    "unset: a labelled local stand-in model", &conf.openai_api_key,
	    NULL },
	{ "OPENAI_BASE_URL", CONFIG_URL, "https://api.openai.com/v1", 0, 0,
	    false, "http,https", "any OpenAI-compatible server",
	    &conf.openai_base_url, NULL },
	{ "MIKY_STANDIN_DELAY_MS", CONFIG_INT, "40", 0, 10000, false, NULL,
	    "pause between pieces of the stand-in model's answer", NULL,
	    &conf.standin_delay_ms },
	{ "STRIPE_SECRET_KEY", CONFIG_SECRET, NULL, 1, 512, false, NULL,
	    "unset: payment endpoints answer 503", &conf.stripe_secret_key,
	    NULL },
	{ "STRIPE_WEBHOOK_SECRET", CONFIG_SECRET, NULL, 1, 512, false, NULL,
	    "webhook signing secret (whsec_...)", &conf.stripe_webhook_secret,
	    NULL },
	{ "STRIPE_API_BASE", CONFIG_URL, "https://api.stripe.com", 0, 0,
	    false, "http,https", "Stripe API origin", &conf.stripe_api_base,
	    NULL },
	{ "MIKY_STRIPE_TIMEOUT_MS", CONFIG_INT, "20000", 100, 120000, false,
	    NULL, "one attempt of a Stripe API call (3 at most, with the same "
	    "Idempotency-Key)", NULL, &conf.stripe_timeout_ms },
	{ "SMTP_URL", CONFIG_URL, NULL, 0, 0, false, "smtp,smtps",
	    "unset: mails are written under MIKY_MAIL_DIR", &conf.smtp_url,
	    NULL },
	{ "MAIL_FROM", CONFIG_STR, "Miky <no-reply@miky.invalid>", 3, 320,
	    false, NULL, "From header of outgoing mail", &conf.mail_from,
	    NULL },
	{ "MIKY_MAIL_DIR", CONFIG_STR, "var/mail", 1, 1024, false, NULL,
	    "dev mailbox used without SMTP_URL", &conf.mail_dir, NULL },
	{ "MIKY_MAIL_MAX_ATTEMPTS", CONFIG_INT, "8", 1, 100, false, NULL,
	    "attempts at a mail before it is marked dead", NULL,
	    &conf.mail_max_attempts },
	{ "MIKY_MAIL_RETRY_BASE_S", CONFIG_INT, "30", 1, 3600, false, NULL,
	    "first retry delay; doubles each attempt, up to an hour", NULL,
	    &conf.mail_retry_base_s },
	{ "MIKY_ADDRESS_FAILS", CONFIG_INT, "20", 1, 1000000, false, NULL,
	    "failed sign-ins per client address (IPv6: per /64) in ten "
	    "minutes before it gets 429", NULL, &conf.address_fails },
	{ "MIKY_SWEEP_MS", CONFIG_INT, "30000", 100, 3600000, false, NULL,
	    "how often each worker runs the janitor (expired credit holds, "
	    "sent mail, pending accounts)", NULL, &conf.sweep_ms },
	{ "MIKY_HOLD_GRACE_MS", CONFIG_INT, "60000", 0, 3600000, false, NULL,
	    "time a chat turn may take to settle after the model's total "
	    "timeout, before its credits are refunded", NULL,
	    &conf.hold_grace_ms },
	{ "MIKY_MAIL_RETENTION_DAYS", CONFIG_INT, "30", 1, 3650, false, NULL,
	    "days sent and dead mail is kept in the outbox", NULL,
	    &conf.mail_retention_days },
	{ "MIKY_PENDING_DAYS", CONFIG_INT, "7", 1, 365, false, NULL,
	    "days an unverified sign-up is kept", NULL, &conf.pending_days },
	{ "CORS_ORIGINS", CONFIG_STR, NULL, 1, 4096, false, NULL,
	    "comma-separated browser origins allowed besides the site's own",
	    &conf.cors_origins, NULL },
	{ "MIKY_LOG_LEVEL", CONFIG_STR, "info", 4, 5, false, NULL,
	    "debug, info, warn, error", &conf.log_level, NULL },
	{ NULL, 0, NULL, 0, 0, false, NULL, NULL, NULL, NULL }
};

int
app_config_load(FILE *errs, unsigned flags)
{
	enum log_level level;
	const char *secret = getenv("JWT_SECRET");
	int problems = config_load(vars, errs);

	/* A secret that is set but too short has had its line already. */
	if ((secret == NULL || *secret == '\0') && !(flags & CONF_NO_JWT)) {
		fprintf(errs, "JWT_SECRET: not set (%s)\n", JWT_DESC);
		problems++;
	}

	if (conf.log_level != NULL) {
		if (log_parse_level(conf.log_level, &level) != 0) {
			fprintf(errs, "MIKY_LOG_LEVEL: must be debug, info, "
			    "warn or error\n");
			problems++;
		} else
			log_set_level(level);
	}
	if (conf.workers == 0 || conf.db_lanes == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);

		if (n < 1)
			n = 1;
		if (conf.workers == 0)
			conf.workers = n;
		if (conf.db_lanes == 0)
			conf.db_lanes = (n + 3) / 4;
	}
	return problems;
}

void
app_config_dump(FILE *out)
{
	config_dump(vars, out);
}
