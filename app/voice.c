/*
 * POST /api/chat/voice-to-text: audio as the body, or as the `file` part
 * of multipart/form-data, transcribed by the model provider.  Charged
 * like a chat turn: a credit hold taken first, refunded if no text comes
 * back.  A caller short of credits is answered 402 before a byte of the
 * audio is read; a user runs at most voice_max_concurrent at once and a
 * worker VOICE_PER_WORKER, since each holds its audio in memory.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ai.h"
#include "app.h"
#include "chat.h"
#include "config.h"
#include "credits.h"
#include "ratelimit.h"
#include "session.h"
#include "settings.h"
#include "sql.h"
#include "lib/jsonw.h"
#include "lib/multipart.h"

/* Transcriptions at once per worker process. */
#define VOICE_PER_WORKER	4

static const char *const audio_types[] = {
	"audio/webm", "audio/ogg", "audio/mpeg", "audio/mp4", "audio/wav",
	"audio/x-m4a", NULL
};

/* The accepted audio type ct names (parameters ignored), or NULL. */
static const char *
audio_type(const char *ct)
{
	size_t i, n;

	for (i = 0; ct != NULL && audio_types[i] != NULL; i++) {
		n = strlen(audio_types[i]);
		if (strncasecmp(ct, audio_types[i], n) == 0 &&
		    (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' '))
			return audio_types[i];
	}
	return NULL;
}

static void
unsupported(struct request *r)
{
	reply_error(r, 415, "unsupported_media_type", "Send audio as "
	    "audio/webm, ogg, mpeg, mp4, wav or x-m4a, or as the 'file' part "
	    "of multipart/form-data.", NULL);
}

/* Finds the audio in the body; -1 after replying. */
static int
audio_or_reply(struct request *r, struct ai_audio *a)
{
	struct mp_part part;

	if (req_content_type_is(r, "multipart/form-data")) {
		switch (multipart_find(r->arena, r->content_type, r->body,
		    r->body_len, "file", &part)) {
		case MP_FOUND:
			break;
		case MP_MISSING:
			reply_error(r, 400, "invalid_input", "The form has no "
			    "'file' part.", "file");
			return -1;
		default:
			reply_error(r, 400, "invalid_input", "The multipart "
			    "body is malformed.", NULL);
			return -1;
		}
		if ((a->content_type = audio_type(part.content_type)) == NULL) {
			unsupported(r);
			return -1;
		}
		a->data = part.data;
		a->len = part.len;
	} else {
		if ((a->content_type = audio_type(r->content_type)) == NULL) {
			unsupported(r);
			return -1;
		}
		a->data = r->body;
		a->len = r->body_len;
	}
	if (a->len == 0) {
		reply_error(r, 400, "invalid_input", "The audio is empty.",
		    "file");
		return -1;
	}
	/* The provider tells formats apart by the file name's extension. */
	a->filename = arena_printf(r->arena, "audio.%s",
	    strcmp(a->content_type, "audio/mpeg") == 0 ? "mp3" :
	    strcmp(a->content_type, "audio/x-m4a") == 0 ? "m4a" :
	    strchr(a->content_type, '/') + 1);
	return 0;
}

/* Transcriptions running in this worker, against VOICE_PER_WORKER. */
static atomic_int running;

static void
leave(void *counter)
{
	atomic_fetch_sub((atomic_int *)counter, 1);
}

/*
 * Takes a place among this worker's transcriptions, given back when the
 * request ends; -1 after replying 503 when none is free.  Each holds up
 * to 25 MiB of audio, so a worker runs only a few at once.
 */
static int
place_or_reply(struct request *r)
{
	if (atomic_fetch_add(&running, 1) >= VOICE_PER_WORKER) {
		atomic_fetch_sub(&running, 1);
		req_add_header(r, "Retry-After", "5");
		reply_error(r, 503, "unavailable", "Too many transcriptions "
		    "are running; please retry shortly.", NULL);
		return -1;
	}
	arena_cleanup(r->arena, leave, &running);
	return 0;
}

static void
reply_short(struct request *r)
{
	reply_error(r, 402, "insufficient_credits", "Transcription needs "
	    "more credits than you have.", NULL);
}

/*
 * Takes the price as a hold, under the user's row lock and within the
 * per-user cap on transcriptions at once; -1 after replying.
 */
