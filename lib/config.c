#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "num.h"

/* True if url starts with one of the comma-separated schemes and "://". */
static bool
scheme_ok(const char *url, const char *schemes)
{
	const char *s = schemes, *comma;
	size_t n;

	while (*s != '\0') {
		comma = strchr(s, ',');
		n = comma != NULL ? (size_t)(comma - s) : strlen(s);
		if (strncmp(url, s, n) == 0 && strncmp(url + n, "://", 3) == 0 &&
		    url[n + 3] != '\0')
			return true;
		s += n + (comma != NULL);
	}
	return false;
}

static int
check(const struct config_var *v, const char *val, FILE *errs)
{
	long long n;
	size_t len = strlen(val);

	switch (v->type) {
	case CONFIG_INT:
		if (num_parse(val, v->min, v->max, &n) != 0) {
			fprintf(errs, "%s: must be an integer from %lld to "
			    "%lld\n", v->name, v->min, v->max);
			return 1;
		}
		*v->num = n;
		return 0;
	case CONFIG_URL:
		if (!scheme_ok(val, v->schemes)) {
			fprintf(errs, "%s: must be a URL starting with one of "
			    "%s (followed by ://)\n", v->name, v->schemes);
			return 1;
		}
		break;
	case CONFIG_STR:
	case CONFIG_SECRET:
		if ((long long)len < v->min || (long long)len > v->max) {
			fprintf(errs, "%s: must be %lld to %lld bytes long "
			    "(is %zu)\n", v->name, v->min, v->max, len);
			return 1;
		}
		break;
	}
	*v->str = val;
	return 0;
}

int
config_load(const struct config_var *vars, FILE *errs)
{
	const struct config_var *v;
	const char *val;
	int problems = 0;

	for (v = vars; v->name != NULL; v++) {
		val = getenv(v->name);
		if (val != NULL && *val == '\0')
			val = NULL;
		if (val == NULL)
			val = v->def;
		if (val == NULL) {
			if (v->str != NULL)
				*v->str = NULL;
			if (v->required) {
				fprintf(errs, "%s: not set (%s)\n", v->name,
				    v->desc);
				problems++;
			}
			continue;
		}
		problems += check(v, val, errs);
	}
	return problems;
}

/*
 * Prints a URL with the password of its user information, if any,
 * replaced: smtp://user:(hidden)@host.  (SMTP_URL carries credentials.)
 */
static void
dump_url(FILE *out, const char *name, const char *url)
{
	const char *auth = strstr(url, "://"), *at = NULL, *colon, *p;
	size_t n;

	if (auth != NULL) {
		auth += 3;
		n = strcspn(auth, "/?#");
		for (p = auth; p < auth + n; p++)
			if (*p == '@')
				at = p;
	}
	if (at == NULL || (colon = memchr(auth, ':', (size_t)(at - auth))) ==
	    NULL) {
		fprintf(out, "%s=%s\n", name, url);
		return;
	}
	fprintf(out, "%s=%.*s:(hidden)%s\n", name, (int)(colon - url), url,
	    at);
}

void
config_dump(const struct config_var *vars, FILE *out)
{
	const struct config_var *v;

	for (v = vars; v->name != NULL; v++) {
		if (v->type == CONFIG_INT)
			fprintf(out, "%s=%lld\n", v->name, *v->num);
		else if (*v->str == NULL)
			fprintf(out, "%s is unset\n", v->name);
		else if (v->type == CONFIG_SECRET)
			fprintf(out, "%s=(set, %zu bytes)\n", v->name,
			    strlen(*v->str));
		else if (v->type == CONFIG_URL)
			dump_url(out, v->name, *v->str);
		else
			fprintf(out, "%s=%s\n", v->name, *v->str);
	}
}
