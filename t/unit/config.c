/*
 * lib/config.c: values from the environment with defaults, integer
 * bounds, URL schemes and string lengths checked, every problem counted
 * and reported on one line of its own, and secrets masked in the dump.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "lib/config.h"
#include "t/unit/tap.h"

static const char	*db, *secret, *name, *hook;
static long long	 port, workers;

static const struct config_var vars[] = {
	{ "MIKY_UNIT_PORT", CONFIG_INT, "8080", 1, 65535, false, NULL,
	    "listen port", NULL, &port },
	{ "MIKY_UNIT_WORKERS", CONFIG_INT, NULL, 1, 64, false, NULL,
	    "worker processes", NULL, &workers },
	{ "MIKY_UNIT_DB", CONFIG_URL, NULL, 0, 0, true,
	    "postgres,postgresql", "database URL", &db, NULL },
	{ "MIKY_UNIT_SECRET", CONFIG_SECRET, NULL, 32, 256, true, NULL,
	    "JWT signing key", &secret, NULL },
	{ "MIKY_UNIT_NAME", CONFIG_STR, "miky", 1, 8, false, NULL,
	    "instance name", &name, NULL },
	{ "MIKY_UNIT_HOOK", CONFIG_URL, NULL, 0, 0, false, "https",
	    "webhook", &hook, NULL },
	{ NULL }
};

#define SECRET32	"0123456789abcdef0123456789abcdef"

/* Runs config_load and returns the lines it wrote, joined. */
static int
load(char *out, size_t outlen)
{
	FILE *f = tmpfile();
	size_t n;
	int problems;

	if (f == NULL) {
		out[0] = '\0';
		return -1;
	}
	problems = config_load(vars, f);
	rewind(f);
	n = fread(out, 1, outlen - 1, f);
	out[n] = '\0';
	fclose(f);
	return problems;
}

static void
dump(char *out, size_t outlen)
{
	FILE *f = tmpfile();
	size_t n = 0;

	if (f != NULL) {
		config_dump(vars, f);
		rewind(f);
		n = fread(out, 1, outlen - 1, f);
		fclose(f);
	}
	out[n] = '\0';
}

static void
clear(void)
{
	unsetenv("MIKY_UNIT_PORT");
	unsetenv("MIKY_UNIT_WORKERS");
	unsetenv("MIKY_UNIT_DB");
	unsetenv("MIKY_UNIT_SECRET");
	unsetenv("MIKY_UNIT_NAME");
	unsetenv("MIKY_UNIT_HOOK");
	port = workers = -1;
	db = secret = name = hook = "stale";
}

static void
test_good(void)
{
	char out[1024];

	clear();
	setenv("MIKY_UNIT_DB", "postgresql://miky@localhost/miky", 1);
	setenv("MIKY_UNIT_SECRET", SECRET32, 1);
	setenv("MIKY_UNIT_WORKERS", "4", 1);
	is_int(load(out, sizeof(out)), 0, "a good environment has no problems");
	is_str(out, "", "and writes nothing");
	is_int(port, 8080, "INT default applied");
	is_int(workers, 4, "INT from the environment");
	is_str(db, "postgresql://miky@localhost/miky", "URL, second scheme");
	is_str(secret, SECRET32, "secret of 32 bytes");
	is_str(name, "miky", "STR default applied");
	ok(hook == NULL, "unset optional URL without default is NULL");

	dump(out, sizeof(out));
	is_str(out, "MIKY_UNIT_PORT=8080\n"
	    "MIKY_UNIT_WORKERS=4\n"
	    "MIKY_UNIT_DB=postgresql://miky@localhost/miky\n"
	    "MIKY_UNIT_SECRET=(set, 32 bytes)\n"
	    "MIKY_UNIT_NAME=miky\n"
	    "MIKY_UNIT_HOOK is unset\n", "dump masks the secret");
	ok(strstr(out, "0123456789") == NULL, "secret text never printed");

	/* A password in a URL is masked; the rest of the URL is kept. */
	{
		static const char *const urls[][2] = {
			{ "https://user:pa55word@h.example:8443/x?y#z",
			    "https://user:(hidden)@h.example:8443/x?y#z" },
			{ "https://user:p%40ss:w@rd@h.example/x",
			    "https://user:(hidden)@h.example/x" },
			{ "https://:pa55word@h.example/",
			    "https://:(hidden)@h.example/" },
			{ "https://user@h.example/a:b@c",
			    "https://user@h.example/a:b@c" },
			{ "https://h.example/p?u=a:pa55word@b",
			    "https://h.example/p?u=a:pa55word@b" },
		};
		char want[512];
		size_t i;

		for (i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
			setenv("MIKY_UNIT_HOOK", urls[i][0], 1);
			load(out, sizeof(out));
			dump(out, sizeof(out));
			snprintf(want, sizeof(want), "MIKY_UNIT_HOOK=%s\n",
			    urls[i][1]);
			ok(strstr(out, want) != NULL, "dump shows %s", urls[i][1]);
		}
		unsetenv("MIKY_UNIT_HOOK");
	}

	setenv("MIKY_UNIT_PORT", "1", 1);
	setenv("MIKY_UNIT_NAME", "", 1);
	setenv("MIKY_UNIT_HOOK", "https://h.example/x", 1);
	setenv("MIKY_UNIT_DB", "postgres://db", 1);
	is_int(load(out, sizeof(out)), 0, "boundary values");
	is_int(port, 1, "INT at min");
	is_str(name, "miky", "an empty variable counts as unset");
	is_str(hook, "https://h.example/x", "optional URL set");
	is_str(db, "postgres://db", "URL, first scheme");
	setenv("MIKY_UNIT_PORT", "65535", 1);
	setenv("MIKY_UNIT_NAME", "12345678", 1);
	is_int(load(out, sizeof(out)), 0, "upper boundary values");
	is_int(port, 65535, "INT at max");
	is_str(name, "12345678", "STR at max length");
}

