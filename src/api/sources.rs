//! `/sources`: where a workspace's events come from. Every role reads them;
//! members and owners create, change and delete them. Each change commits
//! together with its audit event.

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
use crate::db::is_unique_violation;
use crate::startup::AppState;
use crate::time::{format_micros, now_micros};

pub fn endpoints() -> Vec<Endpoint> {
    vec![
        Endpoint::new(Method::GET, "/sources", list),
        Endpoint::new(Method::POST, "/sources", create),
        Endpoint::new(Method::GET, "/sources/{id}", get),
        Endpoint::new(Method::PATCH, "/sources/{id}", update),
        Endpoint::new(Method::DELETE, "/sources/{id}", delete),
        Endpoint::new(Method::POST, "/sources/{id}/writekey", add_write_key),
        Endpoint::new(
            Method::DELETE,
            "/sources/{id}/writekey/{key}",
            remove_write_key,
        ),
    ]
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Source {
    pub id: String,
    /// Unique in the workspace.
    pub slug: String,
    pub name: String,
    pub workspace_id: String,
    pub enabled: bool,
    /// Keys that identify this source to the tracking libraries (Segment's
    /// `writeKeys`); a new source has one.
    pub write_keys: Vec<String>,
    /// Values under keys that name a secret are shown as "••••".
    #[serde(serialize_with = "settings::serialize_masked")]
    #[schema(value_type = Object)]
    pub settings: Value,
    /// `[{"key": …, "value": …}]`.
    #[schema(value_type = Vec<Object>)]
    pub labels: Vec<Value>,
    /// The catalog entry (`GET /catalog/sources`) this source is an instance of.
    #[schema(value_type = Option<CatalogEntry>)]
    pub metadata: Option<&'static CatalogEntry>,
    pub created_at: String,
    pub updated_at: String,
}

const COLUMNS: &str = "id, workspace_id, slug, name, enabled, settings, labels, catalog_id, \
     created_at, updated_at, write_keys";

/// Write keys are 32 base62 characters, like Segment's.
const WRITE_KEY_LEN: usize = 32;

/// Enough for rotating keys one at a time; bounds the row.
const MAX_WRITE_KEYS: usize = 10;

fn from_row(row: &sqlx::any::AnyRow) -> Result<Source, ApiError> {
    let settings: String = row.get(5);
    let labels: String = row.get(6);
    let catalog_id: String = row.get(7);
    let write_keys: String = row.get(10);
    Ok(Source {
        id: row.get(0),
        workspace_id: row.get(1),
        slug: row.get(2),
        name: row.get(3),
        enabled: row.get::<i64, _>(4) != 0,
        write_keys: serde_json::from_str(&write_keys).map_err(ApiError::internal)?,
        settings: serde_json::from_str(&settings).map_err(ApiError::internal)?,
        labels: serde_json::from_str(&labels).map_err(ApiError::internal)?,
        metadata: catalog::source_entry(&catalog_id),
        created_at: format_micros(row.get(8)),
        updated_at: format_micros(row.get(9)),
    })
}

/// The source `id` of the workspace, or 404 (also for other workspaces' ids).
pub async fn find<'c, E>(db: E, workspace_id: &str, id: &str) -> Result<Source, ApiError>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM sources WHERE id = $1 AND workspace_id = $2"
    ))
    .bind(id)
    .bind(workspace_id)
    .fetch_optional(db)
    .await?
    .ok_or_else(|| ApiError::not_found("source"))?;
    from_row(&row)
}

fn event(event_type: &'static str, caller: &Caller, source: &Source, details: Value) -> NewEvent {
    NewEvent {
        event_type,
        actor: caller.actor(),
        resource_id: source.id.clone(),
        resource_type: "source",
        resource_name: source.name.clone(),
        details,
    }
}

fn duplicate_slug(slug: &str) -> ApiError {
    ApiError::Conflict(format!(
        "a source with slug {slug:?} already exists in this workspace"
    ))
}

