/*
 * Internet messages (RFC 5322) with MIME (RFC 2045-2047), built whole
 * into a buffer, ready for SMTP or a .eml file.
 *
 * A message has Date, From, To, Subject, Message-ID and MIME-Version,
 * and a body that is text/plain alone or a multipart/alternative of
 * text/plain and text/html.  Bodies are UTF-8, brought to CRLF line
 * ends and sent in base64, so no line of the message is longer than 78
 * characters and no byte of it is outside ASCII.  A header value that
 * is not ASCII, or too long for one line, becomes RFC 2047 encoded
 * words (=?UTF-8?B?...?=) folded over several lines.
 */
#ifndef MIKY_MIME_H
#define MIKY_MIME_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* "Tue, 03 Feb 2026 10:04:05 +0000" and its NUL. */
#define MIME_DATE_LEN	sizeof("Tue, 03 Feb 2026 10:04:05 +0000")
/* Room for any Message-ID mime_message_id() writes, NUL included. */
#define MIME_MSGID_MAX	300
/* Line length the builder keeps to, CRLF not counted (RFC 5322 2.1.1). */
#define MIME_LINE_MAX	78

struct mime_msg {
	const char	*from;		/* "Name <addr>" or "addr" */
	const char	*to;		/* the same */
	const char	*subject;	/* UTF-8 */
	const char	*message_id;	/* "<id@domain>" */
	int64_t		 date;		/* seconds since the epoch */
	const char	*text;		/* text/plain body, UTF-8 */
	const char	*html;		/* text/html body, or NULL for none */
};

/*
 * Appends the whole message to out.  Returns 0, or -1 (nothing
 * appended) if a header value holds a control character such as CR or
 * LF, which would let it forge headers, or is not valid UTF-8.
 */
int	mime_build(struct buf *out, const struct mime_msg *);

/*
 * Writes the address of a mailbox ("Name <a@b>" gives "a@b", "a@b"
 * stays) to out.  Returns 0, or -1 if it is empty or does not fit.
 */
int	mime_addr_spec(const char *mailbox, char *out, size_t outlen);

/*
 * Writes a new Message-ID, "<" 32 random hex digits "@" domain ">", with
 * the domain of the address of `from` ("localhost" when it has none).
 */
void	mime_message_id(const char *from, char out[MIME_MSGID_MAX]);

/* Writes the RFC 5322 date of `t` (seconds since the epoch), in UTC. */
void	mime_date(int64_t t, char out[MIME_DATE_LEN]);

/*
 * Appends "Name: value" CRLF, the value as it is when it is printable
 * ASCII and fits the line, else as encoded words.  The caller has
 * checked the value (see mime_build).
 */
void	mime_header(struct buf *, const char *name, const char *value);

/* Appends n bytes as base64 lines of 76 characters, each ending CRLF. */
void	mime_base64(struct buf *, const void *, size_t n);

#endif
