//! Keyset pages of a workspace's rows in creation order, for every table
//! with `(workspace_id, created_at, id)`. A position is the key of the last
//! row seen, so rows inserted while a client pages cause neither duplicates
//! nor gaps.

use super::{Arg, Conn, Count, FromRow, Result, Row};
use crate::args;

/// Where a page starts: after the row with this key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub created_at: i64,
    pub id: String,
}

/// A row that has a keyset position.
pub trait Keyed {
    fn position(&self) -> Position;
}

#[derive(Debug, Clone)]
pub struct PageQuery {
    pub count: i64,
    /// None: the first page.
    pub after: Option<Position>,
}

#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// The position after this page's last row, if more rows follow.
    pub next: Option<Position>,
    /// For every page but the first: where the page before it starts (None
    /// when that is the first page).
    pub previous: Option<Option<Position>>,
    /// Rows of the workspace in all.
    pub total: i64,
}

#[derive(Debug, Clone)]
struct Key {
    created_at: i64,
    id: String,
}

impl FromRow for Key {
    fn from_row(row: &impl Row) -> Result<Self> {
        Ok(Key {
            created_at: row.int("created_at")?,
            id: row.text("id")?,
        })
    }
}

/// One page of `table`'s rows of `workspace_id`. `columns` must include
/// `created_at` and `id`.
pub async fn page<T: FromRow + Keyed>(
    conn: impl Into<Conn<'_>>,
    table: &str,
    columns: &str,
    workspace_id: &str,
    query: &PageQuery,
) -> Result<Page<T>> {
    page_where(
        conn,
        table,
        columns,
        "workspace_id = $1",
        args![workspace_id],
        query,
    )
    .await
}

/// One page of the rows of `table` that `condition` selects, in creation
/// order. `condition` uses `$1`…`$n` for its `condition_args`; `columns`
/// must include `created_at` and `id`.
pub async fn page_where<T: FromRow + Keyed>(
    conn: impl Into<Conn<'_>>,
    table: &str,
    columns: &str,
    condition: &str,
    condition_args: &[Arg<'_>],
    query: &PageQuery,
) -> Result<Page<T>> {
    let mut conn = conn.into();
    let (after_created, after_id) = match &query.after {
        Some(p) => (p.created_at, p.id.as_str()),
        None => (i64::MIN, ""),
    };
    let n = condition_args.len();
    let (created, id, limit) = (n + 1, n + 2, n + 3);
    let mut items: Vec<T> = conn
        .fetch_all(
            &format!(
                "SELECT {columns} FROM {table}
                 WHERE {condition} AND (created_at > ${created} OR (created_at = ${created} AND id > ${id}))
                 ORDER BY created_at, id LIMIT ${limit}"
            ),
            &joined(condition_args, args![after_created, after_id, query.count + 1]),
        )
        .await?;
    let has_next = items.len() as i64 > query.count;
    items.truncate(query.count as usize);
    let next = if has_next {
        items.last().map(Keyed::position)
    } else {
        None
    };
    let previous = match &query.after {
        None => None,
        Some(_) => {
            let back: Vec<Key> = conn
                .fetch_all(
                    &format!(
                        "SELECT created_at, id FROM {table}
                         WHERE {condition} AND (created_at < ${created} OR (created_at = ${created} AND id <= ${id}))
                         ORDER BY created_at DESC, id DESC LIMIT ${limit}"
                    ),
                    &joined(condition_args, args![after_created, after_id, query.count + 1]),
                )
                .await?;
            Some(back.get(query.count as usize).map(|k| Position {
                created_at: k.created_at,
                id: k.id.clone(),
            }))
        }
    };
    let Count(total) = conn
        .fetch_one(
            &format!("SELECT COUNT(*) AS n FROM {table} WHERE {condition}"),
            condition_args,
        )
        .await?;
    Ok(Page {
        items,
        next,
        previous,
        total,
    })
}

fn joined<'a>(first: &[Arg<'a>], then: &[Arg<'a>]) -> Vec<Arg<'a>> {
    first.iter().chain(then).copied().collect()
}
