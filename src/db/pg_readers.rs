//! PostgreSQL connections that only run single-statement reads, held
//! outside sqlx's pool.
//!
//! sqlx's pool pings a connection every time it goes back (a round trip to
//! the server) and, by default, before every acquire (another). A point
//! read through the pool was three round trips, and on a machine where
//! PostgreSQL shares the cores with the service, each one is server and
//! client CPU. These connections are kept for good and used by one read at
//! a time; a connection that fails in any way is dropped and the next read
//! on its slot opens a new one, which is also how a restarted server is
//! met.
//!
//! Freshness needs no care here: each read is one statement outside any
//! transaction, which PostgreSQL answers from a snapshot taken when the
//! statement starts.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::Connection;
use tokio::sync::{Mutex, MutexGuard};

use super::error::{Error, Result};
use super::row::{bind_sqlx, Arg, FromRow};

const SLOTS: usize = 8;

#[derive(Debug)]
pub struct PgReaders {
    options: PgConnectOptions,
    slots: Vec<Mutex<Option<PgConnection>>>,
    next: AtomicUsize,
    closed: AtomicBool,
}

type Slot<'a> = MutexGuard<'a, Option<PgConnection>>;

impl PgReaders {
    pub fn new(options: PgConnectOptions) -> PgReaders {
        PgReaders {
            options,
            slots: (0..SLOTS).map(|_| Mutex::new(None)).collect(),
            next: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
        }
    }

    /// A free slot if there is one, else a turn at the next.
    async fn slot(&self) -> Result<Slot<'_>> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        for i in 0..SLOTS {
            if let Ok(slot) = self.slots[(start + i) % SLOTS].try_lock() {
                return Ok(slot);
            }
        }
        Ok(self.slots[start % SLOTS].lock().await)
    }

    async fn connected<'s>(&self, slot: &'s mut Slot<'_>) -> Result<&'s mut PgConnection> {
        if slot.is_none() {
            **slot = Some(PgConnection::connect_with(&self.options).await?);
        }
        // Just filled if it was empty.
        slot.as_mut().ok_or(Error::Closed)
    }

    pub async fn fetch_all<T: FromRow>(&self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<T>> {
        let mut slot = self.slot().await?;
        let conn = self.connected(&mut slot).await?;
        match bind_sqlx!(sqlx::query(sql), args).fetch_all(conn).await {
            Ok(rows) => rows.iter().map(T::from_row).collect(),
            Err(e) => {
                *slot = None;
                Err(e.into())
            }
        }
    }

    pub async fn fetch_optional<T: FromRow>(
        &self,
        sql: &str,
        args: &[Arg<'_>],
    ) -> Result<Option<T>> {
        let mut slot = self.slot().await?;
        let conn = self.connected(&mut slot).await?;
        match bind_sqlx!(sqlx::query(sql), args)
            .fetch_optional(conn)
            .await
        {
            Ok(row) => row.map(|r| T::from_row(&r)).transpose(),
            Err(e) => {
                *slot = None;
                Err(e.into())
            }
        }
    }

    /// Closes every connection; later reads fail as on a closed pool.
    pub async fn close(&self) {
        self.closed.store(true, Ordering::Release);
        for slot in &self.slots {
            if let Some(conn) = slot.lock().await.take() {
                let _ = conn.close().await;
            }
        }
    }
}
