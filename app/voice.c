/*
 * POST /api/chat/voice-to-text: audio as the body, or as the `file` part
 * of multipart/form-data, transcribed by the model provider.  Charged
 * like a chat turn: reserved first, refunded if no text comes back.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ai.h"
#include "app.h"
#include "chat.h"
#include "ratelimit.h"
#include "session.h"
#include "settings.h"
#include "sql.h"
#include "lib/jsonw.h"
#include "lib/multipart.h"

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

/* Takes or gives back the price; returns the balance, -1 after replying. */
static long long
credits_or_reply(struct request *r, enum stmt s, const char *reason,
    long long n)
{
	char amount[24];
	const char *p[4] = { app_req(r)->user->id, amount, reason,
	    r->request_id };
	PGresult *res;

	snprintf(amount, sizeof(amount), "%lld", n);
	if ((res = sql_run_or_reply(r, s, p)) == NULL)
		return -1;
	if (PQntuples(res) == 0) {
		reply_error(r, 402, "insufficient_credits", "Transcription "
		    "needs more credits than you have.", NULL);
		return -1;
	}
	return atoll(PQgetvalue(res, 0, 0));
}

void
chat_voice(struct request *r)
{
	const struct settings *s = settings_for(r);
	const char *lang = req_query(r, "language");
	long long price = settings_int(s, "voice_credits_per_request", 3);
	long long left;
	struct ai_audio a = { 0 };
	struct buf b = BUF_INIT;
	struct jw w;
	char *text = NULL;
	enum ai_outcome o;

	if (r->content_length > settings_int(s, "voice_max_bytes",
	    25 * 1024 * 1024)) {
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
	if (req_read_body(r) != 0) {
		reply_error(r, 400, "invalid_input", "The audio arrived "
		    "incomplete.", NULL);
		return;
	}
	if (audio_or_reply(r, &a) != 0)
		return;
	a.language = lang;
	a.total_ms = (int)settings_int(s, "ai_total_timeout_ms", 120000);
	if (rate_take_or_reply(r, arena_printf(r->arena, "voice:%s",
	    app_req(r)->user->id), 60, (int)settings_int(s,
	    "chat_turns_per_minute", 20)) != 0)
		return;
	if ((left = credits_or_reply(r, STMT_CREDITS_TAKE, "voice", price)) < 0)
		return;
	sql_release(r);
	o = ai_transcribe(&a, &text);
	if (o != AI_OK) {
		if (credits_or_reply(r, STMT_CREDITS_GIVE, "voice_refund",
		    price) >= 0)
			reply_error(r, o == AI_TIMEOUT ? 504 : 502, o ==
			    AI_TIMEOUT ? "upstream_timeout" : "upstream_error",
			    "The audio could not be transcribed; your credits "
			    "were refunded.", NULL);
		return;
	}
	jw_init(&w, &b);
	jw_obj(&w);
	jw_kstr(&w, "text", text);
	jw_kint(&w, "credits_consumed", price);
	jw_kint(&w, "credits_remaining", left);
	jw_end(&w);
	reply_json(r, 200, &b);
	buf_free(&b);
	free(text);
}
