/*
 * lib/mime.c: every header is there, lines end in CRLF and keep to 78
 * characters, a subject that is not ASCII comes back whole from its
 * encoded words, bodies come back from base64 byte for byte (with CRLF
 * line ends), and a header value with CR or LF is refused.
 */
#include <stdlib.h>
#include <string.h>

#include "lib/b64.h"
#include "lib/mime.h"
#include "lib/utf8.h"
#include "t/unit/tap.h"

#define FROM	"Miky <no-reply@miky.example>"
#define SUBJECT	"Conferma la tua email \xe2\x80\x93 Miky"
#define TEXT \
	"Ciao Zo\xc3\xab,\n\ngrazie per aver scelto Miky! Conferma il tuo " \
	"indirizzo email per attivare il tuo account, con una riga ben pi\xc3" \
	"\xb9 lunga di settantotto caratteri.\r\n.\nhttps://miky.example/" \
	"verify-email?token=abc\n"
#define HTML	"<p>Ciao Zo\xc3\xab &lt;3</p>\n<p>.</p>"

/* Decodes standard base64 (padding and line ends allowed) into out. */
static long
b64_decode(const char *in, size_t n, unsigned char *out)
{
	char *url = malloc(n + 1);
	size_t i, k = 0;
	long r;

	for (i = 0; i < n; i++) {
		if (in[i] == '\r' || in[i] == '\n' || in[i] == '=')
			continue;
		url[k++] = in[i] == '+' ? '-' : in[i] == '/' ? '_' : in[i];
	}
	r = b64url_decode(url, k, out);
	free(url);
	return r;
}

/* The value of header `name` (unfolded), or NULL; the caller frees. */
static char *
header(const char *msg, const char *name)
{
	const char *end = strstr(msg, "\r\n\r\n"), *p = msg, *v, *q;
	size_t nlen = strlen(name);
	char *out, *o;

	while (p != NULL && p < end) {
		if (strncmp(p, name, nlen) == 0 && p[nlen] == ':') {
			v = p + nlen + 1;
			for (q = v; q < end; q++)
				if (q[0] == '\r' && q[2] != ' ' && q[2] != '\t')
					break;
			out = o = malloc((size_t)(q - v) + 1);
			for (; v < q; v++)
				if (*v != '\r' && *v != '\n')
					*o++ = *v;
			*o = '\0';
			return out;
		}
		if ((p = strstr(p, "\r\n")) != NULL)
			p += 2;
	}
	return NULL;
}

/*
 * Decodes an unstructured value made of =?UTF-8?B?...?= words and
 * ASCII text; the white space between two words goes.  Sets *words to
 * the number of words, *split when one alone is not valid UTF-8.
 */
static char *
decode_words(const char *v, int *words, int *split)
{
	char *out = calloc(1, strlen(v) + 1);
	size_t o = 0;
	const char *p = v, *e;
	long n;
	int last_word = 0;

	*words = *split = 0;
	while (*p != '\0') {
		if (strncmp(p, "=?UTF-8?B?", 10) == 0 &&
		    (e = strstr(p + 10, "?=")) != NULL) {
			while (last_word && o > 0 && out[o - 1] == ' ')
				o--;
			n = b64_decode(p + 10, (size_t)(e - p - 10),
			    (unsigned char *)out + o);
			if (n < 0 || !utf8_valid(out + o, (size_t)n))
				(*split)++;
			o += n > 0 ? (size_t)n : 0;
			(*words)++;
			last_word = 1;
			p = e + 2;
			continue;
		}
		if (*p != ' ')
			last_word = 0;
		out[o++] = *p++;
	}
	out[o] = '\0';
	/* The one space after the colon. */
	if (out[0] == ' ')
		memmove(out, out + 1, o);
	return out;
}

/* Checks CRLF, line length and ASCII over the whole message. */
static void
check_lines(const char *msg, size_t len, const char *what)
{
	size_t i, col = 0, longest = 0;
	int bare = 0, high = 0;

	for (i = 0; i < len; i++) {
		if (msg[i] == '\n' && (i == 0 || msg[i - 1] != '\r'))
			bare++;
		if (msg[i] == '\r' && (i + 1 == len || msg[i + 1] != '\n'))
			bare++;
		if ((unsigned char)msg[i] >= 0x80)
			high++;
		if (msg[i] == '\r' || msg[i] == '\n') {
			col = 0;
			continue;
		}
		if (++col > longest)
			longest = col;
	}
	is_int(bare, 0, "%s: no bare CR or LF", what);
	ok(longest <= MIME_LINE_MAX, "%s: lines <= 78 (longest %zu)", what,
	    longest);
	is_int(high, 0, "%s: only ASCII bytes", what);
	ok(len >= 2 && msg[len - 2] == '\r' && msg[len - 1] == '\n',
	    "%s: ends with CRLF", what);
}

