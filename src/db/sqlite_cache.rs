//! Point reads on SQLite answered from memory for as long as nothing has
//! been committed since they were read, by any connection of any process.
//!
//! Every read transaction on a WAL database starts by reading the
//! WAL-index header from the shared-memory file (`-shm`), and locking a
//! read mark there; the lock's system calls, and the mutex SQLite holds
//! around them, cost more than the read itself. The header changes with
//! every commit (its change counter, frame count and salts), so a row read
//! while the header said H is still the row as long as the header still
//! says H. `ChangeCounter` reads the header the way SQLite's own readers
//! do, without the lock (<https://www.sqlite.org/walformat.html>, "The
//! WAL-Index Header"); `PointCache` keeps rows under the header they were
//! read at, and drops them all when it changes. Each kept row also keeps
//! the value it was first decoded into, so that a hit costs a clone rather
//! than parsing every column again.
//!
//! The header is read before the row: a commit in between makes the row
//! newer than its header, never older, so the row is dropped early rather
//! than served late. A header caught half written (its two copies differ)
//! bypasses the cache. This relies on every writer of the file using the
//! shared-memory WAL-index, as every SQLite connection in WAL mode does
//! unless it sets `locking_mode=EXCLUSIVE`, which would also lock
//! leakguard out of the file.

use std::any::Any;
use std::collections::HashMap;
use std::ffi::c_void;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, OnceLock};

use rusqlite::types::{FromSql, ValueRef};
use rusqlite::{ffi, Connection};

use super::error::{Error, Result};
use super::row::{Arg, FromRow};
use super::sqlite_direct::SqliteColumns;

/// Distinct reads kept; beyond this the cache starts over, so a client
/// that sends endless new tokens costs memory only up to here.
const MAX_ENTRIES: usize = 4096;
/// One copy of the header: `WalIndexHdr`, 48 bytes.
const HEADER_WORDS: usize = 12;

pub type Version = [u32; HEADER_WORDS];

/// The WAL-index header of one database file, read in place.
pub struct ChangeCounter {
    /// The start of the shared-memory region that holds the header: mapped
    /// by SQLite for `_owner`, and valid while that connection is open.
    header: *const u32,
    _owner: Mutex<Connection>,
}

// SAFETY: `header` points into a shared mapping that other threads and
// processes write; it is only ever read, with volatile reads, and the
// connection that keeps it mapped is never used after `open`.
unsafe impl Send for ChangeCounter {}
unsafe impl Sync for ChangeCounter {}

impl std::fmt::Debug for ChangeCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChangeCounter")
    }
}

impl ChangeCounter {
    /// Maps the WAL-index through `owner`, which must be a connection to a
    /// database in WAL mode; kept open (and otherwise unused) for as long
    /// as the counter lives.
    pub fn open(owner: Connection) -> Result<ChangeCounter> {
        // A first read opens the WAL and maps its index.
        owner.query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(()))?;
        let unavailable = || Error::decode("wal-index", "cannot map the WAL-index header");
        let mut file: *mut ffi::sqlite3_file = std::ptr::null_mut();
        let mut region: *mut c_void = std::ptr::null_mut();
        // SAFETY: the file pointer comes from SQLite for an open connection
        // and is used at once, before the connection can be closed. xShmMap
        // with `extend` 0 returns the mapping SQLite already holds for this
        // file (or null), which stays mapped while the connection is open.
        let rc = unsafe {
            let rc = ffi::sqlite3_file_control(
                owner.handle(),
                c"main".as_ptr(),
                ffi::SQLITE_FCNTL_FILE_POINTER,
                (&mut file as *mut *mut ffi::sqlite3_file).cast(),
            );
            if rc != ffi::SQLITE_OK || file.is_null() || (*file).pMethods.is_null() {
                return Err(unavailable());
            }
            let methods = &*(*file).pMethods;
            match methods.xShmMap {
                Some(map) if methods.iVersion >= 2 => map(file, 0, 32 * 1024, 0, &mut region),
                _ => return Err(unavailable()),
            }
        };
        if rc != ffi::SQLITE_OK || region.is_null() {
            return Err(unavailable());
        }
        let counter = ChangeCounter {
            header: region.cast_const().cast(),
            _owner: Mutex::new(owner),
        };
        counter.version().ok_or_else(unavailable)?;
        Ok(counter)
    }

    /// Frames in the write-ahead log not yet copied into the database file
    /// (`mxFrame` less the checkpoint's `nBackfill`, which follows the two
    /// header copies).
    pub fn frames_to_checkpoint(&self) -> Option<u32> {
        let frames = self.version()?[4];
        // SAFETY: as in `version`; the region holds the checkpoint info.
        let backfilled = unsafe { self.header.add(2 * HEADER_WORDS).read_volatile() };
        Some(frames.saturating_sub(backfilled))
    }

    /// The header now; None while a commit is writing it (or before the
    /// WAL-index is initialised).
    pub fn version(&self) -> Option<Version> {
        // As SQLite's walIndexTryHdr: the writer writes the second copy,
        // then the first; reading the first, then the second, and finding
        // them equal means neither was half written.
        let mut first = [0u32; HEADER_WORDS];
        let mut second = [0u32; HEADER_WORDS];
        for (i, word) in first.iter_mut().enumerate() {
            // SAFETY: see the struct; the region holds both copies.
            *word = unsafe { self.header.add(i).read_volatile() };
        }
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        for (i, word) in second.iter_mut().enumerate() {
            // SAFETY: as above.
            *word = unsafe { self.header.add(HEADER_WORDS + i).read_volatile() };
        }
        // `isInit`: the first byte of the fourth word.
        let initialised = first[3].to_ne_bytes()[0] != 0;
        (first == second && initialised).then_some(first)
    }
}

