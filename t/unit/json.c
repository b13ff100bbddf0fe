/*
 * lib/json.c: json_parse() takes only well-formed UTF-8 JSON within the
 * depth bound, without NUL characters or trailing text, from a buffer
 * of known length; json_validate() checks every field type of a spec
 * and names the field at fault.
 */
#include <limits.h>
#include <string.h>

#include "lib/json.h"
#include "t/unit/tap.h"

static struct arena	*a;
static struct jerror	 err;

static const char *const colors[] = { "red", "green", "blue", NULL };

enum {
	F_EMAIL, F_NAME, F_AGE, F_COLOR, F_ID, F_NICK, F_OK, F_EXTRA, F_TITLE,
	F__MAX
};
static const struct jfield spec[] = {
	[F_EMAIL] = { "email", JF_EMAIL, JF_REQUIRED, 3, 254 },
	[F_NAME] = { "name", JF_STRING, JF_TRIM, 2, 4 },
	[F_AGE] = { "age", JF_INT, 0, 0, 150 },
	[F_COLOR] = { "color", JF_WORD, 0, 0, 0, colors },
	[F_ID] = { "id", JF_UUID, JF_NULLABLE },
	[F_NICK] = { "nick", JF_STRING, JF_NULLABLE, 0, 3 },
	[F_OK] = { "ok", JF_BOOL },
	[F_EXTRA] = { "extra", JF_ANY },
	[F_TITLE] = { "title", JF_STRING, JF_TRIM | JF_LINE, 1, 10 },
	{ NULL }
};
static struct jvalue	 vals[F__MAX];

/* A second spec with the widest integer bounds. */
static const struct jfield wide[] = {
	{ "n", JF_INT, JF_REQUIRED, LLONG_MIN, LLONG_MAX },
	{ NULL }
};

static cJSON *
parse(const char *s)
{
	return json_parse(a, s, strlen(s), &err);
}

/* Parses s and validates it against spec; 0 or -1. */
static int
val(const char *s)
{
	cJSON *root = parse(s);

	if (root == NULL) {
		printf("# parse failed: %s\n", err.message);
		return -2;
	}
	return json_validate(a, root, spec, vals, &err);
}

/* Parses and validates s; expects a refusal naming field and message. */
static void
refused(const char *s, const char *field, const char *message)
{
	is_int(val(s), -1, "refused: %s", s);
	is_str(err.code, "invalid_input", "code for %s", s);
	is_str(err.field, field, "field for %s", s);
	if (message != NULL)
		is_str(err.message, message, "message for %s", s);
}

static void
parse_refused(const char *s, size_t n, const char *message, const char *name)
{
	is_int(json_parse(a, s, n, &err) == NULL, 1, "parse refuses %s", name);
	is_str(err.code, "invalid_json", "code: %s", name);
	ok(err.field == NULL, "no field: %s", name);
	if (message != NULL)
		is_str(err.message, message, "message: %s", name);
}

/* "[[[...]]]" or {"a":{"a":...}} nested depth times. */
static char *
nest(int depth, int objects)
{
	static char s[512];
	size_t n = 0;
	int i;

	for (i = 0; i < depth; i++)
		n += (size_t)snprintf(s + n, sizeof(s) - n, "%s",
		    objects ? "{\"a\":" : "[");
	n += (size_t)snprintf(s + n, sizeof(s) - n, "1");
	for (i = 0; i < depth; i++)
		n += (size_t)snprintf(s + n, sizeof(s) - n, "%s",
		    objects ? "}" : "]");
	return s;
}

