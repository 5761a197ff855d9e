//! The durable email outbox. Rows are claimed with a lease (and, on
//! PostgreSQL, `FOR UPDATE SKIP LOCKED`), so several replicas can run
//! workers without sending a message twice in normal operation; a worker
//! that dies mid-send leaves a lease that expires, and the message is sent
//! later (at least once, with the same Message-ID). A worker starts a send
//! only under a lease that outlasts it (renewing it first when too little
//! is left) and settles a message only while it still holds it, so a
//! worker whose lease ran out can neither send a message another worker
//! took over nor overwrite that worker's record. Failed rows
//! are retried with backoff and, after the last attempt, kept as dead:
//! never deleted.

use std::time::Duration;

use rand::Rng;
use serde::Serialize;

use super::{Db, FromRow, Result, Row, Tx};
use crate::args;
use crate::id::new_id;
use crate::notify::templates::Rendered;
use crate::notify::Priority;
use crate::time::now_micros;

#[derive(Debug, Clone)]
pub struct ClaimedMessage {
    pub id: String,
    pub message_id: String,
    pub recipient: String,
    pub subject: String,
    pub body_text: String,
    pub body_html: String,
    pub attempts: i64,
    pub priority: i64,
    pub due_at: i64,
}

impl FromRow for ClaimedMessage {
    fn from_row(row: &impl Row) -> Result<Self> {
        Ok(ClaimedMessage {
            id: row.text("id")?,
            message_id: row.text("message_id")?,
            recipient: row.text("recipient")?,
            subject: row.text("subject")?,
            body_text: row.text("body_text")?,
            body_html: row.text("body_html")?,
            attempts: row.int("attempts")?,
            priority: row.int("priority")?,
            due_at: row.int("next_attempt_at")?,
        })
    }
}

/// Returns false when a message with this Message-ID is already queued.
pub async fn enqueue(
    tx: &mut Tx,
    workspace_id: &str,
    recipient: &str,
    message_id: &str,
    priority: Priority,
    rendered: &Rendered,
) -> Result<bool> {
    let now = now_micros();
    let inserted = tx
        .execute(
            "INSERT INTO outbox (id, message_id, workspace_id, recipient, subject, body_text,
                 body_html, created_at, next_attempt_at, priority)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9)
             ON CONFLICT (message_id) DO NOTHING",
            args![
                new_id(),
                message_id,
                workspace_id,
                recipient,
                rendered.subject,
                rendered.text,
                rendered.html,
                now,
                priority as i64
            ],
        )
        .await?;
    Ok(inserted == 1)
}

/// Claims up to `limit` due messages of at most `max_priority`, highest
/// priority (lowest number) first, then oldest due first; returned in that
/// order.
pub async fn claim(
    db: &Db,
    worker: &str,
    lease: Duration,
    limit: i64,
    max_priority: Priority,
) -> Result<Vec<ClaimedMessage>> {
    let now = now_micros();
    let sql = format!(
        "UPDATE outbox SET locked_until = $1, locked_by = $2
         WHERE id IN (
             SELECT id FROM outbox
             WHERE sent_at IS NULL AND dead_at IS NULL AND next_attempt_at <= $3
               AND (locked_until IS NULL OR locked_until < $3) AND priority <= $5
             ORDER BY priority, next_attempt_at
             LIMIT $4 {})
         RETURNING id, message_id, recipient, subject, body_text, body_html, attempts, priority,
             next_attempt_at",
        db.skip_locked()
    );
    let mut claimed: Vec<ClaimedMessage> = db
        .execute_returning(
            &sql,
            args![
                now + lease.as_micros() as i64,
                worker,
                now,
                limit,
                max_priority as i64
            ],
        )
        .await?;
    // RETURNING gives no order.
    claimed.sort_by_key(|m| (m.priority, m.due_at));
    Ok(claimed)
}

/// Extends `worker`'s lease on a message to `lease` from now, right before
/// it is sent, so that the send and the recording of its result fit in the
/// lease (the settings keep the SMTP timeout under half of it). False when
/// the worker no longer holds the message: its lease ran out and another
/// worker claimed it, or it was settled meanwhile. It must not be sent.
pub async fn renew(db: &Db, id: &str, worker: &str, lease: Duration) -> Result<bool> {
    let renewed = db
        .execute(
            "UPDATE outbox SET locked_until = $1
             WHERE id = $2 AND locked_by = $3 AND sent_at IS NULL AND dead_at IS NULL",
            args![now_micros() + lease.as_micros() as i64, id, worker],
        )
        .await?;
    Ok(renewed == 1)
}

/// Marks a message sent by `worker`. False when the worker no longer held
/// it: the row is then another worker's to settle, and is left alone.
pub async fn mark_sent(db: &Db, id: &str, worker: &str) -> Result<bool> {
    let marked = db
        .execute(
            "UPDATE outbox SET sent_at = $1, attempts = attempts + 1, locked_until = NULL,
                 locked_by = NULL, last_error = NULL
             WHERE id = $2 AND locked_by = $3",
            args![now_micros(), id, worker],
        )
        .await?;
    Ok(marked == 1)
}

