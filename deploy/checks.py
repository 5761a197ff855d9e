#!/usr/bin/env python3
"""Checks of deploy/ that schemas cannot make: that the files agree with each
other and with leakguard itself. Called by deploy/validate.sh.

  checks.py files               cross-file checks (settings, probes, labels, users)
  checks.py syscalls BINARY     run BINARY under strace and check every system
                                call and socket family against the systemd
                                unit's SystemCallFilter / RestrictAddressFamilies
"""

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEPLOY = os.path.join(ROOT, "deploy")
UNIT = os.path.join(DEPLOY, "systemd", "leakguard.service")

failures = []


def check(condition, message):
    if not condition:
        failures.append(message)
    return condition


def read(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        return f.read()


def known_settings():
    """LEAKGUARD_* names leakguard accepts, from src/config.rs."""
    text = read("src/config.rs")
    block = re.search(r"const KNOWN_KEYS: &\[&str\] = &\[(.*?)\];", text, re.S)
    names = {"LEAKGUARD_" + k for k in re.findall(r'"([A-Z0-9_]+)"', block.group(1))}
    return names | {"LEAKGUARD_CONFIG"}


def settings_in(path):
    return set(re.findall(r"\bLEAKGUARD_[A-Z0-9_]+", read(path)))


def unit_directives():
    directives = {}
    for line in read("deploy/systemd/leakguard.service").splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            key, value = line.split("=", 1)
            directives.setdefault(key.strip(), []).append(value.strip())
    return directives


def check_settings():
    known = known_settings()
    check(len(known) > 10, "could not read KNOWN_KEYS from src/config.rs")
    for path in [
        "deploy/Dockerfile",
        "deploy/compose.yaml",
        "deploy/k8s/deployment.yaml",
        "deploy/k8s/secret.example.yaml",
        "deploy/systemd/leakguard.service",
        "deploy/systemd/leakguard.env.example",
        "deploy/README.md",
        "docs/OPERATIONS.md",
    ]:
        for name in sorted(settings_in(path) - known):
            # leakguard refuses unknown LEAKGUARD_* variables at start.
            failures.append(f"{path}: {name} is not a leakguard setting")


def check_dockerfile():
    import dockerfile

    commands = dockerfile.parse_file(os.path.join(DEPLOY, "Dockerfile"))
    stages = [i for i, c in enumerate(commands) if c.cmd == "FROM"]
    check(len(stages) >= 2, "Dockerfile: expected a multi-stage build")
    final = commands[stages[-1]:]
    users = [c.value[0] for c in final if c.cmd == "USER"]
    check(users, "Dockerfile: the runtime stage sets no USER")
    if users:
        user = users[-1].split(":")[0]
        check(user not in ("0", "root"), f"Dockerfile: runtime USER is {user}")
    health = [c for c in final if c.cmd == "HEALTHCHECK"]
    check(health, "Dockerfile: no HEALTHCHECK in the runtime stage")
    if health:
        text = " ".join(health[-1].value)
        check("/healthz" in text, "Dockerfile: HEALTHCHECK does not probe /healthz")
        tool = text.split()[1] if text.startswith("CMD") else ""
        installs = " ".join(" ".join(c.value) for c in final if c.cmd == "RUN")
        check(tool in installs, f"Dockerfile: the health check uses {tool!r}, not installed")
    check(
        any(c.cmd == "COPY" and any(f.startswith("--from=") for f in c.flags) for c in final),
        "Dockerfile: the runtime stage does not copy the binary from the build stage",
    )
    entry = [c for c in final if c.cmd == "ENTRYPOINT"]
    check(entry and entry[-1].json, "Dockerfile: ENTRYPOINT must be exec form (signals)")
    check(
        any(c.cmd == "EXPOSE" and "8080" in c.value for c in final),
        "Dockerfile: EXPOSE 8080 missing",
    )
    check(
        "LEAKGUARD_BIND=0.0.0.0:8080" in read("deploy/Dockerfile"),
        "Dockerfile: leakguard must listen on 0.0.0.0 inside the container",
    )


def postgres_urls(path):
    """The PostgreSQL URLs in a file, with lines continued by a trailing
    backslash (in YAML strings and in comments) joined first."""
    text = re.sub(r"\\\n\s*(?:#\s*)?", "", read(path))
    return re.findall(r"postgres(?:ql)?://[^\s\"']+", text)


def check_database_tls():
    """Every PostgreSQL URL verifies the server (sslmode=verify-full); the
    one exception, the compose stack's, says so explicitly and why."""
    for path in [
        "deploy/README.md",
        "deploy/k8s/secret.example.yaml",
        "deploy/k8s/deployment.yaml",
        "deploy/systemd/leakguard.env.example",
        "deploy/systemd/leakguard.service",
        "deploy/postgres/grants.sql",
    ]:
        for url in postgres_urls(path):
            check("sslmode=verify-full" in url, f"{path}: {url} does not use sslmode=verify-full")
    urls = postgres_urls("deploy/compose.yaml")
    check(urls, "compose: no PostgreSQL URL found")
    for url in urls:
        check("sslmode=disable" in url, f"compose: {url} must say sslmode=disable outright")
    check(re.search(r"#.*sslmode=disable ON PURPOSE", read("deploy/compose.yaml")),
          "compose: sslmode=disable without the comment that says why")


def check_compose():
    compose = yaml.safe_load(read("deploy/compose.yaml"))
    services = compose["services"]
    for name, service in services.items():
        keys_url = (service.get("environment") or {}).get("LEAKGUARD_GITHUB_KEYS_URL", "")
        dev_keys = keys_url.startswith("file://") or any(
            "dev-keys" in str(v) for v in service.get("volumes", []))
        if dev_keys:
            check(service.get("profiles"), f"compose: {name} trusts development keys without a profile")
        elif service.get("image", "").startswith("leakguard"):
            check(keys_url == "https://api.github.com/meta/public_keys/secret_scanning",
                  f"compose: {name} must trust GitHub's key set")
    # The replicas that run by default, behind the proxy.
    replicas = {name: s for name, s in services.items()
                if s.get("image", "").startswith("leakguard") and not s.get("profiles")}
    check(len(replicas) >= 2, "compose: expected two leakguard replicas")
    urls = {s["environment"]["LEAKGUARD_DATABASE_URL"] for s in replicas.values()}
    check(len(urls) == 1 and next(iter(urls)).startswith("postgres://"),
          "compose: the replicas must share one PostgreSQL database")
    check("postgres" in services and "healthcheck" in services["postgres"],
          "compose: PostgreSQL with a health check")
    smtp = {s["environment"].get("LEAKGUARD_SMTP_URL", "") for s in replicas.values()}
    mail = [n for n, s in services.items() if "mailpit" in s.get("image", "")]
    check(mail and all(mail[0] in u for u in smtp), "compose: the replicas must send mail to the catcher")
    proxy = [n for n, s in services.items() if s.get("image", "").startswith(("caddy", "nginx"))]
    check(proxy, "compose: a reverse proxy")
    caddyfile = read("deploy/Caddyfile")
    for name in replicas:
        check(f"{name}:8080" in caddyfile, f"Caddyfile: replica {name} is not an upstream")
        check(services[name].get("depends_on", {}).get("postgres", {}).get("condition") == "service_healthy",
              f"compose: {name} must wait for a healthy PostgreSQL")
    check("health_uri /readyz" in caddyfile, "Caddyfile: the proxy must route to ready replicas only")
    grace = next(iter(replicas.values())).get("stop_grace_period", "10s")
    check(int(grace.rstrip("s")) > 30, "compose: stop_grace_period must exceed the 30 s drain")


def k8s(name):
    return yaml.safe_load(read(f"deploy/k8s/{name}"))


def check_kubernetes():
    dep = k8s("deployment.yaml")
    pod = dep["spec"]["template"]
    labels = pod["metadata"]["labels"]
    check(dep["spec"]["selector"]["matchLabels"].items() <= labels.items(),
          "Deployment: selector does not match the pod labels")
    check(dep["spec"].get("replicas", 1) >= 2, "Deployment: at least two replicas")
    spec = pod["spec"]
    check(spec.get("terminationGracePeriodSeconds", 30) > 30,
          "Deployment: terminationGracePeriodSeconds must exceed the 30 s drain")
    check(spec.get("securityContext", {}).get("runAsNonRoot") is True, "Deployment: runAsNonRoot")
    [container] = spec["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    check(container["readinessProbe"]["httpGet"]["path"] == "/readyz", "Deployment: readiness probe on /readyz")
    check(container["livenessProbe"]["httpGet"]["path"] == "/healthz", "Deployment: liveness probe on /healthz")
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        port = container.get(probe, {}).get("httpGet", {}).get("port")
        check(port in ports or port in ports.values(), f"Deployment: {probe} port {port} is not a container port")
    limits = container.get("resources", {}).get("limits", {})
    check({"cpu", "memory"} <= limits.keys(), "Deployment: cpu and memory limits")
    env = {e["name"]: e for e in container["env"]}
    for name in ("LEAKGUARD_DATABASE_URL", "LEAKGUARD_SMTP_URL"):
        ref = env.get(name, {}).get("valueFrom", {}).get("secretKeyRef")
        check(ref is not None, f"Deployment: {name} must come from a Secret")
    bind = env.get("LEAKGUARD_BIND", {}).get("value", "")
    check(bind.endswith(f":{ports.get('http')}"), "Deployment: LEAKGUARD_BIND must match the http port")
    csc = container.get("securityContext", {})
    check(csc.get("readOnlyRootFilesystem") and csc.get("allowPrivilegeEscalation") is False,
          "Deployment: read-only root, no privilege escalation")

    secret = k8s("secret.example.yaml")
    keys = set(secret.get("stringData", {}))
    for e in container["env"]:
        ref = e.get("valueFrom", {}).get("secretKeyRef")
        if ref and not ref.get("optional"):
            check(ref["name"] == secret["metadata"]["name"] and ref["key"] in keys,
                  f"secret.example.yaml: no key {ref['key']} used by {e['name']}")

    # /metrics apart from the API, and the network policy keeping it inside.
    metrics_port = ports.get("metrics")
    check(metrics_port, "Deployment: a container port named metrics")
    metrics_bind = env.get("LEAKGUARD_METRICS_BIND", {}).get("value", "")
    check(metrics_bind.endswith(f":{metrics_port}"),
          "Deployment: LEAKGUARD_METRICS_BIND must match the metrics port")
    annotations = pod["metadata"].get("annotations", {})
    check(annotations.get("prometheus.io/port") == str(metrics_port),
          "Deployment: Prometheus must scrape the metrics port")
    policy = k8s("networkpolicy.yaml") if os.path.exists(os.path.join(DEPLOY, "k8s", "networkpolicy.yaml")) else {}
    spec = (policy or {}).get("spec") or {}
    check(policy.get("kind") == "NetworkPolicy", "deploy/k8s/networkpolicy.yaml: no NetworkPolicy")
    check((spec.get("podSelector") or {}).get("matchLabels", {"-": "-"}).items() <= labels.items(),
          "NetworkPolicy: podSelector does not match the pods")
    check("Ingress" in spec.get("policyTypes", []), "NetworkPolicy: must restrict Ingress")
    rules = spec.get("ingress", [])
    opened = {p["port"] for r in rules for p in r.get("ports", [])}
    check("http" in opened or ports.get("http") in opened, "NetworkPolicy: the http port must stay reachable")
    for rule in rules:
        rule_ports = {p["port"] for p in rule.get("ports", [])}
        if not rule_ports or rule_ports & {"metrics", metrics_port}:
            check(rule.get("from"), "NetworkPolicy: the metrics port must be open to named peers only")

    svc = k8s("service.yaml")
    check(svc["spec"]["selector"].items() <= labels.items(), "Service: selector does not match the pods")
    for p in svc["spec"]["ports"]:
        check(p["targetPort"] in ports or p["targetPort"] in ports.values(),
              f"Service: targetPort {p['targetPort']} is not a container port")
    pdb = k8s("pdb.yaml")
    check(pdb["spec"]["selector"]["matchLabels"].items() <= labels.items(), "PDB: selector does not match the pods")
    check(pdb["spec"].get("minAvailable", 0) < dep["spec"]["replicas"],
          "PDB: minAvailable must be below the replica count, or nodes can never drain")
    kust = k8s("kustomization.yaml")
    for resource in kust["resources"]:
        check(os.path.exists(os.path.join(DEPLOY, "k8s", resource)), f"kustomization: {resource} missing")
    check("secret.example.yaml" not in kust["resources"], "kustomization must not apply the example Secret")


def check_systemd():
    d = unit_directives()
    want = {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "DynamicUser": "yes",
        "RestartPreventExitStatus": "2",
        "KillSignal": "SIGTERM",
    }
    for key, value in want.items():
        check(d.get(key, [None])[-1] == value, f"leakguard.service: {key}={value}")
    check(d.get("CapabilityBoundingSet", ["x"])[-1] == "", "leakguard.service: no capabilities")
    stop = d.get("TimeoutStopSec", ["0"])[-1].rstrip("s")
    check(int(stop) > 30, "leakguard.service: TimeoutStopSec must exceed the 30 s drain")
    # The exit code for bad settings that RestartPreventExitStatus relies on.
    check("return 2;" in read("src/cli.rs"), "src/cli.rs no longer exits 2 for bad settings")


# ------------------------------------------------------------------ syscalls


def filter_group(name, seen=None):
    """Expands a systemd syscall group (recursively) with systemd-analyze."""
    seen = seen if seen is not None else set()
    if name in seen:
        return set()
    seen.add(name)
    out = subprocess.run(["systemd-analyze", "syscall-filter", name],
                         capture_output=True, text=True, check=True).stdout
    calls = set()
    for line in out.splitlines()[1:]:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        calls |= filter_group(line, seen) if line.startswith("@") else {line}
    return calls


def allowed_syscalls():
    allowed, denied = set(), set()
    for value in unit_directives()["SystemCallFilter"]:
        deny = value.startswith("~")
        for item in value.lstrip("~").split():
            names = filter_group(item) if item.startswith("@") else {item}
            if deny:
                denied |= names
            else:
                allowed |= names
    return allowed - denied


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_syscalls(binary):
    """Runs a short session (start, requests, a simulated alert, an email,
    SIGTERM) under strace and checks what the process asked the kernel for."""
    allowed = allowed_syscalls()
    families = set(unit_directives()["RestrictAddressFamilies"][-1].split())
    # The unit runs leakguard as an unprivileged (dynamic) user; as root,
    # SQLite would chown its journal files, which the filter denies (EPERM,
    # harmlessly). Trace what the service would really do.
    as_user = (["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]
               if os.geteuid() == 0 else [])
    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o777)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        run = lambda *args: subprocess.run(  # noqa: E731
            [*as_user, binary, *args], cwd=tmp, env=env,
            capture_output=True, text=True, check=True, timeout=60)
        run("dev", "keygen", "--out", "keys")
        import json
        token = json.loads(run("workspace", "create", "--name", "Probe",
                               "--owner-email", "probe@example.com").stdout)["token"]
        port = free_port()
        smtp_port = free_port()  # nothing listens: the send fails and is retried
        serve_env = {
            **env,
            "LEAKGUARD_BIND": f"127.0.0.1:{port}",
            "LEAKGUARD_GITHUB_KEYS_URL": f"file://{tmp}/keys/keys.json",
            "LEAKGUARD_LOG_FORMAT": "json",
            "LEAKGUARD_SMTP_URL": f"smtp://localhost:{smtp_port}",
            "LEAKGUARD_OUTBOX_BACKOFF_BASE_SECS": "0.2",
            "LEAKGUARD_OUTBOX_POLL_SECS": "0.2",
        }
        trace = os.path.join(tmp, "trace")
        server = subprocess.Popen([*as_user, "strace", "-f", "-qq", "-o", trace, binary, "serve"],
                                  cwd=tmp, env=serve_env, stdout=subprocess.DEVNULL,
                                  stderr=open(os.path.join(tmp, "serve.log"), "w"))
        # SIGTERM goes to leakguard itself, strace's child.
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(300):
                try:
                    urllib.request.urlopen(base + "/readyz", timeout=2)
                    break
                except OSError:
                    time.sleep(0.1)
            else:
                failures.append("syscalls: leakguard did not become ready under strace")
                return
            urllib.request.urlopen(urllib.request.Request(
                base + "/", headers={"Authorization": f"Bearer {token}"}), timeout=10)
            run("alert", "simulate", "--url", base + "/secret-scanning/github",
                "--key", "keys", "--token", token)
            urllib.request.urlopen(base + "/metrics", timeout=10).read()
            time.sleep(1.5)  # a few failed SMTP attempts
        finally:
            try:
                with open(f"/proc/{server.pid}/task/{server.pid}/children") as f:
                    leakguard = int(f.read().split()[0])
            except (OSError, IndexError, ValueError):
                leakguard = None
            os.kill(leakguard or server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
            if leakguard:
                # Never leave it behind, whatever strace did (and never
                # kill a process that merely reused the pid).
                try:
                    with open(f"/proc/{leakguard}/cmdline", "rb") as f:
                        if f.read().startswith(binary.encode()):
                            os.kill(leakguard, signal.SIGKILL)
                except (FileNotFoundError, ProcessLookupError):
                    pass
        with open(os.path.join(tmp, "serve.log")) as f:
            log = f.read()
        check("stopped" in log, "syscalls: leakguard did not stop gracefully under strace:\n" + log[-2000:])
        used, used_families = set(), set()
        with open(trace) as f:
            for line in f:
                m = re.match(r"\d+\s+([a-z0-9_]+)\(", line)
                if m:
                    used.add(m.group(1))
                m = re.search(r"\bsocket\((AF_[A-Z0-9]+)", line)
                if m:
                    used_families.add(m.group(1))
    # The first execve is strace starting leakguard, allowed anyway.
    outside = sorted(used - allowed - {"execve"})
    check(not outside, f"syscalls outside the unit's SystemCallFilter: {outside}")
    # glibc probes AF_NETLINK in getaddrinfo(AI_ADDRCONFIG) and copes with
    # EAFNOSUPPORT; anything else must be allowed.
    extra = sorted(used_families - families - {"AF_NETLINK"})
    check(not extra, f"socket families outside RestrictAddressFamilies: {extra}")
    print(f"syscalls: {len(used)} distinct calls, families {sorted(used_families)}: all allowed"
          if not outside and not extra else "syscalls: see failures")


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "files":
        check_settings()
        check_database_tls()
        check_dockerfile()
        check_compose()
        check_kubernetes()
        check_systemd()
    elif len(sys.argv) == 3 and sys.argv[1] == "syscalls":
        check_syscalls(os.path.abspath(sys.argv[2]))
    else:
        print(__doc__)
        return 2
    for f in failures:
        print(f"FAIL: {f}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
