/*
 * lib/db.c's connections against the test cluster that scripts/test.sh
 * starts (MIKY_TEST_PGHOST, MIKY_TEST_PGPORT).  Skipped without it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "../../lib/db.h"
#include "../../lib/log.h"

/* The value of option `key` the connection uses ("" when unset). */
static const char *
option(PGconn *c, const char *key)
{
	static char v[64];
	PQconninfoOption *o, *all = PQconninfo(c);

	v[0] = '\0';
	for (o = all; o != NULL && o->keyword != NULL; o++)
		if (strcmp(o->keyword, key) == 0 && o->val != NULL)
			snprintf(v, sizeof(v), "%s", o->val);
	PQconninfoFree(all);
	return v;
}

/*
 * Connects with conninfo and checks the connection's options: want holds
 * keyword, value pairs, NULL-terminated.
 */
static void
check(const char *conninfo, const char *what, const char *const *want)
{
	PGconn *c = db_connect(conninfo, "miky-unit");

	ok(c != NULL && PQstatus(c) == CONNECTION_OK, "connects %s", what);
	for (; c != NULL && want[0] != NULL; want += 2)
		is_str(option(c, want[0]), want[1], "%s: %s", what, want[0]);
	if (c != NULL)
		PQfinish(c);
}

int
main(void)
{
	const char *host = getenv("MIKY_TEST_PGHOST");
	const char *port = getenv("MIKY_TEST_PGPORT");
	char conninfo[512], own[600];
	/* Ours: a first probe after 30 s idle, every 10 s, dead after 3. */
	const char *const ours[] = { "application_name", "miky-unit",
	    "keepalives_idle", "30", "keepalives_interval", "10",
	    "keepalives_count", "3", NULL };
	/* The conninfo's own win; what it leaves unset is ours. */
	const char *const theirs[] = { "keepalives_idle", "5",
	    "keepalives_count", "9", "keepalives_interval", "10", NULL };
	const char *const url[] = { "keepalives_idle", "7", NULL };

	if (host == NULL || port == NULL) {
		printf("1..0 # SKIP no test cluster (run through make test)\n");
		return 0;
	}
	log_set_level(LOG_CRIT);
	snprintf(conninfo, sizeof(conninfo),
	    "host=%s port=%s dbname=postgres user=miky", host, port);
	check(conninfo, "as the app does", ours);
	snprintf(own, sizeof(own), "%s keepalives_idle=5 keepalives_count=9",
	    conninfo);
	check(own, "with its own keepalives", theirs);
	snprintf(own, sizeof(own), "postgresql:///postgres?host=%s&port=%s"
	    "&user=miky&keepalives_idle=7", host, port);
	check(own, "with a URL's", url);
	return tap_done();
}
