//! `/warehouses`: where a workspace's events are loaded for analysis, as
//! Segment's `WarehousesApi` has them. Each is an instance of an entry of
//! `/catalog/warehouses` and takes the events of the sources connected to
//! it. leakguard keeps their configuration; it never connects to one.
//! Audit events carry Segment's names (`Storage Destination …`).

use actix_web::web;
use serde::Serialize;
use serde_json::{json, Map, Value};
use utoipa::ToSchema;

use super::auth::{Caller, Identity, Member};
use super::body::{FromBody, JsonBody};
use super::catalog::{self, CatalogEntry, WarehouseMetadataId};
use super::error::ApiError;
use super::pagination::{PageRequest, Pagination};
use super::reply::{Created, Data, Done};
use super::route::Resource;
use super::settings::{self, Shown};
use super::sources::SourceView;
use super::validate::Fields;
use super::{path_id, OperationDoc};
use crate::audit::{Changes, NewEvent};
use crate::db::sources;
use crate::db::warehouses::{self, Warehouse};
use crate::domain::{Name, Parse, SourceId, WarehouseId, WorkspaceId};
use crate::state::AppState;
use crate::time::Timestamp;

pub fn resources() -> Vec<Resource> {
    const NO_SUCH: &str = "No such warehouse in this workspace";
    vec![
        Resource::new("/warehouses", "Warehouses")
            .get(
                list,
                OperationDoc::new("listWarehouses", "The workspace's warehouses, oldest first"),
            )
            .post(
                create,
                OperationDoc::new("createWarehouse", "Create a warehouse"),
            ),
        // Before `/warehouses/{id}`, which would otherwise match it.
        Resource::new("/warehouses/validation", "Warehouses").post(
            validate,
            OperationDoc::new(
                "createValidationInWarehouse",
                "Check settings against a kind of warehouse",
            )
            .describe(
                "CONNECTED when the settings are complete and valid for the kind; FAILED \
                 otherwise. leakguard does not connect to warehouses: this checks what it can.",
            ),
        ),
        Resource::new("/warehouses/{id}", "Warehouses")
            .get(
                get,
                OperationDoc::new("getWarehouse", "One warehouse").status(404, NO_SUCH),
            )
            .patch(
                update,
                OperationDoc::new("updateWarehouse", "Change a warehouse")
                    .describe(
                        "Send any of the fields. Settings merge by top-level key: null removes \
                         one, and an echoed \"••••\" keeps the stored secret.",
                    )
                    .status(404, NO_SUCH),
            )
            .delete(
                delete,
                OperationDoc::new("deleteWarehouse", "Delete a warehouse")
                    .describe("Its connections to sources go with it.")
                    .status(404, NO_SUCH),
            ),
        Resource::new("/warehouses/{id}/connection-state", "Warehouses").get(
            connection_state,
            OperationDoc::new(
                "getConnectionStateFromWarehouse",
                "Whether a warehouse's settings are complete",
            )
            .describe(
                "CONNECTED when the stored settings are complete and valid for the warehouse's \
                 kind; FAILED otherwise. leakguard does not connect to warehouses.",
            )
            .status(404, NO_SUCH),
        ),
        Resource::new("/warehouses/{id}/connected-sources", "Warehouses").get(
            list_sources,
            OperationDoc::new(
                "listConnectedSourcesFromWarehouse",
                "The sources a warehouse takes events from, oldest first",
            )
            .status(404, NO_SUCH),
        ),
        Resource::new(
            "/warehouses/{id}/connected-sources/{sourceId}",
            "Warehouses",
        )
        .post(
            connect,
            OperationDoc::new(
                "addConnectionFromSourceToWarehouse",
                "Connect a source to a warehouse",
            )
            .describe("Connecting a source that is connected already changes nothing.")
            .status(404, "No such warehouse or source in this workspace"),
        )
        .delete(
            disconnect,
            OperationDoc::new(
                "removeSourceConnectionFromWarehouse",
                "Disconnect a source from a warehouse",
            )
            .status(
                404,
                "No such warehouse in this workspace, or the source is not connected to it",
            ),
        ),
    ]
}

/// A warehouse as the API shows it: Segment's `WarehouseV1`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Warehouse)]
pub struct WarehouseView {
    pub id: WarehouseId,
    pub name: Name,
    pub workspace_id: WorkspaceId,
    pub enabled: bool,
    pub settings: Shown,
    /// The catalog entry (`GET /catalog/warehouses`) this warehouse is an instance of.
    #[schema(value_type = Option<CatalogEntry>, required)]
    #[serde(serialize_with = "catalog::serialize_rendered")]
    pub metadata: Option<&'static CatalogEntry>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl From<Warehouse> for WarehouseView {
    fn from(w: Warehouse) -> WarehouseView {
        let metadata = catalog::warehouse_entry(&w.catalog_id);
        WarehouseView {
            settings: Shown::of(metadata, &w.settings),
            metadata,
            id: w.id,
            name: w.name,
            workspace_id: w.workspace_id,
            enabled: w.enabled,
            created_at: w.created_at,
            updated_at: w.updated_at,
        }
    }
}

