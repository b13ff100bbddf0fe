/*
 * What the parts of Miky share: access levels of the route table, the
 * per-request state, the dispatcher and the handlers it calls.
 */
#ifndef MIKY_APP_H
#define MIKY_APP_H

#include "lib/request.h"

enum access {
	PUBLIC,		/* anyone */
	USER,		/* a valid access token of a user not banned */
	ADMIN,		/* a USER whose role is admin */
};

struct db;

struct app_req {
	struct db	*db;		/* borrowed connection, if any */
};

static inline struct app_req *
app_req(struct request *r)
{
	return r->app;
}

/* routes.c */
int	routes_init(void);
void	app_handle(struct request *);

/* ops.c */
void	ops_health(struct request *);
void	ops_metrics(struct request *);

/* migrate.c */
int	migrate_run(const char *conninfo);

/* serve.c */
int	serve_main(void);

#endif
