/*
 * The chat turn, as api.md and DESIGN.md describe it:
 *
 *  1. reserve (one transaction, under the user's row lock): the per-user
 *     limits, the conversation (found or created), the user message,
 *     the persona's price taken as a credit hold (credits.h);
 *  2. ask the model holding no database connection, passing each piece
 *     on to the client as it comes when streaming;
 *  3. settle (a second transaction, again under the user's row lock):
 *     store the answer and end the hold charged, or refund the hold when
 *     there is nothing to store -- no text, the account banned or the
 *     conversation deleted meanwhile.  If the account was deleted, or
 *     the sweeper refunded the hold first, or the database fails here,
 *     nothing is stored and the client is told exactly that.
 *
 * Streaming sends `start`, then `delta` events, then `done` or `error`.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ai.h"
#include "app.h"
#include "chat.h"
#include "config.h"
#include "credits.h"
#include "ratelimit.h"
#include "referrals.h"
#include "render.h"
#include "session.h"
#include "settings.h"
#include "sql.h"
#include "lib/jsonw.h"
#include "lib/log.h"
#include "lib/utf8.h"

#define TITLE_CHARS	60
#define ANSWER_MAX	200000	/* bytes; messages.content holds 200,000 chars */

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
	struct hold		 hold;
	long long		 credits_left;
	bool			 banned;	/* found at settling */
	bool			 conv_gone;	/* found at settling */
	bool			 full;		/* the answer reached ANSWER_MAX */
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

/*
 * The system prompt, then the newest messages that fit the budget, then
 * the new message.  rows: STMT_HISTORY, newest first.
 */
static void
build_prompt(struct turn *t, const PGresult *rows)
{
	long long budget = settings_int(t->set, SET_CHAT_HISTORY_BUDGET_CHARS);
	int n = sql_rows(rows), keep = 0, i;
	long long used = (long long)strlen(t->content);

	while (keep < n) {
		used += (long long)strlen(sql_str(rows, keep, HI_CONTENT));
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
		    strcmp(sql_str(rows, i, HI_SENDER), "user") == 0 ? "user" :
		    "assistant", sql_str(rows, i, HI_CONTENT) };
	t->msgs[t->nmsgs++] = (struct ai_message){ "user", t->content };
}

/* Step 1.  Returns 0, or -1 after replying (nothing stored then). */
static int
reserve_or_reply(struct turn *t)
{
	struct request *r = t->r;
	const char *uid = t->user->id, *persona, *key;
	char rows[16];
	long long ttl;
	PGresult *res;
	int rc;

	if (sql_begin_or_reply(r) != 0 || credits_lock_or_reply(r) != 0 ||
	    (res = sql_row_or_reply(r, STMT_HOLDS_ACTIVE, ARGS(uid,
	    "chat"))) == NULL)
		return -1;
	if (sql_int(res, 0, SQL_ONLY) >=
	    settings_int(t->set, SET_CHAT_MAX_CONCURRENT_TURNS)) {
		reply_rate_limited(r, 5);
		return -1;
	}
	key = arena_printf(r->arena, "chat:%s", uid);
	if (rate_take_or_reply(r, key, 60, (int)settings_int(t->set,
	    SET_CHAT_TURNS_PER_MINUTE)) != 0)
		return -1;
	persona = t->persona_id;
	if (t->conv_id != NULL) {
		if ((res = sql_run_or_reply(r, STMT_CONV_LOCK, ARGS(t->conv_id,
		    uid))) == NULL)
			return -1;
		if (sql_rows(res) == 0) {
			reply_error(r, 404, "not_found", "No such conversation.",
			    NULL);
			return -1;
		}
		if (persona == NULL)
			persona = sql_str(res, 0, CONV_PERSONA);
	} else if (persona == NULL)
		persona = "general";
	if (settings_persona(t->set, persona, &t->persona) != 0) {
		log_errx("persona %s is not configured", persona);
		reply_error(r, 503, "unavailable", "This persona is not "
		    "available right now.", NULL);
		return -1;
	}
	if (t->conv_id == NULL) {
		if ((res = sql_row_or_reply(r, STMT_CONV_CREATE, ARGS(uid,
		    title_from(r, t->content), persona))) == NULL)
			return -1;
		t->conv_id = sql_str(res, 0, CONV_ID);
	}
	if ((res = sql_row_or_reply(r, STMT_MSG_INSERT, ARGS(t->conv_id, uid,
	    "user", t->content, persona, "0", NULL, NULL, NULL))) == NULL)
		return -1;
	t->user_msg_id = sql_str(res, 0, MSG_ID);
	t->user_msg = res;

	ttl = settings_int(t->set, SET_AI_TOTAL_TIMEOUT_MS) +
	    conf.hold_grace_ms;
	if ((rc = credits_hold_or_reply(r, "chat", t->persona.credits,
	    t->user_msg_id, ttl, &t->hold)) != 0) {
		if (rc > 0)
			reply_error(r, 402, "insufficient_credits",
			    arena_printf(r->arena, "This message costs %lld "
			    "credits; buy more or choose another persona.",
			    t->persona.credits), NULL);
		return -1;
	}
	t->credits_left = t->hold.balance;
	if ((res = sql_row_or_reply(r, STMT_CONV_TOUCH, ARGS(t->conv_id,
	    uid))) == NULL)
		return -1;
	t->conv = res;

	snprintf(rows, sizeof(rows), "%lld",
	    settings_int(t->set, SET_CHAT_HISTORY_MESSAGES));
	if ((res = sql_run_or_reply(r, STMT_HISTORY, ARGS(t->conv_id, uid,
	    t->user_msg_id, rows))) == NULL)
		return -1;
	build_prompt(t, res);
	t->model = settings_model(t->set, t->user->plan);
	return sql_commit_or_reply(r);
}

