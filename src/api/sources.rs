//! `/sources`: where a workspace's events come from. Every role reads them;
//! members and owners create, change and delete them. Each change commits
//! together with its audit event.

use actix_web::web;
use serde::Serialize;
use serde_json::{json, Map, Value};
use utoipa::ToSchema;

use super::auth::{Caller, Identity, Member};
use super::body::{FromBody, JsonBody};
use super::catalog::{self, CatalogEntry, SourceMetadataId};
use super::destinations::DestinationView;
use super::error::{ApiError, OnUniqueViolation};
use super::labels;
use super::pagination::{PageRequest, Pagination};
use super::reply::{Created, Data, Done};
use super::route::Resource;
use super::settings::{self, Shown};
use super::validate::Fields;
use super::warehouses::WarehouseView;
use super::{path_id, OperationDoc};
use crate::audit::{Changes, NewEvent};
use crate::db::sources::{self, Source};
use crate::db::{destinations, tracking_plans, warehouses};
use crate::domain::{Label, LabelInput, Name, Slug, SourceId, WorkspaceId};
use crate::state::AppState;
use crate::time::Timestamp;

pub fn resources() -> Vec<Resource> {
    const NO_SUCH: &str = "No such source in this workspace";
    const SLUG_TAKEN: &str = "The slug is taken in this workspace";
    vec![
        Resource::new("/sources", "Sources")
            .get(
                list,
                OperationDoc::new("listSources", "The workspace's sources, oldest first"),
            )
            .post(
                create,
                OperationDoc::new("createSource", "Create a source, with one write key")
                    .link(
                        "removeWriteKeyFromSource",
                        &[
                            ("path.id", "$response.body#/data/source/id"),
                            ("path.writeKey", "$response.body#/data/source/writeKeys/0"),
                        ],
                    )
                    .status(409, SLUG_TAKEN),
            ),
        Resource::new("/sources/{id}", "Sources")
            .get(
                get,
                OperationDoc::new("getSource", "One source").status(404, NO_SUCH),
            )
            .patch(
                update,
                OperationDoc::new("updateSource", "Change a source")
                    .describe(
                        "Send any of the fields. Settings merge by top-level key: null removes \
                         one, and an echoed \"••••\" keeps the stored secret. Labels replace.",
                    )
                    .status(404, NO_SUCH)
                    .status(409, SLUG_TAKEN),
            )
            .delete(
                delete,
                OperationDoc::new("deleteSource", "Delete a source")
                    .status(404, NO_SUCH)
                    .status(409, "The source still has destinations: delete them first"),
            ),
        Resource::new("/sources/{id}/writekey", "Sources").post(
            add_write_key,
            OperationDoc::new("createWriteKeyForSource", "Add a write key to a source")
                .link(
                    "removeWriteKeyFromSource",
                    &[
                        ("path.id", "$request.path.id"),
                        ("path.writeKey", "$response.body#/data/source/writeKeys/0"),
                    ],
                )
                .status(404, NO_SUCH)
                .status(409, "The source already has the most write keys allowed"),
        ),
        Resource::new("/sources/{id}/labels", "Sources")
            .post(
                add_labels,
                OperationDoc::new(
                    "addLabelsToSource",
                    "Add labels of the workspace to a source",
                )
                .describe("Each label must be one of GET /labels; those the source has stay.")
                .status(404, NO_SUCH),
            )
            .put(
                replace_labels,
                OperationDoc::new("replaceLabelsInSource", "Replace a source's labels")
                    .describe("Each label must be one of GET /labels.")
                    .status(404, NO_SUCH),
            ),
        Resource::new("/sources/{id}/connected-destinations", "Sources").get(
            list_connected_destinations,
            OperationDoc::new(
                "listConnectedDestinationsFromSource",
                "The destinations that receive a source's events, oldest first",
            )
            .status(404, NO_SUCH),
        ),
        Resource::new("/sources/{id}/connected-warehouses", "Sources").get(
            list_connected_warehouses,
            OperationDoc::new(
                "listConnectedWarehousesFromSource",
                "The warehouses a source feeds, oldest first",
            )
            .status(404, NO_SUCH),
        ),
        Resource::new("/sources/{id}/writekey/{writeKey}", "Sources").delete(
            remove_write_key,
            OperationDoc::new(
                "removeWriteKeyFromSource",
                "Remove a write key from a source",
            )
            .status(
                404,
                "No such source in this workspace, or no such write key on it",
            ),
        ),
    ]
}

