-- When a replica last started fetching GitHub's key set, for each reason to
-- fetch: 'refresh' (start-up and the periodic refresh) and 'unknown_key' (an
-- alert named a key identifier that is not in the set). Replicas share
-- them, so that N replicas make one fetch per interval, not N: a replica
-- fetches only after claiming the fetch here, and otherwise reads the set
-- another replica stored in github_key_sets.
CREATE TABLE github_key_fetches (
    purpose     TEXT PRIMARY KEY CHECK (purpose IN ('refresh', 'unknown_key')),
    started_at  BIGINT NOT NULL
);
