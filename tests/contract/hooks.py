"""schemathesis hooks for leakguard's contract run (tests/contract/run.sh).

Owner tokens can revoke any token of their workspace, their own included,
and schemathesis's stateful phase will do so. Each token therefore comes
from `leakguard token create` against the run's database, and a 401 (a
revoked token) makes schemathesis ask for a new one.
"""

import json
import os
import subprocess
from urllib.parse import unquote

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

# The kind (catalog entry, with its options) of each source, destination
# and warehouse the API showed: a PATCH's settings are the resource's own
# kind's, which the path does not say.
KINDS = {}

# Labels of the workspace: a source may only carry those.
LABELS = []

# JSON Schemas for positive cases of rules: the document can say that a
# rule's jsonSchema is an object or a boolean, not that its draft's
# meta-schema accepts it (the meta-schemas are not inline).
RULE_SCHEMAS = [
    {"type": "object"},
    {"type": "object", "properties": {"total": {"type": "number"}}, "required": ["total"]},
    True,
]


@schemathesis.hook
def after_call(context, case, response):
    try:
        data = response.json()["data"]
    except Exception:
        return
    if case.operation.label == "DELETE /labels/{key}/{value}" and response.status_code == 200:
        # The stateful phase hands on path parameters percent-encoded.
        key, value = case.path_parameters.get("key"), case.path_parameters.get("value")
        for gone in ({"key": key, "value": value}, {"key": unquote(key), "value": unquote(value)}):
            if gone in LABELS:
                LABELS.remove(gone)
    if case.operation.label == "DELETE /sources/{id}" and response.status_code == 200:
        gone = case.path_parameters.get("id")
        if gone in LIVE_SOURCES:
            LIVE_SOURCES.remove(gone)
    for source in [data.get("source")] + list(data.get("sources") or []):
        if isinstance(source, dict) and source.get("id") not in LIVE_SOURCES:
            LIVE_SOURCES.append(source["id"])
    for key in ("source", "destination", "warehouse"):
        for item in [data.get(key)] + list(data.get(key + "s") or []):
            if isinstance(item, dict) and isinstance(item.get("metadata"), dict):
                KINDS[item["id"]] = item["metadata"]
    label = data.get("label")
    for item in [label] + list(data.get("labels") or []):
        if isinstance(item, dict) and "description" in item:
            pair = {"key": item["key"], "value": item["value"]}
            if pair not in LABELS:
                LABELS.append(pair)
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
    path_id = (case.path_parameters or {}).get("id")
    if isinstance(body, dict) and case.method.upper() == "PATCH" and isinstance(body.get("settings"), dict):
        kind = KINDS.get(path_id)
        if kind is not None:
            body["settings"] = _own_settings(body["settings"], kind)
    if isinstance(body, dict) and isinstance(body.get("labels"), list):
        body["labels"] = [LABELS[i % len(LABELS)] for i in range(len(body["labels"]))] if LABELS else []
        # One source carries a label once.
        unique = []
        for label in body["labels"]:
            if label not in unique:
                unique.append(label)
        body["labels"] = unique
    if isinstance(body, dict) and isinstance(body.get("rules"), list):
        for i, rule in enumerate(body["rules"]):
            if isinstance(rule, dict) and "jsonSchema" in rule:
                rule["jsonSchema"] = RULE_SCHEMAS[i % len(RULE_SCHEMAS)]
    if case.operation.label == "POST /tracking-plans/{id}/sources" and isinstance(body, dict) and LIVE_SOURCES:
        if body.get("sourceId") not in LIVE_SOURCES:
            body["sourceId"] = LIVE_SOURCES[len(str(body)) % len(LIVE_SOURCES)]
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


def _own_settings(settings, kind):
    """The settings of a PATCH, kept to what the resource's kind takes: its
    options (a required one never null), and null for any other key (which
    removes it)."""
    options = {o["name"]: o for o in kind.get("options", [])}
    kept = {}
    for key, value in settings.items():
        option = options.get(key)
        if option is None:
            if value is None:
                kept[key] = None
        elif value is not None or not option.get("required"):
            kept[key] = value
    return kept