/// A source as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Source)]
pub struct SourceView {
    pub id: SourceId,
    /// Unique in the workspace.
    pub slug: Slug,
    pub name: Name,
    pub workspace_id: WorkspaceId,
    pub enabled: bool,
    /// Keys that identify this source to the tracking libraries (Segment's
    /// `writeKeys`); a new source has one.
    pub write_keys: Vec<String>,
    pub settings: Shown,
    pub labels: Vec<Label>,
    /// The catalog entry (`GET /catalog/sources`) this source is an instance of.
    #[schema(value_type = Option<CatalogEntry>, required)]
    #[serde(serialize_with = "catalog::serialize_rendered")]
    pub metadata: Option<&'static CatalogEntry>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl From<Source> for SourceView {
    fn from(source: Source) -> SourceView {
        let metadata = catalog::source_entry(&source.catalog_id);
        SourceView {
            settings: Shown::of(metadata, &source.settings),
            metadata,
            id: source.id,
            slug: source.slug,
            name: source.name,
            workspace_id: source.workspace_id,
            enabled: source.enabled,
            write_keys: source.write_keys,
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
pub async fn find(
    conn: impl Into<crate::db::Conn<'_>>,
    caller: &Identity,
    id: &str,
) -> Result<Source, ApiError> {
    let id: SourceId = path_id(id, "source")?;
    sources::find(conn, &caller.workspace_id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("source"))
}

pub fn event(
    event_type: &'static str,
    caller: &Identity,
    source: &Source,
    details: Value,
) -> NewEvent {
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

/// `GET /sources`.
#[derive(Serialize, ToSchema)]
pub struct ListSourcesOutput {
    sources: Vec<SourceView>,
    pagination: Pagination,
}

/// One source: what `GET`, `POST` and `PATCH` answer.
#[derive(Serialize, ToSchema)]
pub struct SourceOutput {
    source: SourceView,
}

impl From<Source> for SourceOutput {
    fn from(source: Source) -> SourceOutput {
        SourceOutput {
            source: source.into(),
        }
    }
}

/// `POST /sources`.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct CreateSourceInput {
    slug: Slug,
    /// Default: the slug.
    name: Option<Name>,
    enabled: bool,
    metadata_id: SourceMetadataId,
    /// The options of the `metadataId`'s catalog entry. Secrets are never
    /// shown again, and "••••" cannot be one.
    #[schema(value_type = Option<Object>)]
    settings: Option<Map<String, Value>>,
    /// Labels of the workspace (`GET /labels`).
    #[schema(max_items = 100, value_type = Option<Vec<LabelInput>>)]
    labels: Option<Vec<Label>>,
}

impl FromBody for CreateSourceInput {
    const FIELDS: &'static [&'static str] = &[
        "slug",
        "name",
        "enabled",
        "metadataId",
        "settings",
        "labels",
    ];

    fn refine_schema(schemas: &mut std::collections::BTreeMap<String, Value>) {
        settings::one_variant_per_kind(schemas, "CreateSourceInput", &catalog::SOURCES);
    }

    fn read(fields: &mut Fields) -> Option<CreateSourceInput> {
        let slug = fields.required("slug");
        let name = fields.optional("name");
        let enabled = fields.boolean("enabled", true);
        let metadata_id: Option<SourceMetadataId> = fields.required("metadataId");
        let settings = fields.settings_for_create("settings", metadata_id.map(|m| m.0));
        let labels = fields.labels("labels");
        Some(CreateSourceInput {
            slug: slug?,
            name,
            enabled: enabled?,
            metadata_id: metadata_id?,
            settings,
            labels,
        })
    }
}

/// `PATCH /sources/{id}`: the fields to change.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct UpdateSourceInput {
    slug: Option<Slug>,
    name: Option<Name>,
    enabled: Option<bool>,
    /// Merged into the stored settings by top-level key: null removes a
    /// key, "••••" keeps the stored secret.
    #[schema(value_type = Option<Object>)]
    settings: Option<Map<String, Value>>,
    /// Replaces every label; each must be one of `GET /labels`.
    #[schema(max_items = 100, value_type = Option<Vec<LabelInput>>)]
    labels: Option<Vec<Label>>,
}

impl FromBody for UpdateSourceInput {
    const FIELDS: &'static [&'static str] = &["slug", "name", "enabled", "settings", "labels"];
    const AT_LEAST_ONE: bool = true;