static void
test_parse(void)
{
	static const char tail[] = "{\"a\":1}XYZ";
	static const char nul_in_str[] = "{\"a\":\"x\0y\"}";
	static const char nul_after[] = "{}\0";
	static const char nul_between[] = "{\0}";
	const char *nulmsg = "Strings may not contain NUL characters.";
	const char *utf8msg = "Request body is not valid UTF-8.";
	const char *deepmsg = "JSON is nested too deeply.";
	const char *badmsg = "Request body is not valid JSON.";
	cJSON *root, *item;

	root = parse("{}");
	ok(root != NULL && cJSON_IsObject(root), "parse {} with its length");
	root = parse(" \r\n\t{\"a\":[1,2,{\"b\":null}],\"c\":\"d\"} \n");
	ok(root != NULL && cJSON_IsArray(cJSON_GetObjectItem(root, "a")),
	    "nested object with white space around");
	ok(json_parse(a, tail, 7, &err) != NULL,
	    "only len bytes are parsed; no NUL needed at body[len]");
	ok(parse("[1,\"x\",true,null]") != NULL && parse("42") != NULL &&
	    parse("\"s\"") != NULL && parse("null") != NULL,
	    "any JSON value parses (validate checks for an object)");

	root = parse("{\"a\":\"\\\\u0000\"}");
	item = root != NULL ? cJSON_GetObjectItem(root, "a") : NULL;
	ok(item != NULL, "\"\\\\u0000\" (escaped backslash) is accepted");
	is_str(item != NULL ? item->valuestring : NULL, "\\u0000",
	    "and decodes to backslash u 0 0 0 0");
	root = parse("{\"a\":\"\\u0001\\ud83d\\ude00\\u00e9\"}");
	item = root != NULL ? cJSON_GetObjectItem(root, "a") : NULL;
	is_str(item != NULL ? item->valuestring : NULL,
	    "\x01\xf0\x9f\x98\x80\xc3\xa9", "\\u escapes and a surrogate pair "
	    "decode to UTF-8");

	parse_refused("{\"a\":\"\\u0000\"}", 14, nulmsg, "\\u0000");
	parse_refused("{\"a\":\"x\\\\\\u0000\"}", 17, nulmsg,
	    "\\u0000 after an escaped backslash");
	parse_refused("{\"a\":\"\\u00000\"}", 15, nulmsg, "\\u0000 then 0");
	parse_refused("{\"\\u0000\":1}", 12, nulmsg, "\\u0000 in a key");
	parse_refused(nul_in_str, sizeof(nul_in_str) - 1, nulmsg,
	    "raw NUL byte inside a string");
	parse_refused(nul_after, sizeof(nul_after) - 1, NULL,
	    "raw NUL byte after the value");
	parse_refused(nul_between, sizeof(nul_between) - 1, NULL,
	    "raw NUL byte between tokens");
	parse_refused("{\"a\":\"x\ty\"}", 11, NULL,
	    "raw control character in a string");
	parse_refused("\x01{}", 3, NULL, "control character before the value");

	parse_refused("{\"a\":\"\xc0\x80\"}", 10, utf8msg, "overlong C0 80");
	parse_refused("{\"a\":\"\xed\xa0\x80\"}", 11, utf8msg, "surrogate");
	parse_refused("{\"a\":\"\xc3\"}", 9, utf8msg, "truncated UTF-8");
	parse_refused("\xff{}", 3, utf8msg, "FF byte");
	parse_refused("{\"a\":\"\\ud800\"}", 14, badmsg,
	    "escaped lone surrogate");

	parse_refused("", 0, badmsg, "empty body");
	parse_refused("   ", 3, badmsg, "only white space");
	parse_refused("{}x", 3, badmsg, "trailing garbage");
	parse_refused("{} {}", 5, badmsg, "two values");
	parse_refused("{},", 3, badmsg, "trailing comma");
	parse_refused("{\"a\":1,}", 8, badmsg, "comma before }");
	parse_refused("{\"a\":", 5, badmsg, "truncated object");
	parse_refused("{\"a\":\"x", 7, badmsg, "unterminated string");
	parse_refused("{'a':1}", 7, badmsg, "single quotes");
	parse_refused("{a:1}", 5, badmsg, "bare key");
	parse_refused("[1 2]", 5, badmsg, "missing comma");
	ok(parse("{}\r\n\t ") != NULL, "trailing white space is fine");

	ok(parse(nest(JSON_MAX_DEPTH, 0)) != NULL,
	    "arrays nested exactly JSON_MAX_DEPTH deep");
	parse_refused(nest(JSON_MAX_DEPTH + 1, 0), strlen(nest(
	    JSON_MAX_DEPTH + 1, 0)), deepmsg, "arrays JSON_MAX_DEPTH + 1 deep");
	ok(parse(nest(JSON_MAX_DEPTH, 1)) != NULL,
	    "objects nested exactly JSON_MAX_DEPTH deep");
	parse_refused(nest(JSON_MAX_DEPTH + 1, 1), strlen(nest(
	    JSON_MAX_DEPTH + 1, 1)), deepmsg,
	    "objects JSON_MAX_DEPTH + 1 deep");
	ok(parse("{\"a\":\"[[[[[[[[[[[[[[[[[[[[{{{{{{\\\"[[[[[[\"}") != NULL,
	    "brackets inside strings do not count");
	ok(parse("[[[],[]],[[],[]],[[],[]],[[],[]],[[],[]],[[],[]],[[],[]],"
	    "[[],[]],[[],[]],[[],[]],[[],[]],[[],[]],[[],[]],[[],[]],"
	    "[[],[]],[[],[]],[[],[]]]") != NULL,
	    "depth is the nesting, not the number of brackets");
}