/// The warehouse `id` of the caller's workspace, or 404 (also for other
/// workspaces' ids).
async fn find(
    conn: impl Into<crate::db::Conn<'_>>,
    caller: &Identity,
    id: &str,
) -> Result<Warehouse, ApiError> {
    let id: WarehouseId = path_id(id, "warehouse")?;
    warehouses::find(conn, &caller.workspace_id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("warehouse"))
}

fn entry_of(warehouse: &Warehouse) -> Result<&'static CatalogEntry, ApiError> {
    catalog::warehouse_entry(&warehouse.catalog_id)
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("catalog id {:?}", warehouse.catalog_id)))
}

fn event(
    event_type: &'static str,
    caller: &Identity,
    warehouse: &Warehouse,
    details: Value,
) -> NewEvent {
    NewEvent {
        event_type,
        actor: caller.actor(),
        resource_id: warehouse.id.to_string(),
        resource_type: "warehouse",
        resource_name: warehouse.name.to_string(),
        details,
    }
}

/// `GET /warehouses`.
#[derive(Serialize, ToSchema)]
pub struct ListWarehousesOutput {
    warehouses: Vec<WarehouseView>,
    pagination: Pagination,
}

/// One warehouse: what `GET`, `POST` and `PATCH` answer.
#[derive(Serialize, ToSchema)]
pub struct WarehouseOutput {
    warehouse: WarehouseView,
}

impl From<Warehouse> for WarehouseOutput {
    fn from(warehouse: Warehouse) -> WarehouseOutput {
        WarehouseOutput {
            warehouse: warehouse.into(),
        }
    }
}

/// `POST /warehouses`.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct CreateWarehouseInput {
    metadata_id: WarehouseMetadataId,
    /// Default: the catalog entry's name.
    name: Option<Name>,
    /// Default: true.
    enabled: Option<bool>,
    /// The options of the `metadataId`'s catalog entry. Secrets are never
    /// shown again, and "••••" cannot be one.
    #[schema(value_type = Object)]
    settings: Map<String, Value>,
}

impl FromBody for CreateWarehouseInput {
    const FIELDS: &'static [&'static str] = &["metadataId", "name", "enabled", "settings"];

    fn refine_schema(schemas: &mut std::collections::BTreeMap<String, Value>) {
        settings::one_variant_per_kind(schemas, "CreateWarehouseInput", &catalog::WAREHOUSES);
    }

    fn read(fields: &mut Fields) -> Option<CreateWarehouseInput> {
        let metadata_id: Option<WarehouseMetadataId> = fields.required("metadataId");
        let name = fields.optional("name");
        let enabled = fields.boolean("enabled", false);
        let settings = fields.required_settings("settings", metadata_id.map(|m| m.0));
        Some(CreateWarehouseInput {
            metadata_id: metadata_id?,
            name,
            enabled,
            settings: settings?,
        })
    }
}

/// `PATCH /warehouses/{id}`: the fields to change.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct UpdateWarehouseInput {
    name: Option<Name>,
    enabled: Option<bool>,
    /// Merged into the stored settings by top-level key: null removes a
    /// key, "••••" keeps the stored secret.
    #[schema(value_type = Option<Object>)]
    settings: Option<Map<String, Value>>,
}

impl FromBody for UpdateWarehouseInput {
    const FIELDS: &'static [&'static str] = &["name", "enabled", "settings"];
    const AT_LEAST_ONE: bool = true;

    fn refine_schema(schemas: &mut std::collections::BTreeMap<String, Value>) {
        settings::patch_settings_property(schemas, "UpdateWarehouseInput", &catalog::WAREHOUSES);
    }

    fn read(fields: &mut Fields) -> Option<UpdateWarehouseInput> {
        Some(UpdateWarehouseInput {
            name: fields.optional("name"),
            enabled: fields.boolean("enabled", false),
            settings: fields.object("settings"),
        })
    }
}

/// `POST /warehouses/validation`: settings to check against a kind.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct ValidateWarehouseInput {
    metadata_id: WarehouseMetadataId,
    /// Any object: settings that do not suit the kind are answered FAILED.
    #[schema(value_type = Object)]
    settings: Map<String, Value>,
}

