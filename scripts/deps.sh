#!/usr/bin/env bash
# deps.sh — install the Debian packages Miky needs to build, run and test.
#
# Idempotent and quiet when everything is present.  Runs apt-get (through
# sudo when not root) only for what is missing, and `apt-get update` only
# then.  If this run installed nginx and Debian started the system nginx
# (port 80), it is stopped again; a system nginx that was already installed
# is never touched.
set -euo pipefail

PACKAGES=(
	build-essential pkg-config
	libpq-dev libcjson-dev libcurl4-openssl-dev libargon2-dev libssl-dev
	postgresql postgresql-contrib
	nginx-light spawn-fcgi
	libmojolicious-perl libdbd-pg-perl
	wrk ca-certificates curl openssl
	chromium fonts-dejavu-core fonts-liberation
)
# node and npm: any install that gives the commands will do (Debian's
# nodejs + npm packages when they are missing).  The browser tests'
# playwright-core wants node 20 or later.
NODE_PACKAGES=(nodejs npm)
# `deps.sh fuzz` adds what `make fuzz` needs: clang with libFuzzer.
FUZZ_PACKAGES=(clang libclang-rt-dev)
# `deps.sh bench` adds what `make bench` needs besides wrk: libfcgi, for
# the reference FastCGI program that does nothing (bench/fcgi_hello.c).
BENCH_PACKAGES=(libfcgi-dev)

die() { echo "deps.sh: $*" >&2; exit 1; }

installed() {
	[[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" == "install ok installed" ]]
}

main() {
	command -v dpkg-query >/dev/null 2>&1 || die "not a Debian system (no dpkg-query); install by hand: ${PACKAGES[*]}"

	local missing=() p
	[[ "${1:-}" == fuzz ]] && PACKAGES+=("${FUZZ_PACKAGES[@]}")
	[[ "${1:-}" == bench ]] && PACKAGES+=("${BENCH_PACKAGES[@]}")
	for p in "${PACKAGES[@]}"; do
		installed "$p" || missing+=("$p")
	done
	if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
		missing+=("${NODE_PACKAGES[@]}")
	fi
	((${#missing[@]} == 0)) && { check_node; return 0; }

	local sudo=()
	if [[ $EUID -ne 0 ]]; then
		command -v sudo >/dev/null 2>&1 || die "need root or sudo to install: ${missing[*]}"
		sudo=(sudo)
	fi

	# Any nginx binary counts as "already there": nginx-light, -core, -full...
	local had_nginx=0
	if installed nginx-light || installed nginx-core || installed nginx-full ||
	    installed nginx-extras || installed nginx || [[ -x /usr/sbin/nginx ]]; then
		had_nginx=1
	fi

	echo "deps.sh: installing ${missing[*]}"
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		--no-install-recommends "${missing[@]}"

	if ((had_nginx == 0)) && [[ -x /usr/sbin/nginx ]]; then
		# The package may have started the system-wide nginx on port 80;
		# we only want the binary.
		if command -v systemctl >/dev/null 2>&1 && [[ -d /run/systemd/system ]]; then
			"${sudo[@]}" systemctl stop nginx >/dev/null 2>&1 || true
		elif command -v service >/dev/null 2>&1; then
			"${sudo[@]}" service nginx stop >/dev/null 2>&1 || true
		fi
	fi
	check_node
	echo "deps.sh: done"
}

check_node() {
	local major
	major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
	if ((major < 20)); then
		echo "deps.sh: warning: node $major found; the browser tests need node 20 or later" >&2
	fi
}

main "$@"
