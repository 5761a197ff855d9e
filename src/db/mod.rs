//! The database: SQLite (embedded default) or PostgreSQL (production,
//! several replicas), on each backend's native sqlx driver.
//!
//! A query is one SQL text for both backends where the dialects agree
//! (`$1` parameters, BIGINT times and 0/1 flags), its arguments are
//! `args![…]`, and its rows are read by column name into a `FromRow` type.
//! Reads that need no transaction go through `Db::fetch_*`: on SQLite they
//! run on read connections of their own (`sqlite_direct`), on PostgreSQL
//! on the pool. Everything that writes runs in a `Tx`, or through
//! `Db::execute` for a single statement; a change to a workspace goes
//! through `Change`, which takes the workspace's lock and appends its audit
//! events before it commits.

mod change;
mod error;
mod migrations;
mod pg_readers;
mod row;
mod sqlite_cache;
mod sqlite_direct;

pub mod alerts;
pub mod audit_events;
pub mod batches;
pub mod console;
pub mod destinations;
pub mod key_sets;
pub mod labels;
pub mod oauth_apps;
pub mod outbox;
pub mod pagination;
pub mod sources;
pub mod token_usage;
pub mod tokens;
pub mod tracking_plans;
pub mod users;
pub mod warehouses;
pub mod workspaces;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, Postgres, Sqlite, SqlitePool};

use crate::args;
pub use change::Change;
pub use error::{Error, Result, DISK_FULL};
pub(crate) use row::bind_sqlx;
pub use row::{Arg, Count, FromRow, Row, Text, ToArg};

use pg_readers::PgReaders;
use sqlite_direct::SqliteDirect;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone, Debug)]
pub struct Db(Arc<Pools>);

#[derive(Debug)]
enum Pools {
    Sqlite {
        /// One connection: SQLite allows one writer at a time, and one
        /// connection turns that into an orderly async queue instead of
        /// SQLITE_BUSY errors when two read-then-write transactions meet.
        writer: SqlitePool,
        /// Reads, and writes that must not wait; None for an in-memory
        /// database, which exists only in the writer.
        direct: Option<Box<SqliteDirect>>,
        file: Option<PathBuf>,
    },
    Postgres {
        /// Transactions and writes.
        pool: PgPool,
        /// Single-statement reads.
        readers: Box<PgReaders>,
    },
}

