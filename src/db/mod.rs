//! The database: one `Db` over SQLite (embedded default) or PostgreSQL
//! (production, several replicas). Queries are written once in the SQL both
//! backends share; the few places that must differ ask `Db::backend`.

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

pub type Tx = sqlx::Transaction<'static, sqlx::Any>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone, Debug)]
pub struct Db {
    pool: AnyPool,
    reader: AnyPool,
    backend: Backend,
}

static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// SQLite connections that only read, beside the one writer. WAL lets them
/// read while it writes; each has a thread of its own in sqlx.
const SQLITE_READERS: u32 = 4;

impl Db {
    pub async fn connect(url: &str) -> anyhow::Result<Db> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres") {
            Backend::Postgres
        } else {
            Backend::Sqlite
        };
        let url = match backend {
            // Create the file on first run unless the URL says otherwise.
            Backend::Sqlite if !url.contains("mode=") => {
                let sep = if url.contains('?') { '&' } else { '?' };
                format!("{url}{sep}mode=rwc")
            }
            _ => url.to_string(),
        };
        let options = AnyConnectOptions::from_str(&url)?;
        let (pool, reader) = match backend {
            // SQLite allows one writer at a time; a single connection turns
            // that into an orderly async queue instead of SQLITE_BUSY errors
            // when two read-then-write transactions meet.
            Backend::Sqlite => {
                let writer = sqlite_pool(1)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            conn.execute("PRAGMA journal_mode = WAL").await?;
                            conn.execute("PRAGMA synchronous = NORMAL").await?;
                            conn.execute("PRAGMA foreign_keys = ON").await?;
                            conn.execute("PRAGMA busy_timeout = 5000").await?;
                            Ok(())
                        })
                    })
                    .connect_with(options.clone())
                    .await?;
                // An in-memory database exists only in its one connection.
                if url.contains(":memory:") || url.contains("mode=memory") {
                    return Ok(Db {
                        reader: writer.clone(),
                        pool: writer,
                        backend,
                    });
                }
                // Opened after the writer, which switched the file to WAL.
                let reader = sqlite_pool(SQLITE_READERS)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            conn.execute("PRAGMA query_only = ON").await?;
                            conn.execute("PRAGMA busy_timeout = 5000").await?;
                            Ok(())
                        })
                    })
                    .connect_with(options)
                    .await?;
                (writer, reader)
            }
            Backend::Postgres => {
                let pool = AnyPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(5))
                    .connect_with(options)
                    .await?;
                (pool.clone(), pool)
            }
        };
        Ok(Db {
            pool,
            reader,
            backend,
        })
    }

    /// Applies pending migrations. On PostgreSQL sqlx takes an advisory lock,
    /// so replicas starting together apply them once.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        match self.backend {
            Backend::Sqlite => {
                // SQLite has no advisory lock: two processes starting together
                // (`serve` and a CLI command, say) may both try a pending
                // migration. Each migration is one transaction, so the loser's
                // rolls back whole, and a second look finds it applied.
                let mut attempt = 0;
                loop {
                    match SQLITE_MIGRATOR.run(&self.pool).await {
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
            Backend::Postgres => POSTGRES_MIGRATOR.run(&self.pool).await?,
        }
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// For everything, writes included.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// For single statements that only read (on SQLite a write through it
    /// fails). They see every transaction committed before they start, so
    /// a revocation is visible to the next request; on SQLite they do not
    /// queue behind the writer. On PostgreSQL this is the same pool.
    pub fn reader(&self) -> &AnyPool {
        &self.reader
    }

    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        self.pool.begin().await
    }

    /// Whether the database answers a trivial query.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    /// `FOR UPDATE SKIP LOCKED` where the backend has it; SQLite's single
    /// writer makes it unnecessary there.
    pub fn skip_locked(&self) -> &'static str {
        match self.backend {
            Backend::Postgres => "FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        }
    }

    pub fn in_use(&self) -> u32 {
        self.pool.size().saturating_sub(self.pool.num_idle() as u32)
    }

    pub async fn close(&self) {
        self.reader.close().await;
        self.pool.close().await
    }
}

fn sqlite_pool(connections: u32) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .max_connections(connections)
        .acquire_timeout(Duration::from_secs(10))
        // An embedded connection cannot drop; sqlx's default ping before
        // every acquire is one more round trip to the connection's thread
        // for each statement.
        .test_before_acquire(false)
}

/// Bind parameters per batched statement. SQLite looks each `$N` up by a
/// linear scan of the statement's parameter names, so very wide statements
/// cost quadratic time there (it was a quarter of a 10,000-token alert);
/// PostgreSQL caps a statement at 65,535 parameters.
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

/// Whether an error is a unique-constraint violation (a duplicate).
pub fn is_unique_violation(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => db.is_unique_violation(),
        _ => false,
    }
}