/* The decoded body of the part with Content-Type `type`. */
static char *
part(const char *msg, const char *type)
{
	char want[64];
	const char *p, *body, *end;
	unsigned char *out;
	long n;

	snprintf(want, sizeof(want), "Content-Type: %s; charset=UTF-8", type);
	if ((p = strstr(msg, want)) == NULL ||
	    strstr(p, "Content-Transfer-Encoding: base64\r\n") == NULL ||
	    (body = strstr(p, "\r\n\r\n")) == NULL)
		return NULL;
	body += 4;
	if ((end = strstr(body, "--=_")) == NULL)
		end = body + strlen(body);
	out = calloc(1, (size_t)(end - body) + 1);
	n = b64_decode(body, (size_t)(end - body), out);
	if (n < 0) {
		free(out);
		return NULL;
	}
	out[n] = '\0';
	return (char *)out;
}

static void
test_date(void)
{
	char d[MIME_DATE_LEN];

	mime_date(0, d);
	is_str(d, "Thu, 01 Jan 1970 00:00:00 +0000", "date: the epoch");
	mime_date(951782400, d);
	is_str(d, "Tue, 29 Feb 2000 00:00:00 +0000", "date: a leap day");
	mime_date(1767225600 + 13 * 3600 + 5 * 60 + 9, d);
	is_str(d, "Thu, 01 Jan 2026 13:05:09 +0000", "date: hours, minutes");
}

static void
test_addresses(void)
{
	char a[64], id[MIME_MSGID_MAX], id2[MIME_MSGID_MAX];
	size_t i;
	int hex = 1;

	ok(mime_addr_spec(FROM, a, sizeof(a)) == 0, "addr: of Name <a>");
	is_str(a, "no-reply@miky.example", "addr: the part in <>");
	ok(mime_addr_spec("  a@b.example ", a, sizeof(a)) == 0 &&
	    strcmp(a, "a@b.example") == 0, "addr: a bare address, trimmed");
	ok(mime_addr_spec("Name <>", a, sizeof(a)) == -1, "addr: empty <>");
	ok(mime_addr_spec("Name <a@b", a, sizeof(a)) == -1, "addr: no >");
	ok(mime_addr_spec("a@b.example", a, 5) == -1, "addr: too long");

	mime_message_id(FROM, id);
	mime_message_id(FROM, id2);
	ok(strlen(id) == 1 + 32 + 1 + strlen("miky.example") + 1 &&
	    id[0] == '<' && strcmp(id + 33, "@miky.example>") == 0,
	    "message-id: <32 hex @ the sender's domain>: %s", id);
	for (i = 1; i < 33; i++)
		hex &= strchr("0123456789abcdef", id[i]) != NULL;
	ok(hex, "message-id: random part is hex");
	ok(strcmp(id, id2) != 0, "message-id: a new one each time");
	mime_message_id("nobody", id);
	ok(strstr(id, "@localhost>") != NULL, "message-id: no domain: "
	    "localhost");
}

static void
test_message(void)
{
	struct mime_msg m = { FROM, "anna@example.com", SUBJECT,
	    "<0123abcd@miky.example>", 1767225600, TEXT, HTML };
	struct buf b = BUF_INIT;
	char *v, *s, *t;
	int words, split;

	ok(mime_build(&b, &m) == 0, "build: multipart message");
	check_lines(b.p, b.len, "multipart");
	s = strstr(b.p, "\r\n\r\n");
	ok(s != NULL, "build: headers end with an empty line");

	is_str(v = header(b.p, "Date"), " Thu, 01 Jan 2026 00:00:00 +0000",
	    "header: Date");
	free(v);
	is_str(v = header(b.p, "From"), " " FROM, "header: From");
	free(v);
	is_str(v = header(b.p, "To"), " anna@example.com", "header: To");
	free(v);
	is_str(v = header(b.p, "Message-ID"), " <0123abcd@miky.example>",
	    "header: Message-ID");
	free(v);
	is_str(v = header(b.p, "MIME-Version"), " 1.0",
	    "header: MIME-Version");
	free(v);
	v = header(b.p, "Content-Type");
	ok(v != NULL && strncmp(v, " multipart/alternative; boundary=\"=_",
	    36) == 0, "header: multipart/alternative with a boundary");
	free(v);

	v = header(b.p, "Subject");
	ok(v != NULL && strstr(v, "=?UTF-8?B?") != NULL,
	    "subject: encoded words (not ASCII)");
	t = decode_words(v, &words, &split);
	is_str(t, SUBJECT, "subject: decodes to the original");
	ok(words >= 1 && split == 0, "subject: %d words, none splits a "
	    "character", words);
	free(t);
	free(v);

	is_str(v = part(b.p, "text/plain"),
	    "Ciao Zo\xc3\xab,\r\n\r\ngrazie per aver scelto Miky! Conferma "
	    "il tuo indirizzo email per attivare il tuo account, con una riga "
	    "ben pi\xc3\xb9 lunga di settantotto caratteri.\r\n.\r\n"
	    "https://miky.example/verify-email?token=abc\r\n",
	    "text part: base64 round trip, CRLF line ends");
	free(v);
	is_str(v = part(b.p, "text/html"),
	    "<p>Ciao Zo\xc3\xab &lt;3</p>\r\n<p>.</p>",
	    "html part: base64 round trip");
	free(v);
	ok(strstr(b.p, "\r\n--=_") != NULL && b.len > 4 &&
	    strcmp(b.p + b.len - 4, "--\r\n") == 0,
	    "multipart: delimiters and the closing one");
	buf_free(&b);
}

