#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "router.h"
#include "xalloc.h"

struct compiled {
	size_t	 nsegs;
	char	*segs[ROUTE_MAX_SEGS];	/* NULL marks a parameter */
};

struct router {
	const struct route	*routes;
	size_t			 n;
	struct compiled		*c;
};

static void
compile(const struct route *r, struct compiled *c)
{
	const char *p = r->pattern, *end;

	if (*p != '/')
		goto bad;
	c->nsegs = 0;
	while (*p == '/' && p[1] != '\0') {
		p++;
		end = strchr(p, '/');
		if (end == NULL)
			end = p + strlen(p);
		if (end == p || c->nsegs == ROUTE_MAX_SEGS)
			goto bad;
		c->segs[c->nsegs++] = *p == ':' ? NULL :
		    xstrndup(p, (size_t)(end - p));
		p = end;
	}
	if (*p != '\0' && strcmp(p, "/") != 0)
		goto bad;
	return;
bad:
	log_crit("bad route pattern %s", r->pattern);
	abort();
}

struct router *
router_new(const struct route *routes, size_t n)
{
	struct router *rt = xcalloc(1, sizeof(*rt));
	size_t i;

	rt->routes = routes;
	rt->n = n;
	rt->c = xcalloc(n, sizeof(*rt->c));
	for (i = 0; i < n; i++)
		compile(&routes[i], &rt->c[i]);
	return rt;
}

void
router_free(struct router *rt)
{
	size_t i, k;

	if (rt == NULL)
		return;
	for (i = 0; i < rt->n; i++)
		for (k = 0; k < rt->c[i].nsegs; k++)
			free(rt->c[i].segs[k]);
	free(rt->c);
	free(rt);
}

static int
path_matches(const struct compiled *c, char *const *segs, size_t nsegs,
    const char *params[ROUTE_MAX_PARAMS])
{
	size_t k, np = 0;

	if (c->nsegs != nsegs)
		return 0;
	for (k = 0; k < nsegs; k++) {
		if (c->segs[k] == NULL) {
			if (np < ROUTE_MAX_PARAMS)
				params[np++] = segs[k];
		} else if (strcmp(c->segs[k], segs[k]) != 0)
			return 0;
	}
	while (np < ROUTE_MAX_PARAMS)
		params[np++] = NULL;
	return 1;
}

int
router_match(const struct router *rt, const char *method, char *const *segs,
    size_t nsegs, const char *params[ROUTE_MAX_PARAMS], char *allow,
    size_t allowlen)
{
	const char *scratch[ROUTE_MAX_PARAMS];
	size_t i, used = 0;
	int path_found = 0;

	if (allowlen > 0)
		allow[0] = '\0';
	for (i = 0; i < rt->n; i++) {
		if (!path_matches(&rt->c[i], segs, nsegs, scratch))
			continue;
		if (strcmp(rt->routes[i].method, method) == 0) {
			memcpy(params, scratch, sizeof(scratch));
			return (int)i;
		}
		/* Collect the methods this path does answer to. */
		if (strstr(allow, rt->routes[i].method) == NULL &&
		    used + strlen(rt->routes[i].method) + 3 < allowlen) {
			if (used > 0) {
				memcpy(allow + used, ", ", 2);
				used += 2;
			}
			strcpy(allow + used, rt->routes[i].method);
			used += strlen(rt->routes[i].method);
		}
		path_found = 1;
	}
	return path_found ? ROUTER_BAD_METHOD : ROUTER_NOT_FOUND;
}
