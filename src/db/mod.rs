//! The database: one `Db` over SQLite (embedded default) or PostgreSQL
//! (production, several replicas). Queries are written once in the SQL both
//! backends share; the few places that must differ ask `Db::backend`.

pub mod batches;

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
    backend: Backend,
    /// The database file, on SQLite.
    sqlite_file: Option<std::path::PathBuf>,
}

/// The migrations, compiled in. Listed by hand rather than by sqlx's
/// `migrate!` macro: the macro needs a second, host-side build of sqlx and
/// SQLite, which was a sixth of a fresh release build. A unit test checks
/// that this list and the `migrations/` folders agree.
const MIGRATIONS: &[EmbeddedMigration] = &[
    EmbeddedMigration {
        version: 1,
        description: "initial",
        sqlite: include_str!("../../migrations/sqlite/0001_initial.sql"),
        postgres: include_str!("../../migrations/postgres/0001_initial.sql"),
    },
    EmbeddedMigration {
        version: 2,
        description: "source write keys",
        sqlite: include_str!("../../migrations/sqlite/0002_source_write_keys.sql"),
        postgres: include_str!("../../migrations/postgres/0002_source_write_keys.sql"),
    },
    EmbeddedMigration {
        version: 3,
        description: "readiness probe",
        sqlite: include_str!("../../migrations/sqlite/0003_readiness_probe.sql"),
        postgres: include_str!("../../migrations/postgres/0003_readiness_probe.sql"),
    },
];

struct EmbeddedMigration {
    version: i64,
    /// As sqlx derives it from the file name, so that databases migrated
    /// by the macro's build record the same row.
    description: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
}

/// One backend's migrations, in the form sqlx's `Migrator` takes.
#[derive(Debug)]
struct Migrations(Backend);

impl<'s> sqlx::migrate::MigrationSource<'s> for Migrations {
    fn resolve(
        self,
    ) -> futures_util::future::BoxFuture<
        's,
        Result<Vec<sqlx::migrate::Migration>, sqlx::error::BoxDynError>,
    > {
        let migrations = MIGRATIONS
            .iter()
            .map(|m| {
                let sql = match self.0 {
                    Backend::Sqlite => m.sqlite,
                    Backend::Postgres => m.postgres,
                };
                // The checksum is sqlx's own (SHA-384 of the text), so it
                // matches what the macro recorded.
                sqlx::migrate::Migration::new(
                    m.version,
                    m.description.into(),
                    sqlx::migrate::MigrationType::Simple,
                    sql.into(),
                    false,
                )
            })
            .collect();
        Box::pin(std::future::ready(Ok(migrations)))
    }
}

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
        let sqlite_file = match backend {
            Backend::Sqlite => sqlx::sqlite::SqliteConnectOptions::from_str(&url)
                .ok()
                .map(|o| o.get_filename().to_path_buf()),
            Backend::Postgres => None,
        };
        let pool = match backend {
            // SQLite allows one writer at a time; a single connection turns
            // that into an orderly async queue instead of SQLITE_BUSY errors
            // when two read-then-write transactions meet.
            Backend::Sqlite => AnyPoolOptions::new()
                .max_connections(1)
                .acquire_timeout(Duration::from_secs(10))
                // An embedded connection cannot drop; sqlx's default ping
                // before every acquire is one more round trip to the
                // connection's thread for each statement.
                .test_before_acquire(false)
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA synchronous = NORMAL").await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                        conn.execute("PRAGMA busy_timeout = 5000").await?;
                        Ok(())
                    })
                })
                .connect_with(options)
                .await
                .map_err(|e| explain_sqlite_open_error(e, sqlite_file.as_deref()))?,
            Backend::Postgres => {
                AnyPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(5))
                    .connect_with(options)
                    .await?
            }
        };
        Ok(Db {
            pool,
            backend,
            sqlite_file,
        })
    }

    /// Applies pending migrations. On PostgreSQL sqlx takes an advisory lock,
    /// so replicas starting together apply them once.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        let migrator = sqlx::migrate::Migrator::new(Migrations(self.backend)).await?;
        match self.backend {
            Backend::Sqlite => {
                // SQLite has no advisory lock: two processes starting together
                // (`serve` and a CLI command, say) may both try a pending
                // migration. Each migration is one transaction, so the loser's
                // rolls back whole, and a second look finds it applied.
                let mut attempt = 0;
                loop {
                    match migrator.run(&self.pool).await {
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
            Backend::Postgres => migrator.run(&self.pool).await?,
        }
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        self.pool.begin().await
    }

    /// Whether the database takes writes now: `Err` says why not. A
    /// committed write catches a read-only file or server; on SQLite the
    /// free space is checked too, because a small write can still fit in
    /// the space that a failed larger one left in the write-ahead log.
    pub async fn check_writable(&self) -> Result<(), &'static str> {
        if let Some(path) = &self.sqlite_file {
            if free_bytes(path).is_some_and(|free| free < MIN_FREE_BYTES) {
                return Err(DISK_FULL);
            }
        }
        sqlx::query(
            "INSERT INTO readiness_probe (id, checked_at) VALUES (1, $1)
             ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at",
        )
        .bind(crate::time::now_micros())
        .execute(&self.pool)
        .await
        .map(|_| ())
        .map_err(|e| {
            tracing::warn!(error = %e, "readiness: the database refused a write");
            unavailable_reason(&e).unwrap_or("the database refused a write")
        })
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
        self.pool.close().await
    }
}

