#!/usr/bin/env bash
# test.sh — run the test suite (`make test` builds first, then runs this).
#
#   scripts/test.sh                      C unit tests, then every t/*.t
#   scripts/test.sh t/10-auth.t ...      only the named test files
#   scripts/test.sh -v t/10-auth.t       options starting with '-' go to prove
#
# It makes a throwaway directory, starts one PostgreSQL cluster there with
# durability off, creates and migrates the database `miky_template`, and
# exports where it is; each t/*.t (through t/lib/Miky/Test.pm) then clones
# its own database from the template and starts its own app and nginx.
# Everything is torn down on exit, pass or fail, unless MIKY_TEST_KEEP=1.
#
# Environment: MIKY_TEST_JOBS (parallel test files, default 2),
# MIKY_TEST_KEEP=1 (keep the directory and databases), MIKY_BIN (the binary,
# default build/miky; C unit tests are the build/t/*.t beside it).
# See docs/testing.md.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
BIN=${MIKY_BIN:-$ROOT/build/miky}
[[ "$BIN" == /* ]] || BIN=$PWD/$BIN
UNIT_DIR=$(dirname "$BIN")/t
JOBS=${MIKY_TEST_JOBS:-2}
TMP=""

say() { echo "test.sh: $*"; }
die() { echo "test.sh: $*" >&2; exit 1; }

# alive PID PATTERN: exists, is not a zombie, and its command line contains
# PATTERN (a recycled pid is left alone).
alive() {
	local state cmd
	[[ "$1" =~ ^[0-9]+$ && -r /proc/$1/stat ]] || return 1
	state=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
	[[ "$state" != Z ]] || return 1
	cmd=$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null) || return 1
	[[ "$cmd" == *"$2"* ]]
}

# wait_gone SECONDS PATTERN PID...: wait until none of the PIDs is alive.
wait_gone() {
	local secs=$1 pattern=$2 i pid any
	shift 2
	for ((i = 0; i < secs * 10; i++)); do
		any=0
		for pid in "$@"; do
			if alive "$pid" "$pattern"; then any=1; fi
		done
		((any)) || return 0
		sleep 0.1
	done
	return 1
}

# group_alive PGID: some process of the group is alive (not a zombie).
group_alive() {
	local p
	for p in $(pgrep -g "$1" || true); do
		if alive "$p" ""; then return 0; fi
	done
	return 1
}

# sweep ends what a test file left behind when it could not clean up
# itself (prove gave up on it, or it was killed).  Each harness instance
# lists itself and the process groups it started in DIR/pids ("test PID",
# "app PID", "nginx PID"), and may own a cluster in DIR/pg.
sweep() {
	local f kind pid tests=() groups=()
	for f in "$TMP"/*/pids; do
		[[ -f "$f" ]] || continue
		while read -r kind pid; do
			case $kind in
			test) alive "$pid" perl && tests+=("$pid") ;;
			app | nginx) groups+=("$kind:$pid") ;;
			esac
		done <"$f"
	done
	if ((${#tests[@]})); then
		# After a ^C they are already tearing down; else SIGTERM makes the
		# harness tear down in order.
		if ! wait_gone 2 perl "${tests[@]}"; then
			say "stopping test processes still running: ${tests[*]}"
			kill -TERM "${tests[@]}" 2>/dev/null || true
			wait_gone 30 perl "${tests[@]}" || kill -KILL "${tests[@]}" 2>/dev/null || true
		fi
	fi
	local g left=() i
	for g in "${groups[@]}"; do
		pid=${g#*:}
		if group_alive "$pid"; then
			kill -TERM -- "-$pid" 2>/dev/null || true
			left+=("$pid")
		fi
	done
	if ((${#left[@]})); then
		say "stopping processes a test left running: ${left[*]}"
		for ((i = 0; i < 100; i++)); do
			local any=0
			for pid in "${left[@]}"; do
				if group_alive "$pid"; then any=1; fi
			done
			((any)) || break
			sleep 0.1
		done
		for pid in "${left[@]}"; do
			kill -KILL -- "-$pid" 2>/dev/null || true
		done
	fi
	for f in "$TMP"/*/pg; do
		if [[ -f "$f/data/PG_VERSION" ]]; then
			"$ROOT/scripts/pg.sh" stop "$f" >/dev/null 2>&1 || true
		fi
	done
}

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	[[ -n "$TMP" && -d "$TMP" ]] || exit "$rc"
	sweep
	"$ROOT/scripts/pg.sh" stop "$TMP/pg" 2>/dev/null || true
	if [[ "${MIKY_TEST_KEEP:-}" == 1 ]]; then
		cat <<EOF
test.sh: MIKY_TEST_KEEP=1, kept $TMP
  test dirs   $TMP/*/ (miky.log, error.log, nginx.conf, mail/)
  cluster     $TMP/pg (log: $TMP/pg/postgres.log), stopped
  look inside scripts/pg.sh start $TMP/pg
              psql '$("$ROOT/scripts/pg.sh" url "$TMP/pg" postgres)' -c '\\l'
  then        scripts/pg.sh stop $TMP/pg && rm -rf $TMP
EOF
	else
		rm -rf "$TMP"
	fi
	exit "$rc"
}

main() {
	local opts=() unit=() http=() a
	for a in "$@"; do
		case $a in
		-*) opts+=("$a"); continue ;;
		/*) ;;
		*) a=$PWD/$a ;;
		esac
		a=${a#"$ROOT"/}
		case $a in
		"${UNIT_DIR#"$ROOT"/}"/*) unit+=("$a") ;;
		*) http+=("$a") ;;
		esac
	done
	# Test files use `use lib 't/lib'` and find the repository from there.
	cd "$ROOT"
	if ((${#unit[@]} + ${#http[@]} == 0)); then
		shopt -s nullglob
		unit=("${UNIT_DIR#"$ROOT"/}"/*.t)
		http=(t/*.t)
		shopt -u nullglob
	fi

	[[ -x "$BIN" ]] || die "$BIN not found: build first (make)"
	command -v prove >/dev/null 2>&1 || die "prove not found (run scripts/deps.sh)"

	TMP=$(mktemp -d "${TMPDIR:-/tmp}/miky-test.XXXXXX")
	# Readable by postgres (the cluster) and nobody (nginx workers).
	chmod 0755 "$TMP"
	trap cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM

	local port
	port=$(free_port)
	MIKY_PG_FAST=1 "$ROOT/scripts/pg.sh" init "$TMP/pg" "$port"
	"$ROOT/scripts/pg.sh" start "$TMP/pg"
	"$ROOT/scripts/pg.sh" createdb "$TMP/pg" miky_template
	if ! DATABASE_URL=$("$ROOT/scripts/pg.sh" url "$TMP/pg" miky_template) \
	    "$BIN" migrate >"$TMP/migrate.log" 2>&1; then
		cat "$TMP/migrate.log" >&2
		die "'$BIN migrate' failed on the template database"
	fi

	export MIKY_TEST_PGHOST=$TMP/pg
	export MIKY_TEST_PGPORT=$port
	export MIKY_TEST_TEMPLATE=miky_template
	export MIKY_TEST_TMP=$TMP
	export MIKY_BIN=$BIN

	local rc_unit=0 rc_http=0
	if ((${#unit[@]})); then
		say "C unit tests"
		prove --exec '' "${opts[@]}" "${unit[@]}" || rc_unit=$?
	fi
	if ((${#http[@]})); then
		local n=${#http[@]}
		say "HTTP tests ($n file$( ((n == 1)) || echo s), up to $JOBS at a time)"
		prove -I t/lib "-j$JOBS" "${opts[@]}" "${http[@]}" || rc_http=$?
	fi
	if ((rc_unit || rc_http)); then
		say "FAILED (unit: $rc_unit, http: $rc_http)"
		exit 1
	fi
	say "all tests passed"
}

main "$@"
