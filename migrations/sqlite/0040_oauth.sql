-- OAuth 2.0 for the Public API: apps that sign client assertions with
-- their own keys, and the access tokens (`sgo_`) they get for them.

CREATE TABLE oauth_apps (
    id                   TEXT PRIMARY KEY,
    workspace_id         TEXT NOT NULL REFERENCES workspaces(id),
    name                 TEXT NOT NULL,
    -- Scope names separated by spaces, as OAuth writes them.
    scopes               TEXT NOT NULL,
    token_lifetime_secs  BIGINT NOT NULL,
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL
);
CREATE INDEX oauth_apps_workspace ON oauth_apps (workspace_id, created_at, id);

-- One or two public keys per app; a key's id is the `kid` of the
-- assertions it verifies.
CREATE TABLE oauth_app_keys (
    id          TEXT PRIMARY KEY,
    app_id      TEXT NOT NULL REFERENCES oauth_apps(id),
    name        TEXT NOT NULL,
    algorithm   TEXT NOT NULL CHECK (algorithm IN ('RS256', 'ES256')),
    -- SubjectPublicKeyInfo, PEM.
    public_key  TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX oauth_app_keys_app ON oauth_app_keys (app_id, created_at, id);

-- The `jti` of every assertion accepted, until the assertion expires: an
-- assertion is good once, on every replica.
CREATE TABLE oauth_assertion_ids (
    app_id      TEXT NOT NULL,
    jti         TEXT NOT NULL,
    expires_at  BIGINT NOT NULL,
    PRIMARY KEY (app_id, jti)
);
CREATE INDEX oauth_assertion_ids_expiry ON oauth_assertion_ids (app_id, expires_at);

-- An access token is a token like any other (found by its hash, revoked by
-- GitHub's alerts, listed in incidents), issued to an app with a scope
-- and an expiry. Public API tokens have none of these.
ALTER TABLE tokens ADD COLUMN oauth_app_id TEXT;
ALTER TABLE tokens ADD COLUMN oauth_key_id TEXT;
ALTER TABLE tokens ADD COLUMN scopes TEXT;
ALTER TABLE tokens ADD COLUMN expires_at BIGINT;
CREATE INDEX tokens_oauth_app ON tokens (oauth_app_id, oauth_key_id);
