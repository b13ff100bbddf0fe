/*
 * libFuzzer target for lib/hooksig.c.  The input is a Stripe-Signature
 * header, a newline, and a body.  hooksig_verify() must agree with a
 * plain reference: split the header on ',', take the one t=, compute
 * the MAC the sender would and compare it with strcmp() against every
 * v1=.  Then the header hooksig_sign() writes for the body must verify,
 * and fail once the body changes.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/hooksig.h"
#include "lib/num.h"
#include "lib/token.h"

#define CHECK(c) do {							\
	if (!(c)) {							\
		fprintf(stderr, "fuzz_hooksig: check failed: %s (line %d)\n", \
		    #c, __LINE__);					\
		abort();						\
	}								\
} while (0)

#define NOW	1700000000
#define TOL	300

static const char secret[] = "whsec_fuzz";

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* The reference verdict. */
static enum hooksig_result
reference(const char *header, const char *body, size_t len)
{
	char *copy, *item, *save = NULL, *t = NULL, mac_hex[65], *msg;
	unsigned char mac[SHA256_LEN];
	bool any = false, match = false, two_t = false;
	long long v;
	size_t n;
	enum hooksig_result r;

	if (strlen(header) > HOOKSIG_HEADER_MAX)
		return HOOKSIG_MALFORMED;
	copy = strdup(header);
	for (item = strtok_r(copy, ",", &save); item != NULL;
	    item = strtok_r(NULL, ",", &save))
		if (strncmp(item, "t=", 2) == 0) {
			two_t = two_t || t != NULL;
			t = item + 2;
		}
	if (t == NULL || two_t || num_parse(t, 0, (long long)1 << 40,
	    &v) != 0) {
		free(copy);
		return HOOKSIG_MALFORMED;
	}
	n = strlen(t) + 1 + len;
	msg = malloc(n + 1);
	snprintf(msg, n + 1, "%s.", t);
	memcpy(msg + strlen(t) + 1, body, len);
	hmac_sha256(secret, strlen(secret), msg, n, mac);
	hex_encode(mac, sizeof(mac), mac_hex);
	free(msg);
	free(copy);
	copy = strdup(header);
	for (item = strtok_r(copy, ",", &save); item != NULL;
	    item = strtok_r(NULL, ",", &save))
		if (strncmp(item, "v1=", 3) == 0) {
			any = true;
			match = match || strcmp(item + 3, mac_hex) == 0;
		}
	free(copy);
	if (!any)
		r = HOOKSIG_MALFORMED;
	else if (!match)
		r = HOOKSIG_MISMATCH;
	else if (v > NOW + TOL || v < NOW - TOL)
		r = HOOKSIG_STALE;
	else
		r = HOOKSIG_OK;
	return r;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nl = memchr(data, '\n', size);
	size_t hlen = nl != NULL ? (size_t)(nl - data) : size;
	const char *body = nl != NULL ? (const char *)nl + 1 : "";
	size_t blen = nl != NULL ? size - hlen - 1 : 0;
	char *header, sig[128];
	int64_t t;

	if (memchr(data, '\0', hlen) != NULL)
		return 0;	/* a header is a C string */
	header = strndup((const char *)data, hlen);
	CHECK(hooksig_verify(header, body, blen, secret, strlen(secret), NOW,
	    TOL, &t) == reference(header, body, blen));
	hooksig_sign(sig, body, blen, secret, strlen(secret), NOW - (blen % 7));
	CHECK(hooksig_verify(sig, body, blen, secret, strlen(secret), NOW,
	    TOL, &t) == HOOKSIG_OK);
	CHECK(t == (int64_t)(NOW - (blen % 7)));
	if (blen > 0)
		CHECK(hooksig_verify(sig, body, blen - 1, secret,
		    strlen(secret), NOW, TOL, &t) == HOOKSIG_MISMATCH);
	free(header);
	return 0;
}
