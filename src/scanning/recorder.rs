//! Records of alerts that matched none of our tokens. Such an alert
//! changes nothing but its own record, and an alert is answered only after
//! its record is committed. Records are written in batches: one multi-row
//! INSERT of all the records waiting at that moment pays the commit once.
//!
//! On SQLite a batch is written on a worker thread, while the write lock is
//! free (`Db::try_execute_now`): each alert leaves its record in `waiting`
//! and yields, so that the other requests its worker has ready run first
//! and leave theirs; then whoever comes first writes everything waiting.
//! Handing records to sqlx's writer thread instead cost each batch a chain
//! of thread hand-offs, and on a busy machine each hand-off waited for a
//! turn of the scheduler. When the write lock is taken, and always on
//! PostgreSQL, records go to a task that gathers them for `GATHER`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::db::alerts::{self, AlertRecord, ALERT_COLUMNS};
use crate::db::batches::spawn_batches;
use crate::db::{rows_per_statement, Backend, Db};

/// How long a batch waits for more alerts after its first, on SQLite.
/// Verifying a signature takes long enough that alerts trickle in one by
/// one under load; without the wait, each was nearly a batch of its own,
/// and each batch costs several round trips to sqlx's SQLite thread. On
/// PostgreSQL a batch waits for nothing: the alerts that arrive while one
/// INSERT is in flight are the next batch, and the wait only added to each
/// alert's time (0.40-0.43 V with it, 0.48-0.50 V without).
const GATHER: std::time::Duration = std::time::Duration::from_millis(1);

struct Pending {
    alert: AlertRecord,
    written: oneshot::Sender<bool>,
}

pub struct AlertRecorder {
    queue: mpsc::UnboundedSender<Pending>,
    /// Records left for the next batch written on a worker thread.
    waiting: Mutex<Vec<Pending>>,
    /// Set while a worker thread writes batches.
    writing: AtomicBool,
    /// For an alert the batch could not take.
    db: Db,
}

impl AlertRecorder {
    /// Starts the writing task; it ends at shutdown.
    pub fn start(db: Db, shutdown: watch::Receiver<bool>) -> (AlertRecorder, JoinHandle<()>) {
        let writer = db.clone();
        // One statement per batch, so a batch is written whole or not at all.
        let gather = match db.backend() {
            Backend::Sqlite => GATHER,
            Backend::Postgres => std::time::Duration::ZERO,
        };
        let (queue, task) = spawn_batches(
            rows_per_statement(ALERT_COLUMNS),
            gather,
            shutdown,
            move |batch| {
                let db = writer.clone();
                async move { write_batch(&db, batch).await }
            },
        );
        let recorder = AlertRecorder {
            queue,
            waiting: Mutex::new(Vec::new()),
            writing: AtomicBool::new(false),
            db,
        };
        (recorder, task)
    }

    /// Records `alert` (matching none of our tokens), committed on return.
    pub async fn record(&self, alert: &AlertRecord) -> crate::db::Result<()> {
        if self.db.writes_on_workers() {
            let (written, done) = oneshot::channel();
            self.lock_waiting().push(Pending {
                alert: alert.clone(),
                written,
            });
            // Dropped here (the client went away), the record stays
            // waiting for the next alert's write; its alert got no answer.
            tokio::task::yield_now().await;
            self.write_waiting();
            // Written by this call or by another's; false: the write lock
            // was taken, or the batch failed.
            if done.await == Ok(true) {
                return Ok(());
            }
        }
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

impl AlertRecorder {
    fn lock_waiting(&self) -> std::sync::MutexGuard<'_, Vec<Pending>> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes every waiting record, a statement at a time, on this thread;
    /// or leaves them to the thread that is writing already, which looks
    /// again once it is done, so no record is left waiting.
    fn write_waiting(&self) {
        let limit = rows_per_statement(ALERT_COLUMNS);
        while !self.writing.swap(true, Ordering::SeqCst) {
            loop {
                let batch: Vec<Pending> = {
                    let mut waiting = self.lock_waiting();
                    let n = waiting.len().min(limit);
                    waiting.drain(..n).collect()
                };
                if batch.is_empty() {
                    break;
                }
                let rows: Vec<&AlertRecord> = batch.iter().map(|p| &p.alert).collect();
                let written = matches!(alerts::try_record_now(&self.db, &rows), Some(Ok(())));
                for pending in batch {
                    let _ = pending.written.send(written);
                }
            }
            self.writing.store(false, Ordering::SeqCst);
            if self.lock_waiting().is_empty() {
                return;
            }
        }
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
