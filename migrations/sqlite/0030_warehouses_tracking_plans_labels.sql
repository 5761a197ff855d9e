-- Issue 15: warehouses and their sources, tracking plans with their rules
-- and sources, and the workspace's labels. Times are microseconds, flags
-- 0/1, as everywhere.

-- Warehouses are instances of GET /catalog/warehouses, like destinations
-- are of theirs, but take events from any number of sources.
CREATE TABLE warehouses (
    id            TEXT PRIMARY KEY,
    workspace_id  TEXT NOT NULL REFERENCES workspaces(id),
    name          TEXT NOT NULL,
    enabled       BIGINT NOT NULL,
    settings      TEXT NOT NULL,
    catalog_id    TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE INDEX warehouses_workspace ON warehouses (workspace_id, created_at, id);

CREATE TABLE warehouse_sources (
    warehouse_id  TEXT NOT NULL REFERENCES warehouses(id),
    source_id     TEXT NOT NULL REFERENCES sources(id),
    PRIMARY KEY (warehouse_id, source_id)
);
CREATE INDEX warehouse_sources_source ON warehouse_sources (source_id, warehouse_id);

CREATE TABLE tracking_plans (
    id            TEXT PRIMARY KEY,
    workspace_id  TEXT NOT NULL REFERENCES workspaces(id),
    name          TEXT NOT NULL,
    description   TEXT NOT NULL,
    type          TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE INDEX tracking_plans_workspace ON tracking_plans (workspace_id, created_at, id);

-- A rule is known by (type, key, version); key is '' for the types that
-- have none. `id` only orders rules created together, for keyset pages.
CREATE TABLE tracking_plan_rules (
    tracking_plan_id  TEXT NOT NULL REFERENCES tracking_plans(id),
    id                TEXT NOT NULL,
    type              TEXT NOT NULL,
    key               TEXT NOT NULL,
    version           BIGINT NOT NULL,
    json_schema       TEXT NOT NULL,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    PRIMARY KEY (tracking_plan_id, type, key, version),
    UNIQUE (tracking_plan_id, id)
);
CREATE INDEX tracking_plan_rules_order ON tracking_plan_rules (tracking_plan_id, created_at, id);

-- A source follows at most one tracking plan, as in Segment.
CREATE TABLE tracking_plan_sources (
    source_id         TEXT PRIMARY KEY REFERENCES sources(id),
    tracking_plan_id  TEXT NOT NULL REFERENCES tracking_plans(id)
);
CREATE INDEX tracking_plan_sources_plan ON tracking_plan_sources (tracking_plan_id, source_id);

-- The labels a workspace's sources may carry (sources keep their own copy
-- in sources.labels). `id` names a label in the audit trail.
CREATE TABLE labels (
    id            TEXT PRIMARY KEY,
    workspace_id  TEXT NOT NULL REFERENCES workspaces(id),
    key           TEXT NOT NULL,
    value         TEXT NOT NULL,
    description   TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    UNIQUE (workspace_id, key, value)
);
CREATE INDEX labels_workspace ON labels (workspace_id, created_at, id);

-- Sources labelled before labels were a workspace's own: each label they
-- carry becomes one of the workspace's labels.
INSERT INTO labels (id, workspace_id, key, value, description, created_at)
SELECT lower(hex(randomblob(12))), workspace_id, key, value, '', MIN(created_at)
FROM (
    SELECT s.workspace_id, json_extract(l.value, '$.key') AS key,
           json_extract(l.value, '$.value') AS value, s.created_at
    FROM sources s, json_each(s.labels) l
)
GROUP BY workspace_id, key, value;
