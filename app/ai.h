/*
 * The model provider: OpenAI Chat Completions (or any compatible server
 * at OPENAI_BASE_URL), always streamed; and audio transcription.
 * Without OPENAI_API_KEY a local stand-in answers instead, labelled as
 * such, so the service works offline.
 *
 * No database connection may be held while these run.
 */
#ifndef MIKY_APP_AI_H
#define MIKY_APP_AI_H

#include <stdbool.h>
#include <stddef.h>

struct ai_message {
	const char	*role;		/* system, user, assistant */
	const char	*content;
};

struct ai_turn {
	const char		*model;
	const struct ai_message	*msgs;
	size_t			 nmsgs;
	int			 max_tokens;	/* sent with every call */
	int			 connect_ms;
	int			 first_token_ms;
	int			 idle_ms;
	int			 total_ms;
	int			 max_retries;
	/* Each piece of the answer as it arrives; non-zero cancels. */
	int			(*on_delta)(void *ctx, const char *, size_t);
	void			*ctx;
	int			 watch_fd;	/* our client's socket, or -1 */
};

enum ai_outcome {
	AI_OK,
	AI_TIMEOUT,		/* 504 upstream_timeout */
	AI_UPSTREAM,		/* 502 upstream_error */
	AI_CANCELLED,		/* our client went away */
};

struct ai_result {
	enum ai_outcome	 outcome;
	size_t		 delivered;	/* bytes of answer passed on */
	long long	 prompt_tokens;
	long long	 completion_tokens;
	bool		 standin;
};

void	ai_run(const struct ai_turn *, struct ai_result *);

struct ai_audio {
	const char	*data;
	size_t		 len;
	const char	*content_type;
	const char	*filename;
	const char	*language;	/* or NULL */
	int		 total_ms;
};

/*
 * Transcribes audio; returns the outcome and sets *text (malloc'd; the
 * caller frees) on AI_OK.
 */
enum ai_outcome	ai_transcribe(const struct ai_audio *, char **text);

#endif
