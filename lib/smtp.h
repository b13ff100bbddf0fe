/*
 * Sending one message over SMTP with libcurl.
 *
 * The URL is smtp://host[:port] or smtps://host[:port] (TLS from the
 * first byte), with credentials in it when the server wants AUTH
 * (smtp://user:password@host:587; curl takes them from there).  Over
 * smtp:// the connection must move to TLS with STARTTLS before anything
 * else is said (CURLUSESSL_ALL): a server that does not offer it gets
 * no credentials and no mail, the send fails.  Only a loopback host
 * (127.0.0.0/8, ::1, "localhost": a relay on this machine) may be
 * spoken to in plain text, and then STARTTLS is still used if offered.
 * Certificates are verified.  curl dot-stuffs the data and ends it with
 * CRLF.CRLF.
 *
 * curl_global_init() must have run once in the process (see
 * http_global_init()).
 */
#ifndef MIKY_SMTP_H
#define MIKY_SMTP_H

#include <stdbool.h>
#include <stddef.h>

struct smtp_msg {
	const char	*url;
	const char	*from;		/* envelope sender: an address */
	const char	*rcpt;		/* the one recipient: an address */
	const char	*data;		/* the message, CRLF line ends */
	size_t		 len;
	long		 connect_timeout_ms;
	long		 timeout_ms;	/* for the whole exchange */
};

/*
 * Sends the message.  Returns 0 once the server accepted it (250 after
 * DATA), or -1 with one line saying why in err (errlen bytes), the
 * server's reply code included when there was one.  The line never
 * holds the URL's credentials.
 */
int	smtp_send(const struct smtp_msg *, char *err, size_t errlen);

/*
 * True if the URL's host is a loopback address or "localhost", where
 * plain SMTP is allowed; false for any other host and for a URL that
 * does not parse (TLS is then required).
 */
bool	smtp_host_is_loopback(const char *url);

#endif