static void
test_validate_shape(void)
{
	char name[160];
	int i;

	refused("[1]", NULL, "Request body must be a JSON object.");
	refused("\"x\"", NULL, "Request body must be a JSON object.");
	refused("null", NULL, "Request body must be a JSON object.");
	refused("7", NULL, "Request body must be a JSON object.");

	is_int(val("{\"email\":\"a@b.co\"}"), 0, "minimal valid input");
	ok(vals[F_EMAIL].present && !vals[F_NAME].present &&
	    vals[F_NAME].node == NULL, "present only for given fields");
	refused("{\"email\":\"a@b.co\",\"bogus\":1}", "bogus",
	    "Field 'bogus' is not allowed here.");
	refused("{\"Email\":\"a@b.co\"}", "Email", NULL);
	refused("{\"email\":\"a@b.co\",\"email\":\"c@d.co\"}", "email",
	    "Field 'email' is given more than once.");
	refused("{\"age\":3,\"email\":\"a@b.co\",\"age\":3}", "age",
	    "Field 'age' is given more than once.");
	refused("{}", "email", "Field 'email' is required.");
	refused("{\"name\":\"abc\"}", "email", "Field 'email' is required.");
	refused("{\"email\":null}", "email", "Field 'email' may not be null.");

	/* A long unknown name is cut to 32 code points in err.field. */
	memset(name, 0, sizeof(name));
	for (i = 0; i < 70; i++)
		memcpy(name + 2 * i, "\xc3\xa9", 2);
	{
		char body[256], want[80];

		snprintf(body, sizeof(body), "{\"%s\":1}", name);
		memcpy(want, name, 64);
		want[64] = '\0';
		refused(body, want, NULL);
	}

	/* Values are reset by each call. */
	is_int(val("{\"email\":\"a@b.co\",\"age\":5}"), 0, "with age");
	is_int(val("{\"email\":\"a@b.co\"}"), 0, "without age");
	ok(!vals[F_AGE].present && vals[F_AGE].i == 0,
	    "a later call clears the earlier values");
}

