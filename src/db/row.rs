//! What a query takes and gives, the same for every driver: arguments as
//! `Arg`s, rows read by column name through `Row`, and a type built from a
//! row through `FromRow`. One SQL text then runs on SQLite's sqlx writer,
//! SQLite's read connections and PostgreSQL alike.

use serde::de::DeserializeOwned;

use super::error::{Error, Result};
use crate::domain::Parse;
use crate::time::Timestamp;

/// One bound value. Times are microseconds and flags are 0 or 1 on both
/// backends, so text and integers are all a query needs. A NULL carries its
/// type: PostgreSQL checks a parameter's type against its column.
#[derive(Debug, Clone, Copy)]
pub enum Arg<'a> {
    Text(&'a str),
    Int(i64),
    NullText,
    NullInt,
}

/// A value that can be bound to a query.
pub trait ToArg {
    fn to_arg(&self) -> Arg<'_>;
}

impl ToArg for str {
    fn to_arg(&self) -> Arg<'_> {
        Arg::Text(self)
    }
}

impl ToArg for String {
    fn to_arg(&self) -> Arg<'_> {
        Arg::Text(self)
    }
}

impl ToArg for i64 {
    fn to_arg(&self) -> Arg<'_> {
        Arg::Int(*self)
    }
}

impl ToArg for bool {
    fn to_arg(&self) -> Arg<'_> {
        Arg::Int(i64::from(*self))
    }
}

impl<T: ToArg + ?Sized> ToArg for &T {
    fn to_arg(&self) -> Arg<'_> {
        (**self).to_arg()
    }
}

/// None binds a NULL of the type `T` binds.
impl<T: ToArg + Nullable> ToArg for Option<T> {
    fn to_arg(&self) -> Arg<'_> {
        match self {
            Some(value) => value.to_arg(),
            None => T::NULL,
        }
    }
}

/// The NULL of a type, for `Option`s of it.
pub trait Nullable {
    const NULL: Arg<'static>;
}

impl Nullable for i64 {
    const NULL: Arg<'static> = Arg::NullInt;
}

impl Nullable for String {
    const NULL: Arg<'static> = Arg::NullText;
}

impl Nullable for &str {
    const NULL: Arg<'static> = Arg::NullText;
}

impl Nullable for crate::time::Timestamp {
    const NULL: Arg<'static> = Arg::NullInt;
}

/// `args![a, b, c]`: the arguments of a query, in `$1, $2, …` order.
#[macro_export]
macro_rules! args {
    ($($arg:expr),* $(,)?) => {
        &[$($crate::db::ToArg::to_arg(&$arg)),*]
    };
}

/// A result row, read by column name.
pub trait Row {
    fn text(&self, column: &str) -> Result<String>;
    fn opt_text(&self, column: &str) -> Result<Option<String>>;
    fn int(&self, column: &str) -> Result<i64>;
    fn opt_int(&self, column: &str) -> Result<Option<i64>>;

    /// A 0/1 flag.
    fn flag(&self, column: &str) -> Result<bool> {
        Ok(self.int(column)? != 0)
    }

    fn time(&self, column: &str) -> Result<Timestamp> {
        Ok(Timestamp(self.int(column)?))
    }

    fn opt_time(&self, column: &str) -> Result<Option<Timestamp>> {
        Ok(self.opt_int(column)?.map(Timestamp))
    }

    /// A value stored as JSON text.
    fn json<T: DeserializeOwned>(&self, column: &str) -> Result<T>
    where
        Self: Sized,
    {
        serde_json::from_str(&self.text(column)?).map_err(|e| Error::decode(column, e))
    }

    /// A domain value stored as text, parsed as at the edge.
    fn parse<T: Parse>(&self, column: &str) -> Result<T>
    where
        Self: Sized,
    {
        T::parse(&self.text(column)?).map_err(|e| Error::decode(column, e))
    }
}

/// A type built from one result row.
/// `Clone + Send + Sync + 'static` so that a decoded value can be kept
/// beside its row (`sqlite_cache::KeptRead`).
pub trait FromRow: Sized + Clone + Send + Sync + 'static {
    fn from_row(row: &impl Row) -> Result<Self>;
}

/// `SELECT COUNT(*) AS n …` and other single numbers.
#[derive(Debug, Clone, Copy)]
pub struct Count(pub i64);

impl FromRow for Count {
    fn from_row(row: &impl Row) -> Result<Self> {
        Ok(Count(row.int("n")?))
    }
}

/// A single text column named `value`.
#[derive(Debug, Clone)]
pub struct Text(pub String);

impl FromRow for Text {
    fn from_row(row: &impl Row) -> Result<Self> {
        Ok(Text(row.text("value")?))
    }
}

macro_rules! sqlx_row {
    ($row:ty) => {
        impl Row for $row {
            fn text(&self, column: &str) -> Result<String> {
                Ok(sqlx::Row::try_get(self, column)?)
            }
            fn opt_text(&self, column: &str) -> Result<Option<String>> {
                Ok(sqlx::Row::try_get(self, column)?)
            }
            fn int(&self, column: &str) -> Result<i64> {
                Ok(sqlx::Row::try_get(self, column)?)
            }
            fn opt_int(&self, column: &str) -> Result<Option<i64>> {
                Ok(sqlx::Row::try_get(self, column)?)
            }
        }
    };
}

sqlx_row!(sqlx::sqlite::SqliteRow);
sqlx_row!(sqlx::postgres::PgRow);

/// Binds `args` to a sqlx query of either backend, in order.
macro_rules! bind_sqlx {
    ($query:expr, $args:expr) => {{
        let mut query = $query;
        for arg in $args {
            query = match *arg {
                $crate::db::Arg::Text(s) => query.bind(s),
                $crate::db::Arg::Int(i) => query.bind(i),
                $crate::db::Arg::NullText => query.bind(None::<&str>),
                $crate::db::Arg::NullInt => query.bind(None::<i64>),
            };
        }
        query
    }};
}
pub(crate) use bind_sqlx;
