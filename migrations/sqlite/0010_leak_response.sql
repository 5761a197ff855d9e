-- Where every audited change came from. NULL on events recorded before
-- these columns existed; their hashes cover neither (see audit::chain_hash).
ALTER TABLE audit_events ADD COLUMN client_address TEXT;
ALTER TABLE audit_events ADD COLUMN user_agent TEXT;

-- The alert that revoked a token: the token GitHub reported, or one that
-- token created (directly or through tokens it created). An incident page
-- lists a workspace's tokens of one alert.
ALTER TABLE tokens ADD COLUMN revoked_alert_id TEXT;
CREATE INDEX tokens_revoked_alert ON tokens (workspace_id, revoked_alert_id);
CREATE INDEX tokens_created_by ON tokens (created_by);

-- Sign-in mail (0) goes out before notifications (1).
ALTER TABLE outbox ADD COLUMN priority BIGINT NOT NULL DEFAULT 1;
DROP INDEX outbox_due;
CREATE INDEX outbox_due ON outbox (priority, next_attempt_at)
    WHERE sent_at IS NULL AND dead_at IS NULL;

-- One-time console sign-in links: only the SHA-256 of the link's secret.
CREATE TABLE console_sign_in_links (
    token_hash  TEXT PRIMARY KEY,
    email       TEXT NOT NULL,
    -- The console page to open after sign-in.
    next_path   TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT
);
CREATE INDEX console_sign_in_links_expiry ON console_sign_in_links (expires_at);

-- Console sessions: the cookie holds the secret, the row its SHA-256. A
-- session belongs to an email address; each workspace that has a user with
-- that address gives the session that user's role.
CREATE TABLE console_sessions (
    token_hash      TEXT PRIMARY KEY,
    email           TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    last_seen_at    BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    client_address  TEXT,
    user_agent      TEXT
);
CREATE INDEX console_sessions_expiry ON console_sessions (expires_at);

-- Every token's use, reads included, counted per hour and per (client
-- address, user agent, method, route pattern, status class). Written from
-- memory in batches (api::usage), never by a request itself.
CREATE TABLE token_usage (
    token_id        TEXT NOT NULL,
    workspace_id    TEXT NOT NULL,
    hour            BIGINT NOT NULL,
    client_address  TEXT NOT NULL,
    user_agent      TEXT NOT NULL,
    method          TEXT NOT NULL,
    route           TEXT NOT NULL,
    status_class    TEXT NOT NULL,
    requests        BIGINT NOT NULL,
    first_seen      BIGINT NOT NULL,
    last_seen       BIGINT NOT NULL,
    PRIMARY KEY (token_id, hour, client_address, user_agent, method, route, status_class)
);
CREATE INDEX token_usage_workspace ON token_usage (workspace_id, client_address);
CREATE INDEX token_usage_hour ON token_usage (hour);
