#!/usr/bin/env bash
# admin-scale.sh — the admin API's SQL on a large database: EXPLAIN
# (ANALYZE, BUFFERS) of the statistics and list statements, and the time
# of `miky check-ledger`, on a million users and fifty million messages
# made by bench/seed-admin.sql.
#
#   bench/admin-scale.sh            seed once (SCALE_DIR), then measure
#   SCALE_USERS=100000 bench/admin-scale.sh      a smaller one
#
# The cluster lives in SCALE_DIR (bench/scale, gitignored) and is kept
# between runs, because seeding takes a while (about half an hour on two
# cores, and some 20 GB of disk); remove the directory to start over.
# The statements are the app's own (`miky sql NAME`), prepared as the app
# prepares them; the lists run with plan_cache_mode = force_custom_plan as
# the app's admin lists do (STMT_CUSTOM_PLANS).  Each is run once to warm
# the cache, then explained.  Results go to stdout and to
# bench/results/admin-scale-<time>.txt.
#
# Environment: SCALE_DIR, SCALE_USERS (1000000), SCALE_TURNS (25 chat
# turns a user: messages = users x turns x 2), MIKY_BIN.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
BIN=${MIKY_BIN:-$ROOT/build/miky}
DIR=${SCALE_DIR:-$ROOT/bench/scale}
USERS=${SCALE_USERS:-1000000}
TURNS=${SCALE_TURNS:-25}
PG=$DIR/pg
OUT=$ROOT/bench/results/admin-scale-$(date +%Y%m%d-%H%M%S).txt

say() { echo "admin-scale: $*" >&2; }
pg() { "$ROOT/scripts/pg.sh" "$@"; }
psql_db() { pg psql "$PG" miky_scale "$@"; }

[[ -x "$BIN" ]] || { say "build first (make)"; exit 1; }
mkdir -p "$DIR" "$ROOT/bench/results"
chmod 0755 "$DIR"

if [[ ! -f "$DIR/seeded" ]]; then
	rm -rf "$PG"
	MIKY_PG_FAST=1 pg init "$PG" "$(free_port)"
	# Room to load and index fifty million rows.
	cat >>"$PG/data/postgresql.conf" <<-EOF
	shared_buffers = 2GB
	maintenance_work_mem = 1GB
	work_mem = 64MB
	max_wal_size = 16GB
	checkpoint_timeout = 30min
	max_parallel_maintenance_workers = 2
	EOF
	pg start "$PG"
	pg createdb "$PG" miky_scale
	DATABASE_URL=$(pg url "$PG" miky_scale) "$BIN" migrate >"$DIR/migrate.log" 2>&1
	say "seeding $USERS users, $((USERS * TURNS * 2)) messages (bench/seed-admin.sql)"
	start=$(date +%s)
	psql_db -v users="$USERS" -v turns="$TURNS" -f "$ROOT/bench/seed-admin.sql"
	echo "users=$USERS turns=$TURNS seconds=$(($(date +%s) - start))" >"$DIR/seeded"
	say "seeded in $(($(date +%s) - start)) s"
fi
pg start "$PG"

# explain TITLE NAME ARGS [PLAN_CACHE_MODE]: EXPLAIN ANALYZE of the
# app's statement NAME executed with ARGS (SQL literals, comma-separated).
explain() {
	local title=$1 name=$2 args=$3 mode=${4:-auto} sql call=p
	sql=$("$BIN" sql "$name")
	[[ -z "$args" ]] || call="p($args)"
	echo
	echo "=== $title: $name($args)"
	psql_db -At <<-EOF
	SET plan_cache_mode = $mode;
	SET TimeZone = 'UTC';
	PREPARE p AS $sql;
	\o /dev/null
	EXECUTE $call;
	\o
	EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) EXECUTE $call;
	DEALLOCATE p;
	EOF
}

{
	echo "# bench/admin-scale.sh, $(date -u +%FT%TZ), $(nproc) CPUs"
	cat "$DIR/seeded"
	psql_db -At -c "SELECT 'users ' || (SELECT count(*) FROM users)
	    || ', messages ' || (SELECT count(*) FROM messages)
	    || ', ledger rows ' || (SELECT count(*) FROM credit_ledger)
	    || ', transactions ' || (SELECT count(*) FROM transactions)
	    || ', stats_daily rows ' || (SELECT count(*) FROM stats_daily)
	    || ', database ' || pg_size_pretty(pg_database_size(current_database()))"
	uid=$(psql_db -At -c "SELECT id FROM users ORDER BY created_at DESC LIMIT 1 OFFSET 5000")

	explain "GET /api/admin/stats" STMT_ADMIN_STATS ""
	explain "GET /api/admin/stats?days=30 (the series)" STMT_ADMIN_SERIES "30"
	explain "GET /api/admin/users" STMT_ADMIN_USERS "NULL, NULL, NULL, NULL, 21" force_custom_plan
	explain "GET /api/admin/users?q=anna1" STMT_ADMIN_USERS "'anna1', NULL, NULL, NULL, 21" force_custom_plan
	explain "GET /api/admin/users?q=user4242" STMT_ADMIN_USERS "'user4242', NULL, NULL, NULL, 21" force_custom_plan
	explain "GET /api/admin/users?plan=business" STMT_ADMIN_USERS "NULL, 'business', NULL, NULL, 21" force_custom_plan
	explain "GET /api/admin/conversations" STMT_ADMIN_CONVS "NULL, NULL, NULL, 21" force_custom_plan
	explain "GET /api/admin/conversations?user_id=..." STMT_ADMIN_CONVS "'$uid', NULL, NULL, 21" force_custom_plan
	explain "GET /api/admin/transactions?type=cashout&status=pending" STMT_ADMIN_TXS "'cashout', 'pending', NULL, NULL, 21" force_custom_plan
	explain "GET /api/admin/transactions?status=refunded" STMT_ADMIN_TXS "NULL, 'refunded', NULL, NULL, 21" force_custom_plan
	explain "GET /api/admin/transactions" STMT_ADMIN_TXS "NULL, NULL, NULL, NULL, 21" force_custom_plan
	explain "the janitor's fold (nothing to fold)" STMT_STATS_FOLD ""

	echo
	echo "=== miky check-ledger (reads the whole ledger)"
	start=$(date +%s%N)
	DATABASE_URL=$(pg url "$PG" miky_scale miky_app) "$BIN" check-ledger 2>&1 | tail -n 3 || true
	ms=$((($(date +%s%N) - start) / 1000000))
	echo "took $((ms / 1000)).$(printf '%03d' $((ms % 1000))) s"
} | tee "$OUT"
say "results in ${OUT#"$ROOT"/}"
pg stop "$PG"