/// A row read from SQLite, kept by value.
#[derive(Debug, Clone)]
pub struct OwnedRow {
    columns: Vec<(String, rusqlite::types::Value)>,
}

impl OwnedRow {
    pub fn read(row: &rusqlite::Row<'_>) -> Result<OwnedRow> {
        let statement = row.as_ref();
        let mut columns = Vec::with_capacity(statement.column_count());
        for index in 0..statement.column_count() {
            columns.push((
                statement.column_name(index)?.to_string(),
                row.get::<_, rusqlite::types::Value>(index)?,
            ));
        }
        Ok(OwnedRow { columns })
    }

    fn value(&self, column: &str) -> Result<&rusqlite::types::Value> {
        // Exact names first: models ask for columns as the query names them.
        self.columns
            .iter()
            .find(|(name, _)| name == column)
            .or_else(|| {
                self.columns
                    .iter()
                    .find(|(name, _)| name.eq_ignore_ascii_case(column))
            })
            .map(|(_, value)| value)
            .ok_or_else(|| rusqlite::Error::InvalidColumnName(column.to_string()).into())
    }
}

impl SqliteColumns for OwnedRow {
    fn get<T: FromSql>(&self, column: &str) -> Result<T> {
        let value = ValueRef::from(self.value(column)?);
        T::column_result(value).map_err(|e| Error::decode(column, e))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum OwnedArg {
    Text(String),
    Int(i64),
    Null,
}

impl From<&Arg<'_>> for OwnedArg {
    fn from(arg: &Arg<'_>) -> OwnedArg {
        match *arg {
            Arg::Text(s) => OwnedArg::Text(s.to_string()),
            Arg::Int(i) => OwnedArg::Int(i),
            Arg::NullText | Arg::NullInt => OwnedArg::Null,
        }
    }
}

fn same_args(kept: &[OwnedArg], asked: &[Arg<'_>]) -> bool {
    kept.len() == asked.len()
        && kept.iter().zip(asked).all(|(k, a)| match (k, *a) {
            (OwnedArg::Text(k), Arg::Text(a)) => k == a,
            (OwnedArg::Int(k), Arg::Int(a)) => *k == a,
            (OwnedArg::Null, Arg::NullText | Arg::NullInt) => true,
            _ => false,
        })
}

/// The result of one point read: its row, if there was one, and the value
/// that row was first decoded into.
pub struct KeptRead {
    row: Option<OwnedRow>,
    decoded: OnceLock<Box<dyn Any + Send + Sync>>,
}

impl KeptRead {
    pub fn new(row: Option<OwnedRow>) -> KeptRead {
        KeptRead {
            row,
            decoded: OnceLock::new(),
        }
    }

    /// The row as a `T`: decoded the first time, cloned after. A read kept
    /// as another type (the same SQL decoded elsewhere into something
    /// else) is decoded afresh.
    pub fn decode<T: FromRow>(&self) -> Result<Option<T>> {
        let Some(row) = &self.row else {
            return Ok(None);
        };
        if let Some(value) = self.decoded.get().and_then(|d| d.downcast_ref::<T>()) {
            return Ok(Some(value.clone()));
        }
        let value = T::from_row(row)?;
        // Another thread may have decoded it meanwhile: either copy will do.
        let _ = self.decoded.set(Box::new(value.clone()));
        Ok(Some(value))
    }
}

struct Entry {
    sql: String,
    args: Vec<OwnedArg>,
    read: Arc<KeptRead>,
}

/// Results of `fetch_optional`, all read under one header version.
#[derive(Default)]
pub struct PointCache {
    kept: Mutex<Kept>,
    hasher: hashbrown::DefaultHashBuilder,
}

#[derive(Default)]
struct Kept {
    version: Option<Version>,
    /// By a hash of the SQL text and arguments; a bucket holds every entry
    /// with that hash.
    entries: HashMap<u64, Vec<Entry>>,
    len: usize,
}

impl std::fmt::Debug for PointCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PointCache")
            .field("entries", &self.lock().len)
            .finish()
    }
}

