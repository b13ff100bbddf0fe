#!/usr/bin/env bash
# run.sh — throughput figures over loopback (`make bench` builds, then runs
# this).  Timing never goes into pass/fail tests; it lives here.
#
#   bench/run.sh                         every target
#   BENCH_TARGETS="health signin" bench/run.sh
#
# Like scripts/test.sh it makes a throwaway directory with its own
# PostgreSQL cluster (scripts/pg.sh, MIKY_PG_FAST=1), migrates it, starts
# the app under spawn-fcgi and nginx from nginx/dev.conf.in on a free
# loopback port, and tears it all down on exit, pass, fail or ^C.  Then
# wrk runs against each target: a warm-up, then the measured run.  The
# table goes to stdout and to bench/results/<timestamp>.txt (gitignored).
#
# Targets are functions named bench_<name>, run in the order of TARGETS
# below.  One calls `measure NAME PATH CONNECTIONS [VAR=value ...]`: the
# VARs shape the request (bench/request.lua: BENCH_METHOD, BENCH_TOKEN,
# BENCH_BODY, BENCH_CONTENT_TYPE; BENCH_SCRIPT=other.lua for a script of
# its own, such as signin.lua), and it may `note NAME text` for the
# last column.  `check_status` makes sure a target answers what it should
# before it is measured (a bench of 401s measures nothing).  To add one,
# write bench_<name> and add <name> to TARGETS.
#
# Environment:
#   BENCH_SECONDS (10)      length of each measured run
#   BENCH_WARMUP (2)        seconds of warm-up before it
#   BENCH_CONNECTIONS (64)  wrk -c
#   BENCH_THREADS (2)       wrk -t
#   BENCH_TARGETS           which targets (default: all of TARGETS)
#   BENCH_KEEP=1            keep the directory (logs) and print where
#   MIKY_WORKERS MIKY_THREADS MIKY_DB_POOL MIKY_HASH_CONCURRENCY
#                           passed to the app when set (else its defaults)
#   MIKY_BIN                the binary (default build/miky)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
BENCH=$ROOT/bench
BIN=${MIKY_BIN:-$ROOT/build/miky}
[[ "$BIN" == /* ]] || BIN=$PWD/$BIN
SECS=${BENCH_SECONDS:-10}
WARMUP=${BENCH_WARMUP:-2}
CONNS=${BENCH_CONNECTIONS:-64}
WRK_THREADS=${BENCH_THREADS:-2}
TARGETS=(static fcgi health profile signin conversations conversation webhook)
[[ -n "${BENCH_TARGETS:-}" ]] && read -r -a TARGETS <<<"$BENCH_TARGETS"

TMP=""
HTTP_PORT=""
APP_EXTRA_ENV=()
ORDER=()
declare -A RPS P50 P99 NON2XX ERRS NOTE REQS

say() { echo "bench: $*" >&2; }
die() {
	echo "bench: $*" >&2
	exit 1
}

# json_get KEY: the top-level string KEY of the JSON on stdin.
json_get() {
	perl -MJSON::PP -e 'local $/; my $j = eval { decode_json(<STDIN>) } or exit 1;
		print $j->{$ARGV[0]} // ""' "$1"
}

# --- the throwaway stack ----------------------------------------------------

alive() { [[ -n "$1" ]] && kill -0 "$1" 2>/dev/null; }

# stop_pid FILE SIGNAL: signal the pid in FILE, wait up to 30 s, then KILL.
stop_pid() {
	local pid i
	[[ -s "$1" ]] || return 0
	pid=$(tr -dc '0-9' <"$1")
	alive "$pid" || return 0
	kill "-$2" "$pid" 2>/dev/null || true
	for ((i = 0; i < 300; i++)); do
		alive "$pid" || return 0
		sleep 0.1
	done
	say "pid $pid ignored SIG$2 for 30 s; SIGKILL"
	kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	[[ -n "$TMP" && -d "$TMP" ]] || exit "$rc"
	stop_pid "$TMP/nginx.pid" QUIT
	stop_pid "$TMP/miky.pid" TERM
	stop_pid "$TMP/fake.pid" TERM
	"$ROOT/scripts/pg.sh" stop "$TMP/pg" >/dev/null 2>&1 || true
	if [[ "${BENCH_KEEP:-}" == 1 ]]; then
		say "BENCH_KEEP=1: kept $TMP (miky.log, error.log, nginx.conf, pg/)"
	else
		rm -rf "$TMP"
	fi
	exit "$rc"
}

start_pg() {
	local port
	port=$(free_port)
	MIKY_PG_FAST=1 "$ROOT/scripts/pg.sh" init "$TMP/pg" "$port"
	"$ROOT/scripts/pg.sh" start "$TMP/pg"
	"$ROOT/scripts/pg.sh" createdb "$TMP/pg" miky_bench
	# Migrated as the superuser; the app runs as the restricted miky_app.
	DATABASE_URL=$("$ROOT/scripts/pg.sh" url "$TMP/pg" miky_bench miky_app)
	if ! DATABASE_URL=$("$ROOT/scripts/pg.sh" url "$TMP/pg" miky_bench) \
	    "$BIN" migrate >"$TMP/migrate.log" 2>&1; then
		cat "$TMP/migrate.log" >&2
		die "'$BIN migrate' failed"
	fi
}

# start_app: `miky serve` under spawn-fcgi with only the settings it needs
# (env -i): a developer's OPENAI_API_KEY, Stripe or SMTP settings never
# reach a bench run.  The webhook target signs with WEBHOOK_SECRET.
WEBHOOK_SECRET=whsec_bench_$(head -c 24 /dev/urandom | base64 -w0 | tr -dc 'A-Za-z0-9')
start_app() {
	local env=(PATH="$PATH" DATABASE_URL="$DATABASE_URL" "${APP_EXTRA_ENV[@]}"
		STRIPE_WEBHOOK_SECRET="$WEBHOOK_SECRET"
		JWT_SECRET="$(head -c 48 /dev/urandom | base64 -w0)"
		PUBLIC_BASE_URL="http://127.0.0.1:$HTTP_PORT"
		MIKY_MAIL_DIR="$TMP/mail")
	local v
	for v in MIKY_WORKERS MIKY_THREADS MIKY_DB_POOL MIKY_HASH_CONCURRENCY \
	    ASAN_OPTIONS UBSAN_OPTIONS; do
		[[ -n "${!v:-}" ]] && env+=("$v=${!v}")
	done
	mkdir -p "$TMP/mail"
	# spawn-fcgi sends the child's output to /dev/null; the shell in
	# between sends it to the log and then becomes the app, so the pid
	# file names the app's master.
	# shellcheck disable=SC2016 # expanded by the inner shell
	env -i "${env[@]}" spawn-fcgi -s "$TMP/miky.sock" -M 0666 -P "$TMP/miky.pid" -- \
		/bin/sh -c 'log=$1; shift; exec "$@" >>"$log" 2>&1' sh "$TMP/miky.log" "$BIN" serve \
		>/dev/null || die "spawn-fcgi failed"
}

# start_nginx renders the dev template like the harness, but with every
# `limit_req` line removed: wrk sends everything from 127.0.0.1, and the
# dev rates (1000 r/s on /api/, 100 r/s on /api/auth/) would answer most
# of the run with 429s and measure nginx's limiter instead of the app.
start_nginx() {
	local nginx
	nginx=$(command -v nginx || echo /usr/sbin/nginx)
	[[ -x "$nginx" ]] || die "nginx not found (run scripts/deps.sh)"
	# A copy of web/ that nginx's workers (nobody, when we are root) can
	# read wherever the checkout is.
	cp -R "$ROOT/web" "$TMP/web"
	chmod -R a+rX "$TMP/web"
	render_nginx_template "$ROOT/nginx/dev.conf.in" "$TMP" "$HTTP_PORT" \
		"$TMP/miky.sock" "$TMP/web" | sed '/limit_req/d' >"$TMP/nginx.conf"
	grep -q limit_req "$TMP/nginx.conf" && die "limit_req left in $TMP/nginx.conf"
	"$nginx" -p "$TMP/" -c "$TMP/nginx.conf" -e "$TMP/error.log" ||
		die "nginx did not start (see $TMP/error.log)"
}

wait_health() {
	local i
	for ((i = 0; i < 150; i++)); do
		if curl -fsS -m 2 -o /dev/null "http://127.0.0.1:$HTTP_PORT/api/health" 2>/dev/null; then
			return 0
		fi
		sleep 0.1
	done
	tail -n 20 "$TMP/miky.log" >&2 || true
	die "/api/health did not answer 200 within 15 s"
}

# --- helpers for targets ----------------------------------------------------

# api METHOD PATH [JSON]: one request (with API_TOKEN as a bearer token
# when set); prints the body, then the status on its own last line.
api() {
	local args=(-sS -m 10 -X "$1" -w '\n%{http_code}' "http://127.0.0.1:$HTTP_PORT$2")
	[[ $# -ge 3 ]] && args+=(-H 'Content-Type: application/json' --data-binary "$3")
	[[ -n "${API_TOKEN:-}" ]] && args+=(-H "Authorization: Bearer $API_TOKEN")
	curl "${args[@]}"
}

# check_status WHAT STATUS METHOD PATH [JSON]: the target answers STATUS.
check_status() {
	local what=$1 want=$2 out
	shift 2
	out=$(api "$@")
	[[ "${out##*$'\n'}" == "$want" ]] ||
		die "$what: $1 $2 answered ${out##*$'\n'}, not $want: ${out%$'\n'*}"
}

# A verified account for the authenticated targets, made through the API
# (the verification token is read from the mail outbox, like the tests).
BENCH_EMAIL=bench@example.com
BENCH_PASSWORD='correct horse battery staple'
SIGNIN_BODY="{\"email\":\"$BENCH_EMAIL\",\"password\":\"$BENCH_PASSWORD\"}"
# make_user [EMAIL]: sign up and verify EMAIL (default $BENCH_EMAIL).
make_user() {
	local email=${1:-$BENCH_EMAIL} token
	check_status signup 202 POST /api/auth/signup \
		"{\"email\":\"$email\",\"password\":\"$BENCH_PASSWORD\",\"first_name\":\"Bench\",\"last_name\":\"Mark\"}"
	token=$("$ROOT/scripts/pg.sh" psql "$TMP/pg" miky_bench -Atc \
		"SELECT payload->>'token' FROM email_outbox WHERE to_addr = '$email' AND template = 'verify' ORDER BY id DESC LIMIT 1")
	[[ "$token" =~ ^[A-Za-z0-9_-]+$ ]] || die "no verification token for $email in the outbox"
	check_status verify-email 200 POST /api/auth/verify-email \
		"{\"token\":\"$token\",\"password\":\"$BENCH_PASSWORD\"}"
}

# access_token: a fresh one (they last 15 minutes).
access_token() {
	local out
	out=$(api POST /api/auth/signin "$SIGNIN_BODY")
	[[ "${out##*$'\n'}" == 200 ]] || die "sign-in for a token answered ${out##*$'\n'}"
	json_get access_token <<<"${out%$'\n'*}"
}

# settle: wait until the app has nothing in flight (the metrics request
# itself aside), twice in a row.  wrk leaves requests behind when it stops
# (slow sign-ins queued for a hash slot, say): the next run must not pay
# for them.
settle() {
	local i quiet=0 n
	for ((i = 0; i < 600; i++)); do
		n=$(curl -sS -m 5 "http://127.0.0.1:$HTTP_PORT/api/metrics" |
			sed -n 's/^miky_http_requests_in_flight \([0-9]*\)$/\1/p')
		if [[ -n "$n" ]] && ((n <= 1)); then
			((++quiet >= 2)) && return 0
		else
			quiet=0
		fi
		sleep 0.2
	done
	say "the app still has requests in flight after 120 s; measuring anyway"
}

# measure NAME PATH CONNECTIONS [VAR=value ...]: warm up, then measure.
# BENCH_SCRIPT=file.lua among the VARs picks another script of bench/
# than request.lua (it must dofile report.lua too).
measure() {
	local name=$1 path=$2 conns=$3 threads=$WRK_THREADS out line kv script=request.lua
	shift 3
	for kv in "$@"; do
		[[ "$kv" == BENCH_SCRIPT=* ]] && script=${kv#BENCH_SCRIPT=}
	done
	((threads <= conns)) || threads=$conns
	local wrk=(wrk -t"$threads" -c"$conns" --timeout 10s -s "$BENCH/$script"
		"http://127.0.0.1:$HTTP_PORT$path")
	say "$name: $path, $conns connections, ${WARMUP}s warm-up + ${SECS}s"
	settle
	if ((WARMUP > 0)); then
		env "$@" "${wrk[@]}" -d"${WARMUP}s" >/dev/null
		settle
	fi
	out=$(env "$@" "${wrk[@]}" -d"${SECS}s")
	line=$(grep '^BENCH ' <<<"$out") || die "$name: no summary from wrk: $out"
	for kv in ${line#BENCH }; do
		case ${kv%%=*} in
		requests) REQS[$name]=${kv#*=} ;;
		rps) RPS[$name]=${kv#*=} ;;
		p50_ms) P50[$name]=${kv#*=} ;;
		p99_ms) P99[$name]=${kv#*=} ;;
		non2xx) NON2XX[$name]=${kv#*=} ;;
		errors) ERRS[$name]=${kv#*=} ;;
		esac
	done
	ORDER+=("$name")
}

note() { NOTE[$1]=$2; }

# --- the targets --------------------------------------------------------------

# The baseline: a small static file from the same nginx, no FastCGI.
bench_static() {
	check_status static 200 GET /index.html
	measure static /index.html "$CONNS"
}

# nginx -> FastCGI -> a worker thread that only answers: an unknown path
# is routed to a 404 without touching anything else.  This is "nginx in
# front of a FastCGI program that does nothing", the ceiling of every
# /api endpoint on this machine.
bench_fcgi() {
	check_status fcgi 404 GET /api/bench-nothing
	measure fcgi /api/bench-nothing "$CONNS"
	NON2XX[fcgi]=0    # every answer is the 404 it should be
	note fcgi "do-nothing FastCGI baseline (a 404)"
}

# nginx -> FastCGI -> a worker thread -> one pooled `SELECT 1`.
bench_health() {
	check_status health 200 GET /api/health
	measure health /api/health "$CONNS"
}

# JWT check, the user row re-read (bans act at once), the profile JSON.
bench_profile() {
	local token
	token=$(access_token)
	API_TOKEN=$token check_status profile 200 GET /api/user/profile
	measure profile /api/user/profile "$CONNS" BENCH_TOKEN="$token"
	note profile "JWT + user row"
}

# Sign-in is one argon2id verification (m=19 MiB, t=2, p=1), so its
# ceiling is cores / the time of one hash, measured here with the app's own
# lib/password.c (bench/argon2_time.c).  A run over one connection shows
# what one sign-in costs alone, hash and all.
#
# The app lets an account have only a few sign-ins unproven at a time (a
# sign-in counts as a failure until its password checks out), so the
# measured run cycles through BENCH_ACCOUNTS accounts (bench/signin.lua):
# with 64 connections over 32 accounts, about two each are in flight.
BENCH_ACCOUNTS=32
bench_signin() {
	local cc_flags=() hash_ms cores ceiling i
	if grep -q -- '-fsanitize' "$ROOT/build/.flags" 2>/dev/null; then
		cc_flags=('-fsanitize=address,undefined')
	fi
	# shellcheck disable=SC2046 # pkg-config prints several words
	cc -std=c17 -O2 -D_GNU_SOURCE -pthread -I"$ROOT" "${cc_flags[@]}" \
		-o "$TMP/argon2_time" "$BENCH/argon2_time.c" "$ROOT/build/libmiky.a" \
		$(pkg-config --libs fcgi libpq libcjson libcurl libargon2 libcrypto) -lm ||
		die "cannot build bench/argon2_time.c (run make first)"
	hash_ms=$("$TMP/argon2_time" 20)
	cores=$(nproc)
	ceiling=$(awk -v c="$cores" -v ms="$hash_ms" 'BEGIN { printf "%.1f", c * 1000 / ms }')
	ARGON2="one argon2id hash: $hash_ms ms (median of 20, lib/password.c); ceiling: $cores cores / $hash_ms ms = $ceiling sign-ins/s"

	say "signin: making $BENCH_ACCOUNTS accounts"
	for ((i = 1; i <= BENCH_ACCOUNTS; i++)); do
		make_user "bench$i@example.com"
	done
	check_status signin 200 POST /api/auth/signin \
		"{\"email\":\"bench$BENCH_ACCOUNTS@example.com\",\"password\":\"$BENCH_PASSWORD\"}"
	measure signin /api/auth/signin "$CONNS" BENCH_SCRIPT=signin.lua \
		BENCH_ACCOUNTS="$BENCH_ACCOUNTS" BENCH_EMAIL_FORMAT='bench%d@example.com' \
		BENCH_PASSWORD="$BENCH_PASSWORD"
	note signin "$(awk -v r="${RPS[signin]}" -v c="$ceiling" \
		'BEGIN { printf "%.2f of the argon2 ceiling (%s/s)", r / c, c }')"
	measure signin-1conn /api/auth/signin 1 BENCH_METHOD=POST BENCH_BODY="$SIGNIN_BODY"
	note signin-1conn "one at a time: p50 = one sign-in alone"
}

# A page of the conversation list: 30 conversations, the first 20 served
# (JWT, user row, one keyset query, 20 conversation objects).
bench_conversations() {
	local token i
	token=$(access_token)
	for ((i = 1; i <= 30; i++)); do
		API_TOKEN=$token check_status conversations 201 POST /api/conversations \
			"{\"persona\":\"general\",\"title\":\"Bench conversation $i\"}"
	done
	API_TOKEN=$token check_status conversations 200 GET /api/conversations
	measure conversations /api/conversations "$CONNS" BENCH_TOKEN="$token"
	note conversations "JWT + user row + a page of 20"
}

# One conversation read whole: 50 messages (the default limit), questions
# of ~110 and answers of ~700 characters.  They are written straight into
# the database: the stand-in model answers slowly on purpose.
bench_conversation() {
	local token out id n
	token=$(access_token)
	out=$(API_TOKEN=$token api POST /api/conversations '{"persona":"general","title":"Bench: 50 messages"}')
	[[ "${out##*$'\n'}" == 201 ]] || die "conversation: POST answered ${out##*$'\n'}"
	id=$(perl -MJSON::PP -e 'local $/; print decode_json(<STDIN>)->{conversation}{id}' <<<"${out%$'\n'*}")
	[[ "$id" =~ ^[0-9a-f-]{36}$ ]] || die "conversation: no id in ${out%$'\n'*}"
	"$ROOT/scripts/pg.sh" psql "$TMP/pg" miky_bench -qAt -v ON_ERROR_STOP=1 -c "
		INSERT INTO messages (conversation_id, user_id, sender, content, persona,
		    credits_consumed)
		SELECT c.id, c.user_id, CASE WHEN i % 2 = 1 THEN 'user' ELSE 'assistant' END,
		    CASE WHEN i % 2 = 1
		    THEN repeat('A question of about a hundred characters. ', 2) || i
		    ELSE repeat('An answer with \"quotes\", accents (é, ü) and a newline.' || chr(10), 12) || i
		    END, 'general', CASE WHEN i % 2 = 1 THEN 0 ELSE 1 END
		FROM conversations c, generate_series(1, 50) i WHERE c.id = '$id';
		UPDATE conversations SET message_count = 50 WHERE id = '$id';" >/dev/null ||
		die "conversation: could not insert the messages"
	out=$(API_TOKEN=$token api GET "/api/conversations/$id")
	[[ "${out##*$'\n'}" == 200 ]] || die "conversation: GET answered ${out##*$'\n'}"
	n=$(perl -MJSON::PP -e 'local $/; print scalar @{ decode_json(<STDIN>)->{messages} }' <<<"${out%$'\n'*}")
	[[ "$n" == 50 ]] || die "conversation: $n messages served, not 50"
	measure conversation "/api/conversations/$id" "$CONNS" BENCH_TOKEN="$token"
	note conversation "JWT + user row + 50 messages ($(( ${#out} / 1024 )) KiB)"
}

# The Stripe webhook: signed invoice.paid deliveries (bench/webhook.pl:
# new invoices of WEBHOOK_USERS customers, a third of the deliveries
# duplicates -- the same event again, or another event for the same
# invoice), BENCH_CONNECTIONS at a time.  Each delivery checks the
# signature over the raw body, records the event, and for a new invoice
# locks the payer, records the payment and grants its 2000 credits, in
# one transaction.  Afterwards the books must be exact: each invoice
# granted once, every balance equal to the sum of its ledger, every
# customer credited 2000 per invoice.  The events are signed just before
# the run (Stripe's 300 s tolerance).
WEBHOOK_USERS=${WEBHOOK_USERS:-200}
WEBHOOK_TRIPLES=${WEBHOOK_TRIPLES:-20000}
bench_webhook() {
	local threads=$WRK_THREADS out check
	"$ROOT/scripts/pg.sh" psql "$TMP/pg" miky_bench -qAt -v ON_ERROR_STOP=1 -c "
		INSERT INTO users (email, password_hash, first_name, last_name,
		    referral_code, email_verified, stripe_customer_id)
		SELECT 'hook' || i || '@example.com', password_hash, 'Hook', 'User' || i,
		    'H' || lpad(translate(i::text, '01', 'AB'), 7, 'Z'), true, 'cus_bench_' || i
		FROM users, generate_series(1, $WEBHOOK_USERS) i
		WHERE email = '$BENCH_EMAIL';" >/dev/null || die "webhook: could not make the customers"
	perl "$BENCH/webhook.pl" "$WEBHOOK_SECRET" "$WEBHOOK_USERS" 500 "$TMP/warm.txt" &&
		perl "$BENCH/webhook.pl" "$WEBHOOK_SECRET" "$WEBHOOK_USERS" "$WEBHOOK_TRIPLES" \
		"$TMP/events.txt" || die "webhook: could not sign the events"
	((threads <= CONNS)) || threads=$CONNS
	# A delivery of one of them must be a 200 {"received":true}.
	out=$(head -n 1 "$TMP/warm.txt" | perl -ne 'my ($s, $b) = /^([^\t]*)\t(.*)$/;
		print "-H\nStripe-Signature: $s\n--data-binary\n$b\n"' |
		tr '\n' '\0' | xargs -0 curl -sS -m 10 -X POST -H 'Content-Type: application/json' \
		"http://127.0.0.1:$HTTP_PORT/api/payments/webhook")
	[[ "$out" == '{"received":true}' ]] || die "webhook: a signed delivery answered $out"
	say "webhook: warm-up, then $((3 * WEBHOOK_TRIPLES)) signed deliveries at most"
	settle
	BENCH_EVENTS="$TMP/warm.txt" BENCH_WRK_THREADS=$threads wrk -t"$threads" -c"$CONNS" \
		--timeout 10s -s "$BENCH/webhook.lua" -d"${WARMUP}s" \
		"http://127.0.0.1:$HTTP_PORT/api/payments/webhook" >/dev/null
	WARMUP=0 measure webhook /api/payments/webhook "$CONNS" BENCH_SCRIPT=webhook.lua \
		BENCH_EVENTS="$TMP/events.txt" BENCH_WRK_THREADS="$threads"
	check=$("$ROOT/scripts/pg.sh" psql "$TMP/pg" miky_bench -qAt -F ' ' -v ON_ERROR_STOP=1 -c "
		SELECT (SELECT count(*) FROM stripe_events),
		 (SELECT count(DISTINCT payload->'data'->'object'->>'id') FROM stripe_events),
		 (SELECT count(*) FROM transactions WHERE stripe_invoice_id LIKE 'in_bench_%'),
		 (SELECT count(*) FROM credit_ledger WHERE reason = 'subscription'
		   AND ref LIKE 'in_bench_%'),
		 (SELECT count(*) FROM users u WHERE credits <> (SELECT coalesce(sum(delta), 0)
		   FROM credit_ledger l WHERE l.user_id = u.id)),
		 (SELECT count(*) FROM users u WHERE email LIKE 'hook%' AND credits <> 2000
		   * (SELECT count(*) FROM transactions t WHERE t.user_id = u.id))") ||
		die "webhook: could not check the ledger"
	local events invoices txs grants unbalanced wrong
	read -r events invoices txs grants unbalanced wrong <<<"$check"
	if [[ "$invoices" != "$txs" || "$txs" != "$grants" || "$unbalanced" != 0 || "$wrong" != 0 ]]; then
		die "webhook: the ledger is NOT exact: $invoices invoices, $txs transactions, $grants grants, $unbalanced balances off their ledger, $wrong customers off 2000 per invoice"
	fi
	WEBHOOK_LINE="${REQS[webhook]} deliveries measured ($((3 * WEBHOOK_TRIPLES)) signed, a third duplicates; the warm-up's too in the totals): $events events recorded, $invoices invoices, each granted once; every balance = its ledger"
	note webhook "events/s; ledger exact"
}

# The streaming capacity run (not in the default TARGETS: it takes a
# minute and restarts the app).  STREAMS (1000) chat turns stream at once
# from a slow model (bench/slowmodel.c: a piece every 100 ms for 30 s, in
# C so the fake costs next to nothing), through nginx and the app, while
# wrk measures GET /api/user/profile beside them.
# Every stream must end with `done` and be stored.  The app runs with
# enough threads for all of them (STREAM_THREADS per worker, 2 workers):
# a stream holds a thread, never a database connection.
STREAMS=${STREAMS:-1000}
bench_streams() {
	local port line stored out i
	cc -O2 -Wall -Wextra -Werror -o "$TMP/slowmodel" "$BENCH/slowmodel.c" ||
		die "streams: could not build bench/slowmodel.c"
	"$TMP/slowmodel" "$TMP/fake.port" 300 100 &
	echo $! >"$TMP/fake.pid"
	for _ in $(seq 50); do [[ -s "$TMP/fake.port" ]] && break; sleep 0.1; done
	port=$(cat "$TMP/fake.port")
	stop_pid "$TMP/miky.pid" TERM
	APP_EXTRA_ENV=(OPENAI_API_KEY=sk-bench
		OPENAI_BASE_URL="http://127.0.0.1:$port/v1"
		MIKY_WORKERS=2 MIKY_THREADS="${STREAM_THREADS:-640}")
	start_app
	wait_health
	# STREAM_USERS accounts share the streams (one user's turns queue on
	# that user's row lock while credits are reserved).  They are copies
	# of the bench account, made in SQL: signing up 50 people through
	# argon2 would take longer than the run.
	"$ROOT/scripts/pg.sh" psql "$TMP/pg" miky_bench -qAt -v ON_ERROR_STOP=1 -c "
		UPDATE admin_settings SET value = '1000000'
		 WHERE key IN ('chat_max_concurrent_turns', 'chat_turns_per_minute');
		INSERT INTO users (email, password_hash, first_name, last_name,
		    referral_code, email_verified)
		SELECT 'stream' || i || '@example.com', password_hash, 'Stream',
		    'User' || i, 'S' || lpad(translate(i::text, '01', 'AB'), 7, 'Z'), true
		FROM users, generate_series(1, ${STREAM_USERS:-50}) i
		WHERE email = '$BENCH_EMAIL';
		WITH u AS (UPDATE users SET credits = credits + 10000000
		  WHERE email LIKE 'stream%' RETURNING id, credits)
		INSERT INTO credit_ledger (user_id, delta, balance_after, reason)
		SELECT id, 10000000, credits, 'admin' FROM u;" >/dev/null
	sleep 2    # the settings reach every worker (LISTEN/NOTIFY)
	: >"$TMP/tokens"
	for ((i = 1; i <= ${STREAM_USERS:-50}; i++)); do
		out=$(api POST /api/auth/signin "{\"email\":\"stream$i@example.com\",\"password\":\"$BENCH_PASSWORD\"}")
		json_get access_token <<<"${out%$'\n'*}" >>"$TMP/tokens"
		echo >>"$TMP/tokens"
	done
	say "streams: $STREAMS turns of 300 pieces, 100 ms apart, with wrk on the profile"
	line=$(cd "$ROOT" && perl bench/streams.pl "http://127.0.0.1:$HTTP_PORT" \
		"$TMP/tokens" "$STREAMS" 300 100 "$(cat "$TMP/miky.pid")" \
		"$(cat "$TMP/nginx.pid")" | grep '^STREAMS ') || die "streams: no summary"
	stored=$("$ROOT/scripts/pg.sh" psql "$TMP/pg" miky_bench -Atc "
		SELECT count(*) FROM messages WHERE sender = 'assistant'
		 AND content LIKE 'Hello word 1 %' AND content LIKE '% word 300'")
	STREAMS_LINE="$line stored=$stored"
	say "$STREAMS_LINE"
	APP_EXTRA_ENV=()
}

# --- report -----------------------------------------------------------------------

report() {
	local base=${RPS[static]:-} name ratio
	echo "Miky bench $(date -u '+%Y-%m-%d %H:%M:%S UTC'), $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?')"
	echo "host: $(nproc) cores, $(uname -sr); wrk and the server share them (loopback)"
	if grep -q -- '-fsanitize' "$ROOT/build/.flags" 2>/dev/null; then
		echo "build: SANITIZE=1 (ASan+UBSan): these figures understate a normal build"
	fi
	echo "app: MIKY_WORKERS=${MIKY_WORKERS:-default} MIKY_THREADS=${MIKY_THREADS:-default} MIKY_DB_POOL=${MIKY_DB_POOL:-default}; nginx: dev template, limit_req removed"
	echo "wrk: -t$WRK_THREADS -c$CONNS -d${SECS}s after ${WARMUP}s of warm-up"
	[[ -n "${ARGON2:-}" ]] && echo "$ARGON2"
	echo
	printf '%-14s %10s %9s %9s %9s %9s %8s  %s\n' target 'req/s' 'p50 ms' 'p99 ms' \
		'vs static' 'vs fcgi' errors note
	for name in "${ORDER[@]}"; do
		ratio=-
		fratio=-
		if [[ -n "$base" ]]; then
			ratio=$(awk -v r="${RPS[$name]}" -v b="$base" 'BEGIN { printf "%.3f", r / b }')
		fi
		if [[ -n "${RPS[fcgi]:-}" ]]; then
			fratio=$(awk -v r="${RPS[$name]}" -v b="${RPS[fcgi]}" 'BEGIN { printf "%.3f", r / b }')
		fi
		printf '%-14s %10s %9s %9s %9s %9s %8s  %s\n' "$name" "${RPS[$name]}" "${P50[$name]}" \
			"${P99[$name]}" "$ratio" "$fratio" "$((NON2XX[$name] + ERRS[$name]))" "${NOTE[$name]:-}"
	done
	if [[ -n "${WEBHOOK_LINE:-}" ]]; then
		echo
		echo "webhook: $WEBHOOK_LINE"
	fi
	if [[ -n "${STREAMS_LINE:-}" ]]; then
		echo
		echo "streaming capacity (a piece every 100 ms for 30 s per stream):"
		tr ' ' '\n' <<<"${STREAMS_LINE#STREAMS }" | sed 's/^/  /'
	fi
}

main() {
	local target results
	[[ -x "$BIN" ]] || die "$BIN not found: build first (make)"
	for target in wrk spawn-fcgi curl perl cc pkg-config; do
		command -v "$target" >/dev/null 2>&1 || die "$target not found (run scripts/deps.sh)"
	done
	local KNOWN=(static fcgi health profile signin conversations conversation webhook streams)
	for target in "${TARGETS[@]}"; do
		declare -F "bench_$target" >/dev/null || die "no target '$target' (known: ${KNOWN[*]})"
	done

	TMP=$(mktemp -d "${TMPDIR:-/tmp}/miky-bench.XXXXXX")
	chmod 0755 "$TMP"    # postgres and nginx's nobody must get in
	trap cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM

	HTTP_PORT=$(free_port)
	say "setting up in $TMP"
	start_pg
	start_app
	start_nginx
	wait_health
	make_user

	for target in "${TARGETS[@]}"; do
		"bench_$target"
	done

	mkdir -p "$BENCH/results"
	results=$BENCH/results/$(date -u +%Y%m%dT%H%M%SZ).txt
	report | tee "$results"
	say "written to ${results#"$ROOT"/}"
}

main "$@"
