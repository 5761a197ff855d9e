//! Stored tokens found by the SHA-256 of their plaintext: for every
//! authenticated request and every alert. A lookup reads the database after
//! it was asked for, so a revocation committed before a request arrived is
//! seen by that request, on every replica.
//!
//! On SQLite a lookup is a point read on the calling thread, answered from
//! memory while no transaction has committed since it was last read
//! (`db::sqlite_cache`: the check is the one SQLite makes at the start of
//! every read, so there is no window in which a revoked token still
//! works). On PostgreSQL each query is a network round trip, so
//! lookups that arrive together share one query.

use hashbrown::HashMap;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::db::batches::spawn_batches;
use crate::db::tokens::{self, Token};
use crate::db::{Backend, Db};
use crate::domain::TokenHash;

/// Larger lookups (big alerts) run alone rather than hold up small ones.
const MAX_SHARED_HASHES: usize = 64;
/// Lookups answered by one query at most.
const MAX_BATCH: usize = 256;

struct Pending {
    hashes: Vec<TokenHash>,
    found: oneshot::Sender<Option<Vec<Token>>>,
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
        let (queue, task) = spawn_batches(
            MAX_BATCH,
            std::time::Duration::ZERO,
            shutdown,
            move |batch| {
                let db = reader.clone();
                async move { answer_batch(&db, batch).await }
            },
        );
        (TokenLookup { queue, db }, task)
    }

    /// The stored tokens, revoked ones included, whose hash is in `hashes`.
    pub async fn find(&self, hashes: &[&TokenHash]) -> crate::db::Result<Vec<Token>> {
        if self.db.backend() == Backend::Postgres && hashes.len() <= MAX_SHARED_HASHES {
            let (found, answer) = oneshot::channel();
            let pending = Pending {
                hashes: hashes.iter().map(|h| (*h).clone()).collect(),
                found,
            };
            if self.queue.send(pending).is_ok() {
                if let Ok(Some(records)) = answer.await {
                    return Ok(records);
                }
            }
        }
        // SQLite; or too large to share, or the shared query failed (or the
        // task is gone): alone, this lookup gets its own error, which says
        // whether the caller should retry.
        tokens::find_by_hashes(&self.db, hashes).await
    }
}

async fn answer_batch(db: &Db, batch: Vec<Pending>) {
    let hashes: Vec<&TokenHash> = batch.iter().flat_map(|p| p.hashes.iter()).collect();
    match tokens::find_by_hashes(db, &hashes).await {
        Ok(records) => {
            let by_hash: HashMap<&TokenHash, &Token> =
                records.iter().map(|r| (&r.token_hash, r)).collect();
            for pending in batch {
                let mine = pending
                    .hashes
                    .iter()
                    .filter_map(|h| by_hash.get(h).map(|r| (*r).clone()))
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
