/*
 * The FastCGI listening socket: fd 0 when it is a listening socket
 * (spawn-fcgi), fd 3 under systemd socket activation (LISTEN_PID and
 * LISTEN_FDS), else a new one bound to MIKY_LISTEN: a path for a unix
 * socket (a stale socket file there is replaced), or host:port.
 */
#ifndef MIKY_LISTEN_H
#define MIKY_LISTEN_H

/*
 * Returns the listening fd, or -1 after logging why.  When it created a
 * unix socket file, *bound is its path (malloc'd: the caller unlinks
 * and frees it at the end); else *bound is left alone.
 */
int	listen_open(const char *spec, char **bound);

#endif
