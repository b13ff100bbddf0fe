/*
 * The chat turn, as api.md and DESIGN.md describe it:
 *
 *  1. reserve (one transaction, under the user's row lock): the per-user
 *     limits, the conversation (found or created), the user message,
 *     the persona's price taken with its ledger row, the turn counted;
 *  2. ask the model holding no database connection, passing each piece
 *     on to the client as it comes when streaming;
 *  3. settle (a second transaction): store the answer and charge it, or
 *     refund the reservation when there is no answer to store.
 *
 * Streaming sends `start`, then `delta` events, then `done` or `error`.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ai.h"
#include "app.h"
#include "chat.h"
#include "ratelimit.h"
#include "render.h"
#include "session.h"
#include "settings.h"
#include "sql.h"
#include "lib/jsonw.h"
#include "lib/log.h"
#include "lib/utf8.h"

#define HISTORY_ROWS	50
#define TITLE_CHARS	60

enum { CS_CONTENT, CS_CONV, CS_PERSONA, CS_STREAM };
const struct jfield chat_send_in[] = {
	[CS_CONTENT] = { "content", JF_STRING, JF_REQUIRED, 1, 32000 },
	[CS_CONV] = { "conversation_id", JF_UUID, JF_NULLABLE, 0, 0 },
	[CS_PERSONA] = { "persona", JF_WORD, 0, 0, 0, persona_ids },
	[CS_STREAM] = { "stream", JF_BOOL, 0, 0, 0 },
	{ NULL }
};

enum { CM_CONTENT, CM_STREAM };
const struct jfield chat_message_in[] = {
	[CM_CONTENT] = { "content", JF_STRING, JF_REQUIRED, 1, 32000 },
	[CM_STREAM] = { "stream", JF_BOOL, 0, 0, 0 },
	{ NULL }
};

struct turn {
	struct request		*r;
	const struct settings	*set;
	struct user		*user;
	const char		*content;
	const char		*conv_id;	/* given, or created */
	const char		*persona_id;	/* asked for, or NULL */
	bool			 stream;
	struct persona		 persona;
	const char		*model;
	const PGresult		*conv;		/* CONV_COLS from column 0 */
	const char		*user_msg_id;
	const PGresult		*user_msg;	/* MSG_COLS from column 0 */
	const char		*turn_id;
	long long		 credits_left;
	struct ai_message	*msgs;
	size_t			 nmsgs;
	struct buf		 answer;
};

/*
 * A title from the first message: white space folded, cut on a word
 * boundary near TITLE_CHARS characters.
 */
static const char *
title_from(struct request *r, const char *content)
{
	struct buf b = BUF_INIT;
	const char *p;
	size_t cut, space;
	char *out;

	for (p = content; *p != '\0'; p++) {
		/* Any control character folds into a space, as white space. */
		bool ws = (unsigned char)*p <= ' ' || *p == 0x7f;

		if (ws && (b.len == 0 || b.p[b.len - 1] == ' '))
			continue;
		buf_putc(&b, ws ? ' ' : *p);
	}
	if (b.len > 0 && b.p[b.len - 1] == ' ')
		b.p[--b.len] = '\0';
	if (b.len == 0) {
		buf_free(&b);
		return "New conversation";
	}
	cut = utf8_prefix(b.p, b.len, TITLE_CHARS);
	if (cut < b.len) {
		for (space = cut; space > 0 && b.p[space] != ' '; space--)
			;
		if (space > cut / 3)
			cut = space;
		out = arena_printf(r->arena, "%.*s\xe2\x80\xa6", (int)cut, b.p);
	} else
		out = arena_strdup(r->arena, b.p);
	buf_free(&b);
	return out;
}

static const char *
model_for(const struct settings *s, const char *plan)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(
	    settings_get(s, "models"), plan);

	return cJSON_IsString(v) ? v->valuestring : "gpt-4o-mini";
}

/*
 * The system prompt, then the newest messages that fit the budget, then
 * the new message.  rows: STMT_HISTORY, newest first.
 */
static void
build_prompt(struct turn *t, const PGresult *rows)
{
	long long budget = settings_int(t->set, "chat_history_budget_chars",
	    24000);
	int n = PQntuples(rows), keep = 0, i;
	long long used = (long long)strlen(t->content);

	while (keep < n) {
		used += PQgetlength(rows, keep, 1);
		if (used > budget)
			break;
		keep++;
	}
	t->msgs = arena_alloc(t->r->arena, sizeof(*t->msgs) *
	    (size_t)(keep + 2));
	t->msgs[0] = (struct ai_message){ "system", t->persona.prompt };
	t->nmsgs = 1;
	for (i = keep - 1; i >= 0; i--)
		t->msgs[t->nmsgs++] = (struct ai_message){
		    strcmp(PQgetvalue(rows, i, 0), "user") == 0 ? "user" :
		    "assistant", PQgetvalue(rows, i, 1) };
	t->msgs[t->nmsgs++] = (struct ai_message){ "user", t->content };
}

