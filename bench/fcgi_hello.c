/*
 * The reference do-nothing FastCGI program, as ../shared/bench's ceiling
 * probe (c) has it (ceiling/fcgi-hello.c there): libfcgi's accept loop
 * answering every request with the same 300-byte JSON, no work at all.
 * `make bench` runs it under spawn-fcgi (one process a core) behind the
 * same nginx as the app, one connection per request (nginx's default,
 * and all a libfcgi process can serve), and gives every figure also as
 * a ratio to it: "nginx in front of a FastCGI program that does nothing".
 */
#include <fcgiapp.h>
#include <stdio.h>
#include <string.h>

static const char body[] =
    "{\"user\":{\"id\":\"4d22fb9d-795f-469e-8357-6070878c2acb\","
    "\"email\":\"user1@bench.test\",\"first_name\":\"First1\","
    "\"last_name\":\"Last1\",\"credits\":10000,\"plan\":\"free\","
    "\"referral_code\":\"REF0000001\",\"language\":\"en\","
    "\"email_verified\":true,\"created_at\":\"2026-08-28T11:30:17.758Z\","
    "\"updated_at\":\"2026-08-28T11:30:17.758Z\"}}";

_Static_assert(sizeof(body) - 1 == 300, "body must be 300 bytes");

int
main(void)
{
	FCGX_Request req;
	char out[512];
	int n;

	n = snprintf(out, sizeof(out), "Status: 200 OK\r\n"
	    "Content-Type: application/json\r\n"
	    "Content-Length: %zu\r\n\r\n", sizeof(body) - 1);
	memcpy(out + n, body, sizeof(body) - 1);
	n += (int)sizeof(body) - 1;
	if (FCGX_Init() != 0 || FCGX_InitRequest(&req, 0, 0) != 0) {
		fputs("fcgi_hello: FCGX init failed\n", stderr);
		return 1;
	}
	while (FCGX_Accept_r(&req) >= 0) {
		FCGX_PutStr(out, n, req.out);
		FCGX_Finish_r(&req);
	}
	return 0;
}
