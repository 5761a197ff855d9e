#!/usr/bin/env bash
# The README's OAuth flow (the block after <!-- oauth-flow -->), run as
# written against a real leakguard on a fresh database: only the address
# differs, since this server has a port of its own. Needs openssl, curl
# and python3.
#
#   tests/readme/oauth_flow.sh                      # SQLite
#   tests/readme/oauth_flow.sh postgres://…/test    # a fresh database there
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

cargo build --locked --quiet
bin="${CARGO_TARGET_DIR:-$root/target}/debug/leakguard"

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
        pg_db="lg_test_readme_$$_$(date +%s)"
        psql "$pg_admin_url" -v ON_ERROR_STOP=1 -qc "CREATE DATABASE \"$pg_db\""
        database_url=$(python3 -c 'import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/" + sys.argv[2])))' "$pg_admin_url" "$pg_db")
        ;;
    "") database_url="sqlite://$work/leakguard.db" ;;
    *) echo "usage: $0 [postgres://…]" >&2; exit 2 ;;
esac

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url="http://127.0.0.1:$port"
export LEAKGUARD_DATABASE_URL="$database_url"
export LEAKGUARD_BIND="127.0.0.1:$port"
export LEAKGUARD_PUBLIC_URL="$url"
export LEAKGUARD_MAIL_DIR="$work/mail"
export LEAKGUARD_LOG_FORMAT=json
"$bin" dev keygen --out "$work/keys" >/dev/null
export LEAKGUARD_GITHUB_KEYS_URL="file://$work/keys/keys.json"

created=$("$bin" workspace create --name "README OAuth" --owner-email owner@readme.test)
TOKEN=$(printf '%s' "$created" | python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])')
export TOKEN

"$bin" serve >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do
    curl -sf "$url/healthz" >/dev/null && break
    sleep 0.1
done
curl -sf "$url/healthz" >/dev/null || { echo "FAIL: leakguard did not come up" >&2; cat "$work/server.log" >&2; exit 1; }

# The block as written; only the server's address is this one's.
python3 - "$root/README.md" "$url" >"$work/flow.sh" <<'PY'
import re, sys
readme = open(sys.argv[1]).read()
block = re.search(r"<!-- oauth-flow -->\n```sh\n(.*?)```", readme, re.S)
if not block:
    sys.exit("README.md has no shell block after <!-- oauth-flow -->")
print(block.group(1).replace("http://127.0.0.1:8080", sys.argv[2]))
PY

mkdir "$work/user"
if ! (cd "$work/user" && bash -euo pipefail "$work/flow.sh") >"$work/out.txt" 2>"$work/err.txt"; then
    echo "FAIL: the README's OAuth flow failed" >&2
    cat "$work/out.txt" "$work/err.txt" >&2
    tail -n 20 "$work/server.log" >&2
    exit 1
fi
out=$(cat "$work/out.txt")
for expected in '"token_type":"Bearer"' '"scope":"public_api:read_write"' '"sources":[' \
    '"kind":"oauth_access_token"' 'this token has been revoked'; do
    if [[ "$out" != *"$expected"* ]]; then
        echo "FAIL: the flow's output lacks $expected:" >&2
        cat "$work/out.txt" >&2
        exit 1
    fi
done
echo "README OAuth flow: 1 passed, 0 failed"
