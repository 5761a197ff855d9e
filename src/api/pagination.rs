//! Segment-style cursor pagination: `pagination[count]` (1–1000, default
//! 200; `pagination.count` also accepted) and `pagination[cursor]`; answers
//! carry `pagination {current, next, previous, totalEntries}`. Cursors are
//! keyset positions, so rows inserted while a client pages cause neither
//! duplicates nor gaps.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Serialize;
use sqlx::Row;

use super::error::{ApiError, FieldError};
use super::query::QueryParams;
use crate::db::Db;

pub const DEFAULT_COUNT: i64 = 200;
pub const MAX_COUNT: i64 = 1000;
/// The query parameters of a page request, in both spellings.
pub const COUNT_KEYS: &[&str] = &["pagination[count]", "pagination.count"];
pub const CURSOR_KEYS: &[&str] = &["pagination[cursor]", "pagination.cursor"];
/// The first page's cursor, as Segment spells it (base64 of "0").
pub const START: &str = "MA==";

#[derive(Debug, Clone)]
pub struct PageRequest {
    pub count: i64,
    /// None: the first page.
    pub after: Option<String>,
    pub cursor: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Pagination {
    pub current: String,
    pub next: Option<String>,
    pub previous: Option<String>,
    pub total_entries: i64,
}

impl PageRequest {
    /// The page a list endpoint without other query parameters asks for;
    /// 422 for a bad count or cursor.
    pub fn from_request(req: &actix_web::HttpRequest) -> Result<PageRequest, ApiError> {
        let mut errors = Vec::new();
        let page = PageRequest::from_query(&QueryParams::parse(req.query_string()), &mut errors);
        if errors.is_empty() {
            Ok(page)
        } else {
            Err(ApiError::Validation(errors))
        }
    }

    pub fn from_query(q: &QueryParams, errors: &mut Vec<FieldError>) -> PageRequest {
        let count = match q.get_any(COUNT_KEYS) {
            None => DEFAULT_COUNT,
            Some(raw) => match raw.parse::<i64>() {
                Ok(n) if (1..=MAX_COUNT).contains(&n) => n,
                _ => {
                    errors.push(FieldError::new(
                        "pagination.count",
                        format!("must be a whole number from 1 to {MAX_COUNT}"),
                    ));
                    DEFAULT_COUNT
                }
            },
        };
        let cursor = q.get_any(CURSOR_KEYS).unwrap_or(START).to_string();
        let after = if cursor == START || cursor.is_empty() {
            None
        } else {
            match decode_cursor(&cursor) {
                Some(position) => Some(position),
                None => {
                    errors.push(FieldError::new(
                        "pagination.cursor",
                        "is not a cursor this API returned",
                    ));
                    None
                }
            }
        };
        PageRequest {
            count,
            after,
            cursor,
        }
    }
}

pub fn encode_cursor(position: &str) -> String {
    URL_SAFE_NO_PAD.encode(position)
}

pub fn decode_cursor(cursor: &str) -> Option<String> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        // Positions are digits, a colon and an id: nothing else may reach
        // a query (PostgreSQL text cannot even hold NUL).
        .filter(|s| !s.is_empty() && !s.chars().any(char::is_control))
}

fn split_position(position: &str) -> Option<(i64, &str)> {
    let (created, id) = position.split_once(':')?;
    Some((created.parse().ok()?, id))
}

/// One page of a workspace's rows in creation order, for every table with
/// `(workspace_id, created_at, id)`. `columns` must not include the two
/// trailing key columns; they are appended.
pub async fn fetch_page(
    db: &Db,
    table: &str,
    columns: &str,
    workspace_id: &str,
    page: &PageRequest,
) -> Result<(Vec<sqlx::any::AnyRow>, Pagination), ApiError> {
    let (after_created, after_id) = match &page.after {
        Some(p) => split_position(p).ok_or_else(|| {
            ApiError::Validation(vec![FieldError::new(
                "pagination.cursor",
                "is not a cursor this API returned",
            )])
        })?,
        None => (i64::MIN, ""),
    };
    let sql = format!(
        "SELECT {columns}, created_at, id FROM {table}
         WHERE workspace_id = $1 AND (created_at > $2 OR (created_at = $2 AND id > $3))
         ORDER BY created_at, id LIMIT $4"
    );
    let mut rows = sqlx::query(&sql)
        .bind(workspace_id)
        .bind(after_created)
        .bind(after_id)
        .bind(page.count + 1)
        .fetch_all(db.pool())
        .await?;
    let has_next = rows.len() as i64 > page.count;
    rows.truncate(page.count as usize);
    let key_of = |row: &sqlx::any::AnyRow| {
        let n = row.len();
        encode_cursor(&format!(
            "{}:{}",
            row.get::<i64, _>(n - 2),
            row.get::<String, _>(n - 1)
        ))
    };
    let next = if has_next {
        rows.last().map(key_of)
    } else {
        None
    };
    let previous = if page.after.is_some() {
        let back = sqlx::query(&format!(
            "SELECT created_at, id FROM {table}
             WHERE workspace_id = $1 AND (created_at < $2 OR (created_at = $2 AND id <= $3))
             ORDER BY created_at DESC, id DESC LIMIT $4"
        ))
        .bind(workspace_id)
        .bind(after_created)
        .bind(after_id)
        .bind(page.count + 1)
        .fetch_all(db.pool())
        .await?;
        Some(if back.len() as i64 > page.count {
            let row = &back[page.count as usize];
            encode_cursor(&format!(
                "{}:{}",
                row.get::<i64, _>(0),
                row.get::<String, _>(1)
            ))
        } else {
            START.to_string()
        })
    } else {
        None
    };
    let total: i64 = sqlx::query(&format!(
        "SELECT COUNT(*) FROM {table} WHERE workspace_id = $1"
    ))
    .bind(workspace_id)
    .fetch_one(db.pool())
    .await?
    .get(0);
    Ok((
        rows,
        Pagination {
            current: page.cursor.clone(),
            next,
            previous,
            total_entries: total,
        },
    ))
}
