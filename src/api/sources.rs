//! `/sources`: where a workspace's events come from. Every role reads them;
//! members and owners create, change and delete them. Each change commits
//! together with its audit event.

use actix_web::http::Method;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use serde_json::{json, Value};

use super::auth::{Caller, Role};
use super::body::JsonBody;
use super::catalog::{self, CatalogEntry};
use super::error::{ApiError, OnUniqueViolation};
use super::pagination::PageRequest;
use super::settings;
use super::validate::{Fields, Identifier};
use super::{path_id, Endpoint};
use crate::audit::{Changes, NewEvent};
use crate::db::sources::{self, Source};
use crate::domain::{Label, Name, Slug, SourceId};
use crate::state::AppState;
use crate::time::Timestamp;

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
            "/sources/{id}/writekey/{writeKey}",
            remove_write_key,
        ),
    ]
}

/// A source as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Source)]
pub struct SourceView {
    pub id: SourceId,
    /// Unique in the workspace.
    #[schema(value_type = String)]
    pub slug: Slug,
    #[schema(value_type = String)]
    pub name: Name,
    #[schema(value_type = String)]
    pub workspace_id: crate::domain::WorkspaceId,
    pub enabled: bool,
    /// Keys that identify this source to the tracking libraries (Segment's
    /// `writeKeys`); a new source has one.
    pub write_keys: Vec<String>,
    /// Values under keys that name a secret are shown as "••••".
    #[serde(serialize_with = "settings::serialize_masked")]
    #[schema(value_type = Object)]
    pub settings: Value,
    pub labels: Vec<Label>,
    /// The catalog entry (`GET /catalog/sources`) this source is an instance of.
    #[schema(value_type = Option<CatalogEntry>)]
    pub metadata: Option<&'static CatalogEntry>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl From<Source> for SourceView {
    fn from(source: Source) -> SourceView {
        SourceView {
            metadata: catalog::source_entry(&source.catalog_id),
            id: source.id,
            slug: source.slug,
            name: source.name,
            workspace_id: source.workspace_id,
            enabled: source.enabled,
            write_keys: source.write_keys,
            settings: source.settings,
            labels: source.labels,
            created_at: source.created_at,
            updated_at: source.updated_at,
        }
    }
}

/// Write keys are 32 base62 characters, like Segment's.
const WRITE_KEY_LEN: usize = 32;

/// Enough for rotating keys one at a time; bounds the row.
const MAX_WRITE_KEYS: usize = 10;

/// The source `id` of the caller's workspace, or 404 (also for other
/// workspaces' ids).
async fn find(
    conn: impl Into<crate::db::Conn<'_>>,
    caller: &Caller,
    id: &str,
) -> Result<Source, ApiError> {
    let id: SourceId = path_id(id, "source")?;
    sources::find(conn, &caller.workspace_id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("source"))
}

fn event(event_type: &'static str, caller: &Caller, source: &Source, details: Value) -> NewEvent {
    NewEvent {
        event_type,
        actor: caller.actor(),
        resource_id: source.id.to_string(),
        resource_type: "source",
        resource_name: source.name.to_string(),
        details,
    }
}

fn duplicate_slug(slug: &Slug) -> impl FnOnce() -> String + '_ {
    move || {
        format!(
            "a source with slug {:?} already exists in this workspace",
            slug.as_str()
        )
    }
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
    let request = PageRequest::from_request(&req)?;
    let page = sources::page(&state.db, &caller.workspace_id, &request.keyset()?).await?;
    let pagination = request.pagination(&page);
    let sources: Vec<SourceView> = page.items.into_iter().map(SourceView::from).collect();
    Ok(super::data(
        json!({ "sources": sources, "pagination": pagination }),
    ))
}

#[utoipa::path(post, path = "/sources", tag = "Sources",
    request_body(content = Object, description = "{\"slug\": string, \"metadataId\": string (GET /catalog/sources), \"enabled\": bool, \"name\"?: string (default: the slug), \"settings\"?: object, \"labels\"?: [{\"key\", \"value\"}]}"),
    responses((status = 201, description = "{\"data\":{\"source\":{…}}}", body = SourceView),
              (status = 403, description = "A read_only token"),
              (status = 409, description = "The slug is taken in this workspace"),
              (status = 422, description = "Every validation failure")))]
