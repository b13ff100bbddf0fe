#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "app.h"
#include "sql.h"
#include "settings.h"
#include "lib/clock.h"
#include "lib/db.h"
#include "lib/jsonw.h"
#include "lib/log.h"
#include "lib/xalloc.h"

#define RELOAD_MS	60000

const char *const persona_ids[PERSONA_COUNT + 1] = {
	"academic", "marketer", "engineer", "coach", "sensei", "lawyer",
	"medical", "god-mode", "richman", "general", NULL
};

#define MINUTE_MS	60000
#define HOUR_MS		3600000

static const char *check_plans(const cJSON *);
static const char *check_packs(const cJSON *);
static const char *check_currency(const cJSON *);
static const char *check_models(const cJSON *);
static const char *check_personas(const cJSON *);

#define INT(k, d, lo, hi, desc) \
	{ k, SETTING_INT, d, lo, hi, NULL, NULL, desc }
#define JSON(k, d, check, desc) \
	{ k, SETTING_JSON, 0, 0, 0, d, check, desc }

const struct setting_def setting_defs[SET__MAX] = {
	[SET_SIGNUP_CREDITS] = INT("signup_credits", 100, 0, 1000000,
	    "credits a new account starts with"),
	[SET_REFERRAL_CREDITS] = INT("referral_credits", 300, 0, 1000000,
	    "credits a referrer earns when an invitee activates"),
	[SET_REFERRAL_CASH_CENTS] = INT("referral_cash_cents", 200, 0,
	    100000, "cash a referrer earns at an invitee's first payment"),
	[SET_REFERRAL_MONTHLY_CAP] = INT("referral_monthly_cap", 20, 0, 10000,
	    "rewarded activations per referrer per calendar month (UTC)"),
	[SET_CASHOUT_MIN_CENTS] = INT("cashout_min_cents", 1000, 1, 10000000,
	    "smallest cash-out"),
	[SET_CHAT_MAX_CONCURRENT_TURNS] = INT("chat_max_concurrent_turns", 3,
	    1, 100, "chat turns one user may have running at once"),
	[SET_CHAT_TURNS_PER_MINUTE] = INT("chat_turns_per_minute", 20, 1,
	    10000, "chat turns (and transcriptions) per user per minute"),
	[SET_CHAT_HISTORY_BUDGET_CHARS] = INT("chat_history_budget_chars",
	    24000, 0, 1000000, "characters of earlier messages sent to the "
	    "model with a turn"),
	[SET_CHAT_HISTORY_MESSAGES] = INT("chat_history_messages", 50, 0, 200,
	    "earlier messages sent to the model with a turn, at most"),
	[SET_AI_MAX_TOKENS] = INT("ai_max_tokens", 2048, 16, 100000,
	    "max_tokens of every model call: the longest answer"),
	[SET_AI_CONNECT_TIMEOUT_MS] = INT("ai_connect_timeout_ms", 5000, 100,
	    MINUTE_MS, "connecting to the model provider"),
	[SET_AI_FIRST_TOKEN_TIMEOUT_MS] = INT("ai_first_token_timeout_ms",
	    30000, 100, 5 * MINUTE_MS, "waiting for the first piece of an "
	    "answer"),
	[SET_AI_IDLE_TIMEOUT_MS] = INT("ai_idle_timeout_ms", 20000, 100,
	    5 * MINUTE_MS, "silence between pieces of an answer"),
	[SET_AI_TOTAL_TIMEOUT_MS] = INT("ai_total_timeout_ms", 120000, 1000,
	    10 * MINUTE_MS, "a whole model call, retries included"),
	[SET_AI_MAX_RETRIES] = INT("ai_max_retries", 2, 0, 10,
	    "retries of a model call that failed before any text"),
	[SET_VOICE_CREDITS_PER_REQUEST] = INT("voice_credits_per_request", 3,
	    0, 1000000, "price of one transcription"),
	[SET_VOICE_MAX_BYTES] = INT("voice_max_bytes", 25 * 1024 * 1024,
	    1024, 25 * 1024 * 1024, "largest audio upload"),
	[SET_VOICE_MAX_CONCURRENT] = INT("voice_max_concurrent", 2, 1, 100,
	    "transcriptions one user may have running at once"),
	[SET_PLANS] = JSON("plans",
	    "{\"free\":{\"name\":\"Free\",\"price_cents\":0,"
	    "\"monthly_credits\":0},"
	    "\"plus\":{\"name\":\"Plus\",\"price_cents\":999,"
	    "\"monthly_credits\":2000},"
	    "\"business\":{\"name\":\"Business\",\"price_cents\":2999,"
	    "\"monthly_credits\":10000}}", check_plans,
	    "plans by id: name, price_cents, monthly_credits, "
	    "stripe_price_id"),
	[SET_CREDIT_PACKS] = JSON("credit_packs", "[]", check_packs,
	    "credit packs: [{id, credits, price_cents}]"),
	[SET_CURRENCY] = JSON("currency", "\"usd\"", check_currency,
	    "ISO 4217 code of every price, lower case (Stripe's form)"),
	[SET_MODELS] = JSON("models",
	    "{\"free\":\"gpt-4o-mini\",\"plus\":\"gpt-4o\","
	    "\"business\":\"gpt-4o\"}", check_models, "model by plan"),
	[SET_PERSONAS] = JSON("personas", "{}", check_personas,
	    "personas by id: name, description, credits_per_message, "
	    "system_prompt"),
};