/// What recording a failed attempt did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failed {
    /// Queued for another attempt.
    Retry,
    /// That was the last attempt: kept as dead.
    Dead,
    /// The worker no longer held the message; another worker's lease
    /// stands and nothing was recorded.
    LeaseLost,
}

/// Records `worker`'s failed attempt.
pub async fn mark_failed(
    db: &Db,
    message: &ClaimedMessage,
    worker: &str,
    error: &str,
    max_attempts: u32,
    backoff_base: Duration,
    permanent: bool,
) -> Result<Failed> {
    let attempts = message.attempts + 1;
    let now = now_micros();
    let dead = permanent || attempts >= max_attempts as i64;
    let next = now + backoff(backoff_base, attempts).as_micros() as i64;
    let marked = db
        .execute(
            "UPDATE outbox SET attempts = $1, last_error = $2, next_attempt_at = $3,
                 dead_at = $4, locked_until = NULL, locked_by = NULL
             WHERE id = $5 AND locked_by = $6",
            args![
                attempts,
                error,
                next,
                dead.then_some(now),
                message.id,
                worker
            ],
        )
        .await?;
    Ok(match (marked, dead) {
        (0, _) => Failed::LeaseLost,
        (_, true) => Failed::Dead,
        (_, false) => Failed::Retry,
    })
}

/// Exponential backoff with ±50% jitter, capped at an hour, so that a mail
/// server coming back is not met by every replica at the same instant.
pub fn backoff(base: Duration, attempts: i64) -> Duration {
    let exp = base.as_secs_f64() * 2f64.powi((attempts - 1).clamp(0, 20) as i32);
    let jitter = rand::thread_rng().gen_range(0.5..1.5);
    Duration::from_secs_f64((exp * jitter).min(3600.0))
}

/// Gives back what a stopping worker still holds.
pub async fn release(db: &Db, worker: &str) -> Result<u64> {
    db.execute(
        "UPDATE outbox SET locked_until = NULL, locked_by = NULL
         WHERE locked_by = $1 AND sent_at IS NULL",
        args![worker],
    )
    .await
}

#[derive(Debug, Clone, Serialize)]
pub struct OutboxEntry {
    pub id: String,
    pub message_id: String,
    pub recipient: String,
    pub subject: String,
    pub attempts: i64,
    pub created_at: String,
    pub state: &'static str,
    pub last_error: Option<String>,
}

pub async fn list(db: &Db, dead_only: bool) -> Result<Vec<OutboxEntry>> {
    let filter = if dead_only {
        "WHERE dead_at IS NOT NULL"
    } else {
        ""
    };
    db.fetch_all(
        &format!(
            "SELECT id, message_id, recipient, subject, attempts, created_at, sent_at, dead_at,
                    last_error
             FROM outbox {filter} ORDER BY created_at, id"
        ),
        args![],
    )
    .await
}

impl FromRow for OutboxEntry {
    fn from_row(row: &impl Row) -> Result<Self> {
        Ok(OutboxEntry {
            id: row.text("id")?,
            message_id: row.text("message_id")?,
            recipient: row.text("recipient")?,
            subject: row.text("subject")?,
            attempts: row.int("attempts")?,
            created_at: crate::time::format_micros(row.int("created_at")?),
            state: match (row.opt_int("sent_at")?, row.opt_int("dead_at")?) {
                (Some(_), _) => "sent",
                (None, Some(_)) => "dead",
                _ => "pending",
            },
            last_error: row.opt_text("last_error")?,
        })
    }
}

/// Puts a dead (or pending) message back in the queue for a fresh series of
/// attempts. False when there is no unsent message with that id.
pub async fn retry(db: &Db, id: &str) -> Result<bool> {
    let updated = db
        .execute(
            "UPDATE outbox SET dead_at = NULL, attempts = 0, next_attempt_at = $1,
                 locked_until = NULL, locked_by = NULL
             WHERE id = $2 AND sent_at IS NULL",
            args![now_micros(), id],
        )
        .await?;
    Ok(updated == 1)
}

#[derive(Clone)]
pub struct Stats {
    pub due: i64,
    pub dead: i64,
    pub oldest_due_micros: Option<i64>,
}

pub async fn stats(db: &Db) -> Result<Stats> {
    db.fetch_one(
        "SELECT
            (SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL AND dead_at IS NULL) AS due,
            (SELECT COUNT(*) FROM outbox WHERE dead_at IS NOT NULL) AS dead,
            (SELECT MIN(created_at) FROM outbox WHERE sent_at IS NULL AND dead_at IS NULL)
                AS oldest_due",
        args![],
    )
    .await
}

impl FromRow for Stats {
    fn from_row(row: &impl Row) -> Result<Self> {
        Ok(Stats {
            due: row.int("due")?,
            dead: row.int("dead")?,
            oldest_due_micros: row.opt_int("oldest_due")?,
        })
    }
}