#[utoipa::path(get, path = "/sources", tag = "Sources",
    params(("pagination[count]" = Option<i64>, Query), ("pagination[cursor]" = Option<String>, Query)),
    responses((status = 200, description = "{\"data\":{\"sources\":[…],\"pagination\":{…}}}, oldest first"),
              (status = 422, description = "Bad pagination")))]
pub async fn list(
    caller: Caller,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::ReadOnly)?;
    let page = PageRequest::from_request(&req)?;
    let (rows, pagination) =
        fetch_page(&state.db, "sources", COLUMNS, &caller.workspace_id, &page).await?;
    let sources = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
    Ok(super::data(
        json!({ "sources": sources, "pagination": pagination }),
    ))
}

#[utoipa::path(post, path = "/sources", tag = "Sources",
    request_body(content = Object, description = "{\"slug\": string, \"metadataId\": string (GET /catalog/sources), \"enabled\": bool, \"name\"?: string (default: the slug), \"settings\"?: object, \"labels\"?: [{\"key\", \"value\"}]}"),
    responses((status = 201, description = "{\"data\":{\"source\":{…}}}", body = Source),
              (status = 403, description = "A read_only token"),
              (status = 409, description = "The slug is taken in this workspace"),
              (status = 422, description = "Every validation failure")))]
pub async fn create(
    caller: Caller,
    body: JsonBody,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Member)?;
    let body = body.parse(state.settings.max_body_bytes).await?;
    let mut fields = Fields::of(
        &body,
        &[
            "slug",
            "name",
            "enabled",
            "metadataId",
            "settings",
            "labels",
        ],
    )?;
    let slug = fields.slug("slug", true);
    let name = fields.string("name", false, MAX_NAME);
    let enabled = fields.boolean("enabled", true);
    let metadata = fields.string("metadataId", true, 100).and_then(|id| {
        let entry = catalog::source_entry(&id);
        if entry.is_none() {
            fields.errors.push(FieldError::new(
                "metadataId",
                "is not the id of a source in GET /catalog/sources",
            ));
        }
        entry
    });
    let given_settings = fields.object("settings");
    let labels = fields.labels("labels").unwrap_or_default();
    let settings = settings::for_create(given_settings, &mut fields.errors);
    fields.finish()?;
    let slug = slug.expect("validated");
    let metadata = metadata.expect("validated");
    let now = now_micros();
    let source = Source {
        id: crate::id::new_id(),
        name: name.unwrap_or_else(|| slug.clone()),
        slug,
        workspace_id: caller.workspace_id.clone(),
        enabled: enabled.expect("validated"),
        write_keys: vec![crate::id::random_base62(WRITE_KEY_LEN)],
        settings,
        labels,
        metadata: Some(metadata),
        created_at: format_micros(now),
        updated_at: format_micros(now),
    };
    let mut tx = state.db.begin().await?;
    // Every change of a workspace takes its audit lock first, so that no two
    // of them can wait on each other in opposite orders.
    audit::lock_workspace(&mut tx, &caller.workspace_id).await?;
    let inserted = sqlx::query(
        "INSERT INTO sources (id, workspace_id, slug, name, enabled, settings, labels,
             catalog_id, created_at, updated_at, write_keys)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10)",
    )
    .bind(&source.id)
    .bind(&source.workspace_id)
    .bind(&source.slug)
    .bind(&source.name)
    .bind(i64::from(source.enabled))
    .bind(source.settings.to_string())
    .bind(Value::from(source.labels.clone()).to_string())
    .bind(&metadata.id)
    .bind(now)
    .bind(json!(source.write_keys).to_string())
    .execute(&mut *tx)
    .await;
    match inserted {
        Err(e) if is_unique_violation(&e) => return Err(duplicate_slug(&source.slug)),
        other => other?,
    };
    let details =
        json!({ "slug": source.slug, "enabled": source.enabled, "metadataId": metadata.id });
    audit::append(
        &mut tx,
        &caller.workspace_id,
        now,
        vec![event("Source Created", &caller, &source, details)],
    )
    .await?;
    tx.commit().await?;
    Ok(super::created(json!({ "source": source })))
}

