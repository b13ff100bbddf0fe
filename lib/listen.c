#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "listen.h"
#include "log.h"
#include "xalloc.h"

static int
is_listening(int fd)
{
	int v = 0;
	socklen_t len = sizeof(v);

	return getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &len) == 0 && v;
}

static int
bind_unix(const char *path, char **bound)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct stat st;
	int fd;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		log_crit("MIKY_LISTEN path is too long: %s", path);
		return -1;
	}
	strcpy(sun.sun_path, path);
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
		log_warn("bind %s", path);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	*bound = xstrdup(path);
	return fd;
}

static int
bind_tcp(const char *spec)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
	    .ai_flags = AI_PASSIVE }, *res = NULL, *ai;
	const char *colon = strrchr(spec, ':');
	char *host;
	int fd = -1, one = 1, rc;

	if (colon == NULL) {
		log_crit("MIKY_LISTEN must be a socket path or host:port");
		return -1;
	}
	host = xstrndup(spec, (size_t)(colon - spec));
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		memmove(host, host + 1, strlen(host));
		host[strlen(host) - 1] = '\0';
	}
	rc = getaddrinfo(*host ? host : NULL, colon + 1, &hints, &res);
	free(host);
	if (rc != 0) {
		log_crit("MIKY_LISTEN %s: %s", spec, gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
		    ai->ai_protocol);
		if (fd < 0)
			continue;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		log_warn("bind %s", spec);
	return fd;
}

int
listen_open(const char *spec, char **bound)
{
	const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
	int fd;

	if (pid != NULL && fds != NULL && atol(pid) == (long)getpid() &&
	    atoi(fds) >= 1 && is_listening(3)) {
		unsetenv("LISTEN_PID");
		unsetenv("LISTEN_FDS");
		return 3;
	}
	if (is_listening(STDIN_FILENO))
		return STDIN_FILENO;
	if (spec == NULL) {
		log_crit("no socket on fd 0 and MIKY_LISTEN is not set");
		return -1;
	}
	fd = strchr(spec, '/') != NULL ? bind_unix(spec, bound) :
	    bind_tcp(spec);
	if (fd >= 0 && listen(fd, 1024) != 0) {
		log_warn("listen %s", spec);
		close(fd);
		fd = -1;
	}
	return fd;
}
