#!/usr/bin/env bash
# pg.sh — a private PostgreSQL cluster in one directory, for `make run` and
# the tests.
#
#   pg.sh init DIR PORT          create the cluster (no-op if it exists,
#                                whatever PORT: the first one stays)
#   pg.sh start DIR              start it (no-op if running)
#   pg.sh stop DIR               stop it, fast mode (no-op if stopped)
#   pg.sh status DIR             exit 0 and say so if running, else exit 3
#   pg.sh url DIR DBNAME [ROLE]  print the libpq URL of DBNAME (as ROLE,
#                                default the superuser miky)
#   pg.sh createdb DIR DBNAME [TEMPLATE]   create DBNAME unless it exists
#   pg.sh psql DIR DBNAME [ARGS...]        run psql against DBNAME
#
# Layout: DIR/data is the data directory, DIR itself the unix socket
# directory, DIR/postgres.log the server log and DIR/port the port.  The
# superuser is `miky`, authentication is `trust`, and the server listens on
# the unix socket only (set PGLISTEN, e.g. PGLISTEN=127.0.0.1, to also listen
# on TCP).  MIKY_PG_FAST=1 at init turns durability off (fsync and friends):
# for throwaway test clusters only; their shared_buffers is 32MB, or
# MIKY_PG_SHARED_BUFFERS (the bench holds its whole data set).  PG_BIN overrides the directory of the
# PostgreSQL programs (default: the highest /usr/lib/postgresql/*/bin, else
# PATH).
#
# initdb and postgres refuse to run as root: when root, they run as the
# `postgres` system user, which then owns DIR.
set -euo pipefail

PG_SUPERUSER=miky

die() { echo "pg.sh: $*" >&2; exit 1; }