impl PointCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, Kept> {
        self.kept.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn key(&self, sql: &str, args: &[Arg<'_>]) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut hasher = self.hasher.build_hasher();
        sql.hash(&mut hasher);
        for arg in args {
            match *arg {
                Arg::Text(s) => s.hash(&mut hasher),
                Arg::Int(i) => i.hash(&mut hasher),
                Arg::NullText | Arg::NullInt => 0u8.hash(&mut hasher),
            }
        }
        hasher.finish()
    }

    /// The result kept for this read under `version`.
    pub fn get(&self, version: &Version, sql: &str, args: &[Arg<'_>]) -> Option<Arc<KeptRead>> {
        let key = self.key(sql, args);
        let kept = self.lock();
        if kept.version.as_ref() != Some(version) {
            return None;
        }
        kept.entries
            .get(&key)?
            .iter()
            .find(|e| e.sql == sql && same_args(&e.args, args))
            .map(|e| e.read.clone())
    }

    /// Keeps a result read after `version` was seen.
    pub fn put(&self, version: Version, sql: &str, args: &[Arg<'_>], read: Arc<KeptRead>) {
        let key = self.key(sql, args);
        let mut kept = self.lock();
        if kept.version != Some(version) || kept.len >= MAX_ENTRIES {
            kept.entries.clear();
            kept.len = 0;
            kept.version = Some(version);
        }
        let bucket = kept.entries.entry(key).or_default();
        if bucket
            .iter()
            .any(|e| e.sql == sql && same_args(&e.args, args))
        {
            return;
        }
        bucket.push(Entry {
            sql: sql.to_string(),
            args: args.iter().map(OwnedArg::from).collect(),
            read,
        });
        kept.len += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::super::row::{Count, Row};
    use super::*;

    fn wal_database(dir: &std::path::Path) -> Connection {
        let conn = Connection::open(dir.join("t.db")).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.execute_batch("CREATE TABLE t (n INTEGER)").unwrap();
        conn
    }

    #[test]
    fn every_commit_changes_the_version_and_nothing_else_does() {
        let dir = tempfile::tempdir().unwrap();
        let writer = wal_database(dir.path());
        let counter = ChangeCounter::open(Connection::open(dir.path().join("t.db")).unwrap())
            .expect("a WAL database's index maps");
        let mut seen = vec![counter.version().unwrap()];
        for n in 0..20 {
            writer
                .execute("INSERT INTO t (n) VALUES (?1)", [n])
                .unwrap();
            let now = counter.version().unwrap();
            assert!(!seen.contains(&now), "commit {n} left the header as it was");
            seen.push(now);
        }
        // Reads, a transaction rolled back and a checkpoint commit nothing.
        let last = counter.version();
        writer
            .query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0))
            .unwrap();
        writer
            .execute_batch("BEGIN; INSERT INTO t (n) VALUES (99); ROLLBACK;")
            .unwrap();
        writer
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
            .unwrap();
        assert_eq!(counter.version(), last);
        // After a full checkpoint the next commit restarts the log, and the
        // header still moves on.
        writer
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap();
        writer
            .execute("INSERT INTO t (n) VALUES (100)", [])
            .unwrap();
        assert!(!seen.contains(&counter.version().unwrap()));
    }

    #[test]
    fn a_kept_read_is_served_only_under_its_version() {
        let cache = PointCache::default();
        let (v1, mut v2) = ([1; HEADER_WORDS], [1; HEADER_WORDS]);
        v2[2] = 2;
        let sql = "SELECT n FROM t WHERE id = $1";
        let row = OwnedRow {
            columns: vec![("n".into(), rusqlite::types::Value::Integer(7))],
        };
        cache.put(
            v1,
            sql,
            &[Arg::Text("a")],
            Arc::new(KeptRead::new(Some(row))),
        );
        cache.put(v1, sql, &[Arg::Text("b")], Arc::new(KeptRead::new(None)));
        let kept = cache.get(&v1, sql, &[Arg::Text("a")]).unwrap();
        assert_eq!(kept.decode::<Count>().unwrap().map(|c| c.0), Some(7));
        let kept_none = cache.get(&v1, sql, &[Arg::Text("b")]).unwrap();
        assert!(kept_none.decode::<Count>().unwrap().is_none());
        assert!(cache.get(&v1, sql, &[Arg::Text("c")]).is_none());
        assert!(cache.get(&v1, sql, &[Arg::Int(1)]).is_none());
        assert!(cache.get(&v2, sql, &[Arg::Text("a")]).is_none());
        // A read kept under a newer version drops every older one.
        cache.put(v2, sql, &[Arg::Text("c")], Arc::new(KeptRead::new(None)));
        assert!(cache.get(&v1, sql, &[Arg::Text("a")]).is_none());
    }

    #[test]
    fn a_kept_row_is_decoded_once_per_type() {
        #[derive(Clone)]
        struct Doubled(i64);
        impl FromRow for Doubled {
            fn from_row(row: &impl Row) -> Result<Self> {
                Ok(Doubled(row.int("n")? * 2))
            }
        }
        let kept = KeptRead::new(Some(OwnedRow {
            columns: vec![("n".into(), rusqlite::types::Value::Integer(7))],
        }));
        assert_eq!(kept.decode::<Count>().unwrap().unwrap().0, 7);
        assert!(kept.decoded.get().unwrap().is::<Count>());
        // The same row read as another type is decoded as that type.
        assert_eq!(kept.decode::<Doubled>().unwrap().unwrap().0, 14);
        assert_eq!(kept.decode::<Count>().unwrap().unwrap().0, 7);
    }
}
