#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <cJSON.h>

#include "b64.h"
#include "buf.h"
#include "jwt.h"
#include "token.h"

/* base64url of {"alg":"HS256","typ":"JWT"} */
static const char header_b64[] = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";

int
jwt_sign(const void *secret, size_t secretlen, const char *iss,
    const struct jwt_claims *c, char *out, size_t outlen)
{
	struct buf payload = BUF_INIT;
	unsigned char mac[SHA256_LEN];
	char body[JWT_MAX_LEN], macb64[B64URL_LEN(SHA256_LEN) + 1];
	size_t n, plen;
	int rc = -1;

	buf_puts(&payload, "{\"iss\":");
	buf_json_str(&payload, iss);
	buf_puts(&payload, ",\"sub\":");
	buf_json_str(&payload, c->sub);
	if (c->sid[0] != '\0') {
		buf_puts(&payload, ",\"sid\":");
		buf_json_str(&payload, c->sid);
	}
	buf_printf(&payload, ",\"iat\":%lld,\"exp\":%lld}",
	    (long long)c->iat, (long long)c->exp);

	plen = B64URL_LEN(payload.len);
	if (sizeof(header_b64) + plen + 1 > sizeof(body))
		goto out;
	memcpy(body, header_b64, sizeof(header_b64) - 1);
	n = sizeof(header_b64) - 1;
	body[n++] = '.';
	b64url_encode((const unsigned char *)payload.p, payload.len, body + n);
	n += plen;

	hmac_sha256(secret, secretlen, body, n, mac);
	b64url_encode(mac, sizeof(mac), macb64);
	if (n + 1 + strlen(macb64) + 1 > outlen)
		goto out;
	memcpy(out, body, n);
	out[n] = '.';
	strcpy(out + n + 1, macb64);
	rc = 0;
out:
	buf_free(&payload);
	return rc;
}

/* Decodes one base64url part into a NUL-terminated JSON object. */
static cJSON *
decode_json(const char *p, size_t n)
{
	unsigned char raw[JWT_MAX_LEN];
	long len;

	if (n > JWT_MAX_LEN || (len = b64url_decode(p, n, raw)) < 0)
		return NULL;
	return cJSON_ParseWithLength((const char *)raw, (size_t)len);
}

static int
get_string(const cJSON *obj, const char *name, char *out, size_t outlen)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);

	if (!cJSON_IsString(v) || strlen(v->valuestring) >= outlen)
		return -1;
	strcpy(out, v->valuestring);
	return 0;
}

static int
get_time(const cJSON *obj, const char *name, int64_t *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);

	if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) ||
	    v->valuedouble < 0 || v->valuedouble > 1e12)
		return -1;
	*out = (int64_t)v->valuedouble;
	return 0;
}

/*
 * The header may hold "alg" and "typ" (which must be "JWT"), each at
 * most once, and nothing else.  Members that point at other keys or
 * demand extensions ("kid", "jku", "jwk", "x5u", "x5c", "crit"...) are
 * refused even under a valid MAC: this code honours none of them, and a
 * token that asks for them was not made by jwt_sign().
 */
static bool
header_ok(const cJSON *h)
{
	const cJSON *m;
	int alg = 0, typ = 0;

	if (!cJSON_IsObject(h))
		return false;
	for (m = h->child; m != NULL; m = m->next) {
		if (strcmp(m->string, "alg") == 0)
			alg++;
		else if (strcmp(m->string, "typ") == 0 && cJSON_IsString(m) &&
		    strcmp(m->valuestring, "JWT") == 0)
			typ++;
		else
			return false;
	}
	return alg == 1 && typ <= 1;
}

enum jwt_status
jwt_verify(const void *secret, size_t secretlen, const char *iss,
    const char *token, int64_t now, int64_t leeway, struct jwt_claims *c)
{
	const char *dot1, *dot2;
	unsigned char mac[SHA256_LEN], given[SHA256_LEN + 3];
	char issbuf[JWT_CLAIM_MAX + 1], alg[16];
	cJSON *header = NULL, *payload = NULL;
	enum jwt_status st = JWT_INVALID;
	size_t len = strnlen(token, JWT_MAX_LEN + 1);

	memset(c, 0, sizeof(*c));
	if (len > JWT_MAX_LEN || (dot1 = strchr(token, '.')) == NULL ||
	    (dot2 = strchr(dot1 + 1, '.')) == NULL ||
	    strchr(dot2 + 1, '.') != NULL)
		return JWT_INVALID;
	/*
	 * The MAC first: nothing unauthenticated reaches the parser.  The
	 * length is checked before decoding: given has room for a MAC only.
	 */
	if (strlen(dot2 + 1) != B64URL_LEN(SHA256_LEN) ||
	    b64url_decode(dot2 + 1, strlen(dot2 + 1), given) != SHA256_LEN)
		return JWT_INVALID;
	hmac_sha256(secret, secretlen, token, (size_t)(dot2 - token), mac);
	if (!secure_equal(mac, given, SHA256_LEN))
		return JWT_INVALID;

	header = decode_json(token, (size_t)(dot1 - token));
	if (header == NULL || !header_ok(header) ||
	    get_string(header, "alg", alg, sizeof(alg)) ||
	    strcmp(alg, "HS256") != 0)
		goto out;
	payload = decode_json(dot1 + 1, (size_t)(dot2 - dot1 - 1));
	if (payload == NULL ||
	    get_string(payload, "iss", issbuf, sizeof(issbuf)) != 0 ||
	    strcmp(issbuf, iss) != 0 ||
	    get_string(payload, "sub", c->sub, sizeof(c->sub)) != 0 ||
	    get_time(payload, "iat", &c->iat) != 0 ||
	    get_time(payload, "exp", &c->exp) != 0)
		goto out;
	if (cJSON_GetObjectItemCaseSensitive(payload, "sid") != NULL &&
	    get_string(payload, "sid", c->sid, sizeof(c->sid)) != 0)
		goto out;
	if (c->iat > now + leeway || c->exp <= c->iat)
		goto out;
	st = now >= c->exp ? JWT_EXPIRED : JWT_OK;
out:
	cJSON_Delete(header);
	cJSON_Delete(payload);
	return st;
}
