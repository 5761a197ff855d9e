-- One row that /readyz rewrites: a committed write is the honest test that
-- the database still takes writes (a read-only file or server, or a full
-- disk, still answers reads).
CREATE TABLE readiness_probe (
    id          BIGINT PRIMARY KEY CHECK (id = 1),
    checked_at  BIGINT NOT NULL
);