    fn refine_schema(schemas: &mut std::collections::BTreeMap<String, Value>) {
        settings::patch_settings_property(schemas, "UpdateSourceInput", &catalog::SOURCES);
    }

    fn read(fields: &mut Fields) -> Option<UpdateSourceInput> {
        Some(UpdateSourceInput {
            slug: fields.optional("slug"),
            name: fields.optional("name"),
            enabled: fields.boolean("enabled", false),
            settings: fields.object("settings"),
            labels: fields.labels("labels"),
        })
    }
}

pub async fn list(
    caller: Caller,
    page: Result<PageRequest, ApiError>,
    state: web::Data<AppState>,
) -> Result<Data<ListSourcesOutput>, ApiError> {
    let request = page?;
    let page = sources::page(&state.db, &caller.workspace_id, &request.keyset()?).await?;
    let pagination = request.pagination(&page);
    Ok(Data(ListSourcesOutput {
        sources: page.items.into_iter().map(SourceView::from).collect(),
        pagination,
    }))
}

pub async fn create(
    caller: Caller<Member>,
    body: JsonBody<CreateSourceInput>,
    state: web::Data<AppState>,
) -> Result<Created<SourceOutput>, ApiError> {
    let mut body = body.parse(&state.settings).await?;
    let mut change = state.db.change(caller.workspace_id.as_str()).await?;
    if let Some(labels) = body.value.as_ref().and_then(|b| b.labels.as_ref()) {
        labels::require_known(&mut change, &caller.workspace_id, labels, &mut body.errors).await?;
    }
    let body = body.finish()?;
    let SourceMetadataId(metadata) = body.metadata_id;
    let now = Timestamp(change.at());
    let source = Source {
        id: SourceId::generate(),
        name: body.name.unwrap_or_else(|| body.slug.to_name()),
        slug: body.slug,
        workspace_id: caller.workspace_id.clone(),
        enabled: body.enabled,
        write_keys: vec![crate::id::random_base62(WRITE_KEY_LEN)],
        settings: Value::Object(body.settings.unwrap_or_default()),
        labels: body.labels.unwrap_or_default(),
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
    Ok(Created(source.into()))
}

pub async fn get(
    caller: Caller,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<Data<SourceOutput>, ApiError> {
    Ok(Data(find(&state.db, &caller, &path).await?.into()))
}

pub async fn update(
    caller: Caller<Member>,
    path: web::Path<String>,
    body: JsonBody<UpdateSourceInput>,
    state: web::Data<AppState>,
) -> Result<Data<SourceOutput>, ApiError> {
    let mut body = body.parse(&state.settings).await?;
    // The lock is held from the read to the commit: a concurrent PATCH
    // cannot merge settings into a stale copy.
    let mut change = state.db.change(caller.workspace_id.as_str()).await?;
    let before = find(&mut change, &caller, &path).await?;
    let mut after = before.clone();
    if let Some(patch) = body.value.as_mut().and_then(|b| b.settings.take()) {
        let entry = catalog::source_entry(&before.catalog_id).ok_or_else(|| {
            ApiError::internal(anyhow::anyhow!("catalog id {:?}", before.catalog_id))
        })?;
        after.settings = settings::merge(entry, &before.settings, patch, &mut body.errors);
    }
    if let Some(labels) = body.value.as_ref().and_then(|b| b.labels.as_ref()) {
        labels::require_known(&mut change, &caller.workspace_id, labels, &mut body.errors).await?;
    }
    // Only now, so that these problems are listed with all the others.
    let body = body.finish()?;
    after.slug = body.slug.unwrap_or(after.slug);
    after.name = body.name.unwrap_or(after.name);
    after.enabled = body.enabled.unwrap_or(after.enabled);
    after.labels = body.labels.unwrap_or(after.labels);
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
    Ok(Data(after.into()))
}

pub async fn delete(
    caller: Caller<Member>,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<Data<Done>, ApiError> {
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
    // Connections go with the source; the event says which there were.
    let tracking_plan = tracking_plans::plan_of_source(&mut change, &source.id).await?;
    tracking_plans::disconnect(&mut change, &source.id).await?;
    let warehouses = warehouses::disconnect_source(&mut change, &source.id).await?;
    sources::delete(&mut change, &source.id).await?;
    let mut details = json!({ "slug": source.slug });
    if let Some(plan) = tracking_plan {
        details["trackingPlanId"] = json!(plan);
    }
    if !warehouses.is_empty() {
        details["disconnectedWarehouses"] = json!(warehouses);
    }
    change.record(event("Source Deleted", &caller, &source, details));
    change.commit().await?;
    Ok(Done::success())
}

/// How a write key appears in the audit trail: enough to tell keys apart,
/// without repeating the key itself.
fn write_key_hint(key: &str) -> String {
    format!("…{}", &key[key.len().saturating_sub(4)..])
}

/// Stores the source's write keys with the audit event, and commits.
async fn save_write_keys(
    mut change: crate::db::Change,
    caller: &Identity,
    source: &mut Source,
    details: Value,
) -> Result<(), ApiError> {
    source.updated_at = Timestamp(change.at());
    sources::update(&mut change, source).await?;
    change.record(event("Source Modified", caller, source, details));
    change.commit().await?;
    Ok(())
}

pub async fn add_write_key(
    caller: Caller<Member>,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<Created<SourceOutput>, ApiError> {
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
    Ok(Created(source.into()))
}

pub async fn remove_write_key(
    caller: Caller<Member>,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<Data<Done>, ApiError> {
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
    Ok(Done::success())
}

/// `POST` and `PUT /sources/{id}/labels`: labels of the workspace.
#[derive(ToSchema)]
pub struct SourceLabelsInput {
    #[schema(max_items = 100, value_type = Vec<LabelInput>)]
    labels: Vec<Label>,
}

impl FromBody for SourceLabelsInput {
    const FIELDS: &'static [&'static str] = &["labels"];

    fn read(fields: &mut Fields) -> Option<SourceLabelsInput> {
        let labels = fields.labels("labels");
        if labels.is_none()
            && !fields
                .errors
                .iter()
                .any(|e| e.field.as_deref() == Some("labels"))
        {
            fields.fail("labels", "is required");
        }
        Some(SourceLabelsInput { labels: labels? })
    }
}

/// What the label operations answer: the source's labels now.
#[derive(Serialize, ToSchema)]
pub struct SourceLabelsOutput {
    labels: Vec<Label>,
}

/// Sets the source's labels to `labels(current)`, each checked against the
/// workspace's, with the audit event.
async fn change_labels(
    caller: &Identity,
    path: &str,
    body: JsonBody<SourceLabelsInput>,
    state: &AppState,
    labels: impl FnOnce(Vec<Label>, Vec<Label>) -> Vec<Label>,
) -> Result<Data<SourceLabelsOutput>, ApiError> {
    let mut body = body.parse(&state.settings).await?;
    let mut change = state.db.change(caller.workspace_id.as_str()).await?;
    let before = find(&mut change, caller, path).await?;
    if let Some(given) = body.value.as_ref().map(|b| &b.labels) {
        labels::require_known(&mut change, &caller.workspace_id, given, &mut body.errors).await?;
    }
    let given = body.finish()?.labels;
    let mut after = before.clone();
    after.labels = labels(before.labels.clone(), given);
    if after.labels.len() > super::validate::MAX_LABELS {
        return Err(ApiError::Validation(vec![super::error::FieldError::new(
            "labels",
            format!(
                "would give the source {} labels; it may have at most {}",
                after.labels.len(),
                super::validate::MAX_LABELS
            ),
        )]));
    }
    if after.labels != before.labels {
        after.updated_at = Timestamp(change.at());
        sources::update(&mut change, &after).await?;
        let mut changes = Changes::default();
        changes.field("labels", &before.labels, &after.labels);
        change.record(event(
            "Source Modified",
            caller,
            &after,
            changes.into_details(),
        ));
        change.commit().await?;
    }
    Ok(Data(SourceLabelsOutput {
        labels: after.labels,
    }))
}

/// Labels in order, each once.
fn without_repeats(labels: Vec<Label>) -> Vec<Label> {
    let mut out: Vec<Label> = Vec::with_capacity(labels.len());
    for label in labels {
        if !out.contains(&label) {
            out.push(label);
        }
    }
    out
}

pub async fn add_labels(
    caller: Caller<Member>,
    path: web::Path<String>,
    body: JsonBody<SourceLabelsInput>,
    state: web::Data<AppState>,
) -> Result<Data<SourceLabelsOutput>, ApiError> {
    change_labels(&caller, &path, body, &state, |mut current, given| {
        current.extend(given);
        without_repeats(current)
    })
    .await
}

pub async fn replace_labels(
    caller: Caller<Member>,
    path: web::Path<String>,
    body: JsonBody<SourceLabelsInput>,
    state: web::Data<AppState>,
) -> Result<Data<SourceLabelsOutput>, ApiError> {
    change_labels(&caller, &path, body, &state, |_, given| {
        without_repeats(given)
    })
    .await
}

/// `GET /sources/{id}/connected-destinations`.
#[derive(Serialize, ToSchema)]
pub struct ListConnectedDestinationsOutput {
    destinations: Vec<DestinationView>,
    pagination: Pagination,
}

pub async fn list_connected_destinations(
    caller: Caller,
    path: web::Path<String>,
    page: Result<PageRequest, ApiError>,
    state: web::Data<AppState>,
) -> Result<Data<ListConnectedDestinationsOutput>, ApiError> {
    let source = find(&state.db, &caller, &path).await?;
    let request = page?;
    let page = destinations::page_of_source(
        &state.db,
        &caller.workspace_id,
        &source.id,
        &request.keyset()?,
    )
    .await?;
    let pagination = request.pagination(&page);
    Ok(Data(ListConnectedDestinationsOutput {
        destinations: page.items.into_iter().map(DestinationView::from).collect(),
        pagination,
    }))
}

/// `GET /sources/{id}/connected-warehouses`.
#[derive(Serialize, ToSchema)]
pub struct ListConnectedWarehousesOutput {
    warehouses: Vec<WarehouseView>,
    pagination: Pagination,
}

pub async fn list_connected_warehouses(
    caller: Caller,
    path: web::Path<String>,
    page: Result<PageRequest, ApiError>,
    state: web::Data<AppState>,
) -> Result<Data<ListConnectedWarehousesOutput>, ApiError> {
    let source = find(&state.db, &caller, &path).await?;
    let request = page?;
    let page = warehouses::page_of_source(
        &state.db,
        &caller.workspace_id,
        &source.id,
        &request.keyset()?,
    )
    .await?;
    let pagination = request.pagination(&page);
    Ok(Data(ListConnectedWarehousesOutput {
        warehouses: page.items.into_iter().map(WarehouseView::from).collect(),
        pagination,
    }))
}
