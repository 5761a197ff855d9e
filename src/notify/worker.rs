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
    /// How long one send may take (LEAKGUARD_SMTP_TIMEOUT_SECS).
    send_timeout: Duration,
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
            send_timeout: settings.smtp_timeout,
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
            let (claimed, lease_until) = self.claim(Priority::Notification).await;
            let full_batch = claimed.len() as i64 == BATCH;
            for message in &claimed {
                if *shutdown.borrow() {
                    break;
                }
                // Sign-in mail queued while this batch is being sent goes
                // before the rest of it: a person is waiting for it.
                if self.urgent.swap(false, Ordering::SeqCst) {
                    let (urgent, urgent_lease) = self.claim(Priority::SignIn).await;
                    for message in &urgent {
                        self.deliver(message, urgent_lease).await;
                    }
                }
                self.deliver(message, lease_until).await;
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

    /// Claims a batch; with it, when its lease ends at the earliest (taken
    /// before the claim: the database's lease ends no sooner).
    async fn claim(&self, max_priority: Priority) -> (Vec<ClaimedMessage>, std::time::Instant) {
        let lease_until = std::time::Instant::now() + self.lease;
        match outbox::claim(&self.db, &self.id, self.lease, BATCH, max_priority).await {
            Ok(c) => (c, lease_until),
            Err(e) => {
                tracing::warn!(error = %e, "outbox claim failed; retrying after the poll interval");
                (Vec::new(), lease_until)
            }
        }
    }

    async fn deliver(&self, message: &ClaimedMessage, lease_until: std::time::Instant) {
        let to = mask_email(&message.recipient);
        // A batch is claimed at once and sent one by one: a message late in
        // the batch may not have a send's worth of lease left, or may have
        // lost it to another worker already. A send starts only under a
        // lease that outlasts it.
        if lease_until.saturating_duration_since(std::time::Instant::now()) < self.send_timeout {
            match outbox::renew(&self.db, &message.id, &self.id, self.lease).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::info!(outbox_id = %message.id, "another worker took this email over; not sending it");
                    return;
                }
                Err(e) => {
                    tracing::warn!(outbox_id = %message.id, error = %e, "cannot renew the lease on an email; leaving it to the next claim");
                    return;
                }
            }
        }
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
                    &self.id,
                    &err.to_string(),
                    self.max_attempts,
                    self.backoff_base,
                    permanent,
                )
                .await;
                match result {
                    Ok(outbox::Failed::Dead) => {
                        self.metrics.outbox_dead.inc();
                        tracing::error!(
                            outbox_id = %message.id, to = %to, attempts = message.attempts + 1,
                            error = %err,
                            "email is dead after its last attempt; see `leakguard outbox list --dead`"
                        );
                    }
                    Ok(outbox::Failed::Retry) => tracing::warn!(
                        outbox_id = %message.id, to = %to, attempts = message.attempts + 1,
                        error = %err, "email send failed; will retry"
                    ),
                    Ok(outbox::Failed::LeaseLost) => tracing::warn!(
                        outbox_id = %message.id, to = %to, error = %err,
                        "email send failed after another worker took it over; its attempt stands"
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
            let e = match outbox::mark_sent(&self.db, &message.id, &self.id).await {
                Ok(true) => return,
                Ok(false) => {
                    tracing::warn!(outbox_id = %message.id, "email sent, but another worker had taken it over; it may arrive twice (same Message-ID)");
                    return;
                }
                Err(e) => e,
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