static void
test_headers(void)
{
	static const char long_subject[] = "A plain ASCII subject that is "
	    "long enough to need folding over more than one line, surely";
	static const char accents[] = "\xc3\xa0\xc3\xa8\xc3\xac\xc3\xb2\xc3"
	    "\xb9\xe2\x80\x93\xc3\xa0\xc3\xa8\xc3\xac\xc3\xb2\xc3\xb9\xe2\x80"
	    "\x93\xc3\xa0\xc3\xa8\xc3\xac\xc3\xb2\xc3\xb9\xe2\x80\x93\xc3\xa0"
	    "\xc3\xa8\xc3\xac\xc3\xb2\xc3\xb9\xe2\x80\x93\xc3\xa0\xc3\xa8\xc3"
	    "\xac\xc3\xb2\xc3\xb9 \xe2\x80\x93 caff\xc3\xa8";
	struct mime_msg m = { "Zo\xc3\xab Rossi <zoe@miky.example>",
	    "anna@example.com", long_subject, "<1@miky.example>", 0,
	    "only text", NULL };
	struct buf b = BUF_INIT;
	char *v, *t;
	int words, split;

	ok(mime_build(&b, &m) == 0, "build: text only");
	check_lines(b.p, b.len, "text only");
	is_str(v = header(b.p, "Subject"), " A plain ASCII subject that is "
	    "long enough to need folding over more than one line, surely",
	    "subject: long ASCII folds and unfolds to the original");
	ok(v != NULL && strstr(v, "=?") == NULL,
	    "subject: ASCII is not encoded");
	free(v);
	v = header(b.p, "From");
	ok(v != NULL && strncmp(v, " =?UTF-8?B?", 11) == 0 &&
	    strstr(v, "?= <zoe@miky.example>") != NULL,
	    "from: display name encoded, address as is");
	t = decode_words(v, &words, &split);
	is_str(t, "Zo\xc3\xab Rossi <zoe@miky.example>", "from: decodes");
	free(t);
	free(v);
	v = header(b.p, "Content-Type");
	is_str(v, " text/plain; charset=UTF-8", "text only: no multipart");
	free(v);
	ok(strstr(b.p, "boundary") == NULL, "text only: no boundary");
	buf_free(&b);

	m.subject = accents;
	ok(mime_build(&b, &m) == 0, "build: long subject, multi-byte");
	check_lines(b.p, b.len, "long subject");
	v = header(b.p, "Subject");
	t = decode_words(v, &words, &split);
	is_str(t, accents, "subject: many words decode to the original");
	ok(words > 1 && split == 0, "subject: %d words, no character split",
	    words);
	free(t);
	free(v);
	buf_free(&b);

	m.subject = "Hello\r\nBcc: victim@example.com";
	ok(mime_build(&b, &m) == -1 && b.len == 0,
	    "subject with CRLF refused, nothing written");
	m.subject = "ok";
	m.to = "a@example.com\nBcc: victim@example.com";
	ok(mime_build(&b, &m) == -1, "to with LF refused");
	m.to = "a@example.com";
	m.from = "Miky \xff <a@b>";
	ok(mime_build(&b, &m) == -1, "invalid UTF-8 refused");
	m.from = FROM;
	m.message_id = "<caf\xc3\xa8@x>";
	ok(mime_build(&b, &m) == -1, "non-ASCII Message-ID refused");
	buf_free(&b);
}

int
main(void)
{
	test_date();
	test_addresses();
	test_message();
	test_headers();
	return tap_done();
}