const char *const plan_ids[PLAN_COUNT + 1] = { "free", "plus", "business",
	NULL };

struct settings {
	atomic_int	 refs;
	long long	 ints[SET__MAX];
	cJSON		*json[SET__MAX];
};

static pthread_mutex_t	 mu = PTHREAD_MUTEX_INITIALIZER;
static struct settings	*current;
static pthread_t	 listener;
static atomic_int	 stopping;
static char		*conninfo;

static void
unref(struct settings *s)
{
	int i;

	if (s != NULL && atomic_fetch_sub(&s->refs, 1) == 1) {
		for (i = 0; i < SET__MAX; i++)
			cJSON_Delete(s->json[i]);
		free(s);
	}
}

/*
 * The value in effect of setting i given the text of its row (NULL: no
 * row): the row's value, or the default when the row is missing or
 * fails its check (logged if `warn`).  The caller cJSON_Delete()s it.
 */
static cJSON *
effective(int i, const char *text, bool warn)
{
	const struct setting_def *d = &setting_defs[i];
	cJSON *v = text != NULL ? cJSON_Parse(text) : NULL;
	const char *why = NULL;

	if (text != NULL && (why = settings_check(i, v)) != NULL) {
		if (warn)
			log_warnx("setting %s: %s; using the default", d->key,
			    why);
		cJSON_Delete(v);
		v = NULL;
	}
	if (v == NULL)
		v = d->type == SETTING_INT ? cJSON_CreateNumber((double)d->def) :
		    cJSON_Parse(d->def_json);
	if (v == NULL)
		xoom();
	return v;
}

/* Sets setting i of s from the text of its row (NULL: no row). */
static void
set_one(struct settings *s, int i, const char *text)
{
	cJSON *v = effective(i, text, true);

	if (setting_defs[i].type == SETTING_INT) {
		s->ints[i] = (long long)v->valuedouble;
		cJSON_Delete(v);
		return;
	}
	s->json[i] = v;
}

void
settings_write(struct jw *w, const PGresult *rows)
{
	const char *text[SET__MAX] = { 0 };
	char *json;
	cJSON *v;
	int i, k;

	for (i = 0; i < sql_rows(rows); i++)
		if ((k = settings_lookup(sql_str(rows, i, SA_KEY))) >= 0)
			text[k] = sql_str(rows, i, SA_VALUE);
	jw_obj(w);
	for (i = 0; i < SET__MAX; i++) {
		v = effective(i, text[i], false);
		if ((json = cJSON_PrintUnformatted(v)) == NULL)
			xoom();
		jw_kraw(w, setting_defs[i].key, json);
		free(json);
		cJSON_Delete(v);
	}
	jw_end(w);
}

/* Reads every row into a new snapshot and publishes it. */
static int
load(PGconn *c)
{
	PGresult *res = PQexec(c, sql_stmts[STMT_SETTINGS_ALL].sql);
	const char *text[SET__MAX] = { 0 };
	struct settings *s, *old;
	int i, k;

	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		log_warnx("settings: %s", PQresultErrorMessage(res));
		PQclear(res);
		return -1;
	}
	for (i = 0; i < sql_rows(res); i++)
		if ((k = settings_lookup(sql_str(res, i, SA_KEY))) >= 0)
			text[k] = sql_str(res, i, SA_VALUE);
	s = xcalloc(1, sizeof(*s));
	atomic_init(&s->refs, 1);
	for (i = 0; i < SET__MAX; i++)
		set_one(s, i, text[i]);
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
		int i;

		atomic_init(&s->refs, 1);
		for (i = 0; i < SET__MAX; i++)
			set_one(s, i, NULL);
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

