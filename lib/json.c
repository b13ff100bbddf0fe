#include <ctype.h>
#include <math.h>
#include <string.h>

#include "json.h"
#include "utf8.h"

/*
 * One pass over the raw text before cJSON sees it: the nesting depth is
 * bounded (cJSON recurses) and "\u0000" is refused (it would cut a C
 * string short and PostgreSQL text cannot hold it).  Raw control
 * characters are refused too, as RFC 8259 asks: cJSON would take them as
 * white space between tokens, and a raw NUL would silently end a string.
 */
static int
prescan(const char *s, size_t n, const char **why)
{
	size_t i;
	int depth = 0, in_str = 0;

	for (i = 0; i < n; i++) {
		char c = s[i];

		if ((unsigned char)c < 0x20 && (in_str ||
		    (c != ' ' && c != '\t' && c != '\n' && c != '\r'))) {
			if (in_str && c == '\0')
				*why = "Strings may not contain NUL characters.";
			return -1;
		}
		if (in_str) {
			if (c == '\\') {
				if (i + 5 < n && strncmp(s + i + 1, "u0000", 5)
				    == 0) {
					*why = "Strings may not contain NUL "
					    "characters.";
					return -1;
				}
				i++;
			} else if (c == '"')
				in_str = 0;
			continue;
		}
		if (c == '"')
			in_str = 1;
		else if (c == '{' || c == '[') {
			if (++depth > JSON_MAX_DEPTH) {
				*why = "JSON is nested too deeply.";
				return -1;
			}
		} else if (c == '}' || c == ']')
			depth--;
	}
	return 0;
}

static void
free_tree(void *p)
{
	cJSON_Delete(p);
}

cJSON *
json_parse(struct arena *a, const char *body, size_t len, struct jerror *err)
{
	const char *why = "Request body is not valid JSON.";
	const char *end = NULL;
	cJSON *root;

	err->code = "invalid_json";
	err->field = NULL;
	if (!utf8_valid(body, len)) {
		err->message = "Request body is not valid UTF-8.";
		return NULL;
	}
	if (prescan(body, len, &why) != 0) {
		err->message = why;
		return NULL;
	}
	/*
	 * cJSON's own check for trailing text (require_null_terminated)
	 * wants a NUL at body[len], past the text, and so refuses every body
	 * given its true length; only white space may follow the value.
	 */
	root = cJSON_ParseWithLengthOpts(body, len, &end, 0);
	if (root != NULL) {
		while (end < body + len && (*end == ' ' || *end == '\t' ||
		    *end == '\n' || *end == '\r'))
			end++;
		if (end != body + len) {
			cJSON_Delete(root);
			root = NULL;
		}
	}
	if (root == NULL) {
		err->message = why;
		return NULL;
	}
	arena_cleanup(a, free_tree, root);
	return root;
}

bool
json_uuid_ok(const char *s)
{
	static const char shape[] = "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx";
	size_t i;

	for (i = 0; shape[i] != '\0'; i++) {
		if (shape[i] == '-' ? s[i] != '-' : !isxdigit((unsigned char)s[i]))
			return false;
	}
	return s[i] == '\0';
}

/*
 * local@domain: local part 1-64 printable characters without spaces,
 * quotes, angle brackets, commas or semicolons; domain of dot-separated
 * labels of letters, digits, hyphens (or UTF-8), not starting or ending
 * with a hyphen, with at least one dot.
 */
bool
json_email_ok(const char *s)
{
	const char *at = strrchr(s, '@'), *p, *label;
	size_t local = at != NULL ? (size_t)(at - s) : 0;
	int dots = 0;

	if (at == NULL || local == 0 || local > 64 || strlen(at + 1) > 253)
		return false;
	for (p = s; p < at; p++) {
		unsigned char c = (unsigned char)*p;

		if (c <= ' ' || c == 0x7f || strchr("\"<>(),;:@[]\\", c))
			return false;
	}
	if (s[0] == '.' || at[-1] == '.' || strstr(s, "..") != NULL)
		return false;
	for (label = p = at + 1;; p++) {
		unsigned char c = (unsigned char)*p;

		if (c == '.' || c == '\0') {
			if (p == label || p - label > 63 || *label == '-' ||
			    p[-1] == '-')
				return false;
			if (c == '\0')
				break;
			dots++;
			label = p + 1;
			continue;
		}
		if (!(isalnum(c) || c == '-' || c >= 0x80))
			return false;
	}
	return dots > 0;
}

static int
fail(struct jerror *err, const char *field, const char *message)
{
	err->code = "invalid_input";
	err->field = field;
	err->message = message;
	return -1;
}

