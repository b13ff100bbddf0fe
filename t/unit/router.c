/*
 * lib/router.c: literal and ":param" segments, the first matching row
 * wins, a known path with another method gives ROUTER_BAD_METHOD and an
 * Allow list in table order, anything else ROUTER_NOT_FOUND; malformed
 * patterns abort at compile time.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include "lib/router.h"
#include "t/unit/tap.h"

enum {
	R_ROOT, R_HEALTH, R_LIST, R_CREATE, R_SEARCH, R_GET, R_PUT,
	R_MSG_DEL, R_MSG_GET, R_TRAIL, R__MAX
};

static const struct route routes[] = {
	[R_ROOT] = { "GET", "/" },
	[R_HEALTH] = { "GET", "/api/health" },
	[R_LIST] = { "GET", "/api/conversations" },
	[R_CREATE] = { "POST", "/api/conversations" },
	[R_SEARCH] = { "GET", "/api/conversations/search" },
	[R_GET] = { "GET", "/api/conversations/:id" },
	[R_PUT] = { "PUT", "/api/conversations/:id" },
	[R_MSG_DEL] = { "DELETE", "/api/conversations/:id/messages/:mid" },
	[R_MSG_GET] = { "GET", "/api/conversations/:id/messages/:mid" },
	[R_TRAIL] = { "GET", "/api/trailing/" },
};

static struct router	*rt;
static const char	*params[ROUTE_MAX_PARAMS];
static char		 allow[64];

/* Splits path on '/' into a static array and matches it. */
static int
match(const char *method, const char *path)
{
	static char copy[256];
	static char *segs[16];
	size_t n = 0;
	char *p, *save = NULL;

	snprintf(copy, sizeof(copy), "%s", path);
	for (p = strtok_r(copy, "/", &save); p != NULL && n < 16;
	    p = strtok_r(NULL, "/", &save))
		segs[n++] = p;
	memset(params, 0, sizeof(params));
	memset(allow, 'X', sizeof(allow));
	return router_match(rt, method, segs, n, params, allow, sizeof(allow));
}

/* Compiles a one-row table in a child; true if the child aborted. */
static int
aborts(const char *pattern)
{
	struct route bad[1] = { { "GET", pattern } };
	int status, fd;
	pid_t pid;

	fflush(stdout);
	if ((pid = fork()) == -1)
		return 0;
	if (pid == 0) {
		/* Quiet the log line; no core file. */
		if ((fd = open("/dev/null", O_WRONLY)) != -1)
			dup2(fd, STDERR_FILENO);
		signal(SIGABRT, SIG_DFL);
		router_free(router_new(bad, 1));
		_exit(0);
	}
	if (waitpid(pid, &status, 0) == -1)
		return 0;
	return WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
}

static void
test_match(void)
{
	is_int(match("GET", "/"), R_ROOT, "GET / has no segments");
	is_int(match("GET", "/api/health"), R_HEALTH, "static route");
	ok(params[0] == NULL, "static route has no params");
	is_int(match("GET", "/api/conversations"), R_LIST, "GET list");
	is_int(match("POST", "/api/conversations"), R_CREATE,
	    "same path, other method, other row");
	is_int(match("GET", "/api/conversations/search"), R_SEARCH,
	    "a literal row before a :param row wins");
	is_int(match("GET", "/api/conversations/abc"), R_GET, "GET :id");
	is_str(params[0], "abc", ":id captured");
	ok(params[1] == NULL && params[2] == NULL && params[3] == NULL,
	    "unused params are NULL");
	is_int(match("PUT", "/api/conversations/search"), R_PUT,
	    "a literal path still matches a :param row of another method");
	is_str(params[0], "search", ":id captured from a literal-looking "
	    "segment");
	is_int(match("GET", "/api/conversations/c1/messages/m2"), R_MSG_GET,
	    "two params");
	is_str(params[0], "c1", "first param");
	is_str(params[1], "m2", "second param");
	is_int(match("DELETE", "/api/conversations/c1/messages/m2"),
	    R_MSG_DEL, "DELETE with two params");
	is_int(match("GET", "/api/trailing"), R_TRAIL,
	    "a pattern's trailing slash is ignored");
}

static void
test_misses(void)
{
	is_int(match("GET", "/api"), ROUTER_NOT_FOUND, "prefix of a route");
	is_int(match("GET", "/api/health/x"), ROUTER_NOT_FOUND,
	    "longer than any route");
	is_int(match("GET", "/api/Health"), ROUTER_NOT_FOUND,
	    "literals are case-sensitive");
	is_int(match("GET", "/api/conversations/c1/messages"),
	    ROUTER_NOT_FOUND, "segment count differs");
	is_int(match("GET", "/x/y/z/w/v/u/t/s/r/q"), ROUTER_NOT_FOUND,
	    "more segments than any pattern");

	is_int(match("DELETE", "/api/health"), ROUTER_BAD_METHOD,
	    "known path, wrong method");
	is_str(allow, "GET", "Allow for a single-method path");
	is_int(match("PATCH", "/api/conversations/abc"), ROUTER_BAD_METHOD,
	    "PATCH on :id");
	is_str(allow, "GET, PUT", "Allow lists methods in table order");
	is_int(match("DELETE", "/api/conversations"), ROUTER_BAD_METHOD,
	    "DELETE on the list");
	is_str(allow, "GET, POST", "Allow for the list");
	is_int(match("PUT", "/api/conversations/c/messages/m"),
	    ROUTER_BAD_METHOD, "PUT on messages");
	is_str(allow, "DELETE, GET", "Allow with two params");
	is_int(match("get", "/api/health"), ROUTER_BAD_METHOD,
	    "methods are case-sensitive");
	is_int(match("PATCH", "/api/conversations/search"), ROUTER_BAD_METHOD,
	    "literal and :param rows both count for Allow");
	is_str(allow, "GET, PUT", "each method listed once");
	match("GET", "/nothing");
	is_str(allow, "", "Allow is emptied on not found");
}

static void
test_allow_room(void)
{
	char *segs[] = { "api", "conversations", "x" };
	char small[12];
	int rc;

	memset(small, 'X', sizeof(small));
	rc = router_match(rt, "PATCH", segs, 3, params, small, 8);
	is_int(rc, ROUTER_BAD_METHOD, "bad method with a small Allow buffer");
	is_str(small, "GET", "methods that do not fit are left out");
	ok(small[8] == 'X' && small[11] == 'X',
	    "nothing written past allowlen");
}

int
main(void)
{
	rt = router_new(routes, R__MAX);
	test_match();
	test_misses();
	test_allow_room();
	router_free(rt);
	router_free(NULL);

	ok(aborts("api/x"), "relative pattern aborts");
	ok(aborts("/a//b"), "empty segment in a pattern aborts");
	ok(aborts("/1/2/3/4/5/6/7/8/9"), "more than ROUTE_MAX_SEGS aborts");
	ok(!aborts("/1/2/3/4/5/6/7/8"), "exactly ROUTE_MAX_SEGS compiles");
	return tap_done();
}
