#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "app.h"
#include "settings.h"
#include "lib/clock.h"
#include "lib/db.h"
#include "lib/log.h"
#include "lib/xalloc.h"

#define RELOAD_MS	60000

const char *const persona_ids[PERSONA_COUNT + 1] = {
	"academic", "marketer", "engineer", "coach", "sensei", "lawyer",
	"medical", "god-mode", "richman", "general", NULL
};

struct settings {
	atomic_int	 refs;
	cJSON		*root;		/* object: key -> value */
};

static pthread_mutex_t	 mu = PTHREAD_MUTEX_INITIALIZER;
static struct settings	*current;
static pthread_t	 listener;
static atomic_int	 stopping;
static char		*conninfo;

static void
unref(struct settings *s)
{
	if (s != NULL && atomic_fetch_sub(&s->refs, 1) == 1) {
		cJSON_Delete(s->root);
		free(s);
	}
}

/* Reads every row into a new snapshot and publishes it. */
static int
load(PGconn *c)
{
	PGresult *res = PQexec(c, "SELECT key, value::text FROM "
	    "admin_settings");
	struct settings *s, *old;
	int i;

	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		log_warnx("settings: %s", PQresultErrorMessage(res));
		PQclear(res);
		return -1;
	}
	s = xcalloc(1, sizeof(*s));
	atomic_init(&s->refs, 1);
	s->root = cJSON_CreateObject();
	if (s->root == NULL)
		xoom();
	for (i = 0; i < PQntuples(res); i++) {
		cJSON *v = cJSON_Parse(PQgetvalue(res, i, 1));

		if (v != NULL)
			cJSON_AddItemToObject(s->root, PQgetvalue(res, i, 0), v);
	}
	PQclear(res);
	pthread_mutex_lock(&mu);
	old = current;
	current = s;
	pthread_mutex_unlock(&mu);
	unref(old);
	return 0;
}

/* LISTEN and reload until stopped; reconnects when the link drops. */
static void *
listen_main(void *arg)
{
	PGconn *c = NULL;
	PGnotify *n;
	int64_t next_reload = 0;

	(void)arg;
	while (!atomic_load(&stopping)) {
		if (c == NULL || PQstatus(c) != CONNECTION_OK) {
			if (c != NULL)
				PQfinish(c);
			c = db_connect(conninfo, "miky-settings");
			if (c == NULL) {
				struct timespec ts = { 1, 0 };

				nanosleep(&ts, NULL);
				continue;
			}
			PQclear(PQexec(c, "LISTEN miky_settings"));
			next_reload = 0;
		}
		if (clock_ms() >= next_reload) {
			load(c);
			next_reload = clock_ms() + RELOAD_MS;
		}
		struct pollfd pfd = { PQsocket(c), POLLIN, 0 };

		if (poll(&pfd, 1, 500) > 0 && PQconsumeInput(c) == 1) {
			int changed = 0;

			while ((n = PQnotifies(c)) != NULL) {
				changed = 1;
				PQfreemem(n);
			}
			if (changed)
				next_reload = 0;
		}
	}
	if (c != NULL)
		PQfinish(c);
	return NULL;
}

int
settings_start(const char *info)
{
	PGconn *c;

	conninfo = xstrdup(info);
	/* A first load now, so requests never see an empty cache. */
	if ((c = db_connect(conninfo, "miky-settings")) != NULL) {
		load(c);
		PQfinish(c);
	}
	if (current == NULL) {
		struct settings *s = xcalloc(1, sizeof(*s));

		atomic_init(&s->refs, 1);
		s->root = cJSON_CreateObject();
		current = s;
	}
	atomic_store(&stopping, 0);
	return pthread_create(&listener, NULL, listen_main, NULL) == 0 ? 0 :
	    -1;
}

void
settings_stop(void)
{
	atomic_store(&stopping, 1);
	pthread_join(listener, NULL);
	unref(current);
	current = NULL;
	free(conninfo);
	conninfo = NULL;
}

static void
release(void *p)
{
	unref(p);
}

const struct settings *
settings_for(struct request *r)
{
	struct settings *s;

	pthread_mutex_lock(&mu);
	s = current;
	atomic_fetch_add(&s->refs, 1);
	pthread_mutex_unlock(&mu);
	arena_cleanup(r->arena, release, s);
	return s;
}

const cJSON *
settings_get(const struct settings *s, const char *key)
{
	return cJSON_GetObjectItemCaseSensitive(s->root, key);
}

long long
settings_int(const struct settings *s, const char *key, long long def)
{
	const cJSON *v = settings_get(s, key);

	if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble))
		return def;
	return (long long)v->valuedouble;
}

static const char *
str(const cJSON *obj, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

int
settings_persona(const struct settings *s, const char *id, struct persona *p)
{
	const cJSON *all = settings_get(s, "personas"), *one, *credits;

	one = cJSON_GetObjectItemCaseSensitive(all, id);
	credits = cJSON_GetObjectItemCaseSensitive(one, "credits_per_message");
	if (!cJSON_IsObject(one) || !cJSON_IsNumber(credits) ||
	    credits->valuedouble < 0 || credits->valuedouble > 1000000)
		return -1;
	p->id = one->string;
	p->name = str(one, "name");
	p->description = str(one, "description");
	p->prompt = str(one, "system_prompt");
	p->credits = (long long)credits->valuedouble;
	return p->name != NULL && p->prompt != NULL ? 0 : -1;
}