static void
test_email(void)
{
	static const char *bad[] = {
		"a@b", "a..b@c.d", "@x.y", "a@-x.y", "a@x-.y", "a@x..y",
		"a@.x.y", "a@x.y.", ".a@b.co", "a.@b.co", "a b@c.d", "a@b c.d",
		"a\"b@c.d", "a<b@c.d", "a,b@c.d", "a;b@c.d", "a@b@c.d",
		"a@b_c.d", "ab.cd", "", "a@", "a@.", NULL
	};
	char local[80], label[80], addr[200];
	int i;

	is_int(val("{\"email\":\"  First.Last+Tag@Sub.Example.CO\\t\"}"), 0,
	    "email with spaces and capitals");
	is_str(vals[F_EMAIL].s, "first.last+tag@sub.example.co",
	    "email trimmed and lower-cased");
	for (i = 0; bad[i] != NULL; i++)
		ok(!json_email_ok(bad[i]), "email refused: '%s'", bad[i]);
	ok(json_email_ok("first.last+tag@sub.example.co"), "email ok: "
	    "first.last+tag@sub.example.co");
	ok(json_email_ok("x@a-b.c0"), "email ok: hyphen inside a label");
	ok(json_email_ok("\xc3\xa9@\xc3\xa9t\xc3\xa9.fr"),
	    "email ok: UTF-8 local part and domain");

	memset(local, 'l', 64);
	local[64] = '\0';
	snprintf(addr, sizeof(addr), "%s@x.co", local);
	ok(json_email_ok(addr), "64-character local part");
	snprintf(addr, sizeof(addr), "%sl@x.co", local);
	ok(!json_email_ok(addr), "65-character local part");
	memset(label, 'd', 63);
	label[63] = '\0';
	snprintf(addr, sizeof(addr), "a@%s.co", label);
	ok(json_email_ok(addr), "63-character label");
	snprintf(addr, sizeof(addr), "a@%sd.co", label);
	ok(!json_email_ok(addr), "64-character label");

	refused("{\"email\":\"a@b\"}", "email",
	    "Field 'email' must be a valid email address.");
	refused("{\"email\":\"a..b@c.d\"}", "email", NULL);
	refused("{\"email\":\"@x.y\"}", "email", NULL);
	refused("{\"email\":\"a@-x.y\"}", "email", NULL);
	refused("{\"email\":5}", "email", "Field 'email' must be a string.");
}

static void
test_strings(void)
{
	const char *toolong = "Field 'name' must be from 2 to 4 characters "
	    "long.";

	is_int(val("{\"email\":\"a@b.co\",\"name\":\"ab\"}"), 0, "name of 2");
	is_str(vals[F_NAME].s, "ab", "name value");
	refused("{\"email\":\"a@b.co\",\"name\":\"a\"}", "name", toolong);
	refused("{\"email\":\"a@b.co\",\"name\":\"abcde\"}", "name", toolong);
	is_int(val("{\"email\":\"a@b.co\",\"name\":\"\xc3\xa9\xc3\xa9\xc3\xa9"
	    "\xc3\xa9\"}"), 0, "4 two-byte code points (8 bytes) fit max 4");
	refused("{\"email\":\"a@b.co\",\"name\":\"\xc3\xa9\xc3\xa9\xc3\xa9"
	    "\xc3\xa9\xc3\xa9\"}", "name", toolong);
	is_int(val("{\"email\":\"a@b.co\",\"name\":\"\xf0\x9f\x98\x80"
	    "\xf0\x9f\x98\x80\"}"), 0, "2 four-byte code points fit min 2");
	refused("{\"email\":\"a@b.co\",\"name\":\"\xf0\x9f\x98\x80\"}", "name",
	    toolong);
	is_int(val("{\"email\":\"a@b.co\",\"name\":\"\\u65e5\\u672c\"}"), 0,
	    "escaped CJK counted as code points");
	is_int(val("{\"email\":\"a@b.co\",\"name\":\"  ab \\n\"}"), 0,
	    "JF_TRIM strips before counting");
	is_str(vals[F_NAME].s, "ab", "JF_TRIM value");
	refused("{\"email\":\"a@b.co\",\"name\":\"  a  \"}", "name", toolong);
	refused("{\"email\":\"a@b.co\",\"name\":5}", "name",
	    "Field 'name' must be a string.");
	refused("{\"email\":\"a@b.co\",\"name\":null}", "name",
	    "Field 'name' may not be null.");

	is_int(val("{\"email\":\"a@b.co\",\"nick\":\" ab\"}"), 0,
	    "no JF_TRIM: spaces count");
	is_str(vals[F_NICK].s, " ab", "no JF_TRIM: spaces kept");
	refused("{\"email\":\"a@b.co\",\"nick\":\"  ab\"}", "nick", NULL);
	is_int(val("{\"email\":\"a@b.co\",\"nick\":\"\"}"), 0, "min 0: empty");
	is_int(val("{\"email\":\"a@b.co\",\"nick\":null}"), 0,
	    "JF_NULLABLE takes null");
	ok(vals[F_NICK].is_null && !vals[F_NICK].present &&
	    vals[F_NICK].s == NULL, "null: is_null, not present, no string");
}