pub async fn create(
    caller: Caller,
    body: JsonBody,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Member)?;
    let body = body.parse(&state.settings).await?;
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
    let slug = fields.required::<Slug>("slug");
    let name = fields.optional::<Name>("name");
    let enabled = fields.boolean("enabled", true);
    let metadata = fields
        .required::<Identifier>("metadataId")
        .and_then(|Identifier(id)| {
            let entry = catalog::source_entry(&id);
            if entry.is_none() {
                fields.fail(
                    "metadataId",
                    "is not the id of a source in GET /catalog/sources",
                );
            }
            entry
        });
    let given_settings = fields.object("settings");
    let labels = fields.labels("labels").unwrap_or_default();
    let settings = settings::for_create(given_settings, &mut fields.errors);
    let (Some(slug), Some(enabled), Some(metadata)) = (slug, enabled, metadata) else {
        return Err(fields.into_error());
    };
    fields.finish()?;
    let mut change = state.db.change(caller.workspace_id.as_str()).await?;
    let now = Timestamp(change.at());
    let source = Source {
        id: SourceId::generate(),
        name: name.unwrap_or_else(|| slug.to_name()),
        slug,
        workspace_id: caller.workspace_id.clone(),
        enabled,
        write_keys: vec![crate::id::random_base62(WRITE_KEY_LEN)],
        settings,
        labels,
        catalog_id: metadata.id.to_string(),
        created_at: now,
        updated_at: now,
    };
    sources::insert(&mut change, &source)
        .await
        .on_unique_violation(duplicate_slug(&source.slug))?;
    let details =
        json!({ "slug": source.slug, "enabled": source.enabled, "metadataId": metadata.id });
    change.record(event("Source Created", &caller, &source, details));
    change.commit().await?;
    Ok(super::created(
        json!({ "source": SourceView::from(source) }),
    ))
}

#[utoipa::path(get, path = "/sources/{id}", tag = "Sources", params(("id" = String, Path)),
    responses((status = 200, description = "{\"data\":{\"source\":{…}}}", body = SourceView),
              (status = 404, description = "No such source in this workspace")))]
pub async fn get(
    caller: Caller,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::ReadOnly)?;
    let source = find(&state.db, &caller, &path).await?;
    Ok(super::data(json!({ "source": SourceView::from(source) })))
}

const UPDATABLE: &[&str] = &["slug", "name", "enabled", "settings", "labels"];

#[utoipa::path(patch, path = "/sources/{id}", tag = "Sources", params(("id" = String, Path)),
    request_body(content = Object, description = "Any of {\"slug\", \"name\", \"enabled\", \"settings\", \"labels\"}. Settings merge by top-level key (null removes one; an echoed \"••••\" keeps the stored secret); labels replace."),
    responses((status = 200, description = "{\"data\":{\"source\":{…}}}", body = SourceView),
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
    let body = body.parse(&state.settings).await?;
    let mut fields = Fields::of(&body, UPDATABLE)?;
    let slug = fields.optional::<Slug>("slug");
    let name = fields.optional::<Name>("name");
    let enabled = fields.boolean("enabled", false);
    let settings_patch = fields.object("settings");
    let labels = fields.labels("labels");
    fields.require_any(UPDATABLE);
    // The lock is held from the read to the commit: a concurrent PATCH
    // cannot merge settings into a stale copy.
    let mut change = state.db.change(caller.workspace_id.as_str()).await?;
    let before = find(&mut change, &caller, &path).await?;
    let mut after = before.clone();
    if let Some(patch) = settings_patch {
        after.settings = settings::merge(&before.settings, patch, &mut fields.errors);
    }
    // Only now, so that mask errors are listed with all the others.
    fields.finish()?;
    after.slug = slug.unwrap_or(after.slug);
    after.name = name.unwrap_or(after.name);
    after.enabled = enabled.unwrap_or(after.enabled);
    after.labels = labels.unwrap_or(after.labels);
    after.updated_at = Timestamp(change.at());
    sources::update(&mut change, &after)
        .await
        .on_unique_violation(duplicate_slug(&after.slug))?;
    let mut changes = Changes::default();
    changes.field("slug", &before.slug, &after.slug);
    changes.field("name", &before.name, &after.name);
    changes.field("enabled", &before.enabled, &after.enabled);
    changes.field("labels", &before.labels, &after.labels);
    changes.keys(
        "settings",
        settings::changed_keys(&before.settings, &after.settings),
    );
    change.record(event(
        "Source Modified",
        &caller,
        &after,
        changes.into_details(),
    ));
    change.commit().await?;
    Ok(super::data(json!({ "source": SourceView::from(after) })))
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
    // The lock is held from the count to the delete: no destination can be
    // attached in between.
    let mut change = state.db.change(caller.workspace_id.as_str()).await?;
    let source = find(&mut change, &caller, &path).await?;
    let destinations = sources::count_destinations(&mut change, &source.id).await?;
    // Refusing rather than cascading: deleting a source should never
    // silently take configured destinations (and their secrets) with it.
    if destinations > 0 {
        return Err(ApiError::Conflict(format!(
            "source {:?} still has {destinations} destination(s); delete them first",
            source.slug.as_str()
        )));
    }
    sources::delete(&mut change, &source.id).await?;
    change.record(event(
        "Source Deleted",
        &caller,
        &source,
        json!({ "slug": source.slug }),
    ));
    change.commit().await?;
    Ok(super::deleted())
}

