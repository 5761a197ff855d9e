//! Segment-style cursor pagination: `pagination[count]` (1–1000, default
//! 200; `pagination.count` also accepted) and `pagination[cursor]`; answers
//! carry `pagination {current, next, previous, totalEntries}`. Cursors are
//! keyset positions, so rows inserted while a client pages cause neither
//! duplicates nor gaps.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Serialize;

use super::error::{ApiError, FieldError};
use super::query::QueryParams;
use crate::db::pagination::{Page, PageQuery, Position};

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

impl PageRequest {
    /// The keyset page of a creation-ordered list; 422 for a cursor that
    /// is not one of ours.
    pub fn keyset(&self) -> Result<PageQuery, ApiError> {
        let after = match &self.after {
            None => None,
            Some(position) => Some(split_position(position).ok_or_else(|| {
                ApiError::Validation(vec![FieldError::new(
                    "pagination.cursor",
                    "is not a cursor this API returned",
                )])
            })?),
        };
        Ok(PageQuery {
            count: self.count,
            after,
        })
    }

    /// The `pagination` object of the answer with `page`.
    pub fn pagination<T>(&self, page: &Page<T>) -> Pagination {
        Pagination {
            current: self.cursor.clone(),
            next: page.next.as_ref().map(encode_position),
            previous: page.previous.as_ref().map(|p| {
                p.as_ref()
                    .map_or_else(|| START.to_string(), encode_position)
            }),
            total_entries: page.total,
        }
    }
}

fn encode_position(position: &Position) -> String {
    encode_cursor(&format!("{}:{}", position.created_at, position.id))
}

fn split_position(position: &str) -> Option<Position> {
    let (created, id) = position.split_once(':')?;
    Some(Position {
        created_at: created.parse().ok()?,
        id: id.to_string(),
    })
}
