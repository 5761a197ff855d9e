//! Records of alerts that matched none of our tokens, written in batches.
//! Such an alert changes nothing but its own record, yet every one of them
//! queued for SQLite's single writer, and each statement there costs two
//! thread hand-offs (sqlx runs each SQLite connection on a thread of its
//! own). One multi-row INSERT of all the records waiting at that moment
//! pays the hand-offs once. An alert is still answered only after its own
//! record is committed.

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::db::alerts::{self, AlertRecord, ALERT_COLUMNS};
use crate::db::batches::spawn_batches;
use crate::db::{rows_per_statement, Db};

/// How long a batch waits for more alerts after its first. Verifying a
/// signature takes long enough that alerts trickle in one by one under
/// load; without the wait, each was nearly a batch of its own, and each
/// batch costs several round trips to sqlx's SQLite thread.
const GATHER: std::time::Duration = std::time::Duration::from_millis(1);

struct Pending {
    alert: AlertRecord,
    written: oneshot::Sender<bool>,
}

pub struct AlertRecorder {
    queue: mpsc::UnboundedSender<Pending>,
    /// For an alert the batch could not take.
    db: Db,
}

impl AlertRecorder {
    /// Starts the writing task; it ends at shutdown.
    pub fn start(db: Db, shutdown: watch::Receiver<bool>) -> (AlertRecorder, JoinHandle<()>) {
        let writer = db.clone();
        // One statement per batch, so a batch is written whole or not at all.
        let (queue, task) = spawn_batches(
            rows_per_statement(ALERT_COLUMNS),
            GATHER,
            shutdown,
            move |batch| {
                let db = writer.clone();
                async move { write_batch(&db, batch).await }
            },
        );
        (AlertRecorder { queue, db }, task)
    }

    /// Records `alert` (matching none of our tokens), committed on return.
    pub async fn record(&self, alert: &AlertRecord) -> crate::db::Result<()> {
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
        alerts::record(&self.db, &[alert]).await
    }
}

async fn write_batch(db: &Db, batch: Vec<Pending>) {
    let rows: Vec<&AlertRecord> = batch.iter().map(|p| &p.alert).collect();
    let written = match alerts::record(db, &rows).await {
        Ok(()) => true,
        Err(e) => {
            tracing::debug!(error = %e, alerts = batch.len(), "batched alert records failed; writing each alone");
            false
        }
    };
    for pending in batch {
        let _ = pending.written.send(written);
    }
}
