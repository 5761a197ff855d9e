//! `console_sign_in_links` and `console_sessions`: the console's one-time
//! sign-in links and its sessions. Both keep only the SHA-256 of their
//! secret, so a copy of the database signs nobody in.

use super::{Db, FromRow, Result, Row};
use crate::args;
use crate::domain::{Email, TokenHash};
use crate::time::Timestamp;

/// A sign-in link as stored.
#[derive(Debug, Clone)]
pub struct SignInLink {
    pub email: Email,
    pub next_path: String,
    pub expires_at: Timestamp,
}

impl FromRow for SignInLink {
    fn from_row(row: &impl Row) -> Result<Self> {
        Ok(SignInLink {
            email: row.parse("email")?,
            next_path: row.text("next_path")?,
            expires_at: row.time("expires_at")?,
        })
    }
}

pub async fn insert_link(
    db: &Db,
    hash: &TokenHash,
    email: &Email,
    next_path: &str,
    now: Timestamp,
    expires_at: Timestamp,
) -> Result<()> {
    db.execute(
        "INSERT INTO console_sign_in_links (token_hash, email, next_path, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5)",
        args![hash, email, next_path, now, expires_at],
    )
    .await?;
    Ok(())
}

/// The link with this hash if it is unused and unexpired at `now`, without
/// using it.
pub async fn find_usable_link(
    db: &Db,
    hash: &TokenHash,
    now: Timestamp,
) -> Result<Option<SignInLink>> {
    db.fetch_optional(
        "SELECT email, next_path, expires_at FROM console_sign_in_links
         WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2",
        args![hash, now],
    )
    .await
}

/// Uses the link: only one caller ever gets it back, and only while it is
/// unexpired.
pub async fn use_link(db: &Db, hash: &TokenHash, now: Timestamp) -> Result<Option<SignInLink>> {
    Ok(db
        .execute_returning(
            "UPDATE console_sign_in_links SET used_at = $1
             WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $1
             RETURNING email, next_path, expires_at",
            args![now, hash],
        )
        .await?
        .pop())
}

/// A console session as stored.
#[derive(Debug, Clone)]
pub struct Session {
    pub email: Email,
    pub created_at: Timestamp,
    pub last_seen_at: Timestamp,
    pub expires_at: Timestamp,
}

impl FromRow for Session {
    fn from_row(row: &impl Row) -> Result<Self> {
        Ok(Session {
            email: row.parse("email")?,
            created_at: row.time("created_at")?,
            last_seen_at: row.time("last_seen_at")?,
            expires_at: row.time("expires_at")?,
        })
    }
}

#[allow(clippy::too_many_arguments)]
pub async fn insert_session(
    db: &Db,
    hash: &TokenHash,
    email: &Email,
    now: Timestamp,
    expires_at: Timestamp,
    client_address: Option<&str>,
    user_agent: Option<&str>,
) -> Result<()> {
    db.execute(
        "INSERT INTO console_sessions (token_hash, email, created_at, last_seen_at, expires_at,
             client_address, user_agent)
         VALUES ($1, $2, $3, $3, $4, $5, $6)",
        args![hash, email, now, expires_at, client_address, user_agent],
    )
    .await?;
    Ok(())
}

pub async fn find_session(db: &Db, hash: &TokenHash) -> Result<Option<Session>> {
    db.fetch_optional(
        "SELECT email, created_at, last_seen_at, expires_at FROM console_sessions
         WHERE token_hash = $1",
        args![hash],
    )
    .await
}

pub async fn touch_session(db: &Db, hash: &TokenHash, now: Timestamp) -> Result<()> {
    db.execute(
        "UPDATE console_sessions SET last_seen_at = $1 WHERE token_hash = $2",
        args![now, hash],
    )
    .await?;
    Ok(())
}

pub async fn delete_session(db: &Db, hash: &TokenHash) -> Result<()> {
    db.execute(
        "DELETE FROM console_sessions WHERE token_hash = $1",
        args![hash],
    )
    .await?;
    Ok(())
}

/// Deletes expired links and sessions; `idle_before` is the oldest
/// `last_seen_at` an idle session may have.
pub async fn prune(db: &Db, now: Timestamp, idle_before: Timestamp) -> Result<()> {
    db.execute(
        "DELETE FROM console_sign_in_links WHERE expires_at <= $1",
        args![now],
    )
    .await?;
    db.execute(
        "DELETE FROM console_sessions WHERE expires_at <= $1 OR last_seen_at < $2",
        args![now, idle_before],
    )
    .await?;
    Ok(())
}
