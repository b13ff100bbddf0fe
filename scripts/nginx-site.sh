#!/usr/bin/env bash
# nginx-site.sh — the production nginx site (nginx/miky.conf) for one
# deployment, on stdout:
#
#   scripts/nginx-site.sh --server-name miky.example.com \
#       [--app unix:/run/miky/miky.sock] [--app 10.0.0.12:9000 ...] \
#       > /etc/nginx/sites-available/miky
#
# Options (defaults in brackets):
#   --server-name NAME     the site's host name (required)
#   --cert FILE            TLS certificate chain [/etc/ssl/miky/fullchain.pem]
#   --key FILE             its private key [/etc/ssl/miky/privkey.pem]
#   --app ADDR             an app instance: unix:PATH or HOST:PORT, once per
#                          host [unix:/run/miky/miky.sock]
#   --web DIR              the static frontend [/srv/miky/web]
#   --acme DIR             ACME http-01 webroot [/var/www/acme]
#   --snippets DIR         where miky-*.conf snippets are [/etc/nginx/snippets]
#   --logs DIR             access log directory [/var/log/nginx]
#   --http-port N          [80]
#   --https-port N         [443]
#   --no-ipv6              leave out the [::] listen lines
#
# Every app instance gets passive health checks (max_fails=1
# fail_timeout=5s): nginx skips one that fails for five seconds and sends
# the requests it could not take to the others.  The test t/79-nginx-site.t
# renders the site with this script, checks it with `nginx -t` and serves
# the app through it over TLS.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

die() { echo "nginx-site.sh: $*" >&2; exit 2; }
usage() { sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

name="" cert=/etc/ssl/miky/fullchain.pem key=/etc/ssl/miky/privkey.pem
web=/srv/miky/web acme=/var/www/acme snippets=/etc/nginx/snippets
logs=/var/log/nginx http_port=80 https_port=443 ipv6=1
apps=()

while (($#)); do
	case $1 in
	--server-name) name=${2:-}; shift ;;
	--cert) cert=${2:-}; shift ;;
	--key) key=${2:-}; shift ;;
	--app) apps+=("${2:-}"); shift ;;
	--web) web=${2:-}; shift ;;
	--acme) acme=${2:-}; shift ;;
	--snippets) snippets=${2:-}; shift ;;
	--logs) logs=${2:-}; shift ;;
	--http-port) http_port=${2:-}; shift ;;
	--https-port) https_port=${2:-}; shift ;;
	--no-ipv6) ipv6=0 ;;
	-h | --help) usage ;;
	*) die "unknown option $1 (--help)" ;;
	esac
	shift
done

[[ "$name" =~ ^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$ ]] || die "--server-name: a host name, e.g. miky.example.com"
for p in "$http_port" "$https_port"; do
	[[ "$p" =~ ^[0-9]+$ ]] && ((p > 0 && p < 65536)) || die "bad port '$p'"
done
for d in "$cert" "$key" "$web" "$acme" "$snippets" "$logs"; do
	[[ "$d" == /* && "$d" != *[[:space:]\;\{\}\'\"]* ]] || die "'$d': an absolute path without spaces, quotes, ; or braces"
done
((${#apps[@]})) || apps=(unix:/run/miky/miky.sock)
servers=""
for a in "${apps[@]}"; do
	[[ "$a" =~ ^(unix:/[^[:space:]\;\{\}]+|[A-Za-z0-9.-]+:[0-9]+|\[[0-9A-Fa-f:]+\]:[0-9]+)$ ]] ||
		die "--app '$a': unix:/path or host:port"
	servers+="    server $a max_fails=1 fail_timeout=5s;"$'\n'
done
redirect='https://$server_name$request_uri'
((https_port == 443)) || redirect="https://\$server_name:$https_port\$request_uri"

NAME=$name CERT=$cert KEY=$key WEB=$web ACME=$acme SNIPPETS=${snippets%/} \
LOGS=${logs%/} HTTP=$http_port HTTPS=$https_port IPV6=$ipv6 SERVERS=$servers \
REDIRECT=$redirect perl -0pe '
	s{\A(?:#[^\n]*\n)+}{# Miky: rendered by scripts/nginx-site.sh from nginx/miky.conf for $ENV{NAME}.\n# Render it again rather than editing it by hand.\n};
	s#^upstream miky [{]\n.*?^[}]#upstream miky {\n$ENV{SERVERS}}#ms
		or die "no upstream block\n";
	s{server_name miky\.example;}{server_name $ENV{NAME};}g;
	s{/etc/ssl/miky/fullchain\.pem}{$ENV{CERT}}g;
	s{/etc/ssl/miky/privkey\.pem}{$ENV{KEY}}g;
	s{/var/www/acme}{$ENV{ACME}}g;
	s{/srv/miky/web}{$ENV{WEB}}g;
	s{/etc/nginx/snippets}{$ENV{SNIPPETS}}g;
	s{/var/log/nginx}{$ENV{LOGS}}g;
	s{return 301 https://\$server_name\$request_uri;}{return 301 $ENV{REDIRECT};}g;
	s{^(\s*listen (?:\[::\]:|127\.0\.0\.1:)?)80;}{$1$ENV{HTTP};}mg;
	s{^(\s*listen (?:\[::\]:)?)443 }{$1$ENV{HTTPS} }mg;
	s{^\s*listen \[::\]:.*\n}{}mg unless $ENV{IPV6};
' "$ROOT/nginx/miky.conf"
