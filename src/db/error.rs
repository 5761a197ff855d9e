//! The one error of the data layer, whichever driver raised it, and the
//! two questions every caller asks of it: can a retry later succeed, and
//! was it a duplicate?

/// A failed database operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Sqlx(#[from] sqlx::Error),
    /// From the connections of `db::sqlite_direct`.
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    /// A stored value that does not parse as its type: a bug or a hand edit.
    #[error("column {column}: {message}")]
    Decode { column: String, message: String },
    #[error("the database is closed")]
    Closed,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub const DISK_FULL: &str = "the database's disk is full; retry later";
const DOWN: &str = "the database is unavailable; retry later";
const READ_ONLY: &str = "the database is read-only; retry later";
const IO: &str = "the database cannot read or write its files; retry later";

impl Error {
    pub fn decode(column: &str, message: impl std::fmt::Display) -> Error {
        Error::Decode {
            column: column.to_string(),
            message: message.to_string(),
        }
    }

    /// Whether the error is a unique-constraint violation (a duplicate).
    pub fn is_unique_violation(&self) -> bool {
        match self {
            Error::Sqlx(sqlx::Error::Database(db)) => db.is_unique_violation(),
            Error::Sqlite(e) => {
                e.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation)
            }
            _ => false,
        }
    }

    /// Why the database cannot serve a request right now, when the cause is
    /// on its side and a retry later can succeed: it is down or restarting,
    /// its disk is full, or it is read-only. None for every other error (a
    /// bug).
    pub fn unavailable_reason(&self) -> Option<&'static str> {
        match self {
            Error::Sqlx(e) => sqlx_unavailable_reason(e),
            Error::Sqlite(e) => sqlite_code_reason(e.sqlite_error_code()?),
            Error::Closed => Some(DOWN),
            Error::Decode { .. } => None,
        }
    }
}

fn sqlx_unavailable_reason(err: &sqlx::Error) -> Option<&'static str> {
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
            } else {
                sqlite_code_reason(sqlx_sqlite_code(db.as_ref())?)
            }
        }
        _ => None,
    }
}

/// SQLITE_BUSY or SQLITE_LOCKED from sqlx's SQLite driver: a lock another
/// connection holds, which this one did not wait for.
pub fn is_sqlite_busy(err: &sqlx::Error) -> bool {
    use rusqlite::ErrorCode::{DatabaseBusy, DatabaseLocked};
    match err {
        sqlx::Error::Database(db) => matches!(
            sqlx_sqlite_code(db.as_ref()),
            Some(DatabaseBusy | DatabaseLocked)
        ),
        _ => false,
    }
}

/// The primary result code of an error from sqlx's SQLite driver; None for
/// another driver's.
fn sqlx_sqlite_code(db: &dyn sqlx::error::DatabaseError) -> Option<rusqlite::ErrorCode> {
    db.try_downcast_ref::<sqlx::sqlite::SqliteError>()?;
    // Extended result codes; the primary code is the low byte.
    let primary = db.code()?.parse::<i32>().ok()? & 0xff;
    Some(rusqlite::ffi::Error::new(primary).code)
}

fn sqlite_code_reason(code: rusqlite::ErrorCode) -> Option<&'static str> {
    use rusqlite::ErrorCode::*;
    match code {
        DiskFull => Some(DISK_FULL),
        ReadOnly => Some(READ_ONLY),
        SystemIoFailure | CannotOpen => Some(IO),
        DatabaseBusy | DatabaseLocked => Some(DOWN),
        _ => None,
    }
}