/// SQLite says only "unable to open database file" when the file or its
/// file system is read-only; trying to open it for writing names the cause.
fn explain_sqlite_open_error(err: sqlx::Error, path: Option<&std::path::Path>) -> anyhow::Error {
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

const DISK_FULL: &str = "the database's disk is full; retry later";

#[cfg(unix)]
fn free_bytes(path: &std::path::Path) -> Option<u64> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => std::path::Path::new("."),
    };
    let stat = rustix::fs::statvfs(dir).ok()?;
    Some(stat.f_bavail.saturating_mul(stat.f_frsize))
}

#[cfg(not(unix))]
fn free_bytes(_path: &std::path::Path) -> Option<u64> {
    None
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

/// Why the database cannot serve a request right now, when the cause is on
/// its side and a retry later can succeed: it is down or restarting, its
/// disk is full, or it is read-only. None for every other error (a bug).
pub fn unavailable_reason(err: &sqlx::Error) -> Option<&'static str> {
    const DOWN: &str = "the database is unavailable; retry later";
    const READ_ONLY: &str = "the database is read-only; retry later";
    const IO: &str = "the database cannot read or write its files; retry later";
    match err {
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => Some(DOWN),
        // A connection that PostgreSQL closed in the middle of a reply.
        sqlx::Error::Protocol(_) => Some(DOWN),
        sqlx::Error::Database(db) => {
            if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
                let code = pg.code();
                match code {
                    "53100" => Some(DISK_FULL),
                    "25006" => Some(READ_ONLY),
                    // Connection exceptions; shutting down or starting up;
                    // out of resources.
                    _ if code.starts_with("08")
                        || code.starts_with("57P")
                        || code.starts_with("53") =>
                    {
                        Some(DOWN)
                    }
                    _ => None,
                }
            } else if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                // Extended result codes; the primary code is the low byte.
                let primary = db.code()?.parse::<i32>().ok()? & 0xff;
                match primary {
                    13 => Some(DISK_FULL),
                    8 => Some(READ_ONLY),
                    10 | 14 => Some(IO),
                    _ => None,
                }
            } else {
                None
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Adding a file to `migrations/` without listing it would leave it
    /// unapplied; this fails instead. Names are read as sqlx reads them:
    /// `<version>_<description>.sql`, underscores meaning spaces.
    #[test]
    fn the_compiled_in_list_is_the_migrations_folders() {
        for (folder, pick) in [
            (
                "sqlite",
                (|m| m.sqlite) as fn(&EmbeddedMigration) -> &'static str,
            ),
            ("postgres", |m| m.postgres),
        ] {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("migrations")
                .join(folder);
            let mut on_disk: Vec<(i64, String, String)> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|entry| {
                    let path = entry.unwrap().path();
                    let name = path.file_stem().unwrap().to_str().unwrap().to_string();
                    let (version, description) = name.split_once('_').unwrap();
                    (
                        version.parse().unwrap(),
                        description.replace('_', " "),
                        std::fs::read_to_string(&path).unwrap(),
                    )
                })
                .collect();
            on_disk.sort();
            let listed: Vec<(i64, String, String)> = MIGRATIONS
                .iter()
                .map(|m| (m.version, m.description.to_string(), pick(m).to_string()))
                .collect();
            assert_eq!(listed, on_disk, "migrations/{folder}");
        }
    }
}