static int
send_event(struct turn *t, const char *event, struct buf *b)
{
	return sse_event(t->r, event, b->p, b->len);
}

/*
 * A piece of the answer: kept, and passed on when streaming.  An answer
 * stops at ANSWER_MAX bytes (so at most that many characters, what
 * messages.content holds), cut on a character: the model call ends
 * there and the turn completes with what fits.
 */
static int
on_delta(void *ctx, const char *p, size_t n)
{
	struct turn *t = ctx;
	struct buf b = BUF_INIT;
	struct jw w;
	int rc = 0;

	if (t->answer.len + n > ANSWER_MAX) {
		n = ANSWER_MAX - t->answer.len;
		while (n > 0 && ((unsigned char)p[n] & 0xc0) == 0x80)
			n--;
		t->full = true;
	}
	buf_add(&t->answer, p, n);
	if (!t->stream || n == 0)
		return t->full;
	jw_init(&w, &b);
	jw_obj(&w);
	jw_key(&w, "content");
	jw_strn(&w, p, n);
	jw_end(&w);
	rc = send_event(t, "delta", &b);
	buf_free(&b);
	return rc != 0 ? rc : t->full;
}

/* How step 3 went. */
enum settled {
	ST_STORED,	/* the answer stored, the hold settled (charged) */
	ST_REFUNDED,	/* nothing stored, the hold refunded */
	ST_SWEPT,	/* nothing stored: the sweeper had refunded the hold */
	ST_GONE,	/* nothing stored: the account was deleted meanwhile */
	ST_PENDING,	/* the database failed: the sweeper will refund */
};

/* Stores the answer, in settle()'s transaction: 0, or -1 (*err set). */
static int
store_answer(struct turn *t, const struct ai_result *ai,
    const PGresult **msg, struct db_err *err)
{
	struct request *r = t->r;
	const char *uid = t->user->id;
	char cost[24], pt[24], ct[24];
	PGresult *res;

	snprintf(cost, sizeof(cost), "%lld", t->persona.credits);
	snprintf(pt, sizeof(pt), "%lld", ai->prompt_tokens);
	snprintf(ct, sizeof(ct), "%lld", ai->completion_tokens);
	if ((res = sql_row(r, STMT_MSG_INSERT, ARGS(t->conv_id, uid,
	    "assistant", t->answer.p, t->persona.id, cost, pt, ct,
	    ai->standin ? "stand-in" : t->model), err)) == NULL)
		return -1;
	*msg = res;
	if ((res = sql_row(r, STMT_CONV_TOUCH, ARGS(t->conv_id, uid),
	    err)) == NULL)
		return -1;
	t->conv = res;
	return referral_activate(r, uid, err);
}

/*
 * Step 3: stores the answer if there is one to keep and ends the hold
 * charged, or refunds it, in one transaction under the user's row lock.
 */
