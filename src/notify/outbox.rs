//! The durable email outbox. Rows are claimed with a lease (and, on
//! PostgreSQL, `FOR UPDATE SKIP LOCKED`), so several replicas can run
//! workers without sending a message twice in normal operation; a worker
//! that dies mid-send leaves a lease that expires, and the message is sent
//! later (at least once, with the same Message-ID). Failed rows are retried
//! with backoff and, after the last attempt, kept as dead: never deleted.

use std::time::Duration;

use rand::Rng;
use serde::Serialize;
use sqlx::Row;

use super::templates::Rendered;
use crate::db::{Db, Tx};
use crate::id::new_id;
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
}

/// Returns false when a message with this Message-ID is already queued.
pub async fn enqueue(
    tx: &mut Tx,
    workspace_id: &str,
    recipient: &str,
    message_id: &str,
    rendered: &Rendered,
) -> Result<bool, sqlx::Error> {
    let now = now_micros();
    let result = sqlx::query(
        "INSERT INTO outbox (id, message_id, workspace_id, recipient, subject, body_text,
             body_html, created_at, next_attempt_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)
         ON CONFLICT (message_id) DO NOTHING",
    )
    .bind(new_id())
    .bind(message_id)
    .bind(workspace_id)
    .bind(recipient)
    .bind(&rendered.subject)
    .bind(&rendered.text)
    .bind(&rendered.html)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(result.rows_affected() == 1)
}

pub async fn claim(
    db: &Db,
    worker: &str,
    lease: Duration,
    limit: i64,
) -> Result<Vec<ClaimedMessage>, sqlx::Error> {
    let now = now_micros();
    let sql = format!(
        "UPDATE outbox SET locked_until = $1, locked_by = $2
         WHERE id IN (
             SELECT id FROM outbox
             WHERE sent_at IS NULL AND dead_at IS NULL AND next_attempt_at <= $3
               AND (locked_until IS NULL OR locked_until < $3)
             ORDER BY next_attempt_at
             LIMIT $4 {})
         RETURNING id, message_id, recipient, subject, body_text, body_html, attempts",
        db.skip_locked()
    );
    let rows = sqlx::query(&sql)
        .bind(now + lease.as_micros() as i64)
        .bind(worker)
        .bind(now)
        .bind(limit)
        .fetch_all(db.pool())
        .await?;
    Ok(rows
        .iter()
        .map(|r| ClaimedMessage {
            id: r.get(0),
            message_id: r.get(1),
            recipient: r.get(2),
            subject: r.get(3),
            body_text: r.get(4),
            body_html: r.get(5),
            attempts: r.get(6),
        })
        .collect())
}

pub async fn mark_sent(db: &Db, id: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE outbox SET sent_at = $1, attempts = attempts + 1, locked_until = NULL,
             locked_by = NULL, last_error = NULL
         WHERE id = $2",
    )
    .bind(now_micros())
    .bind(id)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Records a failed attempt; returns true when the message is now dead.
pub async fn mark_failed(
    db: &Db,
    message: &ClaimedMessage,
    error: &str,
    max_attempts: u32,
    backoff_base: Duration,
    permanent: bool,
) -> Result<bool, sqlx::Error> {
    let attempts = message.attempts + 1;
    let now = now_micros();
    let dead = permanent || attempts >= max_attempts as i64;
    let next = now + backoff(backoff_base, attempts).as_micros() as i64;
    sqlx::query(
        "UPDATE outbox SET attempts = $1, last_error = $2, next_attempt_at = $3,
             dead_at = $4, locked_until = NULL, locked_by = NULL
         WHERE id = $5",
    )
    .bind(attempts)
    .bind(error)
    .bind(next)
    .bind(dead.then_some(now))
    .bind(&message.id)
    .execute(db.pool())
    .await?;
    Ok(dead)
}

/// Exponential backoff with ±50% jitter, capped at an hour, so that a mail
/// server coming back is not met by every replica at the same instant.
pub fn backoff(base: Duration, attempts: i64) -> Duration {
    let exp = base.as_secs_f64() * 2f64.powi((attempts - 1).clamp(0, 20) as i32);
    let jitter = rand::thread_rng().gen_range(0.5..1.5);
    Duration::from_secs_f64((exp * jitter).min(3600.0))
}

/// Gives back what a stopping worker still holds.
pub async fn release(db: &Db, worker: &str) -> Result<u64, sqlx::Error> {
    let result = sqlx::query(
        "UPDATE outbox SET locked_until = NULL, locked_by = NULL
         WHERE locked_by = $1 AND sent_at IS NULL",
    )
    .bind(worker)
    .execute(db.pool())
    .await?;
    Ok(result.rows_affected())
}

#[derive(Debug, Serialize)]
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

pub async fn list(db: &Db, dead_only: bool) -> Result<Vec<OutboxEntry>, sqlx::Error> {
    let filter = if dead_only {
        "WHERE dead_at IS NOT NULL"
    } else {
        ""
    };
    let rows = sqlx::query(&format!(
        "SELECT id, message_id, recipient, subject, attempts, created_at, sent_at, dead_at,
                last_error
         FROM outbox {filter} ORDER BY created_at, id"
    ))
    .fetch_all(db.pool())
    .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let sent: Option<i64> = r.get(6);
            let dead: Option<i64> = r.get(7);
            OutboxEntry {
                id: r.get(0),
                message_id: r.get(1),
                recipient: r.get(2),
                subject: r.get(3),
                attempts: r.get(4),
                created_at: crate::time::format_micros(r.get(5)),
                state: match (sent, dead) {
                    (Some(_), _) => "sent",
                    (None, Some(_)) => "dead",
                    _ => "pending",
                },
                last_error: r.get(8),
            }
        })
        .collect())
}

/// Puts a dead (or pending) message back in the queue for a fresh series of
/// attempts. False when there is no unsent message with that id.
pub async fn retry(db: &Db, id: &str) -> Result<bool, sqlx::Error> {
    let result = sqlx::query(
        "UPDATE outbox SET dead_at = NULL, attempts = 0, next_attempt_at = $1,
             locked_until = NULL, locked_by = NULL
         WHERE id = $2 AND sent_at IS NULL",
    )
    .bind(now_micros())
    .bind(id)
    .execute(db.pool())
    .await?;
    Ok(result.rows_affected() == 1)
}

pub struct Stats {
    pub due: i64,
    pub dead: i64,
    pub oldest_due_micros: Option<i64>,
}

pub async fn stats(db: &Db) -> Result<Stats, sqlx::Error> {
    let row = sqlx::query(
        "SELECT
            (SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL AND dead_at IS NULL),
            (SELECT COUNT(*) FROM outbox WHERE dead_at IS NOT NULL),
            (SELECT MIN(created_at) FROM outbox WHERE sent_at IS NULL AND dead_at IS NULL)",
    )
    .fetch_one(db.pool())
    .await?;
    Ok(Stats {
        due: row.get(0),
        dead: row.get(1),
        oldest_due_micros: row.get(2),
    })
}
