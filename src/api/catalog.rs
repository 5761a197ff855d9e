//! `/catalog/sources` and `/catalog/destinations`: the kinds of source and
//! destination a workspace can create, Segment-style. Sources and
//! destinations name their kind by `metadataId`. The entries are
//! `fixtures/catalog/*.json`, built into the binary.

use std::sync::LazyLock;

use actix_web::http::Method;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CatalogEntry {
    /// What `metadataId` refers to.
    pub id: String,
    pub slug: String,
    pub name: String,
    pub description: String,
    pub categories: Vec<String>,
    /// The settings this kind of source or destination understands.
    pub options: Vec<CatalogOption>,
}

/// One setting of a catalog entry, in the shape of Segment's
/// `IntegrationOptionBeta`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CatalogOption {
    pub name: String,
    /// `string`, `password`, `number`, `boolean` or `array`.
    #[serde(rename = "type")]
    pub option_type: String,
    pub required: bool,
    pub description: String,
    pub label: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub default_value: Option<Value>,
}

/// The catalog ships inside the binary, so a deployment cannot lose it and
/// stored `metadataId`s always resolve. Entries, once published, are never
/// removed.
pub static SOURCES: LazyLock<Vec<CatalogEntry>> =
    LazyLock::new(|| parse(include_str!("../../fixtures/catalog/sources.json")));
pub static DESTINATIONS: LazyLock<Vec<CatalogEntry>> =
    LazyLock::new(|| parse(include_str!("../../fixtures/catalog/destinations.json")));

fn parse(text: &str) -> Vec<CatalogEntry> {
    // The unit tests parse both files, so this cannot fail in a build that
    // passed them.
    serde_json::from_str(text).expect("fixtures/catalog is valid")
}

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
    let (entries, pagination) = page_of(&SOURCES, &req)?;
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
    let (entries, pagination) = page_of(&DESTINATIONS, &req)?;
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

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::{CatalogEntry, DESTINATIONS, SOURCES};

    const OPTION_TYPES: &[&str] = &["string", "password", "number", "boolean", "array"];

    fn check(entries: &[CatalogEntry]) {
        assert_eq!(entries.len(), 12);
        let mut ids = HashSet::new();
        let mut slugs = HashSet::new();
        for e in entries {
            assert!(
                e.id.len() == 10 && e.id.bytes().all(|b| b.is_ascii_alphanumeric()),
                "{}: ids are 10 base62 characters",
                e.id
            );
            assert!(ids.insert(e.id.as_str()), "duplicate id {}", e.id);
            assert!(slugs.insert(e.slug.as_str()), "duplicate slug {}", e.slug);
            assert!(
                !e.name.is_empty() && !e.description.is_empty() && !e.categories.is_empty(),
                "{}",
                e.slug
            );
            assert!(!e.options.is_empty(), "{} has no options", e.slug);
            let mut names = HashSet::new();
            for o in &e.options {
                assert!(
                    names.insert(o.name.as_str()),
                    "{}: {} twice",
                    e.slug,
                    o.name
                );
                assert!(OPTION_TYPES.contains(&o.option_type.as_str()), "{}", o.name);
                assert!(
                    !o.label.is_empty() && !o.description.is_empty(),
                    "{}",
                    o.name
                );
            }
        }
    }

    #[test]
    fn the_shipped_catalog_is_well_formed() {
        check(&SOURCES);
        check(&DESTINATIONS);
    }

    #[test]
    fn published_ids_stay() {
        // Stored sources and destinations point at these; removing one
        // would orphan them.
        for id in [
            "kVr3mQ8cTn",
            "p2LwXe7HbA",
            "Zt5uNc1GdY",
            "Bq9sJf4RwK",
            "Hm6yTa2VzP",
            "Wd8gLk3QxE",
            "Ce4pRv9MnU",
        ] {
            assert!(super::source_entry(id).is_some(), "{id}");
        }
        for id in [
            "Xn7bVq2KsL",
            "Ja3tHw8PcM",
            "Ry5mEd1FgT",
            "Uk2cSz6NbW",
            "Gf9qYl4AhD",
            "Tv1wPn7JrQ",
            "Mb6xKe3ZuS",
        ] {
            assert!(super::destination_entry(id).is_some(), "{id}");
        }
    }
}