static enum settled
settle(struct turn *t, bool keep, const struct ai_result *ai,
    const PGresult **msg)
{
	struct request *r = t->r;
	struct db_err err = { 0 };
	PGresult *user, *conv;
	int rc;

	if (sql_begin(r, &err) != 0 || (user = sql_run(r, STMT_USER_LOCK,
	    ARGS(t->user->id), &err)) == NULL)
		goto fail;
	if (sql_rows(user) == 0) {
		sql_rollback(r);
		return ST_GONE;
	}
	t->banned = sql_bool(user, 0, UL_BANNED);
	if (keep && !t->banned) {
		if ((conv = sql_run(r, STMT_CONV_LOCK, ARGS(t->conv_id,
		    t->user->id), &err)) == NULL)
			goto fail;
		t->conv_gone = sql_rows(conv) == 0;
	}
	if (keep && !t->banned && !t->conv_gone) {
		if ((rc = credits_settle(r, &t->hold, &err)) < 0)
			goto fail;
		if (rc == 0) {
			sql_rollback(r);
			return ST_SWEPT;
		}
		if (store_answer(t, ai, msg, &err) != 0 ||
		    sql_commit(r, &err) != 0)
			goto fail;
		return ST_STORED;
	}
	if ((rc = credits_refund(r, &t->hold, &t->credits_left, &err)) < 0 ||
	    sql_commit(r, &err) != 0)
		goto fail;
	return rc > 0 ? ST_REFUNDED : ST_SWEPT;
fail:
	sql_rollback(r);
	log_errx("could not settle hold %s (%zu bytes of answer): %s",
	    t->hold.id, t->answer.len, err.code != NULL ? err.code :
	    "no connection");
	return ST_PENDING;
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

/*
 * What the client hears when no answer was stored: the reason, and only
 * what happened to its credits.
 */
static void
reply_unstored(struct turn *t, enum settled st, enum ai_outcome o)
{
	int status = o == AI_TIMEOUT ? 504 : 502;
	const char *code = o == AI_TIMEOUT ? "upstream_timeout" :
	    "upstream_error";
	const char *why = o == AI_TIMEOUT ? "The model took too long to "
	    "answer" : "The model could not answer";
	const char *credits = "your credits were refunded.";

	if (st == ST_GONE) {
		status = 401;
		code = "unauthorized";
		why = "This account was deleted";
		credits = "nothing was stored.";
	} else if (st == ST_PENDING) {
		status = 503;
		code = "unavailable";
		why = o == AI_OK ? "The answer could not be saved" : why;
		credits = "your credits will be returned within minutes.";
	} else if (st == ST_SWEPT) {
		status = 504;
		code = "upstream_timeout";
		why = "The answer took too long";
	} else if (t->banned) {
		status = 403;
		code = "forbidden";
		why = "This account is suspended";
	} else if (t->conv_gone) {
		status = 404;
		code = "not_found";
		why = "The conversation was deleted";
	}
	why = arena_printf(t->r->arena, "%s; %s", why, credits);
	if (t->stream)
		stream_error(t, code, why);
	else
		reply_error(t->r, status, code, why, NULL);
}

static void
run_turn(struct turn *t)
{
	struct request *r = t->r;
	const struct settings *s = t->set;
	struct ai_turn at = { 0 };
	struct ai_result ai;
	const PGresult *msg = NULL;
	enum settled st;
	bool keep;

	if (reserve_or_reply(t) != 0)
		return;
	sql_release(r);
	if (t->stream)
		start_stream(t);
	at.model = t->model;
	at.msgs = t->msgs;
	at.nmsgs = t->nmsgs;
	at.max_tokens = (int)settings_int(s, SET_AI_MAX_TOKENS);
	at.connect_ms = (int)settings_int(s, SET_AI_CONNECT_TIMEOUT_MS);
	at.first_token_ms = (int)settings_int(s,
	    SET_AI_FIRST_TOKEN_TIMEOUT_MS);
	at.idle_ms = (int)settings_int(s, SET_AI_IDLE_TIMEOUT_MS);
	at.total_ms = (int)settings_int(s, SET_AI_TOTAL_TIMEOUT_MS);
	at.max_retries = (int)settings_int(s, SET_AI_MAX_RETRIES);
	at.on_delta = on_delta;
	at.ctx = t;
	at.watch_fd = req_fd(r);
	sql_assert_none(r, "a model call");
	ai_run(&at, &ai);

	/*
	 * Text that reached a streaming client is kept and charged, also
	 * when the model broke off; so is the part received when the client
	 * left.  Without text nothing is kept and the hold is refunded, and
	 * so when a non-streaming turn fails midway: that client saw
	 * nothing.
	 */
	/* A full answer ended the call itself: the turn is complete. */
	if (t->full && ai.outcome == AI_CANCELLED)
		ai.outcome = AI_OK;
	keep = ai.outcome == AI_OK || (t->answer.len > 0 &&
	    (t->stream || ai.outcome == AI_CANCELLED));
	if (ai.outcome == AI_CANCELLED)
		r->client_gone = true;
	st = settle(t, keep, &ai, &msg);
	if (r->client_gone)
		return;
	if (st != ST_STORED)
		reply_unstored(t, st, ai.outcome);
	else if (ai.outcome == AI_OK)
		reply_done(t, msg, &ai);
	else
		stream_error(t, ai.outcome == AI_TIMEOUT ? "upstream_timeout" :
		    "upstream_error", "The model broke off its answer; the "
		    "part received was kept.");
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
