//! Records of alerts that matched none of our tokens, written in batches.
//! Such an alert changes nothing but its own record, yet every one of them
//! queued for SQLite's single writer, and each statement there costs two
//! thread hand-offs (sqlx runs each SQLite connection on a thread of its
//! own). One multi-row INSERT of all the records waiting at that moment
//! pays the hand-offs once. An alert is still answered only after its own
//! record is committed.

use tokio::sync::{mpsc, oneshot};

use crate::db::{rows_per_statement, Db};
use crate::revocation::{record_alerts, LeakAlert, ALERT_COLUMNS};

struct Pending {
    alert: LeakAlert,
    written: oneshot::Sender<bool>,
}

pub struct AlertRecorder {
    queue: mpsc::UnboundedSender<Pending>,
}

impl AlertRecorder {
    /// Starts the writing task, which ends when the recorder is dropped.
    pub fn start(db: Db) -> AlertRecorder {
        let (queue, waiting) = mpsc::unbounded_channel();
        tokio::spawn(write_batches(db, waiting));
        AlertRecorder { queue }
    }

    /// Records `alert` (matching none of our tokens), committed on return.
    pub async fn record(&self, db: &Db, alert: &LeakAlert) -> Result<(), sqlx::Error> {
        let (written, done) = oneshot::channel();
        let pending = Pending {
            alert: alert.clone(),
            written,
        };
        if self.queue.send(pending).is_ok() && done.await == Ok(true) {
            return Ok(());
        }
        // The batch failed (or the task is gone): alone, this alert gets
        // its own error, which says whether GitHub should retry.
        record_alerts(db.pool(), &[(alert, 0)]).await
    }
}

async fn write_batches(db: Db, mut waiting: mpsc::UnboundedReceiver<Pending>) {
    // One statement per batch, so a batch is written whole or not at all.
    let limit = rows_per_statement(ALERT_COLUMNS);
    let mut batch = Vec::with_capacity(limit);
    while waiting.recv_many(&mut batch, limit).await > 0 {
        let rows: Vec<(&LeakAlert, usize)> = batch.iter().map(|p| (&p.alert, 0)).collect();
        let written = match record_alerts(db.pool(), &rows).await {
            Ok(()) => true,
            Err(e) => {
                tracing::debug!(error = %e, alerts = batch.len(), "batched alert records failed; writing each alone");
                false
            }
        };
        for pending in batch.drain(..) {
            let _ = pending.written.send(written);
        }
    }
}
