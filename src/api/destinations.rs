//! `/destinations`: where a source's events go. Every role reads them;
//! members and owners create, change and delete them. Their settings often
//! hold credentials, so secret settings are never shown (see `settings`).

use actix_web::http::Method;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use serde_json::{json, Value};
use sqlx::Row;

use super::auth::{Caller, Role};
use super::body::JsonBody;
use super::catalog::{self, CatalogEntry};
use super::error::{ApiError, FieldError};
use super::pagination::{fetch_page, PageRequest};
use super::settings;
use super::validate::{Fields, MAX_NAME};
use super::Endpoint;
use crate::audit::{self, Changes, NewEvent};
use crate::startup::AppState;
use crate::time::{format_micros, now_micros};

pub fn endpoints() -> Vec<Endpoint> {
    vec![
        Endpoint::new(Method::GET, "/destinations", list),
        Endpoint::new(Method::POST, "/destinations", create),
        Endpoint::new(Method::GET, "/destinations/{id}", get),
        Endpoint::new(Method::PATCH, "/destinations/{id}", update),
        Endpoint::new(Method::DELETE, "/destinations/{id}", delete),
    ]
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Destination {
    pub id: String,
    pub name: String,
    pub enabled: bool,
    /// The source (same workspace) whose events this destination receives.
    pub source_id: String,
    pub workspace_id: String,
    /// Values under keys that name a secret are shown as "••••".
    #[serde(serialize_with = "settings::serialize_masked")]
    #[schema(value_type = Object)]
    pub settings: Value,
    /// The catalog entry (`GET /catalog/destinations`) this destination is an instance of.
    #[schema(value_type = Option<CatalogEntry>)]
    pub metadata: Option<&'static CatalogEntry>,
    pub created_at: String,
    pub updated_at: String,
}

const COLUMNS: &str =
    "id, workspace_id, source_id, name, enabled, settings, catalog_id, created_at, updated_at";

fn from_row(row: &sqlx::any::AnyRow) -> Result<Destination, ApiError> {
    let settings: String = row.get(5);
    let catalog_id: String = row.get(6);
    Ok(Destination {
        id: row.get(0),
        workspace_id: row.get(1),
        source_id: row.get(2),
        name: row.get(3),
        enabled: row.get::<i64, _>(4) != 0,
        settings: serde_json::from_str(&settings).map_err(ApiError::internal)?,
        metadata: catalog::destination_entry(&catalog_id),
        created_at: format_micros(row.get(7)),
        updated_at: format_micros(row.get(8)),
    })
}

/// The destination `id` of the workspace, or 404 (also for other
/// workspaces' ids).
async fn find<'c, E>(db: E, workspace_id: &str, id: &str) -> Result<Destination, ApiError>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM destinations WHERE id = $1 AND workspace_id = $2"
    ))
    .bind(id)
    .bind(workspace_id)
    .fetch_optional(db)
    .await?
    .ok_or_else(|| ApiError::not_found("destination"))?;
    from_row(&row)
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
        resource_id: destination.id.clone(),
        resource_type: "destination",
        resource_name: destination.name.clone(),
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
    let page = PageRequest::from_request(&req)?;
    let (rows, pagination) = fetch_page(
        &state.db,
        "destinations",
        COLUMNS,
        &caller.workspace_id,
        &page,
    )
    .await?;
    let destinations = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
    Ok(super::data(
        json!({ "destinations": destinations, "pagination": pagination }),
    ))
}

#[utoipa::path(post, path = "/destinations", tag = "Destinations",
    request_body(content = Object, description = "{\"sourceId\": string (a source of this workspace), \"metadataId\": string (GET /catalog/destinations), \"name\"?: string (default: the catalog name), \"enabled\"?: bool (default false), \"settings\"?: object}"),
    responses((status = 201, description = "{\"data\":{\"destination\":{…}}}", body = Destination),
              (status = 403, description = "A read_only token"),
              (status = 422, description = "Every validation failure, including a sourceId that is not in this workspace")))]
