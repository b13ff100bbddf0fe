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

int
main(void)
{
	const char *host = getenv("MIKY_TEST_PGHOST");
	const char *port = getenv("MIKY_TEST_PGPORT");
	char conninfo[512], own[600];
	PGconn *c;

	if (host == NULL || port == NULL) {
		printf("1..0 # SKIP no test cluster (run through make test)\n");
		return 0;
	}
	log_set_level(LOG_CRIT);
	snprintf(conninfo, sizeof(conninfo),
	    "host=%s port=%s dbname=postgres user=miky", host, port);

	c = db_connect(conninfo, "miky-unit");
	ok(c != NULL && PQstatus(c) == CONNECTION_OK, "connects");
	if (c != NULL) {
		is_str(option(c, "application_name"), "miky-unit",
		    "application_name is the caller's");
		is_str(option(c, "keepalives_idle"), "30",
		    "keepalives: first probe after 30 s idle");
		is_str(option(c, "keepalives_interval"), "10",
		    "keepalives: then every 10 s");
		is_str(option(c, "keepalives_count"), "3",
		    "keepalives: dead after 3 unanswered");
		PQfinish(c);
	}

	snprintf(own, sizeof(own), "%s keepalives_idle=5 keepalives_count=9",
	    conninfo);
	c = db_connect(own, "miky-unit");
	ok(c != NULL, "connects with its own keepalive settings");
	if (c != NULL) {
		is_str(option(c, "keepalives_idle"), "5",
		    "the conninfo's keepalives_idle wins");
		is_str(option(c, "keepalives_count"), "9",
		    "the conninfo's keepalives_count wins");
		is_str(option(c, "keepalives_interval"), "10",
		    "what it leaves unset is ours");
		PQfinish(c);
	}

	snprintf(own, sizeof(own), "postgresql:///postgres?host=%s&port=%s"
	    "&user=miky&keepalives_idle=7", host, port);
	c = db_connect(own, "miky-unit");
	ok(c != NULL, "connects with a URL");
	if (c != NULL) {
		is_str(option(c, "keepalives_idle"), "7",
		    "a URL's keepalives_idle wins too");
		PQfinish(c);
	}
	return tap_done();
}