long long
settings_int(const struct settings *s, enum setting k)
{
	return s->ints[k];
}

const cJSON *
settings_json(const struct settings *s, enum setting k)
{
	return s->json[k];
}

int
settings_lookup(const char *key)
{
	int i;

	for (i = 0; i < SET__MAX; i++)
		if (strcmp(setting_defs[i].key, key) == 0)
			return i;
	return -1;
}

void
settings_describe(FILE *out)
{
	const struct setting_def *d;
	int i;

	fprintf(out, "key\ttype\tdefault\tmin\tmax\tdescription\n");
	for (i = 0; i < SET__MAX; i++) {
		d = &setting_defs[i];
		if (d->type == SETTING_INT)
			fprintf(out, "%s\tint\t%lld\t%lld\t%lld\t%s\n", d->key,
			    d->def, d->min, d->max, d->description);
		else
			fprintf(out, "%s\tjson\t%s\t\t\t%s\n", d->key,
			    d->def_json, d->description);
	}
}

const char *
settings_model(const struct settings *s, const char *plan)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(s->json[SET_MODELS],
	    plan);

	return cJSON_IsString(v) ? v->valuestring : "gpt-4o-mini";
}

/* --- checks of values ----------------------------------------------------- */

static bool
is_int(const cJSON *v, long long min, long long max)
{
	return cJSON_IsNumber(v) && v->valuedouble == floor(v->valuedouble) &&
	    v->valuedouble >= (double)min && v->valuedouble <= (double)max;
}

/* A string member of 1 to max bytes, or absent if optional. */
static bool
has_str(const cJSON *obj, const char *key, int max, bool optional)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

	if (v == NULL)
		return optional;
	return cJSON_IsString(v) && v->valuestring[0] != '\0' &&
	    strlen(v->valuestring) <= (size_t)max;
}

static bool
has_int(const cJSON *obj, const char *key, long long min, long long max)
{
	return is_int(cJSON_GetObjectItemCaseSensitive(obj, key), min, max);
}

/* True if every member of obj is named in keys. */
static bool
only_keys(const cJSON *obj, const char *const *keys)
{
	const cJSON *m;
	int i;

	cJSON_ArrayForEach(m, obj) {
		for (i = 0; keys[i] != NULL && strcmp(keys[i], m->string) != 0;
		    i++)
			;
		if (keys[i] == NULL)
			return false;
	}
	return true;
}

static const char *
check_plans(const cJSON *v)
{
	static const char *const fields[] = { "name", "price_cents",
	    "monthly_credits", "stripe_price_id", NULL };
	const cJSON *p;
	int i;

	if (!cJSON_IsObject(v) || !only_keys(v, plan_ids))
		return "must be an object of the plans free, plus and business";
	for (i = 0; plan_ids[i] != NULL; i++) {
		p = cJSON_GetObjectItemCaseSensitive(v, plan_ids[i]);
		if (!cJSON_IsObject(p) || !only_keys(p, fields) ||
		    !has_str(p, "name", 100, false) ||
		    !has_int(p, "price_cents", 0, 10000000) ||
		    !has_int(p, "monthly_credits", 0, 100000000) ||
		    !has_str(p, "stripe_price_id", 200, true))
			return "each plan needs name, price_cents and "
			    "monthly_credits (and may have stripe_price_id)";
	}
	return NULL;
}

static const char *
check_packs(const cJSON *v)
{
	static const char *const fields[] = { "id", "credits", "price_cents",
	    "stripe_price_id", NULL };
	const cJSON *p, *q, *id;

	if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) > 20)
		return "must be an array of at most 20 packs";
	cJSON_ArrayForEach(p, v) {
		if (!cJSON_IsObject(p) || !only_keys(p, fields) ||
		    !has_str(p, "id", 32, false) ||
		    !has_int(p, "credits", 1, 100000000) ||
		    !has_int(p, "price_cents", 1, 10000000) ||
		    !has_str(p, "stripe_price_id", 200, true))
			return "each pack needs id, credits and price_cents";
		id = cJSON_GetObjectItemCaseSensitive(p, "id");
		for (q = v->child; q != p; q = q->next)
			if (strcmp(cJSON_GetObjectItemCaseSensitive(q,
			    "id")->valuestring, id->valuestring) == 0)
				return "pack ids must be unique";
	}
	return NULL;
}