static void
test_line(void)
{
	static const char *const bad[] = {
		"a\\tb", "a\\nb", "a\\u0001", "a\\u001fb", "a\\u007fb",
		"a\\u0080b", "a\\u0085b", "a\\u009f", NULL
	};
	const char *msg = "Field 'title' may not contain control characters.";
	char body[128];
	int i;

	for (i = 0; bad[i] != NULL; i++) {
		snprintf(body, sizeof(body), "{\"email\":\"a@b.co\","
		    "\"title\":\"%s\"}", bad[i]);
		refused(body, "title", msg);
	}
	is_int(val("{\"email\":\"a@b.co\",\"title\":\" \\tTea time\\n\"}"),
	    0, "JF_LINE after JF_TRIM: surrounding white space is no control");
	is_str(vals[F_TITLE].s, "Tea time", "JF_LINE value");
	is_int(val("{\"email\":\"a@b.co\",\"title\":\"\\u00a0\\u00e9\\u0100"
	    "\\u2028\"}"), 0,
	    "U+00A0, U+00E9, U+0100 and U+2028 are not controls");
	is_int(val("{\"email\":\"a@b.co\",\"nick\":\"a\\tb\"}"), 0,
	    "without JF_LINE a tab is fine");
}

static void
test_int(void)
{
	const char *msg = "Field 'age' must be an integer from 0 to 150.";
	struct jvalue w[1];
	cJSON *root;

	is_int(val("{\"email\":\"a@b.co\",\"age\":0}"), 0, "int 0");
	is_int(vals[F_AGE].i, 0, "int 0 value");
	is_int(val("{\"email\":\"a@b.co\",\"age\":150}"), 0, "int at max");
	is_int(vals[F_AGE].i, 150, "int at max value");
	is_int(val("{\"email\":\"a@b.co\",\"age\":1e2}"), 0, "1e2 is integral");
	is_int(vals[F_AGE].i, 100, "1e2 value");
	is_int(val("{\"email\":\"a@b.co\",\"age\":42.0}"), 0, "42.0");
	is_int(vals[F_AGE].i, 42, "42.0 value");
	refused("{\"email\":\"a@b.co\",\"age\":151}", "age", msg);
	refused("{\"email\":\"a@b.co\",\"age\":-1}", "age", msg);
	refused("{\"email\":\"a@b.co\",\"age\":1.5}", "age", msg);
	refused("{\"email\":\"a@b.co\",\"age\":1e400}", "age", msg);
	refused("{\"email\":\"a@b.co\",\"age\":-1e400}", "age", msg);
	refused("{\"email\":\"a@b.co\",\"age\":\"5\"}", "age", msg);
	refused("{\"email\":\"a@b.co\",\"age\":true}", "age", msg);
	refused("{\"email\":\"a@b.co\",\"age\":[5]}", "age", msg);
	refused("{\"email\":\"a@b.co\",\"age\":null}", "age",
	    "Field 'age' may not be null.");

	/* 2^63 - 1 is read as the double 2^63, which no long long holds. */
	root = parse("{\"n\":9223372036854775807}");
	is_int(json_validate(a, root, wide, w, &err), -1,
	    "2^63 refused with [LLONG_MIN, LLONG_MAX] bounds");
	root = parse("{\"n\":-9223372036854775808}");
	is_int(json_validate(a, root, wide, w, &err), 0, "-2^63 accepted");
	is_int(w[0].i, LLONG_MIN, "-2^63 value");
	root = parse("{\"n\":-1e19}");
	is_int(json_validate(a, root, wide, w, &err), -1, "-1e19 refused");
	root = parse("{\"n\":4611686018427387904}");
	is_int(json_validate(a, root, wide, w, &err), 0, "2^62 accepted");
	is_int(w[0].i, 4611686018427387904LL, "2^62 value");
}

