#!/usr/bin/env bash
# vendor.sh — the npm packages of package-lock.json into node_modules/, and
# the browser's two libraries into web/vendor/ (`make vendor`).
#
# The browser never fetches code from a third-party origin: marked (Markdown)
# and DOMPurify (HTML sanitiser) are copied from node_modules/ under names
# that carry their version (so nginx may cache them for a year), and
# web/vendor/index.js re-exports them under stable names for the app's
# modules.  Idempotent and quiet when nothing changed; `npm ci` runs only
# when package-lock.json is newer than what node_modules/ holds.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
die() { echo "vendor.sh: $*" >&2; exit 1; }

command -v npm >/dev/null 2>&1 || die "npm not found (run scripts/deps.sh)"

if [[ ! -f node_modules/.package-lock.json ||
    package-lock.json -nt node_modules/.package-lock.json ]]; then
	echo "vendor.sh: npm ci"
	npm ci --no-audit --no-fund --loglevel=error >/dev/null
	touch node_modules/.package-lock.json
fi

version() { node -p "require('./node_modules/$1/package.json').version"; }

# copy SRC NAME: web/vendor/NAME-VERSION.js, without the source-map comment
# (the map is not served).
copy() {
	local src=$1 out=$2 tmp
	if [[ ! -f "$out" || "$src" -nt "$out" ]]; then
		tmp=$(mktemp "$out.XXXXXX")
		sed '/^\/\/# sourceMappingURL=/d' "$src" >"$tmp"
		chmod 0644 "$tmp"
		mv "$tmp" "$out"
	fi
}

mkdir -p web/vendor
marked=marked-$(version marked).js
purify=dompurify-$(version dompurify).js
copy node_modules/marked/lib/marked.esm.js "web/vendor/$marked"
copy node_modules/dompurify/dist/purify.es.mjs "web/vendor/$purify"
index=$(cat <<JS
// Written by scripts/vendor.sh from package-lock.json: do not edit.
export { marked } from './$marked';
export { default as DOMPurify } from './$purify';
JS
)
if [[ ! -f web/vendor/index.js ]] || [[ "$(cat web/vendor/index.js)" != "$index" ]]; then
	printf '%s\n' "$index" >web/vendor/index.js
fi
# Versions no longer in the lockfile go.
for f in web/vendor/*.js; do
	case ${f##*/} in index.js | "$marked" | "$purify") ;; *) rm -f "$f" ;; esac
done
