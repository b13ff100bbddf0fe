/*
 * Route lookup over a table of {method, pattern} rows.  Patterns are
 * absolute paths whose segments are literals or ":name" parameters
 * ("/api/conversations/:id").  A lookup tells "no such path" from "path
 * exists, wrong method", and for the latter builds the Allow list.
 */
#ifndef MIKY_ROUTER_H
#define MIKY_ROUTER_H

#include <stddef.h>

#include "json.h"

#define ROUTE_MAX_SEGS		8
#define ROUTE_MAX_PARAMS	4

struct request;

struct route {
	const char		*method;
	const char		*pattern;
	void			(*handler)(struct request *);
	int			 access;	/* meaning given by the app */
	size_t			 body_limit;	/* bytes; 0: no body */
	const struct jfield	*spec;		/* JSON body spec, or NULL */
};

struct router;

enum { ROUTER_NOT_FOUND = -1, ROUTER_BAD_METHOD = -2 };

/*
 * Compiles a table of n routes.  The table must outlive the router.
 * Aborts on a malformed pattern (a programming error).
 */
struct router	*router_new(const struct route *, size_t n);
void		 router_free(struct router *);

/*
 * Matches the decoded path segments.  Returns the route index and
 * stores parameter values (pointers into segs) in params; or
 * ROUTER_BAD_METHOD with the allowed methods written to allow
 * ("GET, PUT"); or ROUTER_NOT_FOUND.
 */
int		 router_match(const struct router *, const char *method,
		    char *const *segs, size_t nsegs,
		    const char *params[ROUTE_MAX_PARAMS],
		    char *allow, size_t allowlen);

#endif