static void
test_word_uuid_bool_any(void)
{
	is_int(val("{\"email\":\"a@b.co\",\"color\":\"green\"}"), 0, "word");
	is_int(vals[F_COLOR].i, 1, "word index");
	is_str(vals[F_COLOR].s, "green", "word string");
	is_int(val("{\"email\":\"a@b.co\",\"color\":\"blue\"}"), 0,
	    "last word");
	is_int(vals[F_COLOR].i, 2, "last word index");
	refused("{\"email\":\"a@b.co\",\"color\":\"Green\"}", "color",
	    "Field 'color' has a value that is not allowed.");
	refused("{\"email\":\"a@b.co\",\"color\":\"\"}", "color", NULL);
	refused("{\"email\":\"a@b.co\",\"color\":\"gree\"}", "color", NULL);
	refused("{\"email\":\"a@b.co\",\"color\":1}", "color",
	    "Field 'color' must be a string.");

	is_int(val("{\"email\":\"a@b.co\",\"id\":"
	    "\" 3F2504E0-4F89-11D3-9A0C-0305E82C3301 \"}"), 0, "uuid");
	is_str(vals[F_ID].s, "3f2504e0-4f89-11d3-9a0c-0305e82c3301",
	    "uuid trimmed and lower-cased");
	refused("{\"email\":\"a@b.co\",\"id\":"
	    "\"3f2504e04f8911d39a0c0305e82c3301\"}", "id",
	    "Field 'id' must be a valid id.");
	is_int(val("{\"email\":\"a@b.co\",\"id\":null}"), 0, "nullable uuid");
	ok(vals[F_ID].is_null, "nullable uuid is_null");
	ok(json_uuid_ok("00000000-0000-0000-0000-000000000000"), "nil uuid");
	ok(json_uuid_ok("ABCDEF01-abcd-ABCD-abcd-0123456789aB"),
	    "uuid in mixed case");
	ok(!json_uuid_ok("3f2504e0-4f89-11d3-9a0c-0305e82c330"), "35 chars");
	ok(!json_uuid_ok("3f2504e0-4f89-11d3-9a0c-0305e82c33011"), "37 chars");
	ok(!json_uuid_ok("3f2504e0-4f89-11d3-9a0c-0305e82c330g"), "'g'");
	ok(!json_uuid_ok("3f2504e0-4f8911d3-9a0c--0305e82c3301"),
	    "dash moved");
	ok(!json_uuid_ok("{3f2504e0-4f89-11d3-9a0c-0305e82c3301}"), "braces");
	ok(!json_uuid_ok(""), "empty uuid");

	is_int(val("{\"email\":\"a@b.co\",\"ok\":true}"), 0, "bool true");
	ok(vals[F_OK].present && vals[F_OK].b, "bool true value");
	is_int(val("{\"email\":\"a@b.co\",\"ok\":false}"), 0, "bool false");
	ok(vals[F_OK].present && !vals[F_OK].b, "bool false value");
	refused("{\"email\":\"a@b.co\",\"ok\":\"true\"}", "ok",
	    "Field 'ok' must be true or false.");
	refused("{\"email\":\"a@b.co\",\"ok\":1}", "ok", NULL);

	is_int(val("{\"email\":\"a@b.co\",\"extra\":[1,{\"x\":2}]}"), 0,
	    "any value");
	ok(vals[F_EXTRA].present && cJSON_IsArray(vals[F_EXTRA].node),
	    "any: the raw node");
	is_int(val("{\"email\":\"a@b.co\",\"extra\":null}"), 0, "any: null");
	ok(vals[F_EXTRA].is_null, "any: null is_null");
}

int
main(void)
{
	a = arena_new();
	test_parse();
	test_validate_shape();
	test_email();
	test_strings();
	test_line();
	test_int();
	test_word_uuid_bool_any();
	arena_free(a);
	return tap_done();
}
