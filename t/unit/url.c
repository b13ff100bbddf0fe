/*
 * lib/url.c: percent-decoding refuses bad escapes, %00 and invalid
 * UTF-8; '+' is a space only in queries; path splitting refuses empty
 * segments and keeps %2F inside its segment; both splitters bound the
 * number of pieces.
 */
#include <string.h>

#include "lib/url.h"
#include "t/unit/tap.h"

static struct arena	*a;

/* Decodes s and compares with want (NULL: refused). */
static void
dec_is(const char *s, bool plus, const char *want)
{
	is_str(url_decode(a, s, strlen(s), plus), want, "decode '%s'%s %s", s,
	    plus ? " (query)" : "", want != NULL ? "" : "refused");
}

static void
test_decode(void)
{
	dec_is("", false, "");
	dec_is("plain", false, "plain");
	dec_is("a%20b", false, "a b");
	dec_is("%41%42c", false, "ABc");
	dec_is("%4a%4A", false, "JJ");
	dec_is("%2F", false, "/");
	dec_is("%25", false, "%");
	dec_is("%01", false, "\x01");
	dec_is("a+b", false, "a+b");
	dec_is("a+b", true, "a b");
	dec_is("%2B+", true, "+ ");
	dec_is("%C3%A9t%c3%a9", false, "\xc3\xa9t\xc3\xa9");
	dec_is("\xc3\xa9", false, "\xc3\xa9");
	dec_is("%F0%9F%98%80", false, "\xf0\x9f\x98\x80");
	dec_is("%00", false, NULL);
	dec_is("a%00b", true, NULL);
	dec_is("%", false, NULL);
	dec_is("ab%", false, NULL);
	dec_is("%4", false, NULL);
	dec_is("ab%4", false, NULL);
	dec_is("%G1", false, NULL);
	dec_is("%1G", false, NULL);
	dec_is("%%41", false, NULL);
	dec_is("% 1", false, NULL);
	dec_is("%C3", false, NULL);
	dec_is("%C3%28", false, NULL);
	dec_is("%C0%80", false, NULL);
	dec_is("%E0%80%80", false, NULL);
	dec_is("%ED%A0%80", false, NULL);
	dec_is("%F4%90%80%80", false, NULL);
	dec_is("%FF", false, NULL);
	dec_is("\xff", false, NULL);
	is_str(url_decode(a, "abc%41", 3, false), "abc",
	    "decode looks only at n bytes");
	is_str(url_decode(a, "ab%41", 4, false), NULL,
	    "an escape cut by n is refused");
	is_str(url_decode(a, "a\0b", 3, false), NULL,
	    "a raw NUL byte is refused like %%00");
	is_str(url_decode(a, "a\0", 2, true), NULL,
	    "a raw NUL byte at the end is refused");
}

static void
test_path(void)
{
	char *segs[4];

	is_int(url_split_path(a, "/", segs, 4), 0, "'/' has no segments");
	is_int(url_split_path(a, "///", segs, 4), -1, "'///' refused");
	is_int(url_split_path(a, "/api/metrics/", segs, 4), -1,
	    "a trailing slash refused");
	is_int(url_split_path(a, "//api/metrics", segs, 4), -1,
	    "a leading double slash refused");
	is_int(url_split_path(a, "", segs, 4), -1, "empty path refused");
	is_int(url_split_path(a, "api/x", segs, 4), -1,
	    "relative path refused");
	is_int(url_split_path(a, "/api//x", segs, 4), -1,
	    "'/api//x': an empty segment refused");
	is_int(url_split_path(a, "/api/x", segs, 4), 2, "'/api/x'");
	is_str(segs[0], "api", "first segment");
	is_str(segs[1], "x", "second segment");
	is_int(url_split_path(a, "/a%2Fb/c", segs, 4), 2,
	    "%%2F does not split");
	is_str(segs[0], "a/b", "%%2F stays inside its segment");
	is_str(segs[1], "c", "segment after %%2F");
	is_int(url_split_path(a, "/a+b/%20", segs, 4), 2, "'+' in a path");
	is_str(segs[0], "a+b", "'+' is not a space in a path");
	is_str(segs[1], " ", "%%20 is a space");
	is_int(url_split_path(a, "/%C3%A9t%C3%A9", segs, 4), 1, "UTF-8 path");
	is_str(segs[0], "\xc3\xa9t\xc3\xa9", "UTF-8 segment decoded");
	is_int(url_split_path(a, "/a/%00", segs, 4), -1, "%%00 refused");
	is_int(url_split_path(a, "/a/%zz", segs, 4), -1, "bad hex refused");
	is_int(url_split_path(a, "/a/b%", segs, 4), -1,
	    "trailing '%%' refused");
	is_int(url_split_path(a, "/a/b%2", segs, 4), -1,
	    "trailing '%%2' refused");
	is_int(url_split_path(a, "/x/%FF", segs, 4), -1,
	    "invalid UTF-8 after decoding refused");
	is_int(url_split_path(a, "/x/%ED%A0%80", segs, 4), -1,
	    "encoded surrogate refused");
	is_int(url_split_path(a, "/1/2/3/4", segs, 4), 4,
	    "exactly max segments");
	is_str(segs[3], "4", "last of max segments");
	is_int(url_split_path(a, "/1/2/3/4/", segs, 4), -1,
	    "max segments and a trailing slash refused");
	is_int(url_split_path(a, "/1/2/3/4/5", segs, 4), -1,
	    "max + 1 segments refused");
	is_int(url_split_path(a, "/", segs, 0), 0, "max 0 and no segment");
	is_int(url_split_path(a, "/a", segs, 0), -1, "max 0 and a segment");
}

