//! `/catalog/sources` and `/catalog/destinations`: the kinds of source and
//! destination a workspace can create, Segment-style. Sources and
//! destinations name their kind by `metadataId`; the catalog is static, so
//! an entry, once published, is never removed (stored rows point at it).

use actix_web::http::Method;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use serde_json::json;

use super::auth::Caller;
use super::error::{ApiError, FieldError};
use super::pagination::{encode_cursor, PageRequest, Pagination, START};
use super::query::QueryParams;
use super::Endpoint;

pub fn endpoints() -> Vec<Endpoint> {
    vec![
        Endpoint::new(Method::GET, "/catalog/sources", list_sources),
        Endpoint::new(Method::GET, "/catalog/sources/{id}", get_source),
        Endpoint::new(Method::GET, "/catalog/destinations", list_destinations),
        Endpoint::new(Method::GET, "/catalog/destinations/{id}", get_destination),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CatalogEntry {
    /// What `metadataId` refers to.
    pub id: &'static str,
    pub slug: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    #[schema(value_type = Vec<String>)]
    pub categories: &'static [&'static str],
}

const fn entry(
    id: &'static str,
    slug: &'static str,
    name: &'static str,
    description: &'static str,
    categories: &'static [&'static str],
) -> CatalogEntry {
    CatalogEntry {
        id,
        slug,
        name,
        description,
        categories,
    }
}

#[rustfmt::skip] // a table reads best as one line per entry
pub const SOURCES: &[CatalogEntry] = &[
    entry("kVr3mQ8cTn", "javascript", "Javascript", "Events from websites, sent by the browser library.", &["Website"]),
    entry("p2LwXe7HbA", "http-api", "HTTP API", "Events sent to the HTTP tracking API from any language.", &["Server"]),
    entry("Zt5uNc1GdY", "node-js", "Node.js", "Events from Node.js servers.", &["Server"]),
    entry("Bq9sJf4RwK", "python", "Python", "Events from Python servers and jobs.", &["Server"]),
    entry("Hm6yTa2VzP", "go", "Go", "Events from Go services.", &["Server"]),
    entry("Wd8gLk3QxE", "ios", "iOS", "Events from iOS apps.", &["Mobile"]),
    entry("Ce4pRv9MnU", "android", "Android", "Events from Android apps.", &["Mobile"]),
];

#[rustfmt::skip]
pub const DESTINATIONS: &[CatalogEntry] = &[
    entry("Xn7bVq2KsL", "webhooks", "Webhooks", "Forwards every event as a signed HTTP POST.", &["Raw Data"]),
    entry("Ja3tHw8PcM", "amazon-s3", "Amazon S3", "Archives events as files in an S3 bucket.", &["Raw Data", "Storage"]),
    entry("Ry5mEd1FgT", "amplitude", "Amplitude", "Product analytics.", &["Analytics"]),
    entry("Uk2cSz6NbW", "mixpanel", "Mixpanel", "Product analytics.", &["Analytics"]),
    entry("Gf9qYl4AhD", "google-analytics-4", "Google Analytics 4", "Web and app analytics.", &["Analytics"]),
    entry("Tv1wPn7JrQ", "bigquery", "BigQuery", "Loads events into a BigQuery dataset.", &["Warehouses"]),
    entry("Mb6xKe3ZuS", "slack", "Slack", "Posts chosen events to a Slack channel.", &["Team Communication"]),
];

pub fn source_entry(id: &str) -> Option<&'static CatalogEntry> {
    SOURCES.iter().find(|e| e.id == id)
}

pub fn destination_entry(id: &str) -> Option<&'static CatalogEntry> {
    DESTINATIONS.iter().find(|e| e.id == id)
}

/// One page of a static list. The cursor's position is the index of the
/// page's first entry; the list never changes, so indexes are stable.
fn page_of(
    entries: &'static [CatalogEntry],
    req: &HttpRequest,
) -> Result<(&'static [CatalogEntry], Pagination), ApiError> {
    let mut errors = Vec::new();
    let page = PageRequest::from_query(&QueryParams::parse(req.query_string()), &mut errors);
    let start = match &page.after {
        None => 0,
        Some(position) => match position.parse::<usize>() {
            Ok(i) if i <= entries.len() => i,
            _ => {
                errors.push(FieldError::new(
                    "pagination.cursor",
                    "is not a cursor this API returned",
                ));
                0
            }
        },
    };
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let count = page.count as usize;
    let end = (start + count).min(entries.len());
    let previous = (start > 0).then(|| match start.checked_sub(count) {
        Some(i) if i > 0 => encode_cursor(&i.to_string()),
        _ => START.to_string(),
    });
    let pagination = Pagination {
        current: page.cursor,
        next: (end < entries.len()).then(|| encode_cursor(&end.to_string())),
        previous,
        total_entries: entries.len() as i64,
    };
    Ok((&entries[start..end], pagination))
}

#[utoipa::path(get, path = "/catalog/sources", tag = "Catalog",
    params(("pagination[count]" = Option<i64>, Query), ("pagination[cursor]" = Option<String>, Query)),
    responses((status = 200, description = "{\"data\":{\"sourcesCatalog\":[…],\"pagination\":{…}}}"),
              (status = 422, description = "Bad pagination")))]
pub async fn list_sources(_caller: Caller, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let (entries, pagination) = page_of(SOURCES, &req)?;
    Ok(super::data(
        json!({ "sourcesCatalog": entries, "pagination": pagination }),
    ))
}

#[utoipa::path(get, path = "/catalog/sources/{id}", tag = "Catalog",
    params(("id" = String, Path)),
    responses((status = 200, description = "{\"data\":{\"sourceMetadata\":{…}}}", body = CatalogEntry),
              (status = 404, description = "No such catalog entry")))]
pub async fn get_source(
    _caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let entry = source_entry(&path).ok_or_else(|| ApiError::not_found("source catalog entry"))?;
    Ok(super::data(json!({ "sourceMetadata": entry })))
}

#[utoipa::path(get, path = "/catalog/destinations", tag = "Catalog",
    params(("pagination[count]" = Option<i64>, Query), ("pagination[cursor]" = Option<String>, Query)),
    responses((status = 200, description = "{\"data\":{\"destinationsCatalog\":[…],\"pagination\":{…}}}"),
              (status = 422, description = "Bad pagination")))]
pub async fn list_destinations(
    _caller: Caller,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let (entries, pagination) = page_of(DESTINATIONS, &req)?;
    Ok(super::data(
        json!({ "destinationsCatalog": entries, "pagination": pagination }),
    ))
}

#[utoipa::path(get, path = "/catalog/destinations/{id}", tag = "Catalog",
    params(("id" = String, Path)),
    responses((status = 200, description = "{\"data\":{\"destinationMetadata\":{…}}}", body = CatalogEntry),
              (status = 404, description = "No such catalog entry")))]
pub async fn get_destination(
    _caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let entry =
        destination_entry(&path).ok_or_else(|| ApiError::not_found("destination catalog entry"))?;
    Ok(super::data(json!({ "destinationMetadata": entry })))
}
