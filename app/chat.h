/*
 * The chat turn (chat.c) and voice to text (voice.c).
 */
#ifndef MIKY_APP_CHAT_H
#define MIKY_APP_CHAT_H

#include "lib/json.h"

struct request;

extern const struct jfield chat_send_in[], chat_message_in[];

void	chat_send(struct request *);
void	chat_message(struct request *);
void	chat_voice(struct request *);

#endif
