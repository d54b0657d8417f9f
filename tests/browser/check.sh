#!/usr/bin/env bash
# The studio's web mode in a real browser (headless Chromium): the admin debug page shows an
# invalidation made by a write, and the studio page's browser-side cache drops exactly the
# entries the write's `Cache-Invalidate` header names (its self-test compares with the server).
# Also: the admin router refuses writes without the token, and /metrics is Prometheus text.
set -euo pipefail
cd "$(dirname "$0")/../.."

target="${CARGO_TARGET_DIR:-target}"
port="${STUDIO_PORT:-38917}"
base="http://127.0.0.1:$port"
fail() { echo "FAIL: $*" >&2; exit 1; }

browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
[ -n "$browser" ] || fail "no Chromium: install it (Debian: apt-get install -y chromium)"
dump() {
  # --virtual-time-budget lets the page's scripts (and their fetches) run before the dump.
  timeout 60 "$browser" --headless --no-sandbox --disable-gpu --no-first-run \
    --disable-background-networking --virtual-time-budget=4000 --dump-dom "$1" 2>/dev/null
}

cargo build -q -p studio --features web
STUDIO_ADMIN_TOKEN=ci-token "$target/debug/studio" --serve "127.0.0.1:$port" >"${TMPDIR:-/tmp}/studio-web.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf "$base/scenes/1" >/dev/null && break; sleep 0.1; done
curl -sf "$base/scenes/1" >/dev/null || fail "the studio did not start: $(cat "${TMPDIR:-/tmp}/studio-web.log")"

# A write through the API: its response names the keys it invalidated.
headers=$(curl -sf -D - -o /dev/null -X PATCH -H 'content-type: application/json' \
  -d '{"title": "Edited in the browser test"}' "$base/scenes/2")
echo "$headers" | grep -i '^cache-invalidate: .*scene:2' >/dev/null \
  || fail "no Cache-Invalidate naming scene:2 in: $headers"

# The debug page lists that invalidation, from a commit, with its key.
page=$(dump "$base/admin")
echo "$page" | grep -o '<td class="key">[^<]*' | grep -q 'scene:2\b' \
  || fail "the debug page does not list scene:2: $page"
echo "$page" | grep -q '<td class="source-commit">commit</td>' \
  || fail "the debug page does not show the commit as the source"
echo "$page" | grep -q '<td class="n">' || fail "the debug page shows no stats"
echo "debug page: shows the commit's invalidation of scene:2"

# The browser-side cache: read, read again (hits), write, read: the dropped entries are
# fetched again and the page agrees with the server.
client=$(dump "$base/?selftest")
echo "$client" | grep -q 'selftest: fresh' || fail "the browser cache self-test: $client"
echo "$client" | grep -q 'dropped scene:1 from the browser cache' \
  || fail "the browser cache did not drop scene:1: $client"
echo "$client" | grep -q 'dropped scene#count_by(status) from the browser cache' \
  || fail "the browser cache did not drop the counts: $client"
echo "browser cache: dropped exactly what Cache-Invalidate named, and reads fresh"

# Admin writes need the token.
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'content-type: application/json' \
  -d '{"key": "scene:1"}' "$base/admin/invalidate")
[ "$code" = 403 ] || fail "POST /admin/invalidate without the token: $code"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'content-type: application/json' \
  -H 'x-admin-token: ci-token' -d '{"key": "scene:1"}' "$base/admin/invalidate")
[ "$code" = 200 ] || fail "POST /admin/invalidate with the token: $code"
curl -sf "$base/metrics" | grep -q '^cached_hits_total ' || fail "/metrics has no cached_hits_total"
echo "admin writes: refused without the token, done with it; /metrics: Prometheus text"