usage() {
	sed -n '5,13p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

# find_bin sets PG_BIN to the directory holding initdb, pg_ctl and psql.
find_bin() {
	if [[ -n "${PG_BIN:-}" ]]; then
		[[ -x "$PG_BIN/pg_ctl" ]] || die "PG_BIN=$PG_BIN has no pg_ctl"
		return
	fi
	local best
	best=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
	if [[ -n "$best" && ! -x "$best/pg_ctl" ]]; then
		best=""
	fi
	if [[ -n "$best" ]]; then
		PG_BIN=$best
	elif command -v pg_ctl >/dev/null 2>&1; then
		PG_BIN=$(dirname "$(command -v pg_ctl)")
	else
		die "no PostgreSQL found (install it with scripts/deps.sh)"
	fi
}

# as_pg runs a server-side program (initdb, pg_ctl) as the cluster owner:
# the `postgres` user when we are root, else ourselves.  It runs from the
# cluster directory so that a cwd the owner cannot read does not matter.
as_pg() {
	if [[ $EUID -eq 0 ]]; then
		(cd "$DIR" && runuser -u postgres -- "$@")
	else
		(cd "$DIR" && "$@")
	fi
}

# abs_dir makes DIR absolute (it need not exist yet).
abs_dir() {
	local d=$1
	[[ -n "$d" ]] || die "empty directory argument"
	case $d in
	/*) ;;
	*) d="$PWD/$d" ;;
	esac
	printf '%s\n' "${d%/}"
}

need_cluster() {
	[[ -f "$DIR/data/PG_VERSION" ]] || die "no cluster in $DIR (run: pg.sh init $DIR PORT)"
}

port_of() {
	[[ -s "$DIR/port" ]] || die "no $DIR/port (cluster not made by pg.sh init?)"
	cat "$DIR/port"
}

running() {
	[[ -f "$DIR/data/PG_VERSION" ]] || return 1
	as_pg "$PG_BIN/pg_ctl" -D "$DIR/data" status >/dev/null 2>&1
}

# check_reachable fails with a clear message when the postgres user cannot
# walk down to DIR (a 0700 parent such as a mktemp -d directory or /root).
check_reachable() {
	[[ $EUID -eq 0 ]] || return 0
	id postgres >/dev/null 2>&1 || die "no 'postgres' system user (install postgresql with scripts/deps.sh)"
	local p=$DIR
	while [[ "$p" != / && -n "$p" ]]; do
		p=$(dirname "$p")
		if ! runuser -u postgres -- test -x "$p" 2>/dev/null; then
			die "user postgres cannot enter $p (chmod o+x it, or put the cluster elsewhere)"
		fi
	done
}

cmd_init() {
	local port=$1
	if ! [[ "$port" =~ ^[0-9]+$ ]] || ((port < 1 || port > 65535)); then
		die "bad port '$port'"
	fi
	if [[ -f "$DIR/data/PG_VERSION" ]]; then
		return 0
	fi
	mkdir -p "$DIR"
	chmod 0755 "$DIR"
	check_reachable
	[[ $EUID -eq 0 ]] && chown postgres: "$DIR"

	local locale=C
	if locale -a 2>/dev/null | grep -qix 'c\.utf-\{0,1\}8'; then
		locale=C.UTF-8
	fi
	if ! as_pg "$PG_BIN/initdb" -D "$DIR/data" -U "$PG_SUPERUSER" \
	    --auth=trust -E UTF8 --locale="$locale" >"$DIR/initdb.log" 2>&1; then
		cat "$DIR/initdb.log" >&2
		die "initdb failed in $DIR/data"
	fi

	local listen="${PGLISTEN:-}"
	{
		echo
		echo "# Added by scripts/pg.sh"
		echo "port = $port"
		echo "unix_socket_directories = '$DIR'"
		echo "listen_addresses = '$listen'"
		echo "max_connections = 200"
		echo "logging_collector = off"
		echo "log_line_prefix = '%m [%p] %q%u@%d '"
		if [[ "${MIKY_PG_FAST:-}" == 1 ]]; then
			echo "# MIKY_PG_FAST=1: a throwaway cluster, durability off"
			echo "fsync = off"
			echo "synchronous_commit = off"
			echo "full_page_writes = off"
			echo "wal_level = minimal"
			echo "max_wal_senders = 0"
			echo "shared_buffers = ${MIKY_PG_SHARED_BUFFERS:-32MB}"
		elif [[ -n "${MIKY_PG_SHARED_BUFFERS:-}" ]]; then
			echo "shared_buffers = $MIKY_PG_SHARED_BUFFERS"
		fi
	} >>"$DIR/data/postgresql.conf"
	echo "$port" >"$DIR/port"
	[[ $EUID -eq 0 ]] && chown postgres: "$DIR/data/postgresql.conf" "$DIR/port" "$DIR/initdb.log"
	return 0
}

cmd_start() {
	need_cluster
	if running; then
		return 0
	fi
	check_reachable
	if ! as_pg "$PG_BIN/pg_ctl" -D "$DIR/data" -l "$DIR/postgres.log" \
	    -w -t 60 start >/dev/null; then
		tail -n 20 "$DIR/postgres.log" >&2 || true
		die "PostgreSQL in $DIR did not start (log: $DIR/postgres.log)"
	fi
}

cmd_stop() {
	if ! running; then
		return 0
	fi
	as_pg "$PG_BIN/pg_ctl" -D "$DIR/data" -m fast -w -t 60 stop >/dev/null ||
		die "PostgreSQL in $DIR did not stop"
}

cmd_status() {
	if running; then
		echo "PostgreSQL running in $DIR (port $(port_of))"
		return 0
	fi
	if [[ -f "$DIR/data/PG_VERSION" ]]; then
		echo "PostgreSQL stopped in $DIR"
	else
		echo "no PostgreSQL cluster in $DIR"
	fi
	return 3
}

# urlencode escapes what may not appear raw in a URL query value.
urlencode() {
	local s=$1 out="" c i
	for ((i = 0; i < ${#s}; i++)); do
		c=${s:i:1}
		case $c in
		[A-Za-z0-9/._~-]) out+=$c ;;
		*) out+=$(printf '%%%02X' "'$c") ;;
		esac
	done
	printf '%s' "$out"
}

cmd_url() {
	local db=$1 role=${2:-$PG_SUPERUSER}
	printf 'postgresql:///%s?host=%s&port=%s&user=%s\n' \
		"$(urlencode "$db")" "$(urlencode "$DIR")" "$(port_of)" "$(urlencode "$role")"
}

psql_cmd() {
	local db=$1
	shift
	"$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$DIR" -p "$(port_of)" \
		-U "$PG_SUPERUSER" -d "$db" "$@"
}

cmd_createdb() {
	local db=$1 template=${2:-}
	[[ "$db" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || die "bad database name '$db'"
	[[ -z "$template" || "$template" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || die "bad template name '$template'"
	local exists
	exists=$(psql_cmd postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'")
	[[ "$exists" == 1 ]] && return 0
	if [[ -n "$template" ]]; then
		psql_cmd postgres -c "CREATE DATABASE \"$db\" TEMPLATE \"$template\""
	else
		psql_cmd postgres -c "CREATE DATABASE \"$db\""
	fi
}

main() {
	[[ $# -ge 2 ]] || usage
	local cmd=$1
	DIR=$(abs_dir "$2")
	shift 2
	find_bin
	case $cmd in
	init)     [[ $# -eq 1 ]] || usage; cmd_init "$1" ;;
	start)    [[ $# -eq 0 ]] || usage; cmd_start ;;
	stop)     [[ $# -eq 0 ]] || usage; cmd_stop ;;
	status)   [[ $# -eq 0 ]] || usage; cmd_status ;;
	url)      [[ $# -ge 1 && $# -le 2 ]] || usage; cmd_url "$@" ;;
	createdb) [[ $# -ge 1 && $# -le 2 ]] || usage; need_cluster; cmd_createdb "$@" ;;
	psql)     [[ $# -ge 1 ]] || usage; need_cluster; psql_cmd "$@" ;;
	*) usage ;;
	esac
}

main "$@"
