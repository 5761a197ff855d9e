//! `github_key_sets`: the last key set fetched from GitHub, so that a
//! restart during a GitHub outage can still verify alerts.

use super::{Db, FromRow, Result, Row};
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
