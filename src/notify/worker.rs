//! The outbox worker: claims due messages, sends them, records the result.
//! It wakes as soon as a transaction enqueues mail; polling is the fallback
//! (and how other replicas' mail is picked up).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lettre::message::Mailbox;
use tokio::sync::{watch, Notify};

use super::transport::{SendError, Transport};
use super::Priority;
use crate::config::Settings;
use crate::db::outbox::{self, ClaimedMessage};
use crate::db::Db;
use crate::metrics::Metrics;
use crate::telemetry::mask_email;

pub struct Worker {
    pub id: String,
    db: Db,
    transport: Transport,
    from: Mailbox,
    max_attempts: u32,
    backoff_base: Duration,
    poll_interval: Duration,
    lease: Duration,
    wake: Arc<Notify>,
    /// Set when sign-in mail was queued (`Notifier::send_sign_in_link`).
    urgent: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
}

const BATCH: i64 = 20;

impl Worker {
    pub fn new(
        settings: &Settings,
        db: Db,
        transport: Transport,
        wake: Arc<Notify>,
        urgent: Arc<AtomicBool>,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Worker> {
        Ok(Worker {
            id: format!("worker-{}", crate::id::new_id()),
            db,
            transport,
            from: settings.mail_from.parse()?,
            max_attempts: settings.outbox_max_attempts,
            backoff_base: settings.outbox_backoff_base,
            poll_interval: settings.outbox_poll_interval,
            lease: settings.outbox_lease,
            wake,
            urgent,
            metrics,
        })
    }

    /// Runs until `shutdown` turns true; then finishes the message in hand
    /// and releases the rest of its claim.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        tracing::info!(worker = %self.id, "outbox worker started");
        loop {
            if *shutdown.borrow() {
                break;
            }
            // Anything queued as urgent from here on is in this claim.
            self.urgent.store(false, Ordering::SeqCst);
            let claimed = self.claim(Priority::Notification).await;
            let full_batch = claimed.len() as i64 == BATCH;
            for message in &claimed {
                if *shutdown.borrow() {
                    break;
                }
                // Sign-in mail queued while this batch is being sent goes
                // before the rest of it: a person is waiting for it.
                if self.urgent.swap(false, Ordering::SeqCst) {
                    for urgent in self.claim(Priority::SignIn).await {
                        self.deliver(&urgent).await;
                    }
                }
                self.deliver(message).await;
            }
            self.refresh_gauges().await;
            if full_batch && !*shutdown.borrow() {
                continue;
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(self.poll_interval) => {}
                _ = shutdown.changed() => {}
            }
        }
        match outbox::release(&self.db, &self.id).await {
            Ok(n) if n > 0 => {
                tracing::info!(released = n, "outbox worker released unsent messages")
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "outbox worker could not release its claim; the lease will expire")
            }
        }
        tracing::info!(worker = %self.id, "outbox worker stopped");
    }

    async fn claim(&self, max_priority: Priority) -> Vec<ClaimedMessage> {
        match outbox::claim(&self.db, &self.id, self.lease, BATCH, max_priority).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "outbox claim failed; retrying after the poll interval");
                Vec::new()
            }
        }
    }

    async fn deliver(&self, message: &ClaimedMessage) {
        let to = mask_email(&message.recipient);
        match self.transport.send(&self.from, message).await {
            Ok(()) => {
                self.metrics.outbox_sent.inc();
                tracing::info!(outbox_id = %message.id, to = %to, "email sent");
                self.record_sent(message).await;
            }
            Err(err) => {
                self.metrics.outbox_failed.inc();
                let permanent = matches!(err, SendError::Permanent(_));
                let result = outbox::mark_failed(
                    &self.db,
                    message,
                    &err.to_string(),
                    self.max_attempts,
                    self.backoff_base,
                    permanent,
                )
                .await;
                match result {
                    Ok(true) => {
                        self.metrics.outbox_dead.inc();
                        tracing::error!(
                            outbox_id = %message.id, to = %to, attempts = message.attempts + 1,
                            error = %err,
                            "email is dead after its last attempt; see `leakguard outbox list --dead`"
                        );
                    }
                    Ok(false) => tracing::warn!(
                        outbox_id = %message.id, to = %to, attempts = message.attempts + 1,
                        error = %err, "email send failed; will retry"
                    ),
                    Err(e) => {
                        tracing::error!(outbox_id = %message.id, error = %e, "could not record a failed send")
                    }
                }
            }
        }
    }

    /// Marks a delivered message sent. The database may be away for a few
    /// seconds (a restart), so this keeps trying for half the lease: once
    /// the lease expires, the message is sent again (same Message-ID; a
    /// duplicate beats a loss), and this avoids that after a short outage.
    async fn record_sent(&self, message: &ClaimedMessage) {
        let give_up = std::time::Instant::now() + self.lease / 2;
        let mut pause = Duration::from_millis(100);
        loop {
            let Err(e) = outbox::mark_sent(&self.db, &message.id).await else {
                return;
            };
            if std::time::Instant::now() + pause >= give_up {
                tracing::error!(outbox_id = %message.id, error = %e, "email sent but not marked sent; it will be sent again after the lease");
                return;
            }
            tracing::warn!(outbox_id = %message.id, error = %e, "email sent; cannot mark it sent yet, retrying");
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(5));
        }
    }

    async fn refresh_gauges(&self) {
        if let Ok(stats) = outbox::stats(&self.db).await {
            self.metrics.outbox_due.set(stats.due);
            self.metrics.outbox_dead_messages.set(stats.dead);
            let age = stats
                .oldest_due_micros
                .map(|t| (crate::time::now_micros() - t).max(0) / 1_000_000)
                .unwrap_or(0);
            self.metrics.outbox_oldest_due_seconds.set(age);
        }
    }
}
