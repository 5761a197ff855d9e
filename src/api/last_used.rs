//! `last_used_at` without a database write per request: uses are coalesced
//! in memory and flushed periodically (and at shutdown).

use std::collections::HashMap;
use std::sync::Mutex;

use crate::db::{tokens, Db};
use crate::time::now_micros;

#[derive(Default)]
pub struct LastUsed {
    pending: Mutex<HashMap<String, i64>>,
}

impl LastUsed {
    pub fn touch(&self, token_id: &str) {
        let now = now_micros();
        let mut pending = self.pending.lock().expect("last-used lock");
        // A token in use is pending already: no key to allocate.
        match pending.get_mut(token_id) {
            Some(last) => *last = now,
            None => {
                pending.insert(token_id.to_string(), now);
            }
        }
    }

    /// The not-yet-flushed use of a token, to show fresh values in lists.
    pub fn pending(&self, token_id: &str) -> Option<i64> {
        self.pending
            .lock()
            .expect("last-used lock")
            .get(token_id)
            .copied()
    }

    /// A token's last use, including one not flushed yet.
    pub fn latest(&self, token: &crate::db::tokens::Token) -> Option<crate::time::Timestamp> {
        let pending = self.pending(token.id.as_str()).map(crate::time::Timestamp);
        token.last_used_at.max(pending)
    }

    /// Writes the pending uses. Those not written (the database refused
    /// one) stay pending for the next flush, unless a newer use replaced
    /// them meanwhile.
    pub async fn flush(&self, db: &Db) -> crate::db::Result<usize> {
        let batch: Vec<(String, i64)> = {
            let mut pending = self.pending.lock().expect("last-used lock");
            pending.drain().collect()
        };
        let mut written = 0;
        let mut failure = None;
        for (token_id, at) in &batch {
            if failure.is_none() {
                match tokens::set_last_used(db, token_id, *at).await {
                    Ok(()) => {
                        written += 1;
                        continue;
                    }
                    Err(e) => failure = Some(e),
                }
            }
            let mut pending = self.pending.lock().expect("last-used lock");
            let kept = pending.entry(token_id.clone()).or_insert(*at);
            *kept = (*kept).max(*at);
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(written),
        }
    }
}
