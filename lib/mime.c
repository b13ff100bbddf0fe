#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "b64.h"
#include "mime.h"
#include "token.h"
#include "utf8.h"

/*
 * An encoded word is at most 75 characters (RFC 2047 section 2):
 * "=?UTF-8?B?" and "?=" take 12, leaving 63, so 15 groups of base64,
 * 45 bytes of text.
 */
#define WORD_OVERHEAD	12
#define WORD_BYTES	45
/* Base64 lines of 76 characters (RFC 2045 section 6.8): 57 bytes. */
#define B64_LINE_BYTES	57
/* "=_" cannot occur in base64 text, so the boundary never does. */
#define BOUNDARY_RANDOM	30
#define ALNUM \
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

/* True if s is all printable ASCII (space included). */
static bool
printable_ascii(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (s[i] < ' ' || s[i] > '~')
			return false;
	return true;
}

/*
 * A header value must be valid UTF-8 without control characters: a CR
 * or LF in it would end the header and start one of the sender's
 * choosing.
 */
static bool
header_ok(const char *s)
{
	const unsigned char *p;

	if (s == NULL || !utf8_valid(s, strlen(s)))
		return false;
	for (p = (const unsigned char *)s; *p != '\0'; p++)
		if (*p < ' ' || *p == 0x7f)
			return false;
	return true;
}

/*
 * Appends the printable ASCII s[0..n) from column col, a space before
 * each of its space-separated words, folding before a word that would
 * pass the line limit.  Returns the column after it.
 */
static size_t
put_folded(struct buf *b, const char *s, size_t n, size_t col)
{
	const char *end = s + n;
	size_t w;

	while (s < end) {
		for (w = 0; s + w < end && s[w] != ' '; w++)
			;
		if (w > 0) {
			if (col > 1 && col + 1 + w > MIME_LINE_MAX) {
				buf_puts(b, "\r\n");
				col = 0;
			}
			buf_putc(b, ' ');
			buf_add(b, s, w);
			col += 1 + w;
		}
		s += w;
		while (s < end && *s == ' ')
			s++;
	}
	return col;
}

/*
 * Appends s[0..n) as encoded words from column col, each preceded by a
 * space or a fold, none splitting a UTF-8 sequence.  Returns the
 * column after them.
 */
static size_t
put_words(struct buf *b, const char *s, size_t n, size_t col)
{
	char enc[B64_LEN(WORD_BYTES) + 1];
	size_t room, take;

	while (n > 0) {
		if (col + 1 + WORD_OVERHEAD + 8 > MIME_LINE_MAX) {
			buf_puts(b, "\r\n");
			col = 0;
		}
		buf_putc(b, ' ');
		col++;
		room = (MIME_LINE_MAX - col - WORD_OVERHEAD) / 4 * 3;
		if (room > WORD_BYTES)
			room = WORD_BYTES;
		take = n < room ? n : room;
		while (take < n && take > 1 &&
		    ((unsigned char)s[take] & 0xc0) == 0x80)
			take--;
		b64_encode((const unsigned char *)s, take, enc);
		buf_printf(b, "=?UTF-8?B?%s?=", enc);
		col += WORD_OVERHEAD + strlen(enc);
		s += take;
		n -= take;
	}
	return col;
}

void
mime_header(struct buf *b, const char *name, const char *value)
{
	size_t col = strlen(name) + 1, n = strlen(value);

	buf_puts(b, name);
	buf_putc(b, ':');
	/* Folding loses runs of spaces: a value with them is encoded. */
	if (printable_ascii(value, n) && strstr(value, "  ") == NULL &&
	    (n == 0 || (value[0] != ' ' && value[n - 1] != ' ')))
		put_folded(b, value, n, col);
	else
		put_words(b, value, n, col);
	buf_puts(b, "\r\n");
}

/*
 * From and To: an address is never encoded, only a display name that
 * is not ASCII ("Zoë <z@x>" gives "=?UTF-8?B?Wm/Dqw==?= <z@x>").
 */
static void
put_mailbox(struct buf *b, const char *name, const char *v)
{
	const char *lt = strrchr(v, '<'), *d = v, *e;
	size_t col = strlen(name) + 1, n = strlen(v);

	buf_puts(b, name);
	buf_putc(b, ':');
	if (lt == NULL || printable_ascii(v, n)) {
		put_folded(b, v, n, col);
		buf_puts(b, "\r\n");
		return;
	}
	while (*d == ' ')
		d++;
	for (e = lt; e > d && e[-1] == ' '; e--)
		;
	if (e - d >= 2 && *d == '"' && e[-1] == '"') {
		d++;
		e--;
	}
	col = put_words(b, d, (size_t)(e - d), col);
	put_folded(b, lt, strlen(lt), col);
	buf_puts(b, "\r\n");
}

