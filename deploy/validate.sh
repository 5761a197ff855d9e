#!/usr/bin/env bash
# Validates deploy/ without a container engine or a cluster:
#   - YAML lint (yamllint) of the compose file and the Kubernetes manifests;
#   - compose.yaml against the Compose schema (docker-compose config);
#   - the Caddyfile (caddy validate, caddy fmt);
#   - the Kubernetes manifests against the Kubernetes OpenAPI schemas,
#     strictly, for the oldest and newest versions kubernetes-validate ships;
#   - the systemd unit (systemd-analyze verify, and security --offline with
#     an exposure threshold);
#   - deploy/checks.py files: cross-file checks (every LEAKGUARD_* name is a
#     real setting, probes, labels, users, grace periods, sslmode=verify-full,
#     development keys only under a compose profile, /metrics on a port the
#     NetworkPolicy keeps inside, ...);
#   - deploy/checks.py syscalls: the binary under strace for a short session
#     uses only system calls and socket families the unit allows.
#
# Installs what it lacks (Debian packages with apt-get, Python packages in a
# virtualenv under ~/.cache), quietly and idempotently. Run as root, like CI.
# Usage: deploy/validate.sh [path to a leakguard binary; default target/debug]
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${DEPLOY_VALIDATE_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/leakguard-deploy-venv}"
BINARY="${1:-target/debug/leakguard}"
K8S_VERSIONS=(1.28.0 1.37.0)

step() { echo "== deploy: $*"; }

# --- tools ------------------------------------------------------------------
missing=()
command -v systemd-analyze >/dev/null || missing+=(systemd)
command -v docker-compose >/dev/null || missing+=(docker-compose)
command -v caddy >/dev/null || missing+=(caddy)
command -v strace >/dev/null || missing+=(strace)
command -v setpriv >/dev/null || missing+=(util-linux)
if ((${#missing[@]})); then
    step "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! "$VENV/bin/python" -c 'import yamllint, kubernetes_validate, dockerfile, yaml' 2>/dev/null; then
    step "installing yamllint, kubernetes-validate, dockerfile into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check \
        'yamllint==1.38.0' 'kubernetes-validate==1.37.0' 'dockerfile==3.4.0' 'pyyaml>=6'
fi

if [ ! -x "$BINARY" ]; then
    step "building $BINARY"
    cargo build --locked --bin leakguard -q
fi

# --- checks -----------------------------------------------------------------
step "yamllint"
"$VENV/bin/yamllint" -s \
    -d '{extends: default, rules: {line-length: {max: 120}, document-start: disable}}' \
    deploy/compose.yaml deploy/k8s/*.yaml

step "compose.yaml (docker-compose config)"
docker-compose --project-directory deploy -f deploy/compose.yaml config -q

step "Caddyfile (caddy validate, caddy fmt)"
caddy validate --config deploy/Caddyfile --adapter caddyfile >/dev/null 2>&1 ||
    caddy validate --config deploy/Caddyfile --adapter caddyfile
caddy fmt deploy/Caddyfile | diff -u deploy/Caddyfile - ||
    { echo "FAIL: deploy/Caddyfile is not formatted as 'caddy fmt' would" >&2; exit 1; }

for version in "${K8S_VERSIONS[@]}"; do
    step "Kubernetes manifests against $version (strict)"
    "$VENV/bin/kubernetes-validate" --strict --quiet -k "$version" \
        deploy/k8s/deployment.yaml deploy/k8s/service.yaml deploy/k8s/pdb.yaml \
        deploy/k8s/networkpolicy.yaml deploy/k8s/secret.example.yaml
done

step "systemd unit (systemd-analyze verify, security)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# verify insists that ExecStart exists: point it at a stand-in.
printf '#!/bin/sh\nexit 0\n' >"$tmp/leakguard"
chmod 0755 "$tmp/leakguard"
sed "s|/usr/local/bin/leakguard|$tmp/leakguard|" deploy/systemd/leakguard.service \
    >"$tmp/leakguard.service"
# verify exits 0 on warnings (unknown keys, bad values): any output fails.
out="$(cd "$tmp" && systemd-analyze verify ./leakguard.service 2>&1 || true)"
if [ -n "$out" ]; then
    echo "FAIL: systemd-analyze verify:" >&2
    echo "$out" >&2
    exit 1
fi
# Exposure 0.0 (best) to 10.0 (worst); the threshold is in tenths.
(cd "$tmp" && systemd-analyze security --offline=true --threshold=20 --no-pager \
    ./leakguard.service | tail -n 1)

step "cross-file checks"
"$VENV/bin/python" deploy/checks.py files

step "system calls of a short session vs. the unit's filter"
"$VENV/bin/python" deploy/checks.py syscalls "$BINARY"

step "all deploy checks passed"