/* Step 1.  Returns 0, or -1 after replying (nothing stored then). */
static int
reserve_or_reply(struct turn *t)
{
	struct request *r = t->r;
	const char *p[9], *persona, *key;
	char cost[24], rows[16];
	PGresult *res;

	p[0] = t->user->id;
	if (sql_begin_or_reply(r) != 0 ||
	    sql_run_or_reply(r, STMT_USER_LOCK, p) == NULL ||
	    (res = sql_run_or_reply(r, STMT_TURNS_ACTIVE, p)) == NULL)
		return -1;
	if (atoll(PQgetvalue(res, 0, 0)) >=
	    settings_int(t->set, "chat_max_concurrent_turns", 3)) {
		reply_rate_limited(r, 5);
		return -1;
	}
	key = arena_printf(r->arena, "chat:%s", t->user->id);
	if (rate_take_or_reply(r, key, 60, (int)settings_int(t->set,
	    "chat_turns_per_minute", 20)) != 0)
		return -1;
	persona = t->persona_id;
	if (t->conv_id != NULL) {
		p[0] = t->conv_id;
		p[1] = t->user->id;
		if ((res = sql_run_or_reply(r, STMT_CONV_LOCK, p)) == NULL)
			return -1;
		if (PQntuples(res) == 0) {
			reply_error(r, 404, "not_found", "No such conversation.",
			    NULL);
			return -1;
		}
		if (persona == NULL)
			persona = PQgetvalue(res, 0, 2);
	} else if (persona == NULL)
		persona = "general";
	if (settings_persona(t->set, persona, &t->persona) != 0) {
		log_errx("persona %s is not configured", persona);
		reply_error(r, 503, "unavailable", "This persona is not "
		    "available right now.", NULL);
		return -1;
	}
	if (t->conv_id == NULL) {
		p[0] = t->user->id;
		p[1] = title_from(r, t->content);
		p[2] = persona;
		if ((res = sql_run_or_reply(r, STMT_CONV_CREATE, p)) == NULL)
			return -1;
		t->conv_id = PQgetvalue(res, 0, 0);
	}
	p[0] = t->conv_id;
	p[1] = t->user->id;
	p[2] = "user";
	p[3] = t->content;
	p[4] = persona;
	p[5] = "0";
	p[6] = p[7] = p[8] = NULL;
	if ((res = sql_run_or_reply(r, STMT_MSG_INSERT, p)) == NULL)
		return -1;
	t->user_msg_id = PQgetvalue(res, 0, 0);
	t->user_msg = res;

	snprintf(cost, sizeof(cost), "%lld", t->persona.credits);
	p[0] = t->user->id;
	p[1] = cost;
	p[2] = "chat";
	p[3] = t->user_msg_id;
	if ((res = sql_run_or_reply(r, STMT_CREDITS_TAKE, p)) == NULL)
		return -1;
	if (PQntuples(res) == 0) {
		reply_error(r, 402, "insufficient_credits", arena_printf(
		    r->arena, "This message costs %lld credits; buy more or "
		    "choose another persona.", t->persona.credits), NULL);
		return -1;
	}
	t->credits_left = atoll(PQgetvalue(res, 0, 0));

	p[0] = t->conv_id;
	p[1] = t->user->id;
	if ((res = sql_run_or_reply(r, STMT_CONV_TOUCH, p)) == NULL)
		return -1;
	t->conv = res;
	p[0] = t->user->id;
	if ((res = sql_run_or_reply(r, STMT_TURN_START, p)) == NULL)
		return -1;
	t->turn_id = PQgetvalue(res, 0, 0);

	snprintf(rows, sizeof(rows), "%d", HISTORY_ROWS);
	p[0] = t->conv_id;
	p[1] = t->user->id;
	p[2] = t->user_msg_id;
	p[3] = rows;
	if ((res = sql_run_or_reply(r, STMT_HISTORY, p)) == NULL)
		return -1;
	build_prompt(t, res);
	t->model = model_for(t->set, t->user->plan);
	return sql_commit_or_reply(r);
}

static int
send_event(struct turn *t, const char *event, struct buf *b)
{
	return sse_event(t->r, event, b->p, b->len);
}