static const char *
check_currency(const cJSON *v)
{
	const char *c = cJSON_IsString(v) ? v->valuestring : "";

	if (strlen(c) != 3 || strspn(c, "abcdefghijklmnopqrstuvwxyz") != 3)
		return "must be a currency code of three lower-case letters";
	return NULL;
}

static const char *
check_models(const cJSON *v)
{
	int i;

	if (!cJSON_IsObject(v) || !only_keys(v, plan_ids))
		return "must be an object of the plans free, plus and business";
	for (i = 0; plan_ids[i] != NULL; i++)
		if (!has_str(v, plan_ids[i], 100, false))
			return "every plan needs a model name";
	return NULL;
}

static const char *
check_personas(const cJSON *v)
{
	static const char *const fields[] = { "name", "description",
	    "credits_per_message", "system_prompt", NULL };
	const cJSON *p;
	int i;

	if (!cJSON_IsObject(v) || !only_keys(v, persona_ids))
		return "must be an object of the ten personas";
	for (i = 0; persona_ids[i] != NULL; i++) {
		p = cJSON_GetObjectItemCaseSensitive(v, persona_ids[i]);
		if (!cJSON_IsObject(p) || !only_keys(p, fields) ||
		    !has_str(p, "name", 100, false) ||
		    !has_str(p, "description", 500, false) ||
		    !has_int(p, "credits_per_message", 0, 1000000) ||
		    !has_str(p, "system_prompt", 20000, false))
			return "each of the ten personas needs name, "
			    "description, credits_per_message and "
			    "system_prompt";
	}
	return NULL;
}

const char *
settings_check(enum setting k, const cJSON *v)
{
	const struct setting_def *d = &setting_defs[k];

	if (v == NULL)
		return "is not valid JSON";
	if (d->type == SETTING_INT)
		return is_int(v, d->min, d->max) ? NULL : "must be an integer "
		    "within its bounds";
	return d->check(v);
}

static const char *
str(const cJSON *obj, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void
plan_from(const cJSON *one, struct plan *p)
{
	p->id = one->string;
	p->name = str(one, "name");
	p->price_cents = (long long)cJSON_GetObjectItemCaseSensitive(one,
	    "price_cents")->valuedouble;
	p->monthly_credits = (long long)cJSON_GetObjectItemCaseSensitive(one,
	    "monthly_credits")->valuedouble;
	p->price_id = str(one, "stripe_price_id");
}

/* The checked setting guarantees every member read below. */
int
settings_plan(const struct settings *s, const char *id, struct plan *p)
{
	const cJSON *one = cJSON_GetObjectItemCaseSensitive(s->json[SET_PLANS],
	    id);

	if (!cJSON_IsObject(one))
		return -1;
	plan_from(one, p);
	return 0;
}

int
settings_plan_by_price(const struct settings *s, const char *price_id,
    struct plan *p)
{
	const cJSON *one;

	cJSON_ArrayForEach(one, s->json[SET_PLANS]) {
		const char *pid = str(one, "stripe_price_id");

		if (price_id != NULL && pid != NULL &&
		    strcmp(pid, price_id) == 0) {
			plan_from(one, p);
			return 0;
		}
	}
	return -1;
}

int
settings_pack(const struct settings *s, const char *id, struct pack *p)
{
	const cJSON *one;

	cJSON_ArrayForEach(one, s->json[SET_CREDIT_PACKS]) {
		if (strcmp(str(one, "id"), id) != 0)
			continue;
		p->id = str(one, "id");
		p->credits = (long long)cJSON_GetObjectItemCaseSensitive(one,
		    "credits")->valuedouble;
		p->price_cents = (long long)cJSON_GetObjectItemCaseSensitive(
		    one, "price_cents")->valuedouble;
		p->price_id = str(one, "stripe_price_id");
		return 0;
	}
	return -1;
}

const char *
settings_currency(const struct settings *s)
{
	return s->json[SET_CURRENCY]->valuestring;
}

int
settings_persona(const struct settings *s, const char *id, struct persona *p)
{
	const cJSON *one, *credits;

	one = cJSON_GetObjectItemCaseSensitive(s->json[SET_PERSONAS], id);
	credits = cJSON_GetObjectItemCaseSensitive(one, "credits_per_message");
	if (!cJSON_IsObject(one) || !cJSON_IsNumber(credits))
		return -1;
	p->id = one->string;
	p->name = str(one, "name");
	p->description = str(one, "description");
	p->prompt = str(one, "system_prompt");
	p->credits = (long long)credits->valuedouble;
	return p->name != NULL && p->prompt != NULL ? 0 : -1;
}