/// How a write key appears in the audit trail: enough to tell keys apart,
/// without repeating the key itself.
fn write_key_hint(key: &str) -> String {
    format!("…{}", &key[key.len().saturating_sub(4)..])
}

/// Stores the source's write keys with the audit event, and commits.
async fn save_write_keys(
    mut change: crate::db::Change,
    caller: &Caller,
    source: &mut Source,
    details: Value,
) -> Result<(), ApiError> {
    source.updated_at = Timestamp(change.at());
    sources::update(&mut change, source).await?;
    change.record(event("Source Modified", caller, source, details));
    change.commit().await?;
    Ok(())
}

#[utoipa::path(post, path = "/sources/{id}/writekey", tag = "Sources", params(("id" = String, Path)),
    responses((status = 201, description = "{\"data\":{\"source\":{…}}}, the new key last in writeKeys", body = SourceView),
              (status = 404, description = "No such source in this workspace"),
              (status = 409, description = "The source already has the most write keys allowed")))]
pub async fn add_write_key(
    caller: Caller,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Member)?;
    let mut change = state.db.change(caller.workspace_id.as_str()).await?;
    let mut source = find(&mut change, &caller, &path).await?;
    if source.write_keys.len() >= MAX_WRITE_KEYS {
        return Err(ApiError::Conflict(format!(
            "source {:?} already has {MAX_WRITE_KEYS} write keys; remove one first",
            source.slug.as_str()
        )));
    }
    let key = crate::id::random_base62(WRITE_KEY_LEN);
    let details = json!({ "changes": { "writeKeys": { "added": write_key_hint(&key) } } });
    source.write_keys.push(key);
    save_write_keys(change, &caller, &mut source, details).await?;
    Ok(super::created(
        json!({ "source": SourceView::from(source) }),
    ))
}

#[utoipa::path(delete, path = "/sources/{id}/writekey/{writeKey}", tag = "Sources",
    params(("id" = String, Path), ("writeKey" = String, Path, description = "One of the source's writeKeys (log lines never show request paths)")),
    responses((status = 200, description = "{\"data\":{\"status\":\"SUCCESS\"}}"),
              (status = 404, description = "No such source in this workspace, or no such write key on it")))]
pub async fn remove_write_key(
    caller: Caller,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Member)?;
    let (id, key) = path.into_inner();
    let mut change = state.db.change(caller.workspace_id.as_str()).await?;
    let mut source = find(&mut change, &caller, &id).await?;
    // A plain comparison is enough: whoever gets this far may read the keys.
    let position = source
        .write_keys
        .iter()
        .position(|k| *k == key)
        .ok_or_else(|| ApiError::not_found("write key"))?;
    let removed = source.write_keys.remove(position);
    let details = json!({ "changes": { "writeKeys": { "removed": write_key_hint(&removed) } } });
    save_write_keys(change, &caller, &mut source, details).await?;
    Ok(super::deleted())
}
