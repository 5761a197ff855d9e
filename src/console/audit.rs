//! The audit trail in the browser (owners): filters by event type, actor,
//! resource and time; cursor paging; export of the filtered view as CSV
//! or JSON lines, streamed a batch at a time; and whether the hash chain
//! verifies.

use actix_web::http::header;
use actix_web::http::Method;
use actix_web::web::Bytes;
use actix_web::{web, HttpResponse};
use minijinja::context;
use serde::Deserialize;

use super::incidents::ActorNames;
use super::route::Page;
use super::session::{Access, SignedIn};
use super::{page, ConsoleError};
use crate::audit::{self, AuditEvent, Filter};
use crate::db::{audit_events, Db};
use crate::domain::WorkspaceId;
use crate::state::AppState;

pub fn endpoints() -> Vec<Page> {
    vec![
        Page::new(Method::GET, "/app/w/{workspace}/audit", show),
        Page::new(
            Method::GET,
            "/app/w/{workspace}/audit/export.csv",
            export_csv,
        ),
        Page::new(
            Method::GET,
            "/app/w/{workspace}/audit/export.jsonl",
            export_jsonl,
        ),
    ]
}

/// Events per page.
const PAGE: i64 = 50;
/// Events per database read while exporting.
const EXPORT_BATCH: i64 = 500;

/// The filter form, as the query string carries it. Empty fields are
/// no filter.
#[derive(Debug, Default, Deserialize)]
pub struct AuditQuery {
    #[serde(default, rename = "type")]
    event_type: String,
    #[serde(default)]
    actor: String,
    #[serde(default)]
    resource: String,
    /// `YYYY-MM-DDTHH:MM[:SS]` in UTC (a `datetime-local` field), or RFC 3339.
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    /// Events below this sequence number (the next page).
    before: Option<i64>,
}

/// A time from the filter form, as microseconds.
fn parse_time(text: &str) -> Option<i64> {
    crate::time::parse_rfc3339_micros(text).or_else(|| {
        [
            "%Y-%m-%dT%H:%M",
            "%Y-%m-%dT%H:%M:%S",
            "%Y-%m-%dT%H:%M:%S%.f",
            "%Y-%m-%d %H:%M",
        ]
        .iter()
        .find_map(|f| chrono::NaiveDateTime::parse_from_str(text, f).ok())
        .map(|t| t.and_utc().timestamp_micros())
    })
}

impl AuditQuery {
    /// The database filter, or every problem with the form.
    fn filter(&self) -> Result<Filter, Vec<String>> {
        let mut errors = Vec::new();
        let mut text = |name: &str, value: &str| -> Option<String> {
            let value = value.trim();
            if value.is_empty() {
                return None;
            }
            if value.chars().count() > 200 || value.chars().any(char::is_control) {
                errors.push(format!(
                    "{name} must be at most 200 characters, without control characters."
                ));
                return None;
            }
            Some(value.to_string())
        };
        let event_type = text("Event type", &self.event_type);
        let actor = text("Actor", &self.actor);
        let resource_id = text("Resource", &self.resource);
        let mut time = |name: &str, value: &str| {
            let value = value.trim();
            if value.is_empty() {
                return None;
            }
            let parsed = parse_time(value);
            if parsed.is_none() {
                errors.push(format!(
                    "{name} must be a date and time like 2024-05-01T12:00 (UTC)."
                ));
            }
            parsed
        };
        let start_time = time("From", &self.from);
        // A time to the minute means the whole minute.
        let end_time = time("To", &self.to).map(|t| {
            if self.to.trim().len() == "YYYY-MM-DDTHH:MM".len() {
                t + 59_999_999
            } else {
                t
            }
        });
        if let (Some(s), Some(e)) = (start_time, end_time) {
            if e < s {
                errors.push("To must not be before From.".into());
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Filter {
            start_time,
            end_time,
            resource_id,
            resource_type: None,
            actor,
            event_type,
            before_seq: self.before.filter(|b| *b > 0),
        })
    }

    /// The query string of this filter (without paging), for links.
    fn filter_query(&self) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in [
            ("type", &self.event_type),
            ("actor", &self.actor),
            ("resource", &self.resource),
            ("from", &self.from),
            ("to", &self.to),
        ] {
            if !value.trim().is_empty() {
                query.append_pair(name, value.trim());
            }
        }
        query.finish()
    }
}

