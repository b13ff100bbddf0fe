/*
 * lib/jsonw.c: commas between members and elements at every depth,
 * keyed and bare values, and escaping of keys and strings.
 */
#include <limits.h>

#include "lib/jsonw.h"
#include "t/unit/tap.h"

static void
test_flat(void)
{
	struct buf b = BUF_INIT;
	struct jw w;

	jw_init(&w, &b);
	jw_obj(&w);
	jw_end(&w);
	is_str(b.p, "{}", "empty object");

	buf_reset(&b);
	jw_init(&w, &b);
	jw_arr(&w);
	jw_end(&w);
	is_str(b.p, "[]", "empty array");

	buf_reset(&b);
	jw_init(&w, &b);
	jw_obj(&w);
	jw_kstr(&w, "s", "v");
	jw_kint(&w, "i", -12);
	jw_kbool(&w, "t", true);
	jw_kbool(&w, "f", false);
	jw_knull(&w, "n");
	jw_kraw(&w, "r", "[1,{\"x\":2}]");
	jw_kstr(&w, "z", NULL);
	jw_end(&w);
	is_str(b.p, "{\"s\":\"v\",\"i\":-12,\"t\":true,\"f\":false,\"n\":null,"
	    "\"r\":[1,{\"x\":2}],\"z\":null}", "every keyed value type");

	buf_reset(&b);
	jw_init(&w, &b);
	jw_arr(&w);
	jw_int(&w, LLONG_MIN);
	jw_int(&w, LLONG_MAX);
	jw_int(&w, 0);
	jw_str(&w, NULL);
	jw_strn(&w, "abcdef", 2);
	jw_bool(&w, true);
	jw_null(&w);
	jw_raw(&w, "{}");
	jw_end(&w);
	is_str(b.p, "[-9223372036854775808,9223372036854775807,0,null,\"ab\","
	    "true,null,{}]", "every bare value type in an array");
	buf_free(&b);
}

static void
test_nested(void)
{
	struct buf b = BUF_INIT;
	struct jw w;

	jw_init(&w, &b);
	jw_obj(&w);
	jw_kstr(&w, "a", "1");
	jw_kobj(&w, "o");
	jw_kobj(&w, "inner");
	jw_end(&w);
	jw_kint(&w, "k", 2);
	jw_end(&w);
	jw_karr(&w, "list");
	jw_obj(&w);
	jw_kint(&w, "id", 1);
	jw_end(&w);
	jw_obj(&w);
	jw_end(&w);
	jw_arr(&w);
	jw_arr(&w);
	jw_end(&w);
	jw_int(&w, 3);
	jw_end(&w);
	jw_end(&w);
	jw_kint(&w, "after", 4);
	jw_end(&w);
	is_str(b.p, "{\"a\":\"1\",\"o\":{\"inner\":{},\"k\":2},\"list\":"
	    "[{\"id\":1},{},[[],3]],\"after\":4}",
	    "commas at every level, none after an opening bracket");

	/* Members at depth 0, no braces: a log_fields() body. */
	buf_reset(&b);
	jw_init(&w, &b);
	jw_kstr(&w, "method", "GET");
	jw_kint(&w, "status", 200);
	jw_kobj(&w, "o");
	jw_end(&w);
	jw_kbool(&w, "gone", true);
	is_str(b.p, "\"method\":\"GET\",\"status\":200,\"o\":{},"
	    "\"gone\":true", "members without an enclosing object");

	/* The depth bound leaves room for deep but legal nesting. */
	buf_reset(&b);
	jw_init(&w, &b);
	for (int i = 0; i < JW_MAXDEPTH - 1; i++)
		jw_arr(&w);
	for (int i = 0; i < JW_MAXDEPTH - 1; i++)
		jw_end(&w);
	is_int(b.len, 2 * (JW_MAXDEPTH - 1), "JW_MAXDEPTH - 1 levels");
	is_int(w.depth, 0, "depth back to 0");
	buf_free(&b);
}

static void
test_escaping(void)
{
	struct buf b = BUF_INIT;
	struct jw w;

	jw_init(&w, &b);
	jw_obj(&w);
	jw_kstr(&w, "k\"ey", "say \"hi\"\\");
	jw_kstr(&w, "ctl", "a\nb\tc\x01\x1f");
	jw_kstr(&w, "ls", "x\xe2\x80\xa8y\xe2\x80\xa9z");
	jw_kstr(&w, "utf8", "\xc3\xa9\xf0\x9f\x98\x80");
	jw_end(&w);
	is_str(b.p, "{\"k\\\"ey\":\"say \\\"hi\\\"\\\\\","
	    "\"ctl\":\"a\\nb\\tc\\u0001\\u001f\","
	    "\"ls\":\"x\\u2028y\\u2029z\","
	    "\"utf8\":\"\xc3\xa9\xf0\x9f\x98\x80\"}",
	    "keys and values escaped; UTF-8 kept");
	buf_free(&b);
}

int
main(void)
{
	test_flat();
	test_nested();
	test_escaping();
	return tap_done();
}
