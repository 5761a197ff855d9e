-- Times are microseconds since the Unix epoch (BIGINT) and flags are 0/1 so
-- that one set of queries reads the same on SQLite and PostgreSQL.

CREATE TABLE workspaces (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    slug        TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL,
    -- Head of the workspace's audit hash chain; updated in the same
    -- transaction as every append, which also serialises appenders.
    audit_seq   BIGINT NOT NULL DEFAULT 0,
    audit_head  TEXT NOT NULL DEFAULT ''
);

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    workspace_id  TEXT NOT NULL REFERENCES workspaces(id),
    email         TEXT NOT NULL,
    name          TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('owner', 'member', 'read_only')),
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    UNIQUE (workspace_id, email)
);

CREATE TABLE tokens (
    id              TEXT PRIMARY KEY,
    workspace_id    TEXT NOT NULL REFERENCES workspaces(id),
    name            TEXT NOT NULL,
    role            TEXT NOT NULL CHECK (role IN ('owner', 'member', 'read_only')),
    token_hash      TEXT NOT NULL UNIQUE,
    hint            TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    created_by      TEXT NOT NULL,
    last_used_at    BIGINT,
    revoked_at      BIGINT,
    revoked_reason  TEXT
);
CREATE INDEX tokens_workspace ON tokens (workspace_id, created_at, id);

CREATE TABLE sources (
    id            TEXT PRIMARY KEY,
    workspace_id  TEXT NOT NULL REFERENCES workspaces(id),
    slug          TEXT NOT NULL,
    name          TEXT NOT NULL,
    enabled       BIGINT NOT NULL,
    settings      TEXT NOT NULL,
    labels        TEXT NOT NULL,
    catalog_id    TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    UNIQUE (workspace_id, slug)
);
CREATE INDEX sources_workspace ON sources (workspace_id, created_at, id);

CREATE TABLE destinations (
    id            TEXT PRIMARY KEY,
    workspace_id  TEXT NOT NULL REFERENCES workspaces(id),
    source_id     TEXT NOT NULL REFERENCES sources(id),
    name          TEXT NOT NULL,
    enabled       BIGINT NOT NULL,
    settings      TEXT NOT NULL,
    catalog_id    TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE INDEX destinations_workspace ON destinations (workspace_id, created_at, id);

CREATE TABLE audit_events (
    workspace_id   TEXT NOT NULL REFERENCES workspaces(id),
    seq            BIGINT NOT NULL,
    id             TEXT NOT NULL UNIQUE,
    occurred_at    BIGINT NOT NULL,
    type           TEXT NOT NULL,
    actor          TEXT NOT NULL,
    resource_id    TEXT NOT NULL,
    resource_type  TEXT NOT NULL,
    resource_name  TEXT NOT NULL,
    details        TEXT NOT NULL,
    prev_hash      TEXT NOT NULL,
    hash           TEXT NOT NULL,
    PRIMARY KEY (workspace_id, seq)
);
CREATE INDEX audit_events_actor ON audit_events (workspace_id, actor, seq);
CREATE INDEX audit_events_resource ON audit_events (workspace_id, resource_id, seq);

CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END;

CREATE TABLE alerts (
    id              TEXT PRIMARY KEY,
    received_at     BIGINT NOT NULL,
    key_identifier  TEXT NOT NULL,
    reported        BIGINT NOT NULL,
    matched         BIGINT NOT NULL,
    revoked         BIGINT NOT NULL
);

CREATE TABLE token_reports (
    alert_id     TEXT NOT NULL REFERENCES alerts(id),
    token_id     TEXT NOT NULL REFERENCES tokens(id),
    url          TEXT NOT NULL,
    source       TEXT NOT NULL,
    token_type   TEXT NOT NULL,
    reported_at  BIGINT NOT NULL,
    revoked      BIGINT NOT NULL,
    PRIMARY KEY (alert_id, token_id)
);
CREATE INDEX token_reports_token ON token_reports (token_id);

CREATE TABLE outbox (
    id               TEXT PRIMARY KEY,
    -- Stable per (alert, owner): a retried or re-claimed send keeps it.
    message_id       TEXT NOT NULL UNIQUE,
    workspace_id     TEXT NOT NULL,
    recipient        TEXT NOT NULL,
    subject          TEXT NOT NULL,
    body_text        TEXT NOT NULL,
    body_html        TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    attempts         BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT NOT NULL,
    locked_until     BIGINT,
    locked_by        TEXT,
    sent_at          BIGINT,
    dead_at          BIGINT,
    last_error       TEXT
);
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE sent_at IS NULL AND dead_at IS NULL;

-- The last key set fetched successfully from GitHub, so that a restart during
-- a GitHub outage can still verify alerts.
CREATE TABLE github_key_sets (
    id          BIGINT PRIMARY KEY CHECK (id = 1),
    body        TEXT NOT NULL,
    fetched_at  BIGINT NOT NULL
);
