//! `last_used_at` without a database write per request: uses are coalesced
//! in memory and flushed periodically (and at shutdown).

use std::collections::HashMap;
use std::sync::Mutex;

use crate::db::Db;
use crate::time::now_micros;

#[derive(Default)]
pub struct LastUsed {
    pending: Mutex<HashMap<String, i64>>,
}

impl LastUsed {
    pub fn touch(&self, token_id: &str) {
        self.pending
            .lock()
            .expect("last-used lock")
            .insert(token_id.to_string(), now_micros());
    }

    /// The not-yet-flushed use of a token, to show fresh values in lists.
    pub fn pending(&self, token_id: &str) -> Option<i64> {
        self.pending
            .lock()
            .expect("last-used lock")
            .get(token_id)
            .copied()
    }

    pub async fn flush(&self, db: &Db) -> Result<usize, sqlx::Error> {
        let batch: Vec<(String, i64)> = {
            let mut pending = self.pending.lock().expect("last-used lock");
            pending.drain().collect()
        };
        for (token_id, at) in &batch {
            sqlx::query(
                "UPDATE tokens SET last_used_at = $1
                 WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $1)",
            )
            .bind(*at)
            .bind(token_id)
            .execute(db.pool())
            .await?;
        }
        Ok(batch.len())
    }
}
