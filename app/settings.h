/*
 * admin_settings, cached in each worker.  A listener thread keeps the
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

#include <cJSON.h>

struct request;
struct settings;

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

const cJSON	*settings_get(const struct settings *, const char *key);
long long	 settings_int(const struct settings *, const char *key,
		    long long def);
/* Fills *p for a persona id; -1 if unknown or badly configured. */
int		 settings_persona(const struct settings *, const char *id,
		    struct persona *p);

#endif