/// `GET /app/w/{workspace}/audit` (owners).
pub async fn show(
    signed_in: SignedIn,
    path: web::Path<String>,
    query: web::Query<AuditQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    let access = Access::owner(&state, signed_in, &path).await?;
    let ws = &access.workspace.id;
    let types = audit_events::types(&state.db, ws).await?;
    let chain = chain_status(&state.db, ws).await?;
    let base = format!("/app/w/{ws}/audit");
    let filter_query = query.filter_query();
    let form = context! {
        type => query.event_type.trim(),
        actor => query.actor.trim(),
        resource => query.resource.trim(),
        from => query.from.trim(),
        to => query.to.trim(),
    };
    let filter = match query.filter() {
        Ok(filter) => filter,
        Err(errors) => {
            return super::page_with_status(
                actix_web::http::StatusCode::UNPROCESSABLE_ENTITY,
                "audit.html",
                context! {
                    errors => errors,
                    form => form,
                    types => types,
                    chain => chain,
                    events => Vec::<minijinja::Value>::new(),
                    ..access.frame("Audit trail", "audit")
                },
            )
        }
    };
    let (mut events, total) = audit_events::list(&state.db, ws, &filter, PAGE + 1).await?;
    let has_next = events.len() as i64 > PAGE;
    events.truncate(PAGE as usize);
    let with = |extra: Option<String>| {
        let mut parts: Vec<String> = Vec::new();
        if !filter_query.is_empty() {
            parts.push(filter_query.clone());
        }
        parts.extend(extra);
        if parts.is_empty() {
            base.clone()
        } else {
            format!("{base}?{}", parts.join("&"))
        }
    };
    let next = events
        .last()
        .filter(|_| has_next)
        .map(|e| with(Some(format!("before={}", e.seq))));
    let newest = filter.before_seq.map(|_| with(None));
    let names = ActorNames::load(&state.db, ws, events.iter().map(|e| e.actor.as_str())).await?;
    let rows: Vec<_> = events
        .iter()
        .map(|e| {
            context! {
                seq => e.seq,
                id => e.id,
                timestamp => e.timestamp.to_string(),
                type => e.event_type,
                actor => e.actor,
                actor_name => names.describe(&e.actor),
                resource_type => e.resource_type,
                resource_name => e.resource_name,
                resource_id => e.resource_id,
                client_address => e.client_address,
                user_agent => e.user_agent,
                details => e.details.to_string(),
            }
        })
        .collect();
    let export = |kind: &str| {
        if filter_query.is_empty() {
            format!("{base}/export.{kind}")
        } else {
            format!("{base}/export.{kind}?{filter_query}")
        }
    };
    page(
        "audit.html",
        context! {
            events => rows,
            total => total,
            next => next,
            newest => newest,
            form => form,
            types => types,
            chain => chain,
            filtered => !filter_query.is_empty(),
            export_csv => export("csv"),
            export_jsonl => export("jsonl"),
            ..access.frame("Audit trail", "audit")
        },
    )
}

/// The line about the hash chain: whether it verifies, and up to which
/// event.
async fn chain_status(
    db: &Db,
    workspace_id: &WorkspaceId,
) -> Result<minijinja::Value, ConsoleError> {
    let head = audit_events::head(db, workspace_id)
        .await?
        .ok_or(ConsoleError::NotFound)?;
    Ok(match audit::verify_one(db, workspace_id).await? {
        None => context! { ok => true, events => head.seq },
        Some(broken) => context! {
            ok => false,
            at => broken.seq,
            verified => broken.seq - 1,
            event_id => broken.event_id,
            reason => broken.reason,
        },
    })
}

/// `GET /app/w/{workspace}/audit/export.csv` (owners): the filtered view,
/// newest first, as CSV.
pub async fn export_csv(
    signed_in: SignedIn,
    path: web::Path<String>,
    query: web::Query<AuditQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    export(signed_in, &path, &query, &state, Format::Csv).await
}

/// `GET /app/w/{workspace}/audit/export.jsonl` (owners): the filtered
/// view, newest first, one JSON event per line.
pub async fn export_jsonl(
    signed_in: SignedIn,
    path: web::Path<String>,
    query: web::Query<AuditQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    export(signed_in, &path, &query, &state, Format::JsonLines).await
}

#[derive(Debug, Clone, Copy)]
enum Format {
    Csv,
    JsonLines,
}

/// The CSV columns: the API's event fields, in its names.
const CSV_HEADER: [&str; 10] = [
    "id",
    "timestamp",
    "type",
    "actor",
    "resourceId",
    "resourceType",
    "resourceName",
    "clientAddress",
    "userAgent",
    "details",
];

/// A CSV cell that a spreadsheet would run as a formula (`=`, `+`, `-`,
/// `@`, tab or carriage return first) gets a `'` in front: the trail holds
/// names that anyone with a token chose.
fn csv_cell(value: &str) -> std::borrow::Cow<'_, str> {
    if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}").into()
    } else {
        value.into()
    }
}

