//! `/destinations`: where a source's events go. Every role reads them;
//! members and owners create, change and delete them. Their settings often
//! hold credentials, so secret settings are never shown (see `settings`).

use actix_web::http::Method;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use serde_json::{json, Value};

use super::auth::{Caller, Role};
use super::body::JsonBody;
use super::catalog::{self, CatalogEntry};
use super::error::ApiError;
use super::pagination::PageRequest;
use super::settings;
use super::validate::{Fields, Identifier};
use super::{path_id, Endpoint};
use crate::audit::{Changes, NewEvent};
use crate::db::destinations::{self, Destination};
use crate::db::sources;
use crate::domain::{DestinationId, Name, Parse, SourceId, WorkspaceId};
use crate::state::AppState;
use crate::time::Timestamp;

pub fn endpoints() -> Vec<Endpoint> {
    vec![
        Endpoint::new(Method::GET, "/destinations", list),
        Endpoint::new(Method::POST, "/destinations", create),
        Endpoint::new(Method::GET, "/destinations/{id}", get),
        Endpoint::new(Method::PATCH, "/destinations/{id}", update),
        Endpoint::new(Method::DELETE, "/destinations/{id}", delete),
    ]
}

/// A destination as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Destination)]
pub struct DestinationView {
    pub id: DestinationId,
    #[schema(value_type = String)]
    pub name: Name,
    pub enabled: bool,
    /// The source (same workspace) whose events this destination receives.
    pub source_id: SourceId,
    pub workspace_id: WorkspaceId,
    /// Values under keys that name a secret are shown as "••••".
    #[serde(serialize_with = "settings::serialize_masked")]
    #[schema(value_type = Object)]
    pub settings: Value,
    /// The catalog entry (`GET /catalog/destinations`) this destination is an instance of.
    #[schema(value_type = Option<CatalogEntry>)]
    pub metadata: Option<&'static CatalogEntry>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl From<Destination> for DestinationView {
    fn from(d: Destination) -> DestinationView {
        DestinationView {
            metadata: catalog::destination_entry(&d.catalog_id),
            id: d.id,
            name: d.name,
            enabled: d.enabled,
            source_id: d.source_id,
            workspace_id: d.workspace_id,
            settings: d.settings,
            created_at: d.created_at,
            updated_at: d.updated_at,
        }
    }
}

/// The destination `id` of the caller's workspace, or 404 (also for other
/// workspaces' ids).
async fn find(
    conn: impl Into<crate::db::Conn<'_>>,
    caller: &Caller,
    id: &str,
) -> Result<Destination, ApiError> {
    let id: DestinationId = path_id(id, "destination")?;
    destinations::find(conn, &caller.workspace_id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("destination"))
}

fn event(
    event_type: &'static str,
    caller: &Caller,
    destination: &Destination,
    details: Value,
) -> NewEvent {
    NewEvent {
        event_type,
        actor: caller.actor(),
        resource_id: destination.id.to_string(),
        resource_type: "destination",
        resource_name: destination.name.to_string(),
        details,
    }
}

#[utoipa::path(get, path = "/destinations", tag = "Destinations",
    params(("pagination[count]" = Option<i64>, Query), ("pagination[cursor]" = Option<String>, Query)),
    responses((status = 200, description = "{\"data\":{\"destinations\":[…],\"pagination\":{…}}}, oldest first"),
              (status = 422, description = "Bad pagination")))]
pub async fn list(
    caller: Caller,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::ReadOnly)?;
    let request = PageRequest::from_request(&req)?;
    let page = destinations::page(&state.db, &caller.workspace_id, &request.keyset()?).await?;
    let pagination = request.pagination(&page);
    let destinations: Vec<DestinationView> =
        page.items.into_iter().map(DestinationView::from).collect();
    Ok(super::data(
        json!({ "destinations": destinations, "pagination": pagination }),
    ))
}

#[utoipa::path(post, path = "/destinations", tag = "Destinations",
    request_body(content = Object, description = "{\"sourceId\": string (a source of this workspace), \"metadataId\": string (GET /catalog/destinations), \"name\"?: string (default: the catalog name), \"enabled\"?: bool (default false), \"settings\"?: object}"),
    responses((status = 201, description = "{\"data\":{\"destination\":{…}}}", body = DestinationView),
              (status = 403, description = "A read_only token"),
              (status = 422, description = "Every validation failure, including a sourceId that is not in this workspace")))]