static void
test_bad(void)
{
	char out[2048];

	clear();
	setenv("MIKY_UNIT_PORT", "65536", 1);
	setenv("MIKY_UNIT_WORKERS", "4x", 1);
	setenv("MIKY_UNIT_SECRET", "short", 1);
	setenv("MIKY_UNIT_NAME", "123456789", 1);
	setenv("MIKY_UNIT_HOOK", "http://h.example/x", 1);
	is_int(load(out, sizeof(out)), 6, "six problems, all counted");
	is_str(out, "MIKY_UNIT_PORT: must be an integer from 1 to 65535\n"
	    "MIKY_UNIT_WORKERS: must be an integer from 1 to 64\n"
	    "MIKY_UNIT_DB: not set (database URL)\n"
	    "MIKY_UNIT_SECRET: must be 32 to 256 bytes long (is 5)\n"
	    "MIKY_UNIT_NAME: must be 1 to 8 bytes long (is 9)\n"
	    "MIKY_UNIT_HOOK: must be a URL starting with one of https "
	    "(followed by ://)\n", "one line per problem, in table order");
	ok(strstr(out, "short") == NULL, "a bad secret is not echoed");
	ok(db == NULL, "missing required URL is NULL");

	clear();
	setenv("MIKY_UNIT_SECRET", SECRET32, 1);
	setenv("MIKY_UNIT_PORT", "0", 1);
	setenv("MIKY_UNIT_DB", "postgres://", 1);
	is_int(load(out, sizeof(out)), 2, "port 0 and a URL with no rest");
	is_str(out, "MIKY_UNIT_PORT: must be an integer from 1 to 65535\n"
	    "MIKY_UNIT_DB: must be a URL starting with one of "
	    "postgres,postgresql (followed by ://)\n", "their lines");

	static const char *const badurls[] = {
		"mysql://x", "postgres:/x", "postgres//x", "postgresx://x",
		"postgre://x", "Postgres://x", " postgres://x", "x", NULL
	};
	for (int i = 0; badurls[i] != NULL; i++) {
		setenv("MIKY_UNIT_DB", badurls[i], 1);
		setenv("MIKY_UNIT_PORT", "80", 1);
		is_int(load(out, sizeof(out)), 1, "URL refused: '%s'",
		    badurls[i]);
	}

	clear();
	setenv("MIKY_UNIT_DB", "postgres://x", 1);
	setenv("MIKY_UNIT_SECRET", SECRET32, 1);
	setenv("MIKY_UNIT_PORT", " 80", 1);
	is_int(load(out, sizeof(out)), 1, "INT with a leading space refused");
	setenv("MIKY_UNIT_PORT", "-80", 1);
	is_int(load(out, sizeof(out)), 1, "negative INT below min refused");
	setenv("MIKY_UNIT_PORT", "99999999999999999999", 1);
	is_int(load(out, sizeof(out)), 1, "INT beyond 2^63 refused");
}

int
main(void)
{
	test_good();
	test_bad();
	clear();
	return tap_done();
}
