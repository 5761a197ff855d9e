//! `/catalog/sources`, `/catalog/destinations` and `/catalog/warehouses`:
//! the kinds of source, destination and warehouse a workspace can create,
//! Segment-style. Each resource names its kind by `metadataId`, and its
//! settings are checked against the kind's options (`settings`). The
//! entries are `fixtures/catalog/*.json`, built into the binary.

use std::collections::HashMap;
use std::sync::LazyLock;

use actix_web::web;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;
use utoipa::openapi::{RefOr, Schema};
use utoipa::ToSchema;

use super::auth::Caller;
use super::error::{ApiError, FieldError};
use super::pagination::{encode_cursor, PageRequest, Pagination, START};
use super::reply::Data;
use super::route::Resource;
use super::OperationDoc;
use crate::domain::Parse;

pub fn resources() -> Vec<Resource> {
    vec![
        Resource::new("/catalog/sources", "Catalog").get(
            list_sources,
            OperationDoc::new(
                "listSourceMetadata",
                "The kinds of source a workspace can create",
            ),
        ),
        Resource::new("/catalog/sources/{id}", "Catalog").get(
            get_source,
            OperationDoc::new("getSourceMetadata", "One kind of source")
                .status(404, "No such source in the catalog"),
        ),
        Resource::new("/catalog/destinations", "Catalog").get(
            list_destinations,
            OperationDoc::new(
                "listDestinationMetadata",
                "The kinds of destination a workspace can create",
            ),
        ),
        Resource::new("/catalog/destinations/{id}", "Catalog").get(
            get_destination,
            OperationDoc::new("getDestinationMetadata", "One kind of destination")
                .status(404, "No such destination in the catalog"),
        ),
        Resource::new("/catalog/warehouses", "Catalog").get(
            list_warehouses,
            OperationDoc::new(
                "getWarehousesCatalog",
                "The kinds of warehouse a workspace can create",
            ),
        ),
        Resource::new("/catalog/warehouses/{id}", "Catalog").get(
            get_warehouse,
            OperationDoc::new("getWarehouseMetadata", "One kind of warehouse")
                .status(404, "No such warehouse in the catalog"),
        ),
    ]
}

/// One kind of source or destination.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
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

impl CatalogEntry {
    /// The option named `name`.
    pub fn option(&self, name: &str) -> Option<&CatalogOption> {
        self.options.iter().find(|o| o.name == name)
    }

    /// The entry's slug as a word for a schema's name: `http-api` → `HttpApi`.
    pub fn type_name(&self) -> String {
        self.slug
            .split(['-', '_'])
            .map(|part| {
                let mut chars = part.chars();
                match chars.next() {
                    Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                    None => String::new(),
                }
            })
            .collect()
    }
}

/// One setting of a catalog entry, in the shape of Segment's
/// `IntegrationOptionBeta`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CatalogOption {
    pub name: String,
    #[serde(rename = "type")]
    pub option_type: OptionType,
    pub required: bool,
    pub description: String,
    pub label: String,
    /// Any JSON value of the option's type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Value)]
    pub default_value: Option<Value>,
}

/// What a setting holds; a `password` is shown masked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OptionType {
    String,
    Password,
    Number,
    Boolean,
    Array,
}

/// The catalog ships inside the binary, so a deployment cannot lose it and
/// stored `metadataId`s always resolve. Entries, once published, are never
/// removed.
pub static SOURCES: LazyLock<Vec<CatalogEntry>> =
    LazyLock::new(|| parse(include_str!("../../fixtures/catalog/sources.json")));
pub static DESTINATIONS: LazyLock<Vec<CatalogEntry>> =
    LazyLock::new(|| parse(include_str!("../../fixtures/catalog/destinations.json")));
pub static WAREHOUSES: LazyLock<Vec<CatalogEntry>> =
    LazyLock::new(|| parse(include_str!("../../fixtures/catalog/warehouses.json")));

/// Every entry as JSON, rendered once: a source or destination carries its
/// entry (`metadata`) in every answer, and rendering it again each time was
/// a large part of a `GET /sources/{id}`. By the entry's address, which
/// never changes: entries live in the statics above.
static RENDERED: LazyLock<HashMap<usize, Box<RawValue>>> = LazyLock::new(|| {
    [&*SOURCES, &*DESTINATIONS, &*WAREHOUSES]
        .into_iter()
        .flatten()
        .map(|entry| {
            let json = serde_json::value::to_raw_value(entry).expect("an entry renders");
            (entry as *const CatalogEntry as usize, json)
        })
        .collect()
});