static int
on_delta(void *ctx, const char *p, size_t n)
{
	struct turn *t = ctx;
	struct buf b = BUF_INIT;
	struct jw w;
	int rc = 0;

	buf_add(&t->answer, p, n);
	if (!t->stream)
		return 0;
	jw_init(&w, &b);
	jw_obj(&w);
	jw_key(&w, "content");
	jw_strn(&w, p, n);
	jw_end(&w);
	rc = send_event(t, "delta", &b);
	buf_free(&b);
	return rc;
}

/* Step 3, with an answer: store it, charged.  -1 on a database error. */
static int
store_answer(struct turn *t, const struct ai_result *ai,
    const PGresult **msg)
{
	struct request *r = t->r;
	char cost[24], pt[24], ct[24];
	const char *p[9];
	struct db_err err;
	PGresult *res;

	snprintf(cost, sizeof(cost), "%lld", t->persona.credits);
	snprintf(pt, sizeof(pt), "%lld", ai->prompt_tokens);
	snprintf(ct, sizeof(ct), "%lld", ai->completion_tokens);
	p[0] = t->conv_id;
	p[1] = t->user->id;
	p[2] = "assistant";
	p[3] = t->answer.p;
	p[4] = t->persona.id;
	p[5] = cost;
	p[6] = pt;
	p[7] = ct;
	p[8] = ai->standin ? "stand-in" : t->model;
	if (sql_begin(r, &err) != 0 ||
	    (res = sql_run(r, STMT_MSG_INSERT, p, &err)) == NULL)
		goto fail;
	*msg = res;
	if ((res = sql_run(r, STMT_CONV_TOUCH, p, &err)) == NULL)
		goto fail;
	t->conv = res;
	p[0] = t->turn_id;
	if (sql_run(r, STMT_TURN_END, p, &err) == NULL)
		goto fail;
	p[0] = t->user->id;
	if (sql_run(r, STMT_REFERRAL_ACTIVATE, p, &err) == NULL ||
	    sql_commit(r, &err) != 0)
		goto fail;
	return 0;
fail:
	sql_rollback(r);
	log_errx("could not store an answer of %zu bytes (turn %s)",
	    t->answer.len, t->turn_id);
	return -1;
}

/* Step 3, without an answer: give the credits back. */
static int
refund(struct turn *t)
{
	struct request *r = t->r;
	const char *p[4];
	char cost[24];
	struct db_err err = { 0 };
	PGresult *res;

	snprintf(cost, sizeof(cost), "%lld", t->persona.credits);
	p[0] = t->user->id;
	p[1] = cost;
	p[2] = "chat_refund";
	p[3] = t->user_msg_id;
	if (sql_begin(r, &err) != 0 ||
	    (res = sql_run(r, STMT_CREDITS_GIVE, p, &err)) == NULL)
		goto fail;
	t->credits_left = atoll(PQgetvalue(res, 0, 0));
	p[0] = t->turn_id;
	if (sql_run(r, STMT_TURN_END, p, &err) == NULL ||
	    sql_commit(r, &err) != 0)
		goto fail;
	return 0;
fail:
	sql_rollback(r);
	log_errx("could not refund turn %s: %s", t->turn_id,
	    err.code != NULL ? err.code : "no connection");
	return -1;
}

static void
error_of(enum ai_outcome o, int *status, const char **code,
    const char **message)
{
	if (o == AI_TIMEOUT) {
		*status = 504;
		*code = "upstream_timeout";
		*message = "The model took too long to answer; your credits "
		    "were refunded.";
	} else {
		*status = 502;
		*code = "upstream_error";
		*message = "The model could not answer; your credits were "
		    "refunded.";
	}
}

static void
stream_error(struct turn *t, const char *code, const char *message)
{
	struct buf b = BUF_INIT;
	struct jw w;

	jw_init(&w, &b);
	jw_obj(&w);
	jw_kobj(&w, "error");
	jw_kstr(&w, "code", code);
	jw_kstr(&w, "message", message);
	jw_end(&w);
	jw_end(&w);
	send_event(t, "error", &b);
	buf_free(&b);
	t->r->error_code = code;
}

