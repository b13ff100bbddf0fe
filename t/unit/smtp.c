/*
 * lib/smtp.c: which SMTP_URL hosts may be spoken to in plain text.
 * Only loopback ones (127.0.0.0/8, ::1 and IPv4-mapped 127.x, the name
 * "localhost"); every other host, and anything that does not parse,
 * must move to TLS (CURLUSESSL_ALL).  Credentials, ports and letter
 * case do not change the answer, nor do names that merely contain
 * "localhost" or "127.0.0.1".
 */
#include <curl/curl.h>

#include "lib/smtp.h"
#include "t/unit/tap.h"

int
main(void)
{
	static const struct {
		const char	*url;
		bool		 loopback;
	} cases[] = {
		{ "smtp://127.0.0.1:2525", true },
		{ "smtp://127.0.0.1", true },
		{ "smtp://127.5.6.7:25", true },
		{ "smtp://127.255.255.254:25", true },
		{ "smtp://user:pass@127.0.0.1:587", true },
		{ "smtp://user%40x:p%3Aass@127.0.0.1:587", true },
		{ "smtp://localhost:25", true },
		{ "smtp://LOCALHOST:25", true },
		{ "smtp://localhost.:25", true },
		{ "smtp://[::1]:25", true },
		{ "smtp://[0:0:0:0:0:0:0:1]:25", true },
		{ "smtp://[::ffff:127.0.0.1]:25", true },
		{ "SMTP://127.0.0.1:25", true },
		{ "smtps://localhost:465", true },
		{ "smtp://128.0.0.1:25", false },
		{ "smtp://126.255.255.255:25", false },
		{ "smtp://10.0.0.5:25", false },
		{ "smtp://192.168.1.10:587", false },
		{ "smtp://0.0.0.0:25", false },
		{ "smtp://[::]:25", false },
		{ "smtp://[::2]:25", false },
		{ "smtp://[::ffff:10.0.0.1]:25", false },
		{ "smtp://[fe80::1%25eth0]:25", false },
		{ "smtp://mail.example.com:587", false },
		{ "smtp://user:pass@mail.example.com:587", false },
		{ "smtp://localhost.example.com:25", false },
		{ "smtp://localhostx:25", false },
		{ "smtp://127.0.0.1.nip.io:25", false },
		{ "smtp://mylocalhost:25", false },
		{ "smtp://127.0.0.1@mail.example.com:25", false },
		{ "smtp://localhost:pw@mail.example.com:25", false },
		{ "smtps://smtp.example.com:465", false },
		{ "not a url", false },
		{ "", false },
		{ "smtp://", false },
	};
	size_t i;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		is_int(smtp_host_is_loopback(cases[i].url), cases[i].loopback,
		    "%s: %s", cases[i].url, cases[i].loopback ?
		    "loopback, plain allowed" : "TLS required");
	curl_global_cleanup();
	return tap_done();
}