/// A transaction on either backend. Dropped without `commit`, it rolls back.
pub enum Tx {
    Sqlite(sqlx::Transaction<'static, Sqlite>),
    Postgres(sqlx::Transaction<'static, Postgres>),
}

/// Runs the same tokens against whichever native connection `$tx` holds.
macro_rules! on_tx {
    ($tx:expr, $conn:ident => $body:expr) => {
        match $tx {
            Tx::Sqlite($conn) => $body,
            Tx::Postgres($conn) => $body,
        }
    };
}

impl Db {
    pub async fn connect(url: &str) -> anyhow::Result<Db> {
        if url.starts_with("postgres") {
            let options = PgConnectOptions::from_str(url)?;
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(5))
                // The pool pings every connection it takes back; a second
                // ping before each acquire is one more round trip per
                // transaction for nothing.
                .test_before_acquire(false)
                .connect_with(options.clone())
                .await?;
            let readers = Box::new(PgReaders::new(options));
            return Ok(Db(Arc::new(Pools::Postgres { pool, readers })));
        }
        let options = SqliteConnectOptions::from_str(url)?
            // Created on first run unless the URL says otherwise (`mode=`).
            .create_if_missing(!url.contains("mode="))
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            // REPLACE deletes the row it conflicts with; only with this on
            // does that delete fire the delete triggers (audit_events is
            // append-only). Per connection, so every connection sets it.
            .pragma("recursive_triggers", "ON")
            .busy_timeout(Duration::from_secs(5));
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let file = (!in_memory).then(|| options.get_filename().to_path_buf());
        let started = std::time::Instant::now();
        let writer = loop {
            let opened = SqlitePoolOptions::new()
                .max_connections(1)
                .acquire_timeout(Duration::from_secs(10))
                // An embedded connection cannot drop; sqlx's default ping
                // before every acquire is one more round trip to the
                // connection's thread for each statement.
                .test_before_acquire(false)
                .after_release(|conn, _| Box::pin(writer_is_idle(conn)))
                .connect_with(options.clone())
                .await;
            match opened {
                // Processes opening a new file together meet in its switch
                // to WAL, where SQLite answers BUSY at once rather than
                // wait: a lock upgrade that waiting could deadlock.
                Err(e) if error::is_sqlite_busy(&e) && started.elapsed() < OPEN_PATIENCE => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                opened => {
                    break opened.map_err(|e| explain_sqlite_open_error(e, file.as_deref()))?
                }
            }
        };
        // Opened after the writer, which switched the file to WAL.
        let direct = match &file {
            Some(path) => Some(Box::new(SqliteDirect::open(path)?)),
            None => None,
        };
        Ok(Db(Arc::new(Pools::Sqlite {
            writer,
            direct,
            file,
        })))
    }

    /// Applies pending migrations. On PostgreSQL sqlx takes an advisory lock,
    /// so replicas starting together apply them once.
    ///
    /// When every migration is applied already, nothing is asked of the
    /// database but a read: a service role that does not own the tables
    /// (and so cannot create or alter them) starts as long as the owner has
    /// run `leakguard migrate` first (docs/OPERATIONS.md).
    pub async fn migrate(&self) -> anyhow::Result<()> {
        if self.migrations_applied().await {
            return Ok(());
        }
        self.apply_migrations().await.map_err(|e| {
            anyhow::anyhow!(
                "{e:#} (if this role does not own leakguard's tables, run `leakguard migrate` \
                 as the owner first: see docs/OPERATIONS.md)"
            )
        })
    }

    /// Whether `_sqlx_migrations` records every migration, successfully
    /// and with the same checksum. Any doubt (no table yet, say) is a no.
    async fn migrations_applied(&self) -> bool {
        let sql = self.pick(
            "SELECT version AS n, lower(hex(checksum)) AS value FROM _sqlx_migrations WHERE success",
            "SELECT version AS n, encode(checksum, 'hex') AS value FROM _sqlx_migrations WHERE success",
        );
        let applied: Vec<AppliedMigration> = match self.fetch_all(sql, args![]).await {
            Ok(applied) => applied,
            Err(_) => return false,
        };
        migrations::expected(self.backend())
            .iter()
            .all(|(version, checksum)| {
                applied
                    .iter()
                    .any(|a| a.version == *version && a.checksum == *checksum)
            })
    }

    async fn apply_migrations(&self) -> anyhow::Result<()> {
        let migrator = sqlx::migrate::Migrator::new(migrations::Migrations(self.backend())).await?;
        match &*self.0 {
            Pools::Sqlite { writer, .. } => {
                // SQLite has no advisory lock: two processes starting together
                // (`serve` and a CLI command, say) may both try a pending
                // migration. Each migration is one transaction, so the loser's
                // rolls back whole, and a second look finds it applied.
                let mut attempt = 0;
                loop {
                    match migrator.run(writer).await {
                        Ok(()) => break,
                        Err(
                            e @ (sqlx::migrate::MigrateError::Execute(_)
                            | sqlx::migrate::MigrateError::ExecuteMigration(..)),
                        ) if attempt < 5 => {
                            attempt += 1;
                            tracing::debug!(error = %e, attempt, "migration raced another process; retrying");
                            tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
            }
            Pools::Postgres { pool, .. } => migrator.run(pool).await?,
        }
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        match &*self.0 {
            Pools::Sqlite { .. } => Backend::Sqlite,
            Pools::Postgres { .. } => Backend::Postgres,
        }
    }

    /// `sqlite` or `postgres` text for the cases where the dialects differ.
    pub fn pick<'a>(&self, sqlite: &'a str, postgres: &'a str) -> &'a str {
        match self.backend() {
            Backend::Sqlite => sqlite,
            Backend::Postgres => postgres,
        }
    }

    pub async fn begin(&self) -> Result<Tx> {
        Ok(match &*self.0 {
            // IMMEDIATE: the write lock is taken at BEGIN, waiting for it
            // if another connection holds it. A deferred transaction that
            // read first could not take it later once that other writer
            // had committed (SQLITE_BUSY_SNAPSHOT, which waiting cannot
            // cure).
            Pools::Sqlite { writer, .. } => Tx::Sqlite(writer.begin_with("BEGIN IMMEDIATE").await?),
            Pools::Postgres { pool, .. } => Tx::Postgres(pool.begin().await?),
        })
    }

    /// Begins a change of one workspace: see `Change`.
    pub async fn change(&self, workspace_id: &str) -> Result<Change> {
        Change::begin(self, [workspace_id]).await
    }

    /// A read that sees every transaction committed before it started.
    pub async fn fetch_all<T: FromRow>(&self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<T>> {
        match &*self.0 {
            Pools::Sqlite {
                direct: Some(direct),
                ..
            } => direct.fetch_all(sql, args),
            Pools::Sqlite { writer, .. } => {
                rows(bind_sqlx!(sqlx::query(sql), args).fetch_all(writer).await?)
            }
            Pools::Postgres { readers, .. } => readers.fetch_all(sql, args).await,
        }
    }

    pub async fn fetch_optional<T: FromRow>(
        &self,
        sql: &str,
        args: &[Arg<'_>],
    ) -> Result<Option<T>> {
        match &*self.0 {
            Pools::Sqlite {
                direct: Some(direct),
                ..
            } => direct.fetch_optional(sql, args),
            Pools::Sqlite { writer, .. } => bind_sqlx!(sqlx::query(sql), args)
                .fetch_optional(writer)
                .await?
                .map(|r| T::from_row(&r))
                .transpose(),
            Pools::Postgres { readers, .. } => readers.fetch_optional(sql, args).await,
        }
    }

    pub async fn fetch_one<T: FromRow>(&self, sql: &str, args: &[Arg<'_>]) -> Result<T> {
        self.fetch_optional(sql, args)
            .await?
            .ok_or(Error::Sqlx(sqlx::Error::RowNotFound))
    }

    /// One write statement, committed on return; the rows it affected.
    pub async fn execute(&self, sql: &str, args: &[Arg<'_>]) -> Result<u64> {
        Ok(match &*self.0 {
            Pools::Sqlite { writer, .. } => bind_sqlx!(sqlx::query(sql), args)
                .execute(writer)
                .await?
                .rows_affected(),
            Pools::Postgres { pool, .. } => bind_sqlx!(sqlx::query(sql), args)
                .execute(pool)
                .await?
                .rows_affected(),
        })
    }

    /// Whether `try_execute_now` can write here: SQLite, in a file.
    pub fn writes_on_workers(&self) -> bool {
        matches!(
            &*self.0,
            Pools::Sqlite {
                direct: Some(_),
                ..
            }
        )
    }

    /// One write statement that needs no transaction around it, run at
    /// once on the calling thread if SQLite's write lock is free
    /// (`sqlite_direct`); None when it is not, or on PostgreSQL (or an
    /// in-memory database), and the caller queues it or runs `execute`.
    pub fn try_execute_now(&self, sql: &str, args: &[Arg<'_>]) -> Option<Result<u64>> {
        match &*self.0 {
            Pools::Sqlite {
                direct: Some(direct),
                ..
            } => direct
                .try_execute(sql, args)
                .map(|done| done.map(|rows| rows as u64)),
            _ => None,
        }
    }

    /// One write statement with `RETURNING`, committed on return.
    pub async fn execute_returning<T: FromRow>(
        &self,
        sql: &str,
        args: &[Arg<'_>],
    ) -> Result<Vec<T>> {
        match &*self.0 {
            Pools::Sqlite { writer, .. } => {
                rows(bind_sqlx!(sqlx::query(sql), args).fetch_all(writer).await?)
            }
            Pools::Postgres { pool, .. } => {
                rows(bind_sqlx!(sqlx::query(sql), args).fetch_all(pool).await?)
            }
        }
    }

    /// Whether the database takes writes now: `Err` says why not. A
    /// committed write catches a read-only file or server; on SQLite the
    /// free space is checked too, because a small write can still fit in
    /// the space that a failed larger one left in the write-ahead log.
    pub async fn check_writable(&self) -> std::result::Result<(), &'static str> {
        if let Pools::Sqlite {
            file: Some(path), ..
        } = &*self.0
        {
            if free_bytes(path).is_some_and(|free| free < MIN_FREE_BYTES) {
                return Err(DISK_FULL);
            }
        }
        self.execute(
            "INSERT INTO readiness_probe (id, checked_at) VALUES (1, $1)
             ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at",
            args![crate::time::now_micros()],
        )
        .await
        .map(|_| ())
        .map_err(|e| {
            tracing::warn!(error = %e, "readiness: the database refused a write");
            e.unavailable_reason()
                .unwrap_or("the database refused a write")
        })
    }

    /// `FOR UPDATE SKIP LOCKED` where the backend has it; SQLite's single
    /// writer makes it unnecessary there.
    pub fn skip_locked(&self) -> &'static str {
        self.pick("", "FOR UPDATE SKIP LOCKED")
    }

    /// Connections of the writing pool in use now.
    pub fn in_use(&self) -> u32 {
        match &*self.0 {
            Pools::Sqlite { writer, .. } => writer.size() - writer.num_idle() as u32,
            Pools::Postgres { pool, .. } => pool.size() - pool.num_idle() as u32,
        }
    }

    pub async fn close(&self) {
        match &*self.0 {
            Pools::Sqlite { writer, direct, .. } => {
                if let Some(direct) = direct {
                    direct.close();
                }
                writer.close().await
            }
            Pools::Postgres { pool, readers } => {
                readers.close().await;
                pool.close().await
            }
        }
    }
}

impl Tx {
    pub fn backend(&self) -> Backend {
        match self {
            Tx::Sqlite(_) => Backend::Sqlite,
            Tx::Postgres(_) => Backend::Postgres,
        }
    }

    pub async fn fetch_all<T: FromRow>(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<T>> {
        on_tx!(self, tx => rows(bind_sqlx!(sqlx::query(sql), args).fetch_all(&mut **tx).await?))
    }

    pub async fn fetch_optional<T: FromRow>(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
    ) -> Result<Option<T>> {
        on_tx!(self, tx => bind_sqlx!(sqlx::query(sql), args)
            .fetch_optional(&mut **tx)
            .await?
            .map(|r| T::from_row(&r))
            .transpose())
    }

    pub async fn fetch_one<T: FromRow>(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<T> {
        self.fetch_optional(sql, args)
            .await?
            .ok_or(Error::Sqlx(sqlx::Error::RowNotFound))
    }

    /// The rows affected.
    pub async fn execute(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<u64> {
        Ok(on_tx!(self, tx => bind_sqlx!(sqlx::query(sql), args)
            .execute(&mut **tx)
            .await?
            .rows_affected()))
    }

    pub async fn commit(self) -> Result<()> {
        on_tx!(self, tx => tx.commit().await?);
        Ok(())
    }
}

/// Where a read runs: on the database (a fresh read) or inside a
/// transaction (which sees its own writes and holds its locks). Repository
/// functions that only read take `impl Into<Conn>`, so the same function
/// serves both.
pub enum Conn<'a> {
    Db(&'a Db),
    Tx(&'a mut Tx),
}

impl<'a> From<&'a Db> for Conn<'a> {
    fn from(db: &'a Db) -> Conn<'a> {
        Conn::Db(db)
    }
}

impl<'a> From<&'a mut Tx> for Conn<'a> {
    fn from(tx: &'a mut Tx) -> Conn<'a> {
        Conn::Tx(tx)
    }
}

impl<'a> From<&'a mut Change> for Conn<'a> {
    fn from(change: &'a mut Change) -> Conn<'a> {
        Conn::Tx(change)
    }
}

/// A reborrow, so that a function holding a `Conn` can pass it on.
impl<'a, 'b: 'a> From<&'a mut Conn<'b>> for Conn<'a> {
    fn from(conn: &'a mut Conn<'b>) -> Conn<'a> {
        match conn {
            Conn::Db(db) => Conn::Db(db),
            Conn::Tx(tx) => Conn::Tx(tx),
        }
    }
}

impl Conn<'_> {
    /// This connection again, for one more call that takes a `Conn`.
    pub fn reborrow(&mut self) -> Conn<'_> {
        match self {
            Conn::Db(db) => Conn::Db(db),
            Conn::Tx(tx) => Conn::Tx(tx),
        }
    }

    pub async fn fetch_all<T: FromRow>(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<T>> {
        match self {
            Conn::Db(db) => db.fetch_all(sql, args).await,
            Conn::Tx(tx) => tx.fetch_all(sql, args).await,
        }
    }

    pub async fn fetch_optional<T: FromRow>(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
    ) -> Result<Option<T>> {
        match self {
            Conn::Db(db) => db.fetch_optional(sql, args).await,
            Conn::Tx(tx) => tx.fetch_optional(sql, args).await,
        }
    }

    pub async fn fetch_one<T: FromRow>(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<T> {
        match self {
            Conn::Db(db) => db.fetch_one(sql, args).await,
            Conn::Tx(tx) => tx.fetch_one(sql, args).await,
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            Conn::Db(db) => db.backend(),
            Conn::Tx(tx) => tx.backend(),
        }
    }
}

#[derive(Clone)]
struct AppliedMigration {
    version: i64,
    checksum: String,
}

impl FromRow for AppliedMigration {
    fn from_row(row: &impl Row) -> Result<Self> {
        Ok(AppliedMigration {
            version: row.int("n")?,
            checksum: row.text("value")?,
        })
    }
}

fn rows<R: Row, T: FromRow>(rows: Vec<R>) -> Result<Vec<T>> {
    rows.iter().map(T::from_row).collect()
}

/// Whether the writer connection may go back to the pool: it must be outside
/// any transaction, by sqlx's count and by SQLite's own flag.
///
/// sqlx 0.8.6 loses count when a COMMIT fails after SQLite has rolled the
/// transaction back itself (a full disk, an I/O error): it keeps counting
/// one open transaction, so the next BEGIN becomes a SAVEPOINT, and a
/// failed RELEASE of that leaves a real transaction open for good. Every
/// later write, revocations included, then commits into that transaction
/// only: invisible to every other connection and process, and lost on
/// restart. A connection in that state is closed instead (which rolls back
/// whatever it holds) and the pool opens a fresh one.
async fn writer_is_idle(
    conn: &mut sqlx::SqliteConnection,
) -> std::result::Result<bool, sqlx::Error> {
    use sqlx::Connection;
    // Runs the rollback that a dropped transaction queued.
    conn.ping().await?;
    if conn.is_in_transaction() {
        tracing::warn!("the SQLite writer was handed back inside a transaction; reopening it");
        return Ok(false);
    }
    let mut handle = conn.lock_handle().await?;
    // SAFETY: the handle is locked for this call and valid while it is.
    let autocommit =
        unsafe { rusqlite::ffi::sqlite3_get_autocommit(handle.as_raw_handle().as_ptr()) } != 0;
    if !autocommit {
        tracing::warn!(
            "the SQLite writer holds a transaction that sqlx lost count of; reopening it"
        );
    }
    Ok(autocommit)
}

/// SQLite says only "unable to open database file" when the file or its
/// file system is read-only; trying to open it for writing names the cause.
/// How long opening a SQLite file tries again while other processes hold
/// it, as long as the busy timeout of every connection.
const OPEN_PATIENCE: Duration = Duration::from_secs(5);

fn explain_sqlite_open_error(err: sqlx::Error, path: Option<&Path>) -> anyhow::Error {
    let Some(path) = path else {
        return err.into();
    };
    match std::fs::OpenOptions::new().write(true).open(path) {
        Err(io) if path.exists() => anyhow::anyhow!(
            "{err}: {} cannot be opened for writing: {io}",
            path.display()
        ),
        _ => err.into(),
    }
}

/// Below this much free space next to a SQLite file, leakguard is not
/// ready: a large alert writes a few megabytes.
pub const MIN_FREE_BYTES: u64 = 8 * 1024 * 1024;

#[cfg(unix)]
fn free_bytes(path: &Path) -> Option<u64> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let stat = rustix::fs::statvfs(dir).ok()?;
    Some(stat.f_bavail.saturating_mul(stat.f_frsize))
}

#[cfg(not(unix))]
fn free_bytes(_path: &Path) -> Option<u64> {
    None
}

/// Bind parameters per batched statement. SQLite looks each `$N` up by a
/// linear scan of the statement's parameter names, so very wide statements
/// cost quadratic time there; PostgreSQL caps a statement at 65,535
/// parameters.
pub const MAX_BINDS: usize = 500;

/// Rows per multi-row statement with `columns` parameters each.
pub fn rows_per_statement(columns: usize) -> usize {
    (MAX_BINDS / columns).max(1)
}

/// `$first, $first+1, …` for `n` values: the IN-list of a batched query.
pub fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `(…), (…)` for `rows` rows of `columns` parameters: the VALUES of a
/// multi-row INSERT.
pub fn values_rows(rows: usize, columns: usize) -> String {
    (0..rows)
        .map(|i| format!("({})", placeholders(i * columns + 1, columns)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A value stored as JSON text (settings, labels, write keys).
pub fn json_text(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).expect("maps with string keys and lists always serialise")
}
