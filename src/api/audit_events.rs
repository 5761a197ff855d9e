//! `GET /audit-events` (owner only): the workspace's audit trail, newest
//! first, filtered, with cursor pagination. There is deliberately no way to
//! change or remove an event through the API.

use std::future::{ready, Ready};

use actix_web::{web, FromRequest, HttpRequest};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use super::auth::{Caller, Owner};
use super::doc::{Describe, OperationDoc};
use super::error::{ApiError, FieldError};
use super::pagination::{
    describe_pagination, encode_cursor, PageRequest, Pagination, COUNT_KEYS, CURSOR_KEYS, START,
};
use super::query::QueryParams;
use super::reply::Data;
use super::route::Resource;
use crate::audit::{Filter, RESOURCE_TYPES};
use crate::db::audit_events::{self, AuditEvent};
use crate::state::AppState;
use crate::time::parse_rfc3339_micros;

pub fn resources() -> Vec<Resource> {
    vec![Resource::new("/audit-events", "Audit Trail").get(
        list,
        OperationDoc::new("listAuditEvents", "The workspace's audit trail, newest first")
            .describe("An unknown query parameter is refused, so that a misspelt filter cannot widen the answer."),
    )]
}

/// `GET /audit-events`.
#[derive(Serialize, ToSchema)]
pub struct ListAuditEventsOutput {
    events: Vec<AuditEvent>,
    pagination: Pagination,
}

/// The filters and page of `GET /audit-events`, or every problem with
/// them (422, the handler's to return after the token's).
pub struct AuditQuery {
    filter: Filter,
    page: PageRequest,
}

impl FromRequest for AuditQuery {
    type Error = ApiError;
    type Future = Ready<Result<AuditQuery, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        ready(AuditQuery::parse(&QueryParams::parse(req.query_string())))
    }
}

impl Describe for AuditQuery {
    fn describe(doc: &mut OperationDoc) {
        let time = json!({ "type": "string", "format": "date-time" });
        let text = |max: usize| {
            json!({
                "type": "string",
                "minLength": 1,
                "maxLength": max,
                "not": { "pattern": "[\\x00-\\x1F\\x7F-\\x9F]" },
            })
        };
        doc.query(
            "startTime",
            "Events at or after this time (RFC 3339)",
            time.clone(),
        );
        doc.query(
            "endTime",
            "Events at or before this time (RFC 3339); not before startTime",
            time,
        );
        doc.query("resourceId", "Events about this resource", text(100));
        doc.query(
            "resourceType",
            "Events about resources of this type",
            json!({ "type": "string", "enum": RESOURCE_TYPES }),
        );
        doc.query(
            "actor",
            "Events by this actor: `public-api-token/<id>` gives that token's actions and its revocation",
            text(200),
        );
        describe_pagination(doc);
        doc.error(
            422,
            "Every bad filter or pagination parameter, and any unknown one",
        );
    }
}

const FILTERS: &[&str] = &[
    "startTime",
    "endTime",
    "resourceId",
    "resourceType",
    "actor",
];

/// Reads the filters, collecting every problem. Unknown parameters are
/// refused: a misspelt filter (`resourceID`) would otherwise silently widen
/// the answer, which is the wrong failure for a forensic query.
fn filter_from(query: &QueryParams, errors: &mut Vec<FieldError>) -> Filter {
    let known: Vec<&str> = FILTERS
        .iter()
        .chain(COUNT_KEYS)
        .chain(CURSOR_KEYS)
        .copied()
        .collect();
    for key in query.keys() {
        if !known.contains(&key) {
            errors.push(FieldError::new(
                key,
                format!(
                    "unknown query parameter; expected one of {}",
                    known.join(", ")
                ),
            ));
        }
    }
    let mut time = |name: &str| {
        let raw = query.get(name)?;
        let parsed = parse_rfc3339_micros(raw);
        if parsed.is_none() {
            errors.push(FieldError::new(
                name,
                "must be an RFC 3339 time, e.g. 2024-05-01T12:00:00Z",
            ));
        }
        parsed
    };
    let start_time = time("startTime");
    let end_time = time("endTime");
    if let (Some(start), Some(end)) = (start_time, end_time) {
        if end < start {
            errors.push(FieldError::new("endTime", "must not be before startTime"));
        }
    }
    let mut text = |name: &str, max: usize| {
        let raw = query.get(name)?;
        if raw.is_empty() || raw.chars().count() > max {
            errors.push(FieldError::new(
                name,
                format!("must be 1 to {max} characters"),
            ));
            return None;
        }
        if raw.chars().any(char::is_control) {
            errors.push(FieldError::new(name, "must not contain control characters"));
            return None;
        }
        Some(raw.to_string())
    };
    let resource_id = text("resourceId", 100);
    let actor = text("actor", 200);
    let resource_type = query.get("resourceType").and_then(|raw| {
        if RESOURCE_TYPES.contains(&raw) {
            Some(raw.to_string())
        } else {
            errors.push(FieldError::new(
                "resourceType",
                format!("must be one of {}", RESOURCE_TYPES.join(", ")),
            ));
            None
        }
    });
    Filter {
        start_time,
        end_time,
        resource_id,
        resource_type,
        actor,
        event_type: None,
        before_seq: None,
    }
}

impl AuditQuery {
    fn parse(query: &QueryParams) -> Result<AuditQuery, ApiError> {
        let mut errors = Vec::new();
        let mut filter = filter_from(query, &mut errors);
        let page = PageRequest::from_query(query, &mut errors);
        // A position is a sequence number: the page holds the events below it.
        filter.before_seq = match page.after.as_deref().map(str::parse::<i64>) {
            None => None,
            Some(Ok(seq)) if seq > 0 => Some(seq),
            Some(_) => {
                errors.push(FieldError::new(
                    "pagination.cursor",
                    "is not a cursor this API returned",
                ));
                None
            }
        };
        if errors.is_empty() {
            Ok(AuditQuery { filter, page })
        } else {
            Err(ApiError::Validation(errors))
        }
    }
}

pub async fn list(
    caller: Caller<Owner>,
    query: Result<AuditQuery, ApiError>,
    state: web::Data<AppState>,
) -> Result<Data<ListAuditEventsOutput>, ApiError> {
    let AuditQuery { filter, page } = query?;
    let (mut events, total) =
        audit_events::list(&state.db, &caller.workspace_id, &filter, page.count + 1).await?;
    let has_next = events.len() as i64 > page.count;
    events.truncate(page.count as usize);
    let next = events
        .last()
        .filter(|_| has_next)
        .map(|e| encode_cursor(&e.seq.to_string()));
    let previous = match filter.before_seq {
        None => None,
        Some(before) => {
            // The previous page is the `count` matching events just above
            // this one; its cursor lies right above the highest of them.
            let above = audit_events::seqs_from(
                &state.db,
                &caller.workspace_id,
                &filter,
                before,
                page.count + 1,
            )
            .await?;
            Some(if above.len() as i64 > page.count {
                encode_cursor(&(above[page.count as usize - 1] + 1).to_string())
            } else {
                START.to_string()
            })
        }
    };
    Ok(Data(ListAuditEventsOutput {
        events,
        pagination: Pagination {
            current: page.cursor,
            next,
            previous,
            total_entries: total,
        },
    }))
}
