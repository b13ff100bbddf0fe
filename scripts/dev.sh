#!/usr/bin/env bash
# dev.sh — the local development stack behind `make run` and `make stop`.
#
#   dev.sh up       start or restart everything, wait for /api/health
#   dev.sh down     stop what `up` started
#   dev.sh status   say what runs
#   dev.sh pgdir    print where the cluster lives
#
# All state lives in var/ (gitignored):
#   var/pg          the PostgreSQL cluster (port $MIKY_PG_PORT, default 5433);
#                   as root in a checkout `postgres` cannot enter, under
#                   /var/lib/miky-dev/<hash of the checkout path>/pg
#   var/run         nginx prefix (nginx.conf, pid, error.log), miky.sock,
#                   pid files
#   var/log         miky.log (the app's JSON lines), mailer.log
#   var/mail        the dev mailbox (.eml files) while SMTP_URL is unset
#   var/jwt_secret  generated once, mode 600
#
# Settings from DESIGN.md's configuration table that the caller set are
# passed through to the app; DATABASE_URL, when set, replaces the local
# cluster.  For experiments: MIKY_BIN (the binary), MIKY_VAR_DIR (instead of
# var/), MIKY_NGINX_TEMPLATE (instead of nginx/dev.conf.in).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
BIN=${MIKY_BIN:-$ROOT/build/miky}
[[ "$BIN" == /* ]] || BIN=$PWD/$BIN
VAR=${MIKY_VAR_DIR:-$ROOT/var}
TEMPLATE=${MIKY_NGINX_TEMPLATE:-$ROOT/nginx/dev.conf.in}
HTTP_PORT=${MIKY_HTTP_PORT:-8080}
PG_PORT=${MIKY_PG_PORT:-5433}

RUN=$VAR/run
LOGDIR=$VAR/log
MAILDIR=$VAR/mail
SECRET_FILE=$VAR/jwt_secret
SOCK=$RUN/miky.sock
APP_PIDFILE=$RUN/miky.pid
MAILER_PIDFILE=$RUN/mailer.pid
PG_MARK=$RUN/pg.started-by-dev
NGINX_CONF=$RUN/nginx.conf
APP_LOG=$LOGDIR/miky.log
MAILER_LOG=$LOGDIR/mailer.log

# The configuration table of DESIGN.md plus the app's own knobs.
CONFIG_VARS=(
	DATABASE_URL MIGRATE_DATABASE_URL JWT_SECRET PUBLIC_BASE_URL MIKY_HTTP_PORT
	MIKY_WORKERS MIKY_THREADS MIKY_DB_POOL MIKY_DB_LANES MIKY_DRAIN_SECONDS
	OPENAI_API_KEY OPENAI_BASE_URL
	STRIPE_SECRET_KEY STRIPE_WEBHOOK_SECRET STRIPE_API_BASE
	SMTP_URL MAIL_FROM CORS_ORIGINS MIKY_MAIL_DIR
)

say() { echo "dev.sh: $*"; }

# pg_dir: where the cluster lives.  var/pg, unless we are root and the
# `postgres` user cannot enter var/ (a checkout in a directory only its
# owner may enter, such as /root): then under /var/lib/miky-dev, one
# cluster per checkout.  A cluster that exists stays where it was made:
# the first `up` decides before var/ exists, and every later command
# (down, status, make psql) must find the same cluster, whatever var/'s
# mode turned out to be.
pg_dir() {
	local outside
	outside="/var/lib/miky-dev/$(printf '%s' "$ROOT" | sha256sum | cut -c1-12)/pg"
	if [[ -f "$VAR/pg/data/PG_VERSION" ]]; then
		echo "$VAR/pg"
		return 0
	fi
	if [[ $EUID -eq 0 && -f "$outside/data/PG_VERSION" ]]; then
		echo "$outside"
		return 0
	fi
	if [[ $EUID -ne 0 ]] || runuser -u postgres -- test -x "$VAR" 2>/dev/null ||
	    ! id postgres >/dev/null 2>&1; then
		echo "$VAR/pg"
		return 0
	fi
	echo "$outside"
}
warn() { echo "dev.sh: warning: $*" >&2; }
die() { echo "dev.sh: $*" >&2; exit 1; }

# rel prints a path relative to the repository when it is inside it.
rel() {
	case $1 in
	"$ROOT"/*) printf '%s\n' "${1#"$ROOT"/}" ;;
	*) printf '%s\n' "$1" ;;
	esac
}

find_nginx() {
	NGINX=$(command -v nginx || true)
	if [[ -z "$NGINX" && -x /usr/sbin/nginx ]]; then
		NGINX=/usr/sbin/nginx
	fi
	[[ -n "$NGINX" ]] || die "nginx not found (run scripts/deps.sh)"
}

# alive PID PATTERN: the process exists, is not a zombie, and its command
# line matches PATTERN (so a recycled pid is never mistaken for ours).
alive() {
	local pid=$1 pattern=$2 state cmd
	[[ "$pid" =~ ^[0-9]+$ ]] || return 1
	[[ -r /proc/$pid/stat ]] || return 1
	state=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1) || return 1
	[[ "$state" != Z ]] || return 1
	cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
	[[ "$cmd" == *$pattern* ]]
}

# pid_from FILE prints the pid in FILE, or nothing.
pid_from() {
	[[ -s "$1" ]] || return 0
	tr -dc '0-9' <"$1"
}

# stop_pidfile NAME FILE PATTERN SIGNAL TIMEOUT: signal the process named in
# FILE and wait for it to go; SIGKILL after TIMEOUT seconds.  Prints a line
# only when something was running.
stop_pidfile() {
	local name=$1 file=$2 pattern=$3 sig=$4 timeout=$5 pid i
	pid=$(pid_from "$file")
	if [[ -z "$pid" ]] || ! alive "$pid" "$pattern"; then
		rm -f "$file"
		return 0
	fi
	say "stopping $name (pid $pid)"
	kill "-$sig" "$pid" 2>/dev/null || true
	for ((i = 0; i < timeout * 10; i++)); do
		alive "$pid" "$pattern" || break
		sleep 0.1
	done
	if alive "$pid" "$pattern"; then
		warn "$name (pid $pid) still running after ${timeout}s; killing it"
		kill -KILL "$pid" 2>/dev/null || true
		sleep 0.2
	fi
	rm -f "$file"
}

# --- the pieces -------------------------------------------------------------

make_dirs() {
	mkdir -p "$VAR" "$RUN" "$LOGDIR" "$MAILDIR"
	# nginx workers may run as nobody (nginx_user_line): they must reach
	# the socket in var/run and read web/.
	chmod 0755 "$VAR" "$RUN"
	# The cluster's place outside var/, unless the caller's database is used.
	if [[ -z "${DATABASE_URL:-}" && "$PGDIR" != "$VAR"/* ]]; then
		mkdir -p "$(dirname "$(dirname "$PGDIR")")"
		chmod 0755 "$(dirname "$(dirname "$PGDIR")")"
		mkdir -p "$(dirname "$PGDIR")"
		chmod 0755 "$(dirname "$PGDIR")"
	fi
}

ensure_secret() {
	[[ -s "$SECRET_FILE" ]] && return 0
	say "generating $(rel "$SECRET_FILE")"
	(
		umask 077
		if command -v openssl >/dev/null 2>&1; then
			openssl rand -base64 48 | tr -d '\n' >"$SECRET_FILE.tmp"
		else
			head -c 48 /dev/urandom | base64 -w0 >"$SECRET_FILE.tmp"
		fi
		mv "$SECRET_FILE.tmp" "$SECRET_FILE"
	)
	chmod 600 "$SECRET_FILE"
}

pg() { "$ROOT/scripts/pg.sh" "$@" 9>&-; }

# ensure_database sets DATABASE_URL: the caller's, or the local cluster's
# `miky` database, which it creates and starts as needed.  The app
# connects as the restricted role miky_app (schema/020 makes it), and
# `miky migrate` as the cluster's superuser (MIGRATE_DATABASE_URL).  A
# caller's DATABASE_URL is used as it is, and for migrations too unless
# the caller also set MIGRATE_DATABASE_URL.
ensure_database() {
	if [[ -n "${DATABASE_URL:-}" ]]; then
		say "using the caller's DATABASE_URL"
		return 0
	fi
	if [[ ! -f "$PGDIR/data/PG_VERSION" ]]; then
		say "creating the PostgreSQL cluster in $(rel "$PGDIR") (port $PG_PORT)"
		pg init "$PGDIR" "$PG_PORT"
	fi
	if ! pg status "$PGDIR" >/dev/null; then
		say "starting PostgreSQL ($(rel "$PGDIR"))"
		pg start "$PGDIR"
		: >"$PG_MARK"
	fi
	pg createdb "$PGDIR" miky
	MIGRATE_DATABASE_URL=$(pg url "$PGDIR" miky)
	DATABASE_URL=$(pg url "$PGDIR" miky miky_app)
	export MIGRATE_DATABASE_URL
}

# app_env exports what the app and its subcommands read.
app_env() {
	export DATABASE_URL
	export JWT_SECRET="${JWT_SECRET:-$(<"$SECRET_FILE")}"
	export PUBLIC_BASE_URL="${PUBLIC_BASE_URL:-http://127.0.0.1:$HTTP_PORT}"
	export MIKY_MAIL_DIR="${MIKY_MAIL_DIR:-$MAILDIR}"
	local v
	for v in "${CONFIG_VARS[@]}"; do
		[[ -n "${!v+x}" ]] && export "${v?}"
	done
	return 0
}

migrate() {
	say "migrating the database"
	local out
	if ! out=$("$BIN" migrate 2>&1 9>&-); then
		printf '%s\n' "$out" >&2
		printf '%s\n' "$out" >>"$APP_LOG"
		die "'$(rel "$BIN") migrate' failed"
	fi
	[[ -z "$out" ]] || printf '%s\n' "$out" >>"$APP_LOG"
}

start_app() {
	stop_pidfile "the app" "$APP_PIDFILE" miky TERM 30
	say "starting the app ($(rel "$BIN") serve)"
	APP_LOG_MARK=$(log_size "$APP_LOG")
	# spawn-fcgi points the child's stdout and stderr at /dev/null; the
	# shell in between sends them to the log and then becomes the app, so
	# the pid file still names the app's master.
	# shellcheck disable=SC2016 # expanded by the inner shell
	local wrapper='log=$1; shift; exec "$@" >>"$log" 2>&1'
	# The owner's URL is for `miky migrate` only.
	if ! env -u MIGRATE_DATABASE_URL \
	    spawn-fcgi -s "$SOCK" -M 0666 -P "$APP_PIDFILE" -- \
	    /bin/sh -c "$wrapper" sh "$APP_LOG" "$BIN" serve \
	    >/dev/null 9>&-; then
		app_log_news >&2
		die "the app did not start (log: $(rel "$APP_LOG"))"
	fi
}

log_size() {
	if [[ -f "$1" ]]; then
		wc -c <"$1"
	else
		echo 0
	fi
}

# app_log_news prints the last lines the app logged since start_app.
app_log_news() {
	tail -c +"$((${APP_LOG_MARK:-0} + 1))" "$APP_LOG" 2>/dev/null | tail -n 30 || true
}

# mailer_available: `miky help` mentions the mailer subcommand.
mailer_available() {
	"$BIN" help 2>&1 9>&- | grep -qw mailer
}

start_mailer() {
	stop_pidfile "the mailer" "$MAILER_PIDFILE" mailer TERM 30
	mailer_available || return 0
	say "starting the mailer ($(rel "$BIN") mailer)"
	# The child writes its own pid: setsid may or may not fork.
	# shellcheck disable=SC2016 # expanded by the inner shell
	setsid /bin/sh -c 'echo $$ >"$1"; shift; exec "$@"' sh "$MAILER_PIDFILE" "$BIN" mailer \
		</dev/null >>"$MAILER_LOG" 2>&1 9>&- &
	local i
	for ((i = 0; i < 20; i++)); do
		[[ -s "$MAILER_PIDFILE" ]] && break
		sleep 0.05
	done
}

# nginx_pidfile prints where the rendered config keeps nginx's pid.
nginx_pidfile() {
	local p
	p=$(sed -n 's/^[[:space:]]*pid[[:space:]]\{1,\}\([^;[:space:]]*\)[[:space:]]*;.*/\1/p' "$NGINX_CONF" | tail -n 1)
	if [[ -z "$p" ]]; then
		p=$RUN/nginx.pid
	elif [[ "$p" != /* ]]; then
		p=$RUN/$p
	fi
	printf '%s\n' "$p"
}

nginx_cmd() {
	local extra=()
	if ! grep -Eq '^[[:space:]]*pid[[:space:]]' "$NGINX_CONF"; then
		extra=(-g "pid $RUN/nginx.pid;")
	fi
	"$NGINX" -p "$RUN/" -c "$NGINX_CONF" -e "$RUN/error.log" "${extra[@]}" "$@"
}

render_nginx() {
	[[ -f "$TEMPLATE" ]] || die "no nginx template $(rel "$TEMPLATE")"
	render_nginx_template "$TEMPLATE" "$RUN" "$HTTP_PORT" "$SOCK" \
		"$ROOT/web" "$(nginx_user_line "$RUN" "$ROOT/web")" >"$NGINX_CONF.tmp"
	if grep -q '@[A-Z_]*@' "$NGINX_CONF.tmp"; then
		warn "unknown placeholders left in $(rel "$NGINX_CONF"): $(grep -o '@[A-Z_]*@' "$NGINX_CONF.tmp" | sort -u | tr '\n' ' ')"
	fi
	mv "$NGINX_CONF.tmp" "$NGINX_CONF"
}

start_nginx() {
	render_nginx
	local out pidfile pid i
	if ! out=$(nginx_cmd -t -q 2>&1); then
		printf '%s\n' "$out" >&2
		die "the rendered nginx config is invalid ($(rel "$NGINX_CONF"))"
	fi
	pidfile=$(nginx_pidfile)
	pid=$(pid_from "$pidfile")
	if [[ -n "$pid" ]] && alive "$pid" nginx; then
		say "reloading nginx (pid $pid) on 127.0.0.1:$HTTP_PORT"
		kill -HUP "$pid"
		return 0
	fi
	rm -f "$pidfile"
	say "starting nginx on 127.0.0.1:$HTTP_PORT"
	if ! out=$(nginx_cmd 2>&1 9>&-); then
		printf '%s\n' "$out" >&2
		die "nginx did not start (error log: $(rel "$RUN/error.log"))"
	fi
	# The daemon writes its pid file just after the parent returns.
	for ((i = 0; i < 50; i++)); do
		[[ -s "$pidfile" ]] && break
		sleep 0.1
	done
}

wait_health() {
	local url="http://127.0.0.1:$HTTP_PORT/api/health" i pid
	for ((i = 0; i < 100; i++)); do
		if curl --noproxy '*' -fsS -m 2 -o /dev/null "$url" 2>/dev/null; then
			return 0
		fi
		pid=$(pid_from "$APP_PIDFILE")
		if [[ -z "$pid" ]] || ! alive "$pid" miky; then
			app_log_news >&2
			die "the app exited (log: $(rel "$APP_LOG"))"
		fi
		sleep 0.1
	done
	echo "--- $(rel "$APP_LOG") since the start:" >&2
	app_log_news >&2
	echo "--- last lines of $(rel "$RUN/error.log"):" >&2
	tail -n 10 "$RUN/error.log" >&2 || true
	die "$url did not answer within 10 s"
}

summary() {
	local passed=() v
	for v in "${CONFIG_VARS[@]}"; do
		case $v in DATABASE_URL | MIGRATE_DATABASE_URL | JWT_SECRET | PUBLIC_BASE_URL | MIKY_MAIL_DIR) continue ;; esac
		[[ -n "${!v+x}" ]] && passed+=("$v")
	done
	cat <<EOF

Miky is up.
  URL           http://127.0.0.1:$HTTP_PORT/
  DATABASE_URL  $DATABASE_URL
  app log       $(rel "$APP_LOG")
EOF
	if [[ -s "$MAILER_PIDFILE" ]]; then
		echo "  mailer log    $(rel "$MAILER_LOG")"
	fi
	cat <<EOF
  nginx logs    $(rel "$RUN/error.log"), $(rel "$RUN")/access.log
  dev mailbox   $(rel "$MIKY_MAIL_DIR")/ (mails are written there while SMTP_URL is unset)
EOF
	((${#passed[@]} == 0)) || echo "  settings      ${passed[*]}"
	echo "  stop with     make stop"
}

# --- commands ---------------------------------------------------------------

lock() {
	mkdir -p "$RUN"
	exec 9>"$RUN/dev.lock"
	flock -w 120 9 || die "another dev.sh holds $(rel "$RUN/dev.lock")"
}

cmd_up() {
	[[ -x "$BIN" ]] || die "$(rel "$BIN") not found: build it first (make)"
	command -v spawn-fcgi >/dev/null 2>&1 || die "spawn-fcgi not found (run scripts/deps.sh)"
	command -v curl >/dev/null 2>&1 || die "curl not found"
	find_nginx
	make_dirs
	lock
	ensure_secret
	ensure_database
	app_env
	migrate
	start_app
	start_nginx
	start_mailer
	wait_health
	summary
}

cmd_down() {
	[[ -d "$VAR" ]] || return 0
	lock
	local pidfile=""
	[[ -f "$NGINX_CONF" ]] && pidfile=$(nginx_pidfile)
	[[ -n "$pidfile" ]] && stop_pidfile nginx "$pidfile" nginx QUIT 10
	stop_pidfile "the mailer" "$MAILER_PIDFILE" mailer TERM 30
	stop_pidfile "the app" "$APP_PIDFILE" miky TERM 30
	if [[ -d "$PGDIR" && -f "$PG_MARK" ]]; then
		if pg status "$PGDIR" >/dev/null; then
			say "stopping PostgreSQL ($(rel "$PGDIR"))"
			pg stop "$PGDIR"
		fi
		rm -f "$PG_MARK"
	fi
	return 0
}

cmd_status() {
	local pid pidfile n
	pid=$(pid_from "$APP_PIDFILE")
	if [[ -n "$pid" ]] && alive "$pid" miky; then
		n=$(pgrep -c -P "$pid" || true)
		echo "app:        running, master pid $pid, $n worker(s), log $(rel "$APP_LOG")"
	else
		echo "app:        stopped"
	fi
	pid=$(pid_from "$MAILER_PIDFILE")
	if [[ -n "$pid" ]] && alive "$pid" mailer; then
		echo "mailer:     running, pid $pid, log $(rel "$MAILER_LOG")"
	else
		echo "mailer:     stopped"
	fi
	pid=""
	if [[ -f "$NGINX_CONF" ]]; then
		pidfile=$(nginx_pidfile)
		pid=$(pid_from "$pidfile")
	fi
	if [[ -n "$pid" ]] && alive "$pid" nginx; then
		local port
		port=$(sed -n 's/^[[:space:]]*listen[[:space:]]\{1,\}\([^;[:space:]]*\).*/\1/p' "$NGINX_CONF" | head -n 1)
		echo "nginx:      running, pid $pid, http://$port/"
	else
		echo "nginx:      stopped"
	fi
	if [[ -f "$PGDIR/data/PG_VERSION" ]]; then
		echo "postgresql: $(pg status "$PGDIR" || true)"
	else
		echo "postgresql: no cluster in $(rel "$PGDIR")"
	fi
}

PGDIR=$(pg_dir)

case ${1:-} in
up) cmd_up ;;
pgdir) echo "$PGDIR" ;;
down) cmd_down ;;
status) cmd_status ;;
*)
	echo "usage: $0 up|down|status" >&2
	exit 2
	;;
esac