/* Copies a string value, trimming and folding case as the type asks. */
static char *
take_string(struct arena *a, const struct jfield *f, const char *in)
{
	const char *end = in + strlen(in);
	char *s, *p;

	if ((f->flags & JF_TRIM) || f->type == JF_EMAIL ||
	    f->type == JF_UUID) {
		while (*in == ' ' || *in == '\t' || *in == '\n' || *in == '\r')
			in++;
		while (end > in && (end[-1] == ' ' || end[-1] == '\t' ||
		    end[-1] == '\n' || end[-1] == '\r'))
			end--;
	}
	s = arena_strndup(a, in, (size_t)(end - in));
	if (f->type == JF_EMAIL || f->type == JF_UUID)
		for (p = s; *p != '\0'; p++)
			*p = (char)tolower((unsigned char)*p);
	return s;
}

/*
 * True if s holds a control character: C0, DEL or C1 (U+0080-U+009F,
 * NEL among them).  s is valid UTF-8, where C1 is C2 then 80-9F.
 */
static bool
has_control(const char *str)
{
	const unsigned char *s = (const unsigned char *)str;

	for (; *s != '\0'; s++)
		if (*s < 0x20 || *s == 0x7f ||
		    (*s == 0xc2 && s[1] >= 0x80 && s[1] <= 0x9f))
			return true;
	return false;
}

#define FAILF(fmt, ...) \
	fail(err, f->name, arena_printf(a, fmt, f->name, ##__VA_ARGS__))

static int
check_value(struct arena *a, const struct jfield *f, const cJSON *node,
    struct jvalue *v, struct jerror *err)
{
	size_t chars;
	double d;

	v->node = node;
	if (cJSON_IsNull(node)) {
		if (!(f->flags & JF_NULLABLE) && f->type != JF_ANY)
			return FAILF("Field '%s' may not be null.");
		v->is_null = true;
		return 0;
	}
	v->present = true;
	switch (f->type) {
	case JF_ANY:
		return 0;
	case JF_BOOL:
		if (!cJSON_IsBool(node))
			return FAILF("Field '%s' must be true or false.");
		v->b = cJSON_IsTrue(node);
		return 0;
	case JF_INT:
		d = node->valuedouble;
		/* 2^63 itself passes (double)LLONG_MAX; the cast would overflow. */
		if (!cJSON_IsNumber(node) || d != floor(d) ||
		    d < (double)f->min || d > (double)f->max || d >= 0x1p63)
			return FAILF("Field '%s' must be an integer from %lld "
			    "to %lld.", f->min, f->max);
		v->i = (long long)d;
		return 0;
	default:
		break;
	}
	if (!cJSON_IsString(node))
		return FAILF("Field '%s' must be a string.");
	v->s = take_string(a, f, node->valuestring);
	switch (f->type) {
	case JF_EMAIL:
		if (strlen(v->s) > 254 || !json_email_ok(v->s))
			return FAILF("Field '%s' must be a valid email "
			    "address.");
		return 0;
	case JF_UUID:
		if (!json_uuid_ok(v->s))
			return FAILF("Field '%s' must be a valid id.");
		return 0;
	case JF_WORD:
		for (v->i = 0; f->words[v->i] != NULL; v->i++)
			if (strcmp(f->words[v->i], v->s) == 0)
				return 0;
		return FAILF("Field '%s' has a value that is not allowed.");
	default:
		if ((f->flags & JF_LINE) && has_control(v->s))
			return FAILF("Field '%s' may not contain control "
			    "characters.");
		chars = utf8_chars(v->s, strlen(v->s));
		if ((long long)chars < f->min || (long long)chars > f->max)
			return FAILF("Field '%s' must be from %lld to %lld "
			    "characters long.", f->min, f->max);
		return 0;
	}
}

/* A short copy of an unknown field name for the message. */
static const char *
field_name(struct arena *a, const char *name)
{
	size_t n = strlen(name);

	if (n > 64)
		n = utf8_prefix(name, n, 32);
	return arena_strndup(a, name, n);
}

int
json_validate(struct arena *a, const cJSON *obj, const struct jfield *spec,
    struct jvalue *vals, struct jerror *err)
{
	const struct jfield *f;
	const cJSON *item;
	const char *name;
	size_t i, nspec;

	for (nspec = 0; spec[nspec].name != NULL; nspec++)
		memset(&vals[nspec], 0, sizeof(vals[nspec]));
	if (!cJSON_IsObject(obj))
		return fail(err, NULL, "Request body must be a JSON object.");
	cJSON_ArrayForEach(item, obj) {
		for (i = 0; i < nspec; i++)
			if (strcmp(spec[i].name, item->string) == 0)
				break;
		if (i == nspec) {
			name = field_name(a, item->string);
			return fail(err, name, arena_printf(a, "Field '%s' is "
			    "not allowed here.", name));
		}
		f = &spec[i];
		if (vals[i].node != NULL)
			return FAILF("Field '%s' is given more than once.");
		if (check_value(a, f, item, &vals[i], err) != 0)
			return -1;
	}
	for (f = spec; f->name != NULL; f++)
		if ((f->flags & JF_REQUIRED) && vals[f - spec].node == NULL)
			return FAILF("Field '%s' is required.");
	return 0;
}