static void
test_query(void)
{
	struct url_kv kv[3];

	is_int(url_parse_query(a, "", kv, 3), 0, "empty query");
	is_int(url_parse_query(a, "&&&", kv, 3), 0, "only separators");
	is_int(url_parse_query(a, "a=1&b=x%20y", kv, 3), 2, "two pairs");
	is_str(kv[0].key, "a", "first key");
	is_str(kv[0].value, "1", "first value");
	is_str(kv[1].key, "b", "second key");
	is_str(kv[1].value, "x y", "second value decoded");
	is_int(url_parse_query(a, "q=a+b%2Bc&flag", kv, 3), 2, "plus, flag");
	is_str(kv[0].value, "a b+c", "'+' is a space in a query, %%2B a plus");
	is_str(kv[1].key, "flag", "key without '='");
	is_str(kv[1].value, "", "key without '=' has \"\"");
	is_int(url_parse_query(a, "a+b=c=d&=v&e=", kv, 3), 3, "odd shapes");
	is_str(kv[0].key, "a b", "key decoded with '+'");
	is_str(kv[0].value, "c=d", "value keeps a second '='");
	is_str(kv[1].key, "", "empty key");
	is_str(kv[1].value, "v", "value of an empty key");
	is_str(kv[2].value, "", "'e=' has an empty value");
	is_int(url_parse_query(a, "&x=1&&y=2&", kv, 3), 2,
	    "empty pieces skipped");
	is_str(kv[1].key, "y", "pair after '&&'");
	is_int(url_parse_query(a, "k=%C3%A9", kv, 3), 1, "UTF-8 value");
	is_str(kv[0].value, "\xc3\xa9", "UTF-8 value decoded");
	is_int(url_parse_query(a, "a=%00", kv, 3), -1, "%%00 refused");
	is_int(url_parse_query(a, "a%00=1", kv, 3), -1,
	    "%%00 in a key refused");
	is_int(url_parse_query(a, "a=%ZZ", kv, 3), -1, "bad hex refused");
	is_int(url_parse_query(a, "a=1&b=%", kv, 3), -1,
	    "trailing '%%' refused");
	is_int(url_parse_query(a, "a=%FF", kv, 3), -1,
	    "invalid UTF-8 refused");
	is_int(url_parse_query(a, "a&b&c", kv, 3), 3, "exactly max pairs");
	is_int(url_parse_query(a, "a&b&c&", kv, 3), 3,
	    "max pairs and a trailing '&'");
	is_int(url_parse_query(a, "a&b&c&d", kv, 3), -1,
	    "max + 1 pairs refused");
}

static void
test_encode(void)
{
	struct buf b = BUF_INIT;

	url_encode(&b, "aZ09-._~");
	is_str(b.p, "aZ09-._~", "unreserved characters as they are");
	buf_reset(&b);
	url_encode(&b, "a b&c=d+e/f?%");
	is_str(b.p, "a%20b%26c%3Dd%2Be%2Ff%3F%25", "the rest as %%XX");
	buf_reset(&b);
	url_encode(&b, "\xc3\xa9\x01\x7f\xff");
	is_str(b.p, "%C3%A9%01%7F%FF", "bytes above 0x7f and controls");
	buf_reset(&b);
	url_encode(&b, "");
	is_int(b.len, 0, "nothing for an empty string");
	url_form_add(&b, "metadata[user_id]", "u 1");
	url_form_add(&b, "skipped", NULL);
	url_form_add(&b, "line_items[0][price]", "price_1");
	is_str(b.p, "metadata%5Buser_id%5D=u%201&"
	    "line_items%5B0%5D%5Bprice%5D=price_1",
	    "a form: pairs joined by '&', NULL values left out");
	ok(url_decode(a, b.p, b.len, true) != NULL, "and it decodes");
	buf_free(&b);
}

int
main(void)
{
	a = arena_new();
	test_decode();
	test_path();
	test_query();
	test_encode();
	arena_free(a);
	return tap_done();
}