#[utoipa::path(get, path = "/sources/{id}", tag = "Sources", params(("id" = String, Path)),
    responses((status = 200, description = "{\"data\":{\"source\":{…}}}", body = Source),
              (status = 404, description = "No such source in this workspace")))]
pub async fn get(
    caller: Caller,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::ReadOnly)?;
    let source = find(state.db.pool(), &caller.workspace_id, &path).await?;
    Ok(super::data(json!({ "source": source })))
}

const UPDATABLE: &[&str] = &["slug", "name", "enabled", "settings", "labels"];

#[utoipa::path(patch, path = "/sources/{id}", tag = "Sources", params(("id" = String, Path)),
    request_body(content = Object, description = "Any of {\"slug\", \"name\", \"enabled\", \"settings\", \"labels\"}. Settings merge by top-level key (null removes one; an echoed \"••••\" keeps the stored secret); labels replace."),
    responses((status = 200, description = "{\"data\":{\"source\":{…}}}", body = Source),
              (status = 404, description = "No such source in this workspace"),
              (status = 409, description = "The slug is taken in this workspace"),
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
    let slug = fields.slug("slug", false);
    let name = fields.string("name", false, MAX_NAME);
    let enabled = fields.boolean("enabled", false);
    let settings_patch = fields.object("settings");
    let labels = fields.labels("labels");
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
    after.slug = slug.unwrap_or(after.slug);
    after.name = name.unwrap_or(after.name);
    after.enabled = enabled.unwrap_or(after.enabled);
    after.labels = labels.unwrap_or(after.labels);
    after.updated_at = format_micros(now);
    let updated = sqlx::query(
        "UPDATE sources SET slug = $1, name = $2, enabled = $3, settings = $4, labels = $5,
             updated_at = $6
         WHERE id = $7",
    )
    .bind(&after.slug)
    .bind(&after.name)
    .bind(i64::from(after.enabled))
    .bind(after.settings.to_string())
    .bind(Value::from(after.labels.clone()).to_string())
    .bind(now)
    .bind(&after.id)
    .execute(&mut *tx)
    .await;
    match updated {
        Err(e) if is_unique_violation(&e) => return Err(duplicate_slug(&after.slug)),
        other => other?,
    };
    let mut changes = Changes::default();
    changes.field("slug", &before.slug, &after.slug);
    changes.field("name", &before.name, &after.name);
    changes.field("enabled", &before.enabled, &after.enabled);
    changes.field("labels", &before.labels, &after.labels);
    changes.keys(
        "settings",
        settings::changed_keys(&before.settings, &after.settings),
    );
    audit::append(
        &mut tx,
        &caller.workspace_id,
        now,
        vec![event(
            "Source Modified",
            &caller,
            &after,
            changes.into_details(),
        )],
    )
    .await?;
    tx.commit().await?;
    Ok(super::data(json!({ "source": after })))
}

#[utoipa::path(delete, path = "/sources/{id}", tag = "Sources", params(("id" = String, Path)),
    responses((status = 200, description = "{\"data\":{\"status\":\"SUCCESS\"}}"),
              (status = 404, description = "No such source in this workspace"),
              (status = 409, description = "The source still has destinations: delete them first")))]
