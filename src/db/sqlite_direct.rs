//! SQLite statements answered on the calling thread: reads, and the one
//! kind of write that must not wait.
//!
//! sqlx runs each SQLite connection on a thread of its own, so every
//! statement costs two thread hand-offs, and it pings the connection again
//! each time it returns to its pool. A point read by primary key costs
//! about 5 µs inside SQLite; through sqlx it cost ten times that and queued
//! behind every write. Reads therefore run synchronously on connections of
//! their own, beside sqlx's single writer; WAL lets them read while it
//! writes (docs/BENCHMARKS.md has the measurements).
//!
//! Freshness: a WAL reader sees the database as of the start of its read
//! transaction, and a connection stays in that transaction while any of its
//! statements is still stepping. A connection handed back with a statement
//! left busy, or inside an explicit transaction, would answer every later
//! read from that old snapshot, revocations included. So every connection
//! is checked on its way back and dropped unless it is idle (autocommit, no
//! busy statement): each read starts a new read transaction and sees every
//! transaction committed before it, by this process or any other.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::types::FromSql;
use rusqlite::{Connection, OpenFlags};

use super::error::{Error, Result};
use super::row::{Arg, FromRow, Row};
use super::sqlite_cache::{ChangeCounter, KeptRead, OwnedRow, PointCache};

/// Idle connections kept for reuse; more may be open at once under load.
const MAX_IDLE: usize = 8;
/// Prepared statements kept per connection.
const STATEMENT_CACHE: usize = 64;
/// SQLite's own default for its automatic checkpoints.
const CHECKPOINT_FRAMES: u32 = 1000;

#[derive(Debug)]
pub struct SqliteDirect {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    /// For `try_execute`; opened on first use.
    quick_writer: Mutex<Option<Connection>>,
    /// None where the WAL-index cannot be mapped: then nothing is cached.
    changes: Option<ChangeCounter>,
    point_reads: PointCache,
    /// Set while a checkpoint thread runs.
    checkpointing: Arc<AtomicBool>,
    closed: AtomicBool,
}

impl SqliteDirect {
    /// Opens one read connection now, so that a file that cannot be read
    /// is reported at start-up.
    pub fn open(path: &Path) -> Result<SqliteDirect> {
        let mut direct = SqliteDirect {
            path: path.to_path_buf(),
            idle: Mutex::new(Vec::new()),
            quick_writer: Mutex::new(None),
            changes: None,
            point_reads: PointCache::default(),
            checkpointing: Arc::new(AtomicBool::new(false)),
            closed: AtomicBool::new(false),
        };
        let first = direct.connect_reader()?;
        direct.idle.lock().expect("readers lock").push(first);
        direct.changes = match ChangeCounter::open(direct.connect_reader()?) {
            Ok(changes) => Some(changes),
            Err(e) => {
                tracing::warn!(error = %e, "SQLite point reads will not be cached");
                None
            }
        };
        Ok(direct)
    }

