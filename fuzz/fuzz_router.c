/*
 * libFuzzer target for lib/router.c behind lib/url.c, as a request
 * takes them: the first byte picks the method, the rest is the path,
 * split with url_split_path() and matched with router_match().  The
 * result is checked against a plain reference matcher: a match is the
 * first row whose method and pattern fit, with its parameters captured;
 * ROUTER_BAD_METHOD lists, once each and in table order, exactly the
 * methods of the rows whose pattern fits; ROUTER_NOT_FOUND means none.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/router.h"
#include "lib/url.h"

#define CHECK(c) do {							\
	if (!(c)) {							\
		fprintf(stderr, "fuzz_router: check failed: %s (line %d)\n", \
		    #c, __LINE__);					\
		abort();						\
	}								\
} while (0)

#define MAXSEGS	(ROUTE_MAX_SEGS + 2)

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static const char *const methods[] = {
	"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "get", ""
};

static const struct route routes[] = {
	{ "GET", "/" },
	{ "GET", "/api/health" },
	{ "GET", "/api/c" },
	{ "POST", "/api/c" },
	{ "GET", "/api/c/search" },
	{ "GET", "/api/c/:id" },
	{ "PUT", "/api/c/:id" },
	{ "DELETE", "/api/c/:id" },
	{ "GET", "/api/c/:id/m/:mid" },
	{ "DELETE", "/api/c/:id/m/:mid" },
	{ "POST", "/api/:a/:b/:c/:d" },
	{ "PATCH", "/1/2/3/4/5/6/7/8" },
	{ "GET", "/x/" },
};
#define NROUTES	(sizeof(routes) / sizeof(routes[0]))

/*
 * Does the pattern fit the segments?  Stores the parameters in order,
 * NULL after the last, as router_match() promises.
 */
static int
fits(const char *pattern, char *const *segs, size_t nsegs,
    const char *params[ROUTE_MAX_PARAMS])
{
	char copy[128], *p, *save = NULL;
	size_t k = 0, np = 0;

	snprintf(copy, sizeof(copy), "%s", pattern);
	for (p = strtok_r(copy, "/", &save); p != NULL;
	    p = strtok_r(NULL, "/", &save), k++) {
		if (k == nsegs)
			return 0;
		if (*p == ':') {
			if (np < ROUTE_MAX_PARAMS)
				params[np++] = segs[k];
		} else if (strcmp(p, segs[k]) != 0)
			return 0;
	}
	while (np < ROUTE_MAX_PARAMS)
		params[np++] = NULL;
	return k == nsegs;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct arena *a;
	static struct router *rt;
	const char *method, *params[ROUTE_MAX_PARAMS], *ref[ROUTE_MAX_PARAMS];
	char *segs[MAXSEGS], *path, allow[64], want[64];
	size_t nsegs, i;
	int rc, first = -1, fit = 0;

	if (size == 0)
		return 0;
	if (a == NULL) {
		a = arena_new();
		rt = router_new(routes, NROUTES);
	}
	method = methods[data[0] % (sizeof(methods) / sizeof(methods[0]))];
	path = arena_strndup(a, (const char *)data + 1, size - 1);
	nsegs = url_split_path(a, path, segs, MAXSEGS);
	if (nsegs == (size_t)-1) {
		arena_reset(a);
		return 0;
	}
	memset(params, 0x5a, sizeof(params));
	memset(allow, 'X', sizeof(allow));
	rc = router_match(rt, method, segs, nsegs, params, allow,
	    sizeof(allow));

	want[0] = '\0';
	for (i = 0; i < NROUTES; i++) {
		if (!fits(routes[i].pattern, segs, nsegs, ref))
			continue;
		fit = 1;
		if (strcmp(routes[i].method, method) == 0) {
			first = (int)i;
			break;
		}
		if (strstr(want, routes[i].method) == NULL) {
			if (want[0] != '\0')
				strcat(want, ", ");
			strcat(want, routes[i].method);
		}
	}
	if (first >= 0) {
		CHECK(rc == first);
		for (i = 0; i < ROUTE_MAX_PARAMS; i++)
			CHECK(params[i] == ref[i]);
	} else if (fit) {
		CHECK(rc == ROUTER_BAD_METHOD);
		CHECK(strcmp(allow, want) == 0);
		CHECK(strstr(allow, method) == NULL || *method == '\0');
	} else {
		CHECK(rc == ROUTER_NOT_FOUND);
		CHECK(allow[0] == '\0');
	}
	arena_reset(a);
	return 0;
}