void
mime_base64(struct buf *b, const void *data, size_t n)
{
	const unsigned char *p = data;
	char line[B64_LEN(B64_LINE_BYTES) + 1];
	size_t take;

	while (n > 0) {
		take = n < B64_LINE_BYTES ? n : B64_LINE_BYTES;
		b64_encode(p, take, line);
		buf_puts(b, line);
		buf_puts(b, "\r\n");
		p += take;
		n -= take;
	}
}

/*
 * One body part: text brought to canonical CRLF line ends (RFC 2046
 * section 4.1.1) before it is encoded, whatever ends it came with.
 */
static void
put_part(struct buf *b, const char *type, const char *text)
{
	struct buf canon = BUF_INIT;
	const char *p;

	for (p = text; *p != '\0'; p++) {
		if (*p == '\r') {
			if (p[1] != '\n')
				buf_add(&canon, "\r\n", 2);
		} else if (*p == '\n')
			buf_add(&canon, "\r\n", 2);
		else
			buf_putc(&canon, *p);
	}
	buf_printf(b, "Content-Type: %s; charset=UTF-8\r\n"
	    "Content-Transfer-Encoding: base64\r\n\r\n", type);
	mime_base64(b, canon.p, canon.len);
	buf_free(&canon);
}

int
mime_build(struct buf *out, const struct mime_msg *m)
{
	char date[MIME_DATE_LEN], boundary[2 + BOUNDARY_RANDOM + 1];

	if (!header_ok(m->from) || !header_ok(m->to) ||
	    !header_ok(m->subject) || !header_ok(m->message_id) ||
	    !printable_ascii(m->message_id, strlen(m->message_id)))
		return -1;
	mime_date(m->date, date);
	mime_header(out, "Date", date);
	put_mailbox(out, "From", m->from);
	put_mailbox(out, "To", m->to);
	mime_header(out, "Subject", m->subject);
	mime_header(out, "Message-ID", m->message_id);
	mime_header(out, "MIME-Version", "1.0");
	if (m->html == NULL) {
		put_part(out, "text/plain", m->text);
		return 0;
	}
	boundary[0] = '=';
	boundary[1] = '_';
	token_from_alphabet(boundary + 2, BOUNDARY_RANDOM, ALNUM);
	buf_printf(out, "Content-Type: multipart/alternative;\r\n"
	    " boundary=\"%s\"\r\n\r\n"
	    "This is a multi-part message in MIME format.\r\n", boundary);
	buf_printf(out, "--%s\r\n", boundary);
	put_part(out, "text/plain", m->text);
	buf_printf(out, "--%s\r\n", boundary);
	put_part(out, "text/html", m->html);
	buf_printf(out, "--%s--\r\n", boundary);
	return 0;
}

int
mime_addr_spec(const char *mailbox, char *out, size_t outlen)
{
	const char *s = strrchr(mailbox, '<'), *e;
	size_t n;

	if (s != NULL) {
		s++;
		if ((e = strchr(s, '>')) == NULL)
			return -1;
	} else {
		for (s = mailbox; *s == ' '; s++)
			;
		for (e = s + strlen(s); e > s && e[-1] == ' '; e--)
			;
	}
	n = (size_t)(e - s);
	if (n == 0 || n >= outlen)
		return -1;
	memcpy(out, s, n);
	out[n] = '\0';
	return 0;
}

void
mime_message_id(const char *from, char out[MIME_MSGID_MAX])
{
	unsigned char rnd[16];
	char hex[2 * sizeof(rnd) + 1], addr[256];
	const char *domain = "localhost", *at;

	token_random(rnd, sizeof(rnd));
	hex_encode(rnd, sizeof(rnd), hex);
	if (mime_addr_spec(from, addr, sizeof(addr)) == 0 &&
	    (at = strrchr(addr, '@')) != NULL && at[1] != '\0' &&
	    printable_ascii(at + 1, strlen(at + 1)) &&
	    strpbrk(at + 1, " <>") == NULL)
		domain = at + 1;
	snprintf(out, MIME_MSGID_MAX, "<%s@%s>", hex, domain);
}

/* English names whatever the locale, as RFC 5322 wants them. */
void
mime_date(int64_t t, char out[MIME_DATE_LEN])
{
	static const char days[7][4] = {
		"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"
	};
	static const char months[12][4] = {
		"Jan", "Feb", "Mar", "Apr", "May", "Jun",
		"Jul", "Aug", "Sep", "Oct", "Nov", "Dec"
	};
	time_t secs = (time_t)t;
	struct tm tm;
	char tmp[64];

	gmtime_r(&secs, &tm);
	/* Through a roomy buffer: the compiler cannot see the ranges. */
	snprintf(tmp, sizeof(tmp), "%s, %02d %s %04d %02d:%02d:%02d +0000",
	    days[tm.tm_wday % 7], tm.tm_mday, months[tm.tm_mon % 12],
	    (tm.tm_year + 1900) % 10000, tm.tm_hour, tm.tm_min, tm.tm_sec);
	memcpy(out, tmp, MIME_DATE_LEN - 1);
	out[MIME_DATE_LEN - 1] = '\0';
}