static int
hold_or_reply(struct request *r, const struct settings *s, struct hold *h)
{
	const char *uid = app_req(r)->user->id;
	PGresult *res;
	int rc;

	if (sql_begin_or_reply(r) != 0 || credits_lock_or_reply(r) != 0 ||
	    (res = sql_row_or_reply(r, STMT_HOLDS_ACTIVE, ARGS(uid,
	    "voice"))) == NULL)
		return -1;
	if (sql_int(res, 0, SQL_ONLY) >=
	    settings_int(s, SET_VOICE_MAX_CONCURRENT)) {
		reply_rate_limited(r, 5);
		return -1;
	}
	if ((rc = credits_hold_or_reply(r, "voice", settings_int(s,
	    SET_VOICE_CREDITS_PER_REQUEST), r->request_id, settings_int(s,
	    SET_AI_TOTAL_TIMEOUT_MS) + conf.hold_grace_ms, h)) != 0) {
		if (rc > 0)
			reply_short(r);
		return -1;
	}
	return sql_commit_or_reply(r);
}

/*
 * Ends the hold: charged with text, else refunded.  Returns 1, 0 if the
 * sweeper had refunded it already, -1 on a database error.
 */
static int
end_hold(struct request *r, const struct hold *h, bool charged,
    long long *balance)
{
	struct db_err err;
	PGresult *user;
	int rc = -1;

	if (sql_begin(r, &err) != 0 || (user = sql_row(r, STMT_USER_LOCK,
	    ARGS(app_req(r)->user->id), &err)) == NULL)
		goto out;
	*balance = sql_int(user, 0, UL_CREDITS);
	rc = charged ? credits_settle(r, h, &err) : credits_refund(r, h,
	    balance, &err);
	if (rc > 0 && sql_commit(r, &err) != 0)
		rc = -1;
out:
	if (rc <= 0)
		sql_rollback(r);
	return rc;
}

void
chat_voice(struct request *r)
{
	const struct settings *s = settings_for(r);
	const char *lang = req_query(r, "language");
	long long price = settings_int(s, SET_VOICE_CREDITS_PER_REQUEST);
	long long left;
	struct ai_audio a = { 0 };
	struct hold h = { 0 };
	struct buf b = BUF_INIT;
	struct jw w;
	char *text = NULL;
	enum ai_outcome o;
	int rc;

	if (r->content_length > settings_int(s, SET_VOICE_MAX_BYTES)) {
		reply_error(r, 413, "payload_too_large", "The audio is too "
		    "large for transcription.", NULL);
		return;
	}
	if (lang != NULL && (strlen(lang) != 2 || lang[0] < 'a' ||
	    lang[0] > 'z' || lang[1] < 'a' || lang[1] > 'z')) {
		reply_error(r, 400, "invalid_input", "language must be a "
		    "two-letter code such as 'en'.", "language");
		return;
	}
	if (!req_content_type_is(r, "multipart/form-data") &&
	    audio_type(r->content_type) == NULL) {
		unsupported(r);
		return;
	}
	/* Known short before a byte of the audio is read. */
	if (app_req(r)->user->credits < price) {
		reply_short(r);
		return;
	}
	if (place_or_reply(r) != 0 ||
	    rate_take_or_reply(r, arena_printf(r->arena, "voice:%s",
	    app_req(r)->user->id), 60, (int)settings_int(s,
	    SET_CHAT_TURNS_PER_MINUTE)) != 0)
		return;
	sql_release(r);
	if (req_read_body(r) != 0) {
		reply_error(r, 400, "invalid_input", "The audio arrived "
		    "incomplete.", NULL);
		return;
	}
	if (audio_or_reply(r, &a) != 0 || hold_or_reply(r, s, &h) != 0)
		return;
	sql_release(r);
	a.language = lang;
	a.total_ms = (int)settings_int(s, SET_AI_TOTAL_TIMEOUT_MS);
	sql_assert_none(r, "a transcription");
	o = ai_transcribe(&a, &text);
	left = h.balance;
	if ((rc = end_hold(r, &h, o == AI_OK, &left)) < 0) {
		reply_error(r, 503, "unavailable", "The transcription could "
		    "not be completed; your credits will be returned within "
		    "minutes.", NULL);
	} else if (rc == 0) {
		reply_error(r, 504, "upstream_timeout", "The transcription took "
		    "too long; your credits were refunded.", NULL);
	} else if (o != AI_OK) {
		reply_error(r, o == AI_TIMEOUT ? 504 : 502, o == AI_TIMEOUT ?
		    "upstream_timeout" : "upstream_error", "The audio could "
		    "not be transcribed; your credits were refunded.", NULL);
	} else {
		jw_init(&w, &b);
		jw_obj(&w);
		jw_kstr(&w, "text", text);
		jw_kint(&w, "credits_consumed", price);
		jw_kint(&w, "credits_remaining", left);
		jw_end(&w);
		reply_json(r, 200, &b);
		buf_free(&b);
	}
	free(text);
}
