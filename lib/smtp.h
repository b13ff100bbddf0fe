/*
 * Sending one message over SMTP with libcurl.
 *
 * The URL is smtp://host[:port] or smtps://host[:port] (TLS from the
 * first byte), with credentials in it when the server wants AUTH
 * (smtp://user:password@host:587; curl takes them from there).  Over
 * smtp:// the connection moves to TLS with STARTTLS when the server
 * offers it, and stays plain when it does not: credentials in an
 * smtp:// URL cross the network in the clear to a server without
 * STARTTLS, so use smtps:// or a server that offers it.  Certificates
 * are verified.  curl dot-stuffs the data and ends it with CRLF.CRLF.
 *
 * curl_global_init() must have run once in the process (see
 * http_global_init()).
 */
#ifndef MIKY_SMTP_H
#define MIKY_SMTP_H

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

#endif
