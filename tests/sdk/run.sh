#!/usr/bin/env bash
# Segment's TypeScript SDK against a real leakguard: builds the binary,
# serves it on a port of its own over a fresh database, creates a workspace
# and tokens with the CLI, runs sdk.test.js, and always stops the server.
#
#   tests/sdk/run.sh                      # SQLite in a temporary directory
#   tests/sdk/run.sh postgres://…/test    # a fresh database on that server
#
# Needs Node.js 18+ and `npm ci` in tests/sdk (CI does both).
set -euo pipefail
cd "$(dirname "$0")/../.."

cargo build --locked --quiet
bin="${CARGO_TARGET_DIR:-target}/debug/leakguard"

work=$(mktemp -d)
server_pid=
pg_admin_url=
pg_db=
cleanup() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    if [ -n "$pg_db" ]; then
        psql "$pg_admin_url" -qc "DROP DATABASE IF EXISTS \"$pg_db\"" || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

case "${1:-}" in
    postgres://* | postgresql://*)
        pg_admin_url=$1
        # lg_test_ so that CI's clean-up of earlier runs also finds it.
        pg_db="lg_test_sdk_$$_$(date +%s)"
        psql "$pg_admin_url" -v ON_ERROR_STOP=1 -qc "CREATE DATABASE \"$pg_db\""
        database_url=$(node -e 'const u = new URL(process.argv[1]); u.pathname = "/" + process.argv[2]; console.log(u.href)' "$pg_admin_url" "$pg_db")
        ;;
    "") database_url="sqlite://$work/leakguard.db" ;;
    *) echo "usage: $0 [postgres://…]" >&2; exit 2 ;;
esac

port=$(node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); })')
export LEAKGUARD_DATABASE_URL="$database_url"
export LEAKGUARD_BIND="127.0.0.1:$port"
export LEAKGUARD_MAIL_DIR="$work/mail"
export LEAKGUARD_LOG_FORMAT=json
# Client assertions name the server by this URL.
export LEAKGUARD_PUBLIC_URL="http://127.0.0.1:$port"
"$bin" dev keygen --out "$work/keys" >/dev/null
export LEAKGUARD_GITHUB_KEYS_URL="file://$work/keys/keys.json"

workspace=$("$bin" workspace create --name "SDK Check" --owner-email owner@sdk.test)
workspace_id=$(node -p 'JSON.parse(process.argv[1]).workspace.id' "$workspace")
doomed=$("$bin" token create --workspace "$workspace_id" --name doomed --role read_only)
# An OAuth app, its key made as Segment's OAuth guide makes one.
openssl genrsa -out "$work/oauth.key.pem" 2048 2>/dev/null
openssl rsa -in "$work/oauth.key.pem" -outform PEM -pubout -out "$work/oauth.pub.pem" 2>/dev/null
oauth_app=$("$bin" oauth-app create --workspace "$workspace_id" --name "SDK client" \
    --public-key "$work/oauth.pub.pem" --key-name primary --scope public_api:read_write)

"$bin" serve >"$work/server.log" 2>&1 &
server_pid=$!
url="http://127.0.0.1:$port"
for _ in $(seq 1 100); do
    curl -sf "$url/healthz" >/dev/null && break
    if ! kill -0 "$server_pid" 2>/dev/null; then
        echo "FAIL: leakguard serve exited:" >&2
        cat "$work/server.log" >&2
        exit 1
    fi
    sleep 0.1
done
curl -sf "$url/healthz" >/dev/null || { echo "FAIL: leakguard did not come up on $url" >&2; exit 1; }

cd tests/sdk
[ -d node_modules ] || npm ci --no-audit --no-fund
if ! LEAKGUARD_URL="$url" LEAKGUARD_WORKSPACE="$workspace" LEAKGUARD_DOOMED_TOKEN="$doomed" \
    LEAKGUARD_OAUTH_APP="$oauth_app" LEAKGUARD_OAUTH_KEY="$work/oauth.key.pem" \
    node --test sdk.test.js; then
    echo "== server log" >&2
    tail -n 20 "$work/server.log" >&2
    exit 1
fi
