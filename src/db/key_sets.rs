//! `github_key_sets`: the last key set fetched from GitHub, so that a
//! restart during a GitHub outage can still verify alerts, and so that
//! replicas can share one fetch. `github_key_fetches`: when a replica last
//! started a fetch, for each reason to fetch, which the others read before
//! fetching themselves.

use super::{Count, Db, FromRow, Result, Row};
use crate::args;

#[derive(Debug, Clone)]
pub struct StoredKeySet {
    pub body: String,
    pub fetched_at: i64,
}

impl FromRow for StoredKeySet {
    fn from_row(row: &impl Row) -> Result<Self> {
        Ok(StoredKeySet {
            body: row.text("body")?,
            fetched_at: row.int("fetched_at")?,
        })
    }
}

pub async fn load(db: &Db) -> Result<Option<StoredKeySet>> {
    db.fetch_optional(
        "SELECT body, fetched_at FROM github_key_sets WHERE id = 1",
        args![],
    )
    .await
}

pub async fn save(db: &Db, body: &str, fetched_at: i64) -> Result<()> {
    db.execute(
        "INSERT INTO github_key_sets (id, body, fetched_at) VALUES (1, $1, $2)
         ON CONFLICT (id) DO UPDATE SET body = excluded.body, fetched_at = excluded.fetched_at",
        args![body, fetched_at],
    )
    .await?;
    Ok(())
}

/// Why a replica fetches the key set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchPurpose {
    /// At start-up, and periodically.
    Refresh,
    /// An alert named a key identifier that is not in the set.
    UnknownKey,
}

impl FetchPurpose {
    fn as_str(self) -> &'static str {
        match self {
            FetchPurpose::Refresh => "refresh",
            FetchPurpose::UnknownKey => "unknown_key",
        }
    }
}

/// Whether this replica may fetch now: true, and the fetch is recorded as
/// started at `now`, unless some replica started one for the same purpose
/// after `not_since`. One statement, so two replicas asking at once cannot
/// both win.
pub async fn claim_fetch(db: &Db, purpose: FetchPurpose, now: i64, not_since: i64) -> Result<bool> {
    let claimed = db
        .execute(
            "INSERT INTO github_key_fetches (purpose, started_at) VALUES ($1, $2)
             ON CONFLICT (purpose) DO UPDATE SET started_at = excluded.started_at
             WHERE github_key_fetches.started_at <= $3",
            args![purpose.as_str(), now, not_since],
        )
        .await?;
    Ok(claimed == 1)
}

/// When the last fetch for `purpose` by any replica started.
pub async fn last_fetch_started(db: &Db, purpose: FetchPurpose) -> Result<Option<i64>> {
    let started: Option<Count> = db
        .fetch_optional(
            "SELECT started_at AS n FROM github_key_fetches WHERE purpose = $1",
            args![purpose.as_str()],
        )
        .await?;
    Ok(started.map(|Count(at)| at))
}