pub async fn create(
    caller: Caller,
    body: JsonBody,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Member)?;
    let body = body.parse(&state.settings).await?;
    let mut fields = Fields::of(
        &body,
        &["sourceId", "metadataId", "name", "enabled", "settings"],
    )?;
    let source_id = fields.required::<Identifier>("sourceId");
    let metadata = fields
        .required::<Identifier>("metadataId")
        .and_then(|Identifier(id)| {
            let entry = catalog::destination_entry(&id);
            if entry.is_none() {
                fields.fail(
                    "metadataId",
                    "is not the id of a destination in GET /catalog/destinations",
                );
            }
            entry
        });
    let name = fields.optional::<Name>("name");
    let enabled = fields.boolean("enabled", false);
    let given_settings = fields.object("settings");
    let settings = settings::for_create(given_settings, &mut fields.errors);
    // Held to the commit: the source cannot be deleted in between.
    let mut change = state.db.change(caller.workspace_id.as_str()).await?;
    let source = match source_id {
        Some(Identifier(id)) => match SourceId::parse(&id) {
            Ok(id) => sources::find(&mut change, &caller.workspace_id, &id).await?,
            Err(_) => None,
        },
        None => None,
    };
    if source.is_none()
        && fields
            .errors
            .iter()
            .all(|e| e.field.as_deref() != Some("sourceId"))
    {
        // The same answer for an id of another workspace as for none.
        fields.fail("sourceId", "is not the id of a source in this workspace");
    }
    let (Some(source), Some(metadata)) = (source, metadata) else {
        return Err(fields.into_error());
    };
    fields.finish()?;
    let now = Timestamp(change.at());
    let destination = Destination {
        id: DestinationId::generate(),
        name: match name {
            Some(name) => name,
            None => Name::parse(&metadata.name).map_err(|e| {
                ApiError::internal(anyhow::anyhow!("catalog name {:?}: {e}", metadata.name))
            })?,
        },
        enabled: enabled.unwrap_or(false),
        source_id: source.id,
        workspace_id: caller.workspace_id.clone(),
        settings,
        catalog_id: metadata.id.to_string(),
        created_at: now,
        updated_at: now,
    };
    destinations::insert(&mut change, &destination).await?;
    let details = json!({
        "sourceId": destination.source_id,
        "enabled": destination.enabled,
        "metadataId": metadata.id,
    });
    change.record(event("Destination Created", &caller, &destination, details));
    change.commit().await?;
    Ok(super::created(
        json!({ "destination": DestinationView::from(destination) }),
    ))
}

#[utoipa::path(get, path = "/destinations/{id}", tag = "Destinations", params(("id" = String, Path)),
    responses((status = 200, description = "{\"data\":{\"destination\":{…}}}", body = DestinationView),
              (status = 404, description = "No such destination in this workspace")))]
pub async fn get(
    caller: Caller,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::ReadOnly)?;
    let destination = find(&state.db, &caller, &path).await?;
    Ok(super::data(
        json!({ "destination": DestinationView::from(destination) }),
    ))
}

const UPDATABLE: &[&str] = &["name", "enabled", "settings"];

#[utoipa::path(patch, path = "/destinations/{id}", tag = "Destinations", params(("id" = String, Path)),
    request_body(content = Object, description = "Any of {\"name\", \"enabled\", \"settings\"}. Settings merge by top-level key (null removes one; an echoed \"••••\" keeps the stored secret)."),
    responses((status = 200, description = "{\"data\":{\"destination\":{…}}}", body = DestinationView),
              (status = 404, description = "No such destination in this workspace"),
              (status = 422, description = "Every validation failure")))]
pub async fn update(
    caller: Caller,
    path: web::Path<String>,
    body: JsonBody,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Member)?;
    let body = body.parse(&state.settings).await?;
    let mut fields = Fields::of(&body, UPDATABLE)?;
    let name = fields.optional::<Name>("name");
    let enabled = fields.boolean("enabled", false);
    let settings_patch = fields.object("settings");
    fields.require_any(UPDATABLE);
    // Held from the read to the commit: a concurrent PATCH cannot merge
    // settings into a stale copy.
    let mut change = state.db.change(caller.workspace_id.as_str()).await?;
    let before = find(&mut change, &caller, &path).await?;
    let mut after = before.clone();
    if let Some(patch) = settings_patch {
        after.settings = settings::merge(&before.settings, patch, &mut fields.errors);
    }
    // Only now, so that mask errors are listed with all the others.
    fields.finish()?;
    after.name = name.unwrap_or(after.name);
    after.enabled = enabled.unwrap_or(after.enabled);
    after.updated_at = Timestamp(change.at());
    destinations::update(&mut change, &after).await?;
    let mut changes = Changes::default();
    changes.field("name", &before.name, &after.name);
    changes.field("enabled", &before.enabled, &after.enabled);
    changes.keys(
        "settings",
        settings::changed_keys(&before.settings, &after.settings),
    );
    change.record(event(
        "Destination Modified",
        &caller,
        &after,
        changes.into_details(),
    ));
    change.commit().await?;
    Ok(super::data(
        json!({ "destination": DestinationView::from(after) }),
    ))
}

#[utoipa::path(delete, path = "/destinations/{id}", tag = "Destinations", params(("id" = String, Path)),
    responses((status = 200, description = "{\"data\":{\"status\":\"SUCCESS\"}}"),
              (status = 404, description = "No such destination in this workspace")))]
pub async fn delete(
    caller: Caller,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Member)?;
    let mut change = state.db.change(caller.workspace_id.as_str()).await?;
    let destination = find(&mut change, &caller, &path).await?;
    destinations::delete(&mut change, &destination.id).await?;
    change.record(event(
        "Destination Deleted",
        &caller,
        &destination,
        json!({ "sourceId": destination.source_id }),
    ));
    change.commit().await?;
    Ok(super::deleted())
}