/// `#[serde(serialize_with)]` for a view's `metadata`: the entry as
/// rendered once, the same JSON as serializing it.
pub fn serialize_rendered<S: serde::Serializer>(
    entry: &Option<&'static CatalogEntry>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match entry.and_then(|e| RENDERED.get(&(e as *const CatalogEntry as usize))) {
        Some(json) => json.serialize(serializer),
        None => entry.serialize(serializer),
    }
}

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

pub fn warehouse_entry(id: &str) -> Option<&'static CatalogEntry> {
    WAREHOUSES.iter().find(|e| e.id == id)
}

/// A source's `metadataId`: the id of an entry of `GET /catalog/sources`.
#[derive(Debug, Clone, Copy)]
pub struct SourceMetadataId(pub &'static CatalogEntry);

/// A destination's `metadataId`: the id of an entry of
/// `GET /catalog/destinations`.
#[derive(Debug, Clone, Copy)]
pub struct DestinationMetadataId(pub &'static CatalogEntry);

/// A warehouse's `metadataId`: the id of an entry of
/// `GET /catalog/warehouses`.
#[derive(Debug, Clone, Copy)]
pub struct WarehouseMetadataId(pub &'static CatalogEntry);

impl Parse for WarehouseMetadataId {
    fn parse(text: &str) -> Result<WarehouseMetadataId, String> {
        warehouse_entry(text)
            .map(WarehouseMetadataId)
            .ok_or_else(|| "is not the id of a warehouse in GET /catalog/warehouses".into())
    }
}

impl utoipa::PartialSchema for WarehouseMetadataId {
    fn schema() -> RefOr<Schema> {
        id_of(&WAREHOUSES, "The id of an entry of GET /catalog/warehouses")
    }
}
impl ToSchema for WarehouseMetadataId {}

impl Parse for SourceMetadataId {
    fn parse(text: &str) -> Result<SourceMetadataId, String> {
        source_entry(text)
            .map(SourceMetadataId)
            .ok_or_else(|| "is not the id of a source in GET /catalog/sources".into())
    }
}

impl Parse for DestinationMetadataId {
    fn parse(text: &str) -> Result<DestinationMetadataId, String> {
        destination_entry(text)
            .map(DestinationMetadataId)
            .ok_or_else(|| "is not the id of a destination in GET /catalog/destinations".into())
    }
}

/// The schema of an id of `entries`: exactly those ids.
fn id_of(entries: &[CatalogEntry], description: &str) -> RefOr<Schema> {
    let ids: Vec<&str> = entries.iter().map(|e| e.id.as_str()).collect();
    let schema = serde_json::json!({ "type": "string", "enum": ids, "description": description });
    serde_json::from_value(schema).expect("a valid schema")
}

impl utoipa::PartialSchema for SourceMetadataId {
    fn schema() -> RefOr<Schema> {
        id_of(&SOURCES, "The id of an entry of GET /catalog/sources")
    }
}
impl ToSchema for SourceMetadataId {}

impl utoipa::PartialSchema for DestinationMetadataId {
    fn schema() -> RefOr<Schema> {
        id_of(
            &DESTINATIONS,
            "The id of an entry of GET /catalog/destinations",
        )
    }
}
impl ToSchema for DestinationMetadataId {}

/// One page of a static list. The cursor's position is the index of the
/// page's first entry; the list never changes, so indexes are stable.
fn page_of(
    entries: &'static [CatalogEntry],
    page: PageRequest,
) -> Result<(&'static [CatalogEntry], Pagination), ApiError> {
    let start = match &page.after {
        None => 0,
        Some(position) => match position.parse::<usize>() {
            Ok(i) if i <= entries.len() => i,
            _ => {
                return Err(ApiError::Validation(vec![FieldError::new(
                    "pagination.cursor",
                    "is not a cursor this API returned",
                )]))
            }
        },
    };
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

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListSourceMetadataOutput {
    sources_catalog: &'static [CatalogEntry],
    pagination: Pagination,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GetSourceMetadataOutput {
    source_metadata: &'static CatalogEntry,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListDestinationMetadataOutput {
    destinations_catalog: &'static [CatalogEntry],
    pagination: Pagination,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GetDestinationMetadataOutput {
    destination_metadata: &'static CatalogEntry,
}

pub async fn list_sources(
    _caller: Caller,
    page: Result<PageRequest, ApiError>,
) -> Result<Data<ListSourceMetadataOutput>, ApiError> {
    let (entries, pagination) = page_of(&SOURCES, page?)?;
    Ok(Data(ListSourceMetadataOutput {
        sources_catalog: entries,
        pagination,
    }))
}

pub async fn get_source(
    _caller: Caller,
    path: web::Path<String>,
) -> Result<Data<GetSourceMetadataOutput>, ApiError> {
    let entry = source_entry(&path).ok_or_else(|| ApiError::not_found("source catalog entry"))?;
    Ok(Data(GetSourceMetadataOutput {
        source_metadata: entry,
    }))
}

pub async fn list_destinations(
    _caller: Caller,
    page: Result<PageRequest, ApiError>,
) -> Result<Data<ListDestinationMetadataOutput>, ApiError> {
    let (entries, pagination) = page_of(&DESTINATIONS, page?)?;
    Ok(Data(ListDestinationMetadataOutput {
        destinations_catalog: entries,
        pagination,
    }))
}

pub async fn get_destination(
    _caller: Caller,
    path: web::Path<String>,
) -> Result<Data<GetDestinationMetadataOutput>, ApiError> {
    let entry =
        destination_entry(&path).ok_or_else(|| ApiError::not_found("destination catalog entry"))?;
    Ok(Data(GetDestinationMetadataOutput {
        destination_metadata: entry,
    }))
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GetWarehousesCatalogOutput {
    warehouses_catalog: &'static [CatalogEntry],
    pagination: Pagination,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GetWarehouseMetadataOutput {
    warehouse_metadata: &'static CatalogEntry,
}

pub async fn list_warehouses(
    _caller: Caller,
    page: Result<PageRequest, ApiError>,
) -> Result<Data<GetWarehousesCatalogOutput>, ApiError> {
    let (entries, pagination) = page_of(&WAREHOUSES, page?)?;
    Ok(Data(GetWarehousesCatalogOutput {
        warehouses_catalog: entries,
        pagination,
    }))
}

pub async fn get_warehouse(
    _caller: Caller,
    path: web::Path<String>,
) -> Result<Data<GetWarehouseMetadataOutput>, ApiError> {
    let entry =
        warehouse_entry(&path).ok_or_else(|| ApiError::not_found("warehouse catalog entry"))?;
    Ok(Data(GetWarehouseMetadataOutput {
        warehouse_metadata: entry,
    }))
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use super::{CatalogEntry, OptionType, DESTINATIONS, SOURCES, WAREHOUSES};

    #[test]
    fn rendered_entries_are_the_entries_serialized() {
        #[derive(serde::Serialize)]
        struct View {
            #[serde(serialize_with = "super::serialize_rendered")]
            metadata: Option<&'static CatalogEntry>,
        }
        for entry in SOURCES.iter().chain(&*DESTINATIONS).chain(&*WAREHOUSES) {
            let rendered = serde_json::to_value(View {
                metadata: Some(entry),
            })
            .unwrap();
            assert_eq!(rendered["metadata"], serde_json::to_value(entry).unwrap());
        }
        let none = serde_json::to_string(&View { metadata: None }).unwrap();
        assert_eq!(none, r#"{"metadata":null}"#);
    }

    fn check(entries: &[CatalogEntry]) {
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
        assert_eq!(SOURCES.len(), 12);
        assert_eq!(DESTINATIONS.len(), 12);
        check(&SOURCES);
        check(&DESTINATIONS);
        check(&WAREHOUSES);
        let slugs: HashSet<&str> = WAREHOUSES.iter().map(|e| e.slug.as_str()).collect();
        for slug in ["postgres", "snowflake", "bigquery", "redshift"] {
            assert!(slugs.contains(slug), "{slug}");
        }
        // One option name means one type everywhere: a PATCH's settings
        // are described for every kind at once (`settings::patch_schema`).
        let mut types: HashMap<&str, OptionType> = HashMap::new();
        for entry in SOURCES
            .iter()
            .chain(DESTINATIONS.iter())
            .chain(WAREHOUSES.iter())
        {
            for o in &entry.options {
                let first = *types.entry(o.name.as_str()).or_insert(o.option_type);
                assert_eq!(first, o.option_type, "{} in {}", o.name, entry.slug);
            }
        }
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
