/*
 * Business settings: admin_settings, typed and cached in each worker.
 *
 * Every key is a record in one table (settings.c), as PostgreSQL keeps
 * its GUCs: name, type, default, bounds, description.  Code reads them
 * through `enum setting`, never by name, and gets a value that has been
 * checked: a row that is missing or does not pass its check is logged and
 * read as the default.  A listener thread keeps the
 * cache fresh: it LISTENs on miky_settings (a trigger notifies on every
 * change) and also reloads every minute in case a notification was
 * missed, so a change made by an admin reaches every worker of every
 * host within moments, without a restart.
 *
 * A snapshot is immutable and reference-counted: take one per request
 * with settings_for(), which releases it when the request ends.
 */
#ifndef MIKY_APP_SETTINGS_H
#define MIKY_APP_SETTINGS_H

#include <stdio.h>

#include <cJSON.h>
#include <libpq-fe.h>

struct request;
struct settings;

enum setting {
	SET_SIGNUP_CREDITS,
	SET_REFERRAL_CREDITS,
	SET_REFERRAL_CASH_CENTS,
	SET_REFERRAL_MONTHLY_CAP,
	SET_CASHOUT_MIN_CENTS,
	SET_CHAT_MAX_CONCURRENT_TURNS,
	SET_CHAT_TURNS_PER_MINUTE,
	SET_CHAT_HISTORY_BUDGET_CHARS,
	SET_CHAT_HISTORY_MESSAGES,
	SET_AI_MAX_TOKENS,
	SET_AI_CONNECT_TIMEOUT_MS,
	SET_AI_FIRST_TOKEN_TIMEOUT_MS,
	SET_AI_IDLE_TIMEOUT_MS,
	SET_AI_TOTAL_TIMEOUT_MS,
	SET_AI_MAX_RETRIES,
	SET_VOICE_CREDITS_PER_REQUEST,
	SET_VOICE_MAX_BYTES,
	SET_VOICE_MAX_CONCURRENT,
	SET_PLANS,
	SET_CREDIT_PACKS,
	SET_CURRENCY,
	SET_MODELS,
	SET_PERSONAS,
	SET__MAX
};

enum setting_type {
	SETTING_INT,		/* an integer within [min, max] */
	SETTING_JSON,		/* a JSON value that passes check() */
};

struct setting_def {
	const char		*key;
	enum setting_type	 type;
	long long		 def, min, max;	/* SETTING_INT */
	const char		*def_json;	/* SETTING_JSON */
	/* NULL if v is acceptable, else a sentence saying why not. */
	const char		*(*check)(const cJSON *v);
	const char		*description;
};

extern const struct setting_def setting_defs[SET__MAX];

#define PLAN_COUNT	3
extern const char *const plan_ids[PLAN_COUNT + 1];	/* free plus business */

#define PERSONA_COUNT	10
extern const char *const persona_ids[PERSONA_COUNT + 1];

struct persona {
	const char	*id;
	const char	*name;
	const char	*description;
	const char	*prompt;
	long long	 credits;
};

/* Loads the settings and starts the listener; in each worker. */
int		 settings_start(const char *conninfo);
void		 settings_stop(void);

/* The current snapshot, held until the request ends. */
const struct settings *settings_for(struct request *);

/* The value of an integer setting. */
long long	 settings_int(const struct settings *, enum setting);
/* The value of a JSON setting, owned by the snapshot. */
const cJSON	*settings_json(const struct settings *, enum setting);

/* The setting named `key`, or -1. */
int		 settings_lookup(const char *key);
/*
 * Checks a new value for setting `s`: NULL if it is acceptable, else a
 * sentence for the client naming what is wrong.
 */
const char	*settings_check(enum setting, const cJSON *value);
/*
 * Writes {key: value, ...} for every setting, each the value in effect
 * given `rows` (STMT_SETTINGS_ALL: the rows of admin_settings): its
 * row's value if that passes its check, else the default.  This is what
 * every worker uses once it has reloaded.
 */
struct jw;
void		 settings_write(struct jw *, const PGresult *rows);
/*
 * `miky settings`: the table, one setting a line, tab-separated: key,
 * type (int or json), default, min, max, description.
 */
void		 settings_describe(FILE *);
/* The model of a plan (models setting), never NULL. */
const char	*settings_model(const struct settings *, const char *plan);
/* A plan of the plans setting, and a credit pack of credit_packs. */
struct plan {
	const char	*id;
	const char	*name;
	long long	 price_cents;
	long long	 monthly_credits;
	const char	*price_id;	/* stripe_price_id, or NULL */
};
struct pack {
	const char	*id;
	long long	 credits;
	long long	 price_cents;
	const char	*price_id;	/* stripe_price_id, or NULL */
};
/* Fills *p for a plan id; -1 if unknown. */
int		 settings_plan(const struct settings *, const char *id,
		    struct plan *p);
/* Fills *p for the plan sold at Stripe price price_id; -1 if none. */
int		 settings_plan_by_price(const struct settings *,
		    const char *price_id, struct plan *p);
/* Fills *p for a pack id; -1 if unknown. */
int		 settings_pack(const struct settings *, const char *id,
		    struct pack *p);
/* The currency of prices, lower case ("usd"). */
const char	*settings_currency(const struct settings *);
/* Fills *p for a persona id; -1 if unknown or badly configured. */
int		 settings_persona(const struct settings *, const char *id,
		    struct persona *p);

#endif
