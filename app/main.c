/*
 * miky: one binary, subcommands.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "config.h"
#include "lib/log.h"

static void
usage(FILE *out)
{
	fprintf(out,
	    "usage: miky command\n"
	    "  serve          run the FastCGI server (master and workers)\n"
	    "  migrate        apply pending database migrations\n"
	    "  check-config   check the environment and print the settings\n"
	    "  help           this text\n"
	    "Settings come from the environment; see README.md.\n");
}

/* Loads the settings; on problems prints them and returns -1. */
static int
load_config(void)
{
	int problems = app_config_load(stderr);

	if (problems > 0) {
		fprintf(stderr, "miky: %d configuration problem%s; not "
		    "starting\n", problems, problems > 1 ? "s" : "");
		return -1;
	}
	return 0;
}

static int
cmd_migrate(void)
{
	const char *url = getenv("DATABASE_URL");

	log_set_process("migrate");
	if (url == NULL || *url == '\0') {
		fprintf(stderr, "DATABASE_URL: not set (libpq connection "
		    "string)\n");
		return 1;
	}
	return migrate_run(url) == 0 ? 0 : 1;
}

int
main(int argc, char *argv[])
{
	const char *cmd = argc > 1 ? argv[1] : "help";

	if (strcmp(cmd, "serve") == 0)
		return load_config() == 0 ? serve_main() : 1;
	if (strcmp(cmd, "migrate") == 0)
		return cmd_migrate();
	if (strcmp(cmd, "check-config") == 0) {
		if (load_config() != 0)
			return 1;
		app_config_dump(stdout);
		return 0;
	}
	if (strcmp(cmd, "help") == 0 || strcmp(cmd, "-h") == 0 ||
	    strcmp(cmd, "--help") == 0) {
		usage(stdout);
		return 0;
	}
	fprintf(stderr, "miky: unknown command '%s'\n", cmd);
	usage(stderr);
	return 2;
}