pub async fn create(
    caller: Caller,
    body: JsonBody,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Member)?;
    let body = body.parse(state.settings.max_body_bytes).await?;
    let mut fields = Fields::of(
        &body,
        &["sourceId", "metadataId", "name", "enabled", "settings"],
    )?;
    let source_id = fields.string("sourceId", true, 100);
    let metadata = fields.string("metadataId", true, 100).and_then(|id| {
        let entry = catalog::destination_entry(&id);
        if entry.is_none() {
            fields.errors.push(FieldError::new(
                "metadataId",
                "is not the id of a destination in GET /catalog/destinations",
            ));
        }
        entry
    });
    let name = fields.string("name", false, MAX_NAME);
    let enabled = fields.boolean("enabled", false);
    let given_settings = fields.object("settings");
    let settings = settings::for_create(given_settings, &mut fields.errors);
    let mut tx = state.db.begin().await?;
    // Held to the commit: the source cannot be deleted in between.
    audit::lock_workspace(&mut tx, &caller.workspace_id).await?;
    if let Some(id) = &source_id {
        let exists = sqlx::query("SELECT id FROM sources WHERE id = $1 AND workspace_id = $2")
            .bind(id)
            .bind(&caller.workspace_id)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if !exists {
            // The same answer for an id of another workspace as for none.
            fields.errors.push(FieldError::new(
                "sourceId",
                "is not the id of a source in this workspace",
            ));
        }
    }
    fields.finish()?;
    let metadata = metadata.expect("validated");
    let now = now_micros();
    let destination = Destination {
        id: crate::id::new_id(),
        name: name.unwrap_or_else(|| metadata.name.to_string()),
        enabled: enabled.unwrap_or(false),
        source_id: source_id.expect("validated"),
        workspace_id: caller.workspace_id.clone(),
        settings,
        metadata: Some(metadata),
        created_at: format_micros(now),
        updated_at: format_micros(now),
    };
    sqlx::query(
        "INSERT INTO destinations (id, workspace_id, source_id, name, enabled, settings,
             catalog_id, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
    )
    .bind(&destination.id)
    .bind(&destination.workspace_id)
    .bind(&destination.source_id)
    .bind(&destination.name)
    .bind(i64::from(destination.enabled))
    .bind(destination.settings.to_string())
    .bind(&metadata.id)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    let details = json!({
        "sourceId": destination.source_id,
        "enabled": destination.enabled,
        "metadataId": metadata.id,
    });
    audit::append(
        &mut tx,
        &caller.workspace_id,
        now,
        vec![event("Destination Created", &caller, &destination, details)],
    )
    .await?;
    tx.commit().await?;
    Ok(super::created(json!({ "destination": destination })))
}

#[utoipa::path(get, path = "/destinations/{id}", tag = "Destinations", params(("id" = String, Path)),
    responses((status = 200, description = "{\"data\":{\"destination\":{…}}}", body = Destination),
              (status = 404, description = "No such destination in this workspace")))]
pub async fn get(
    caller: Caller,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::ReadOnly)?;
    let destination = find(state.db.pool(), &caller.workspace_id, &path).await?;
    Ok(super::data(json!({ "destination": destination })))
}

const UPDATABLE: &[&str] = &["name", "enabled", "settings"];

#[utoipa::path(patch, path = "/destinations/{id}", tag = "Destinations", params(("id" = String, Path)),
    request_body(content = Object, description = "Any of {\"name\", \"enabled\", \"settings\"}. Settings merge by top-level key (null removes one; an echoed \"••••\" keeps the stored secret)."),
    responses((status = 200, description = "{\"data\":{\"destination\":{…}}}", body = Destination),
              (status = 404, description = "No such destination in this workspace"),
              (status = 422, description = "Every validation failure")))]
pub async fn update(
    caller: Caller,
    path: web::Path<String>,
    body: JsonBody,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Member)?;
    let body = body.parse(state.settings.max_body_bytes).await?;
    let mut fields = Fields::of(&body, UPDATABLE)?;
    let name = fields.string("name", false, MAX_NAME);
    let enabled = fields.boolean("enabled", false);
    let settings_patch = fields.object("settings");
    fields.require_any(UPDATABLE);
    let mut tx = state.db.begin().await?;
    // Held from the read to the commit: a concurrent PATCH cannot merge
    // settings into a stale copy.
    audit::lock_workspace(&mut tx, &caller.workspace_id).await?;
    let before = find(&mut *tx, &caller.workspace_id, &path).await?;
    let mut after = before.clone();
    if let Some(patch) = settings_patch {
        after.settings = settings::merge(&before.settings, patch, &mut fields.errors);
    }
    // Only now, so that mask errors are listed with all the others.
    fields.finish()?;
    let now = now_micros();
    after.name = name.unwrap_or(after.name);
    after.enabled = enabled.unwrap_or(after.enabled);
    after.updated_at = format_micros(now);
    sqlx::query(
        "UPDATE destinations SET name = $1, enabled = $2, settings = $3, updated_at = $4
         WHERE id = $5",
    )
    .bind(&after.name)
    .bind(i64::from(after.enabled))
    .bind(after.settings.to_string())
    .bind(now)
    .bind(&after.id)
    .execute(&mut *tx)
    .await?;
    let mut changes = Changes::default();
    changes.field("name", &before.name, &after.name);
    changes.field("enabled", &before.enabled, &after.enabled);
    changes.keys(
        "settings",
        settings::changed_keys(&before.settings, &after.settings),
    );
    audit::append(
        &mut tx,
        &caller.workspace_id,
        now,
        vec![event(
            "Destination Modified",
            &caller,
            &after,
            changes.into_details(),
        )],
    )
    .await?;
    tx.commit().await?;
    Ok(super::data(json!({ "destination": after })))
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
    let mut tx = state.db.begin().await?;
    audit::lock_workspace(&mut tx, &caller.workspace_id).await?;
    let destination = find(&mut *tx, &caller.workspace_id, &path).await?;
    sqlx::query("DELETE FROM destinations WHERE id = $1")
        .bind(&destination.id)
        .execute(&mut *tx)
        .await?;
    audit::append(
        &mut tx,
        &caller.workspace_id,
        now_micros(),
        vec![event(
            "Destination Deleted",
            &caller,
            &destination,
            json!({ "sourceId": destination.source_id }),
        )],
    )
    .await?;
    tx.commit().await?;
    Ok(super::deleted())
}
