#include <string.h>

#include "url.h"
#include "utf8.h"

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

char *
url_decode(struct arena *a, const char *s, size_t n, bool plus)
{
	char *out = arena_alloc(a, n + 1), *o = out;
	size_t i;
	int hi, lo;

	for (i = 0; i < n; i++) {
		if (s[i] == '%') {
			if (i + 2 >= n || (hi = hexval(s[i + 1])) < 0 ||
			    (lo = hexval(s[i + 2])) < 0 || (hi | lo) == 0)
				return NULL;
			*o++ = (char)(hi << 4 | lo);
			i += 2;
		} else if (s[i] == '\0')
			return NULL;	/* a raw NUL is refused like %00 */
		else if (plus && s[i] == '+')
			*o++ = ' ';
		else
			*o++ = s[i];
	}
	*o = '\0';
	return utf8_valid(out, (size_t)(o - out)) ? out : NULL;
}

size_t
url_split_path(struct arena *a, const char *path, char **segs, size_t max)
{
	size_t i = 0, n = strlen(path), start, count = 0;

	if (n == 0 || path[0] != '/')
		return (size_t)-1;
	if (n == 1)
		return 0;
	for (;;) {
		/* One slash before each segment, none after the last. */
		if (i == n)
			return count;
		if (path[i] != '/' || i + 1 == n || path[i + 1] == '/')
			return (size_t)-1;
		start = ++i;
		while (i < n && path[i] != '/')
			i++;
		if (count == max)
			return (size_t)-1;
		segs[count] = url_decode(a, path + start, i - start, false);
		if (segs[count] == NULL)
			return (size_t)-1;
		count++;
	}
}

size_t
url_parse_query(struct arena *a, const char *q, struct url_kv *kv, size_t max)
{
	const char *p = q, *amp, *eq;
	size_t count = 0;

	while (*p != '\0') {
		amp = strchr(p, '&');
		if (amp == NULL)
			amp = p + strlen(p);
		if (amp > p) {
			if (count == max)
				return (size_t)-1;
			eq = memchr(p, '=', (size_t)(amp - p));
			if (eq == NULL)
				eq = amp;
			kv[count].key = url_decode(a, p, (size_t)(eq - p), true);
			kv[count].value = eq < amp ? url_decode(a, eq + 1,
			    (size_t)(amp - eq - 1), true) : "";
			if (kv[count].key == NULL || kv[count].value == NULL)
				return (size_t)-1;
			count++;
		}
		p = *amp == '&' ? amp + 1 : amp;
	}
	return count;
}

void
url_encode(struct buf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *p;

	for (p = (const unsigned char *)s; *p != '\0'; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' ||
		    *p == '_' || *p == '~')
			buf_putc(b, (char)*p);
		else {
			buf_putc(b, '%');
			buf_putc(b, hex[*p >> 4]);
			buf_putc(b, hex[*p & 15]);
		}
	}
}

void
url_form_add(struct buf *b, const char *key, const char *value)
{
	if (value == NULL)
		return;
	if (b->len > 0)
		buf_putc(b, '&');
	url_encode(b, key);
	buf_putc(b, '=');
	url_encode(b, value);
}