    fn connect(&self) -> Result<Connection> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // As on the writer (`Db::connect`): triggers fire for REPLACE's
        // deletes on every connection leakguard opens.
        conn.pragma_update(None, "recursive_triggers", "ON")?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Ok(conn)
    }

    fn connect_reader(&self) -> Result<Connection> {
        let conn = self.connect()?;
        conn.pragma_update(None, "query_only", "ON")?;
        conn.busy_timeout(Duration::from_secs(5))?;
        Ok(conn)
    }

    /// The settings of sqlx's writer (`Db::connect`) that are per
    /// connection, and no waiting for the write lock.
    fn connect_quick_writer(&self) -> Result<Connection> {
        let conn = self.connect()?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        conn.busy_timeout(Duration::ZERO)?;
        Ok(conn)
    }

    /// Checkpoints the log on a thread of its own if it has grown past
    /// `CHECKPOINT_FRAMES` and no checkpoint runs already. PASSIVE first,
    /// which copies frames while writers go on; then RESTART, which holds
    /// writers off while it copies what came meanwhile and waits for the
    /// readers of older frames, so that the next write starts the log
    /// over. The quick writer never waits, so it never restarts the log
    /// itself, and without RESTART the log would only grow.
    fn checkpoint_if_due(&self) {
        let due = self
            .changes
            .as_ref()
            .and_then(ChangeCounter::frames_to_checkpoint)
            .is_some_and(|frames| frames >= CHECKPOINT_FRAMES);
        if !due || self.checkpointing.swap(true, Ordering::AcqRel) {
            return;
        }
        let running = self.checkpointing.clone();
        let path = self.path.clone();
        let spawned = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || {
                let done = Connection::open(&path).and_then(|conn| {
                    conn.busy_timeout(Duration::from_secs(5))?;
                    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))?;
                    conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |_| Ok(()))
                });
                if let Err(e) = done {
                    tracing::warn!(error = %e, "checkpointing the SQLite log failed");
                }
                running.store(false, Ordering::Release);
            });
        if spawned.is_err() {
            self.checkpointing.store(false, Ordering::Release);
        }
    }

    /// Runs one write statement, committed on return, if SQLite's write
    /// lock is free now; None if it is held, and the caller should queue
    /// the write for sqlx's writer instead. Only for statements that need
    /// no transaction around them.
    pub fn try_execute(&self, sql: &str, args: &[Arg<'_>]) -> Option<Result<usize>> {
        if self.closed.load(Ordering::Acquire) {
            return Some(Err(Error::Closed));
        }
        // Held for one statement; the other worker waits that long at most.
        let mut slot = self.quick_writer.lock().unwrap_or_else(|e| e.into_inner());
        let conn = match slot.take() {
            Some(conn) => conn,
            None => match self.connect_quick_writer() {
                Ok(conn) => conn,
                Err(e) => return Some(Err(e)),
            },
        };
        let result = (|| {
            let mut statement = conn.prepare_cached(sql)?;
            bind(&mut statement, args)?;
            Ok(statement.raw_execute()?)
        })();
        if left_idle(&conn) {
            *slot = Some(conn);
        } else {
            tracing::error!("the quick SQLite writer was left inside a transaction; dropped");
        }
        drop(slot);
        if result.is_ok() {
            self.checkpoint_if_due();
        }
        match result {
            Err(Error::Sqlite(e))
                if matches!(
                    e.sqlite_error_code(),
                    Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
                ) =>
            {
                None
            }
            other => Some(other),
        }
    }

    /// Runs `read` on an idle connection, and hands the connection back
    /// only if the read left it idle (see the module comment).
    fn with<T>(&self, read: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        let pooled = self.idle.lock().expect("readers lock").pop();
        let conn = match pooled {
            Some(conn) => conn,
            None => self.connect_reader()?,
        };
        let result = read(&conn);
        if left_idle(&conn) {
            let mut idle = self.idle.lock().expect("readers lock");
            if idle.len() < MAX_IDLE && !self.closed.load(Ordering::Acquire) {
                idle.push(conn);
            }
        } else {
            tracing::error!("a SQLite read connection was left inside a read transaction; dropped");
        }
        result
    }

    pub fn fetch_all<T: FromRow>(&self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<T>> {
        self.with(|conn| {
            let mut statement = conn.prepare_cached(sql)?;
            bind(&mut statement, args)?;
            let mut rows = statement.raw_query();
            let mut found = Vec::new();
            while let Some(row) = rows.next()? {
                found.push(T::from_row(&NamedRow::new(row))?);
            }
            Ok(found)
        })
    }

    /// A point read, answered from `point_reads` when nothing was
    /// committed since it was last read (`sqlite_cache`).
    pub fn fetch_optional<T: FromRow>(&self, sql: &str, args: &[Arg<'_>]) -> Result<Option<T>> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        // Before the read: see `sqlite_cache` for why.
        let version = self.changes.as_ref().and_then(ChangeCounter::version);
        if let Some(version) = &version {
            if let Some(kept) = self.point_reads.get(version, sql, args) {
                return kept.decode();
            }
        }
        let row = self.with(|conn| {
            let mut statement = conn.prepare_cached(sql)?;
            bind(&mut statement, args)?;
            let mut rows = statement.raw_query();
            rows.next()?.map(OwnedRow::read).transpose()
        })?;
        let Some(version) = version else {
            return row.as_ref().map(T::from_row).transpose();
        };
        let read = Arc::new(KeptRead::new(row));
        let found = read.decode()?;
        self.point_reads.put(version, sql, args, read);
        Ok(found)
    }

    /// Closes every idle connection and refuses new statements: after
    /// this the files are no longer held open here.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.idle.lock().expect("readers lock").clear();
        *self.quick_writer.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// Whether a connection may be used again: outside any transaction, no
/// statement still stepping (see the module comment).
fn left_idle(conn: &Connection) -> bool {
    conn.is_autocommit() && !conn.is_busy()
}

/// A row read by column name. rusqlite finds a name by comparing it with
/// every column's in turn, which makes reading a wide row quadratic; models
/// read columns in about the order the query selects them, so the search
/// starts just after the column found last.
struct NamedRow<'r, 's> {
    row: &'r rusqlite::Row<'s>,
    next: Cell<usize>,
}

impl<'r, 's> NamedRow<'r, 's> {
    fn new(row: &'r rusqlite::Row<'s>) -> Self {
        NamedRow {
            row,
            next: Cell::new(0),
        }
    }

    fn index(&self, column: &str) -> Result<usize> {
        let statement = self.row.as_ref();
        let count = statement.column_count();
        let start = self.next.get();
        for offset in 0..count {
            let index = (start + offset) % count;
            if statement.column_name(index)?.eq_ignore_ascii_case(column) {
                self.next.set(index + 1);
                return Ok(index);
            }
        }
        Err(rusqlite::Error::InvalidColumnName(column.to_string()).into())
    }
}

impl SqliteColumns for NamedRow<'_, '_> {
    fn get<T: FromSql>(&self, column: &str) -> Result<T> {
        Ok(self.row.get(self.index(column)?)?)
    }
}

/// A SQLite row whose columns are read by name: one being stepped
/// (`NamedRow`) or one kept (`sqlite_cache::OwnedRow`).
pub(super) trait SqliteColumns {
    fn get<T: FromSql>(&self, column: &str) -> Result<T>;
}

impl<R: SqliteColumns> Row for R {
    fn text(&self, column: &str) -> Result<String> {
        self.get(column)
    }
    fn opt_text(&self, column: &str) -> Result<Option<String>> {
        self.get(column)
    }
    fn int(&self, column: &str) -> Result<i64> {
        self.get(column)
    }
    fn opt_int(&self, column: &str) -> Result<Option<i64>> {
        self.get(column)
    }
}

/// Binds `$N` parameters by their number, as sqlx does; SQLite numbers
/// parameters by first appearance, which is not always N.
fn bind(statement: &mut rusqlite::CachedStatement<'_>, args: &[Arg<'_>]) -> Result<()> {
    for index in 1..=statement.parameter_count() {
        let number = match statement.parameter_name(index) {
            Some(name) => name
                .trim_start_matches(['$', '?'])
                .parse::<usize>()
                .map_err(|_| Error::decode(name, "parameters are written $1, $2, …"))?,
            None => index,
        };
        let arg = args
            .get(number.wrapping_sub(1))
            .ok_or_else(|| Error::decode(&format!("${number}"), "no argument for it"))?;
        match *arg {
            Arg::Text(s) => statement.raw_bind_parameter(index, s)?,
            Arg::Int(i) => statement.raw_bind_parameter(index, i)?,
            Arg::NullText | Arg::NullInt => {
                statement.raw_bind_parameter(index, rusqlite::types::Null)?
            }
        }
    }
    Ok(())
}
