//! Segment-style cursor pagination: `pagination[count]` (1–1000, default
//! 200; `pagination.count` also accepted) and `pagination[cursor]`; answers
//! carry `pagination {current, next, previous, totalEntries}`. Cursors are
//! keyset positions, so rows inserted while a client pages cause neither
//! duplicates nor gaps.

use std::future::{ready, Ready};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Serialize;
use serde_json::json;

use super::doc::{Describe, OperationDoc};
use super::error::{ApiError, FieldError};
use super::query::QueryParams;
use crate::db::pagination::{Page, PageQuery, Position};

pub const DEFAULT_COUNT: i64 = 200;
pub const MAX_COUNT: i64 = 1000;
/// The query parameters of a page request: the documented spelling first,
/// then Segment's other one.
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

/// Where a page lies in its list. Pass `next` or `previous` back as
/// `pagination[cursor]`; null means there is no such page.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Pagination {
    /// The cursor of this page.
    pub current: String,
    #[schema(required)]
    pub next: Option<String>,
    #[schema(required)]
    pub previous: Option<String>,
    /// How many entries the whole list has.
    #[schema(minimum = 0)]
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
        // Every spelling given must be valid, though the first one wins:
        // a bad value is never silently ignored.
        let mut count = None;
        for raw in COUNT_KEYS.iter().filter_map(|k| q.get(k)) {
            match raw.parse::<i64>() {
                Ok(n) if (1..=MAX_COUNT).contains(&n) => {
                    count.get_or_insert(n);
                }
                _ => {
                    errors.push(FieldError::new(
                        "pagination.count",
                        format!("must be a whole number from 1 to {MAX_COUNT}"),
                    ));
                    break;
                }
            }
        }
        let count = count.unwrap_or(DEFAULT_COUNT);
        let mut chosen: Option<(String, Option<String>)> = None;
        for cursor in CURSOR_KEYS.iter().filter_map(|k| q.get(k)) {
            let after = if cursor == START || cursor.is_empty() {
                None
            } else {
                match decode_cursor(cursor) {
                    Some(position) => Some(position),
                    None => {
                        errors.push(FieldError::new(
                            "pagination.cursor",
                            "is not a cursor this API returned",
                        ));
                        break;
                    }
                }
            };
            chosen.get_or_insert((cursor.to_string(), after));
        }
        let (cursor, after) = chosen.unwrap_or_else(|| (START.to_string(), None));
        PageRequest {
            count,
            after,
            cursor,
        }
    }
}

/// The pagination of a list that takes no other query parameters; its
/// errors (422) are the handler's to return, after the token's.
impl actix_web::FromRequest for PageRequest {
    type Error = ApiError;
    type Future = Ready<Result<PageRequest, ApiError>>;

    fn from_request(req: &actix_web::HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        ready(PageRequest::from_request(req))
    }
}

impl Describe for PageRequest {
    fn describe(doc: &mut OperationDoc) {
        describe_pagination(doc);
        doc.error(422, "A bad pagination parameter");
    }
}

/// The query parameters of a page. `pagination.count` and
/// `pagination.cursor` are accepted as aliases but not documented, so that
/// generated clients have one parameter for each.
pub fn describe_pagination(doc: &mut OperationDoc) {
    doc.query(
        COUNT_KEYS[0],
        "How many entries a page holds",
        json!({
            "type": "integer",
            "minimum": 1,
            "maximum": MAX_COUNT,
            "default": DEFAULT_COUNT,
        }),
    );
    doc.query(
        CURSOR_KEYS[0],
        "The page to answer: `next` or `previous` of an earlier answer; the first page without it",
        json!({ "type": "string" }),
    );
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