pub async fn delete(
    caller: Caller,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Member)?;
    let mut tx = state.db.begin().await?;
    // Held from the count to the delete: no destination can be attached in
    // between.
    audit::lock_workspace(&mut tx, &caller.workspace_id).await?;
    let source = find(&mut *tx, &caller.workspace_id, &path).await?;
    let destinations: i64 = sqlx::query("SELECT COUNT(*) FROM destinations WHERE source_id = $1")
        .bind(&source.id)
        .fetch_one(&mut *tx)
        .await?
        .get(0);
    // Refusing rather than cascading: deleting a source should never
    // silently take configured destinations (and their secrets) with it.
    if destinations > 0 {
        return Err(ApiError::Conflict(format!(
            "source {:?} still has {destinations} destination(s); delete them first",
            source.slug
        )));
    }
    sqlx::query("DELETE FROM sources WHERE id = $1")
        .bind(&source.id)
        .execute(&mut *tx)
        .await?;
    audit::append(
        &mut tx,
        &caller.workspace_id,
        now_micros(),
        vec![event(
            "Source Deleted",
            &caller,
            &source,
            json!({ "slug": source.slug }),
        )],
    )
    .await?;
    tx.commit().await?;
    Ok(super::deleted())
}

/// How a write key appears in the audit trail: enough to tell keys apart,
/// without repeating the key itself.
fn write_key_hint(key: &str) -> String {
    format!("…{}", &key[key.len().saturating_sub(4)..])
}

/// Stores the source's write keys, writes the audit event and commits.
async fn save_write_keys(
    mut tx: crate::db::Tx,
    caller: &Caller,
    source: &mut Source,
    details: Value,
) -> Result<(), ApiError> {
    let now = now_micros();
    source.updated_at = format_micros(now);
    sqlx::query("UPDATE sources SET write_keys = $1, updated_at = $2 WHERE id = $3")
        .bind(json!(source.write_keys).to_string())
        .bind(now)
        .bind(&source.id)
        .execute(&mut *tx)
        .await?;
    audit::append(
        &mut tx,
        &caller.workspace_id,
        now,
        vec![event("Source Modified", caller, source, details)],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

#[utoipa::path(post, path = "/sources/{id}/writekey", tag = "Sources", params(("id" = String, Path)),
    responses((status = 201, description = "{\"data\":{\"source\":{…}}}, the new key last in writeKeys", body = Source),
              (status = 404, description = "No such source in this workspace"),
              (status = 409, description = "The source already has the most write keys allowed")))]
pub async fn add_write_key(
    caller: Caller,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Member)?;
    let mut tx = state.db.begin().await?;
    audit::lock_workspace(&mut tx, &caller.workspace_id).await?;
    let mut source = find(&mut *tx, &caller.workspace_id, &path).await?;
    if source.write_keys.len() >= MAX_WRITE_KEYS {
        return Err(ApiError::Conflict(format!(
            "source {:?} already has {MAX_WRITE_KEYS} write keys; remove one first",
            source.slug
        )));
    }
    let key = crate::id::random_base62(WRITE_KEY_LEN);
    let details = json!({ "changes": { "writeKeys": { "added": write_key_hint(&key) } } });
    source.write_keys.push(key);
    save_write_keys(tx, &caller, &mut source, details).await?;
    Ok(super::created(json!({ "source": source })))
}

#[utoipa::path(delete, path = "/sources/{id}/writekey/{key}", tag = "Sources",
    params(("id" = String, Path), ("key" = String, Path, description = "One of the source's writeKeys")),
    responses((status = 200, description = "{\"data\":{\"status\":\"SUCCESS\"}}"),
              (status = 404, description = "No such source in this workspace, or no such write key on it")))]
pub async fn remove_write_key(
    caller: Caller,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Member)?;
    let (id, key) = path.into_inner();
    let mut tx = state.db.begin().await?;
    audit::lock_workspace(&mut tx, &caller.workspace_id).await?;
    let mut source = find(&mut *tx, &caller.workspace_id, &id).await?;
    // A plain comparison is enough: whoever gets this far may read the keys.
    let position = source
        .write_keys
        .iter()
        .position(|k| *k == key)
        .ok_or_else(|| ApiError::not_found("write key"))?;
    let removed = source.write_keys.remove(position);
    let details = json!({ "changes": { "writeKeys": { "removed": write_key_hint(&removed) } } });
    save_write_keys(tx, &caller, &mut source, details).await?;
    Ok(super::deleted())
}