static void
reply_done(struct turn *t, const PGresult *msg, const struct ai_result *ai)
{
	struct buf b = BUF_INIT;
	struct jw w;

	jw_init(&w, &b);
	jw_obj(&w);
	if (!t->stream) {
		jw_key(&w, "conversation");
		render_conversation(&w, t->conv, 0, 0);
		jw_key(&w, "user_message");
		render_message(&w, t->user_msg, 0, 0);
	}
	jw_key(&w, "assistant_message");
	render_message(&w, msg, 0, 0);
	jw_kint(&w, "credits_remaining", t->credits_left);
	if (t->stream) {
		jw_kobj(&w, "usage");
		jw_kint(&w, "prompt_tokens", ai->prompt_tokens);
		jw_kint(&w, "completion_tokens", ai->completion_tokens);
		jw_end(&w);
	}
	jw_end(&w);
	if (t->stream)
		send_event(t, "done", &b);
	else
		reply_json(t->r, 201, &b);
	buf_free(&b);
}

static void
start_stream(struct turn *t)
{
	struct buf b = BUF_INIT;
	struct jw w;

	if (sse_start(t->r) != 0)
		return;
	jw_init(&w, &b);
	jw_obj(&w);
	jw_key(&w, "conversation");
	render_conversation(&w, t->conv, 0, 0);
	jw_key(&w, "user_message");
	render_message(&w, t->user_msg, 0, 0);
	jw_end(&w);
	send_event(t, "start", &b);
	buf_free(&b);
}

static void
run_turn(struct turn *t)
{
	struct request *r = t->r;
	const struct settings *s = t->set;
	struct ai_turn at = { 0 };
	struct ai_result ai;
	const char *code, *message;
	const PGresult *msg;
	bool keep;
	int status;

	if (reserve_or_reply(t) != 0)
		return;
	sql_release(r);
	if (t->stream)
		start_stream(t);
	at.model = t->model;
	at.msgs = t->msgs;
	at.nmsgs = t->nmsgs;
	at.connect_ms = (int)settings_int(s, "ai_connect_timeout_ms", 5000);
	at.first_token_ms = (int)settings_int(s, "ai_first_token_timeout_ms",
	    30000);
	at.idle_ms = (int)settings_int(s, "ai_idle_timeout_ms", 20000);
	at.total_ms = (int)settings_int(s, "ai_total_timeout_ms", 120000);
	at.max_retries = (int)settings_int(s, "ai_max_retries", 2);
	at.on_delta = on_delta;
	at.ctx = t;
	at.watch_fd = req_fd(r);
	ai_run(&at, &ai);

	/*
	 * Text that reached a streaming client is kept and charged, also
	 * when the model broke off; so is the part received when the client
	 * left.  Without text nothing is kept and the reservation is
	 * refunded, and so when a non-streaming turn fails midway: that
	 * client saw nothing.
	 */
	keep = ai.outcome == AI_OK || (t->answer.len > 0 &&
	    (t->stream || ai.outcome == AI_CANCELLED));
	if (ai.outcome == AI_CANCELLED)
		r->client_gone = true;
	error_of(ai.outcome, &status, &code, &message);
	if (keep && store_answer(t, &ai, &msg) == 0) {
		if (ai.outcome == AI_OK)
			reply_done(t, msg, &ai);
		else if (!r->client_gone)
			stream_error(t, code, "The model broke off its answer; "
			    "the part received was kept.");
		return;
	}
	if (keep) {
		/* The answer could not be stored: do not charge for it. */
		error_of(AI_UPSTREAM, &status, &code, &message);
	}
	refund(t);
	if (r->client_gone)
		return;
	if (t->stream)
		stream_error(t, code, message);
	else
		reply_error(r, status, code, message, NULL);
}

/*
 * Runs a turn: the conversation and persona as asked (NULL: a new
 * conversation; the conversation's persona), streamed per `stream`
 * or, when that field is absent, per the Accept header.
 */
static void
turn(struct request *r, const char *content, const char *conv_id,
    const char *persona_id, const struct jvalue *stream)
{
	const char *accept = req_param(r, "HTTP_ACCEPT");
	struct turn t = { 0 };

	t.r = r;
	t.set = settings_for(r);
	t.user = app_req(r)->user;
	t.content = content;
	t.conv_id = conv_id;
	t.persona_id = persona_id;
	t.stream = stream->present ? stream->b : accept != NULL &&
	    strstr(accept, "text/event-stream") != NULL;
	run_turn(&t);
	buf_free(&t.answer);
}

void
chat_send(struct request *r)
{
	turn(r, r->in[CS_CONTENT].s, r->in[CS_CONV].present ?
	    r->in[CS_CONV].s : NULL, r->in[CS_PERSONA].present ?
	    r->in[CS_PERSONA].s : NULL, &r->in[CS_STREAM]);
}

void
chat_message(struct request *r)
{
	turn(r, r->in[CM_CONTENT].s, r->params[0], NULL, &r->in[CM_STREAM]);
}
