"""schemathesis hooks for leakguard's contract run (tests/contract/run.sh).

Owner tokens can revoke any token of their workspace, their own included,
and schemathesis's stateful phase will do so. Each token therefore comes
from `leakguard token create` against the run's database, and a 401 (a
revoked token) makes schemathesis ask for a new one.
"""

import json
import os
import subprocess

import schemathesis


@schemathesis.auth()
class OwnerToken:
    def get(self, case, context):
        out = subprocess.run(
            [
                os.environ["CONTRACT_BINARY"],
                "token",
                "create",
                "--workspace",
                os.environ["CONTRACT_WORKSPACE"],
                "--name",
                "schemathesis",
                "--role",
                "owner",
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        return json.loads(out.stdout)["token"]

    def set(self, case, data, context):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"


# What no schema can say, kept out of positive test cases only (negative
# ones are left alone): positive cases use cursors and source ids that the
# API handed out. docs/API_CONTRACT.md lists these.

CURSORS = ("pagination[cursor]", "pagination.cursor")
# Cursors the API answered with, per operation: a cursor is an opaque
# value from an earlier answer of the same list.
SEEN_CURSORS = {}


# Sources known to exist: a destination's sourceId must name one.
LIVE_SOURCES = []

# Public keys that an OAuth app may register (run.sh makes them with
# openssl): no schema can say which PEM text is a usable key.
PUBLIC_KEYS = [
    open(os.path.join(os.environ["CONTRACT_PUBLIC_KEYS"], name)).read()
    for name in sorted(os.listdir(os.environ["CONTRACT_PUBLIC_KEYS"]))
]


@schemathesis.hook
def after_call(context, case, response):
    try:
        data = response.json()["data"]
    except Exception:
        return
    if case.operation.label == "DELETE /sources/{id}" and response.status_code == 200:
        gone = case.path_parameters.get("id")
        if gone in LIVE_SOURCES:
            LIVE_SOURCES.remove(gone)
    for source in [data.get("source")] + list(data.get("sources") or []):
        if isinstance(source, dict) and source.get("id") not in LIVE_SOURCES:
            LIVE_SOURCES.append(source["id"])
    pagination = data.get("pagination")
    if not isinstance(pagination, dict):
        return
    seen = SEEN_CURSORS.setdefault(case.operation.label, [])
    for key in ("current", "next", "previous"):
        cursor = pagination.get(key)
        if isinstance(cursor, str) and cursor not in seen:
            seen.append(cursor)


@schemathesis.hook
def map_case(context, case):
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return case
    body = case.body
    if case.operation.label == "POST /destinations" and isinstance(body, dict) and LIVE_SOURCES:
        if body.get("sourceId") not in LIVE_SOURCES:
            body["sourceId"] = LIVE_SOURCES[len(str(body)) % len(LIVE_SOURCES)]
    if case.operation.label in ("POST /oauth-apps", "POST /oauth-apps/{id}/keys") and isinstance(body, dict):
        if "publicKey" in body:
            body["publicKey"] = PUBLIC_KEYS[len(str(body)) % len(PUBLIC_KEYS)]
    if not case.query:
        return case
    seen = SEEN_CURSORS.get(case.operation.label, [])
    for name in CURSORS:
        cursor = case.query.get(name)
        if cursor is None or cursor in seen or cursor in ("", "MA=="):
            continue
        if seen:
            case.query[name] = seen[len(str(cursor)) % len(seen)]
        else:
            del case.query[name]
    # GET /audit-events: endTime may not be before startTime.
    start, end = case.query.get("startTime"), case.query.get("endTime")
    if isinstance(start, str) and isinstance(end, str) and _instant(end) < _instant(start):
        case.query["startTime"], case.query["endTime"] = end, start
    return case


def _instant(text):
    from datetime import datetime

    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return datetime.min