fn encode(events: &[AuditEvent], format: Format, header: bool) -> Result<Bytes, anyhow::Error> {
    match format {
        Format::Csv => {
            let mut writer = csv::Writer::from_writer(Vec::with_capacity(events.len() * 256));
            if header {
                writer.write_record(CSV_HEADER)?;
            }
            for e in events {
                let timestamp = e.timestamp.to_string();
                let details = e.details.to_string();
                writer.write_record(
                    [
                        csv_cell(&e.id),
                        csv_cell(&timestamp),
                        csv_cell(&e.event_type),
                        csv_cell(&e.actor),
                        csv_cell(&e.resource_id),
                        csv_cell(&e.resource_type),
                        csv_cell(&e.resource_name),
                        csv_cell(e.client_address.as_deref().unwrap_or("")),
                        csv_cell(e.user_agent.as_deref().unwrap_or("")),
                        csv_cell(&details),
                    ]
                    .iter()
                    .map(|cell| cell.as_bytes()),
                )?;
            }
            Ok(Bytes::from(
                writer.into_inner().map_err(|e| e.into_error())?,
            ))
        }
        Format::JsonLines => {
            let mut out = Vec::with_capacity(events.len() * 300);
            for e in events {
                serde_json::to_writer(&mut out, e)?;
                out.push(b'\n');
            }
            Ok(Bytes::from(out))
        }
    }
}

/// Streams the filtered events a batch at a time: memory holds one batch,
/// however long the trail.
async fn export(
    signed_in: SignedIn,
    workspace: &str,
    query: &AuditQuery,
    state: &web::Data<AppState>,
    format: Format,
) -> Result<HttpResponse, ConsoleError> {
    let access = Access::owner(state, signed_in, workspace).await?;
    let filter = query
        .filter()
        .map_err(|errors| ConsoleError::BadRequest(errors.join(" ")))?;
    let ws = access.workspace.id.clone();
    let db = state.db.clone();
    struct Cursor {
        filter: Filter,
        first: bool,
        done: bool,
    }
    let start = Cursor {
        filter,
        first: true,
        done: false,
    };
    let body = futures_util::stream::unfold(start, move |mut cursor| {
        let db = db.clone();
        let ws = ws.clone();
        async move {
            if cursor.done {
                return None;
            }
            let events = match audit_events::batch(&db, &ws, &cursor.filter, EXPORT_BATCH).await {
                Ok(events) => events,
                Err(e) => {
                    tracing::error!(error = %e, "audit export failed mid-stream");
                    cursor.done = true;
                    let error: actix_web::Error =
                        actix_web::error::ErrorInternalServerError("audit export failed");
                    return Some((Err(error), cursor));
                }
            };
            cursor.done = (events.len() as i64) < EXPORT_BATCH;
            cursor.filter.before_seq = events.last().map(|e| e.seq);
            let chunk = encode(&events, format, cursor.first)
                .map_err(actix_web::error::ErrorInternalServerError);
            cursor.first = false;
            Some((chunk, cursor))
        }
    });
    let (content_type, extension) = match format {
        Format::Csv => ("text/csv; charset=utf-8", "csv"),
        Format::JsonLines => ("application/x-ndjson", "jsonl"),
    };
    let filename = format!(
        "audit-{}-{}.{extension}",
        access.workspace.slug,
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
    );
    Ok(HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{filename}\""),
        ))
        .streaming(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_from_the_form() {
        assert_eq!(
            parse_time("2024-05-01T12:00"),
            crate::time::parse_rfc3339_micros("2024-05-01T12:00:00Z")
        );
        assert_eq!(
            parse_time("2024-05-01T12:00:30+02:00"),
            crate::time::parse_rfc3339_micros("2024-05-01T10:00:30Z")
        );
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn formulas_are_defused() {
        assert_eq!(csv_cell("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(csv_cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(csv_cell("web"), "web");
    }

    #[test]
    fn the_filter_form_lists_every_problem() {
        let query = AuditQuery {
            from: "soon".into(),
            to: "2024-05-01T12:00".into(),
            actor: "a\u{0}".into(),
            ..AuditQuery::default()
        };
        assert_eq!(query.filter().unwrap_err().len(), 2);
        let query = AuditQuery {
            from: "2024-05-02T00:00".into(),
            to: "2024-05-01T12:00".into(),
            ..AuditQuery::default()
        };
        assert_eq!(query.filter().unwrap_err(), ["To must not be before From."]);
    }
}