impl FromBody for ValidateWarehouseInput {
    const FIELDS: &'static [&'static str] = &["metadataId", "settings"];

    fn read(fields: &mut Fields) -> Option<ValidateWarehouseInput> {
        let metadata_id = fields.required("metadataId");
        let settings = fields.object("settings");
        if settings.is_none()
            && !fields
                .errors
                .iter()
                .any(|e| e.field.as_deref() == Some("settings"))
        {
            fields.fail("settings", "is required");
        }
        Some(ValidateWarehouseInput {
            metadata_id: metadata_id?,
            settings: settings?,
        })
    }
}

/// Segment's verdict on a warehouse's settings.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum ConnectionState {
    Connected,
    Failed,
}

impl ConnectionState {
    fn of(ok: bool) -> ConnectionState {
        if ok {
            ConnectionState::Connected
        } else {
            ConnectionState::Failed
        }
    }
}

/// `GET /warehouses/{id}/connection-state`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionStateOutput {
    connection_state: ConnectionState,
}

/// `POST /warehouses/validation`.
#[derive(Serialize, ToSchema)]
pub struct ValidationOutput {
    status: ConnectionState,
}

/// `POST /warehouses/{id}/connected-sources/{sourceId}`.
#[derive(Serialize, ToSchema)]
pub struct ConnectOutput {
    status: Connected,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
enum Connected {
    Connected,
}

/// `GET /warehouses/{id}/connected-sources`.
#[derive(Serialize, ToSchema)]
pub struct ListConnectedSourcesOutput {
    sources: Vec<SourceView>,
    pagination: Pagination,
}

pub async fn list(
    caller: Caller,
    page: Result<PageRequest, ApiError>,
    state: web::Data<AppState>,
) -> Result<Data<ListWarehousesOutput>, ApiError> {
    let request = page?;
    let page = warehouses::page(&state.db, &caller.workspace_id, &request.keyset()?).await?;
    let pagination = request.pagination(&page);
    Ok(Data(ListWarehousesOutput {
        warehouses: page.items.into_iter().map(WarehouseView::from).collect(),
        pagination,
    }))
}

pub async fn create(
    caller: Caller<Member>,
    body: JsonBody<CreateWarehouseInput>,
    state: web::Data<AppState>,
) -> Result<Created<WarehouseOutput>, ApiError> {
    let body = body.read(&state.settings).await?;
    let WarehouseMetadataId(metadata) = body.metadata_id;
    let mut change = state.db.change(caller.workspace_id.as_str()).await?;
    let now = Timestamp(change.at());
    let warehouse = Warehouse {
        id: WarehouseId::generate(),
        name: match body.name {
            Some(name) => name,
            None => Name::parse(&metadata.name).map_err(|e| {
                ApiError::internal(anyhow::anyhow!("catalog name {:?}: {e}", metadata.name))
            })?,
        },
        workspace_id: caller.workspace_id.clone(),
        enabled: body.enabled.unwrap_or(true),
        settings: Value::Object(body.settings),
        catalog_id: metadata.id.to_string(),
        created_at: now,
        updated_at: now,
    };
    warehouses::insert(&mut change, &warehouse).await?;
    let details = json!({ "enabled": warehouse.enabled, "metadataId": metadata.id });
    change.record(event(
        "Storage Destination Created",
        &caller,
        &warehouse,
        details,
    ));
    change.commit().await?;
    Ok(Created(warehouse.into()))
}

pub async fn validate(
    _caller: Caller<Member>,
    body: JsonBody<ValidateWarehouseInput>,
    state: web::Data<AppState>,
) -> Result<Data<ValidationOutput>, ApiError> {
    let body = body.read(&state.settings).await?;
    let WarehouseMetadataId(entry) = body.metadata_id;
    let problems = settings::problems(entry, body.settings);
    Ok(Data(ValidationOutput {
        status: ConnectionState::of(problems.is_empty()),
    }))
}

pub async fn get(
    caller: Caller,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<Data<WarehouseOutput>, ApiError> {
    Ok(Data(find(&state.db, &caller, &path).await?.into()))
}

pub async fn update(
    caller: Caller<Member>,
    path: web::Path<String>,
    body: JsonBody<UpdateWarehouseInput>,
    state: web::Data<AppState>,
) -> Result<Data<WarehouseOutput>, ApiError> {
    let mut body = body.parse(&state.settings).await?;
    // Held from the read to the commit: a concurrent PATCH cannot merge
    // settings into a stale copy.
    let mut change = state.db.change(caller.workspace_id.as_str()).await?;
    let before = find(&mut change, &caller, &path).await?;
    let mut after = before.clone();
    if let Some(patch) = body.value.as_mut().and_then(|b| b.settings.take()) {
        after.settings = settings::merge(
            entry_of(&before)?,
            &before.settings,
            patch,
            &mut body.errors,
        );
    }
    // Only now, so that settings problems are listed with all the others.
    let body = body.finish()?;
    after.name = body.name.unwrap_or(after.name);
    after.enabled = body.enabled.unwrap_or(after.enabled);
    after.updated_at = Timestamp(change.at());
    warehouses::update(&mut change, &after).await?;
    let mut changes = Changes::default();
    changes.field("name", &before.name, &after.name);
    changes.field("enabled", &before.enabled, &after.enabled);
    changes.keys(
        "settings",
        settings::changed_keys(&before.settings, &after.settings),
    );
    change.record(event(
        "Storage Destination Modified",
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
    let mut change = state.db.change(caller.workspace_id.as_str()).await?;
    let warehouse = find(&mut change, &caller, &path).await?;
    warehouses::delete(&mut change, &warehouse.id).await?;
    change.record(event(
        "Storage Destination Deleted",
        &caller,
        &warehouse,
        json!({ "metadataId": warehouse.catalog_id }),
    ));
    change.commit().await?;
    Ok(Done::success())
}

pub async fn connection_state(
    caller: Caller,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<Data<ConnectionStateOutput>, ApiError> {
    let warehouse = find(&state.db, &caller, &path).await?;
    let complete = settings::complete(entry_of(&warehouse)?, &warehouse.settings);
    Ok(Data(ConnectionStateOutput {
        connection_state: ConnectionState::of(complete),
    }))
}

pub async fn list_sources(
    caller: Caller,
    path: web::Path<String>,
    page: Result<PageRequest, ApiError>,
    state: web::Data<AppState>,
) -> Result<Data<ListConnectedSourcesOutput>, ApiError> {
    let warehouse = find(&state.db, &caller, &path).await?;
    let request = page?;
    let page = warehouses::page_sources(
        &state.db,
        &caller.workspace_id,
        &warehouse.id,
        &request.keyset()?,
    )
    .await?;
    let pagination = request.pagination(&page);
    Ok(Data(ListConnectedSourcesOutput {
        sources: page.items.into_iter().map(SourceView::from).collect(),
        pagination,
    }))
}

/// The warehouse and source of a connection path, both of the caller's
/// workspace, or 404.
async fn pair(
    change: &mut crate::db::Change,
    caller: &Identity,
    path: (String, String),
) -> Result<(Warehouse, sources::Source), ApiError> {
    let (warehouse_id, source_id) = path;
    let warehouse = find(&mut *change, caller, &warehouse_id).await?;
    let source_id: SourceId = path_id(&source_id, "source")?;
    let source = sources::find(&mut *change, &caller.workspace_id, &source_id)
        .await?
        .ok_or_else(|| ApiError::not_found("source"))?;
    Ok((warehouse, source))
}

pub async fn connect(
    caller: Caller<Member>,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<Created<ConnectOutput>, ApiError> {
    let mut change = state.db.change(caller.workspace_id.as_str()).await?;
    let (warehouse, source) = pair(&mut change, &caller, path.into_inner()).await?;
    if !warehouses::is_connected(&mut change, &warehouse.id, &source.id).await? {
        warehouses::connect(&mut change, &warehouse.id, &source.id).await?;
        change.record(event(
            "Storage Destination Modified",
            &caller,
            &warehouse,
            json!({ "changes": { "connectedSources": { "added": source.id } } }),
        ));
        change.commit().await?;
    }
    Ok(Created(ConnectOutput {
        status: Connected::Connected,
    }))
}

pub async fn disconnect(
    caller: Caller<Member>,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<Data<Done>, ApiError> {
    let (warehouse_id, source_id) = path.into_inner();
    let mut change = state.db.change(caller.workspace_id.as_str()).await?;
    let warehouse = find(&mut change, &caller, &warehouse_id).await?;
    // A source of another workspace is never connected: the same 404.
    let not_connected =
        || ApiError::NotFound("the source is not connected to this warehouse".into());
    let source_id: SourceId = SourceId::parse(&source_id).map_err(|_| not_connected())?;
    if !warehouses::disconnect(&mut change, &warehouse.id, &source_id).await? {
        return Err(not_connected());
    }
    change.record(event(
        "Storage Destination Modified",
        &caller,
        &warehouse,
        json!({ "changes": { "connectedSources": { "removed": source_id } } }),
    ));
    change.commit().await?;
    Ok(Done::success())
}
