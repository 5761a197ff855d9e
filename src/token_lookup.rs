//! Stored tokens found by the SHA-256 of their plaintext: for every
//! authenticated request and every alert.
//!
//! Lookups that arrive together share one query. Each query costs thread
//! hand-offs that dwarf the lookup itself (sqlx runs each SQLite connection
//! on a thread of its own, and SQLite has one connection here), so under
//! load the connection, not the CPU, was the limit. A lookup still reads
//! the database after it was asked for: a revocation committed before a
//! request arrived is seen by that request, on every replica. There is no
//! cache.

use std::collections::HashMap;
use std::sync::LazyLock;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::db::batches::spawn_batches;
use crate::db::{Backend, Db};
use crate::revocation::{token_record, TokenRecord, TOKEN_RECORD_COLUMNS};

/// Larger lookups (big alerts) run alone rather than hold up small ones.
const MAX_SHARED_HASHES: usize = 64;
/// Lookups answered by one query at most.
const MAX_BATCH: usize = 256;

struct Pending {
    hashes: Vec<String>,
    found: oneshot::Sender<Option<Vec<TokenRecord>>>,
}

pub struct TokenLookup {
    queue: mpsc::UnboundedSender<Pending>,
    /// For lookups that run alone.
    db: Db,
}

impl TokenLookup {
    /// Starts the task that runs shared queries; it ends at shutdown.
    pub fn start(db: Db, shutdown: watch::Receiver<bool>) -> (TokenLookup, JoinHandle<()>) {
        let reader = db.clone();
        let (queue, task) = spawn_batches(MAX_BATCH, shutdown, move |batch| {
            let db = reader.clone();
            async move { answer_batch(&db, batch).await }
        });
        (TokenLookup { queue, db }, task)
    }

    /// The stored tokens, revoked ones included, whose hash is in `hashes`.
    pub async fn find(&self, hashes: &[&str]) -> Result<Vec<TokenRecord>, sqlx::Error> {
        if hashes.is_empty() {
            return Ok(Vec::new());
        }
        if hashes.len() <= MAX_SHARED_HASHES {
            let (found, answer) = oneshot::channel();
            let pending = Pending {
                hashes: hashes.iter().map(|h| h.to_string()).collect(),
                found,
            };
            if self.queue.send(pending).is_ok() {
                if let Ok(Some(records)) = answer.await {
                    return Ok(records);
                }
            }
        }
        // Too large to share, or the shared query failed (or the task is
        // gone): alone, this lookup gets its own error, which says whether
        // the caller should retry.
        find_by_hash(&self.db, hashes.iter().copied()).await
    }
}

async fn answer_batch(db: &Db, batch: Vec<Pending>) {
    let hashes = batch
        .iter()
        .flat_map(|p| p.hashes.iter().map(String::as_str));
    match find_by_hash(db, hashes).await {
        Ok(records) => {
            let by_hash: HashMap<&str, &TokenRecord> =
                records.iter().map(|r| (r.token_hash.as_str(), r)).collect();
            for pending in batch {
                let mine = pending
                    .hashes
                    .iter()
                    .filter_map(|h| by_hash.get(h.as_str()).map(|r| (*r).clone()))
                    .collect();
                let _ = pending.found.send(Some(mine));
            }
        }
        Err(e) => {
            tracing::debug!(error = %e, lookups = batch.len(), "shared token lookup failed; each runs alone");
            for pending in batch {
                let _ = pending.found.send(None);
            }
        }
    }
}

// The JSON array drives the join, one index probe per hash. `IN (SELECT …)`
// made SQLite first copy the array into a temporary b-tree; CROSS JOIN is
// how SQLite is told the loop order. Built once: every lookup runs one.
static SQLITE_LOOKUP: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {} FROM json_each($1) AS j CROSS JOIN tokens AS t ON t.token_hash = j.value",
        token_columns()
    )
});
static POSTGRES_LOOKUP: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {} FROM json_array_elements_text($1::json) AS j(hash)
         JOIN tokens AS t ON t.token_hash = j.hash",
        token_columns()
    )
});

/// `TOKEN_RECORD_COLUMNS` of the `tokens AS t` side of a join (json_each
/// has an `id` column too).
fn token_columns() -> String {
    TOKEN_RECORD_COLUMNS
        .split(", ")
        .map(|c| format!("t.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One query for any number of hashes. They travel as one JSON array
/// parameter: an IN list of one parameter per hash made SQLite look each
/// parameter up by name (9% of a 10,000-token alert) and needed a statement
/// per 500 hashes. An alert looks up outside its write transaction; the
/// revoking UPDATE re-checks `revoked_at` itself.
async fn find_by_hash<'a>(
    db: &Db,
    hashes: impl Iterator<Item = &'a str>,
) -> Result<Vec<TokenRecord>, sqlx::Error> {
    let sql: &str = match db.backend() {
        Backend::Sqlite => &SQLITE_LOOKUP,
        Backend::Postgres => &POSTGRES_LOOKUP,
    };
    let hashes =
        serde_json::to_string(&hashes.collect::<Vec<_>>()).expect("a list of strings serialises");
    let rows = sqlx::query(sql).bind(hashes).fetch_all(db.pool()).await?;
    Ok(rows.iter().map(token_record).collect())
}
