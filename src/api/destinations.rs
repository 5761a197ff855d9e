//! `/destinations`: where a source's events go. Every role reads them;
//! members and owners create, change and delete them. Their settings often
//! hold credentials, so secret settings are never shown (see `settings`).

use actix_web::web;
use serde::Serialize;
use serde_json::{json, Map, Value};
use utoipa::ToSchema;

use super::auth::{Caller, Identity, Member};
use super::body::{FromBody, JsonBody};
use super::catalog::{self, CatalogEntry, DestinationMetadataId};
use super::error::ApiError;
use super::pagination::{PageRequest, Pagination};
use super::reply::{Created, Data, Done};
use super::route::Resource;
use super::settings::{self, Shown};
use super::validate::Fields;
use super::{path_id, OperationDoc};
use crate::audit::{Changes, NewEvent};
use crate::db::destinations::{self, Destination};
use crate::db::sources;
use crate::domain::{DestinationId, Name, Parse, SourceId, WorkspaceId};
use crate::state::AppState;
use crate::time::Timestamp;

pub fn resources() -> Vec<Resource> {
    const NO_SUCH: &str = "No such destination in this workspace";
    vec![
        Resource::new("/destinations", "Destinations")
            .get(
                list,
                OperationDoc::new("listDestinations", "The workspace's destinations, oldest first"),
            )
            .post(
                create,
                OperationDoc::new("createDestination", "Connect a destination to a source")
                    .status(
                        422,
                        "Every problem with the body, including a sourceId that is not a source of this workspace",
                    ),
            ),
        Resource::new("/destinations/{id}", "Destinations")
            .get(get, OperationDoc::new("getDestination", "One destination").status(404, NO_SUCH))
            .patch(
                update,
                OperationDoc::new("updateDestination", "Change a destination")
                    .describe(
                        "Send any of the fields. Settings merge by top-level key: null removes \
                         one, and an echoed \"••••\" keeps the stored secret.",
                    )
                    .status(404, NO_SUCH),
            )
            .delete(
                delete,
                OperationDoc::new("deleteDestination", "Delete a destination").status(404, NO_SUCH),
            ),
    ]
}

/// A destination as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Destination)]
pub struct DestinationView {
    pub id: DestinationId,
    pub name: Name,
    pub enabled: bool,
    /// The source (same workspace) whose events this destination receives.
    pub source_id: SourceId,
    pub workspace_id: WorkspaceId,
    pub settings: Shown,
    /// The catalog entry (`GET /catalog/destinations`) this destination is an instance of.
    #[schema(value_type = Option<CatalogEntry>, required)]
    #[serde(serialize_with = "catalog::serialize_rendered")]
    pub metadata: Option<&'static CatalogEntry>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl From<Destination> for DestinationView {
    fn from(d: Destination) -> DestinationView {
        let metadata = catalog::destination_entry(&d.catalog_id);
        DestinationView {
            settings: Shown::of(metadata, &d.settings),
            metadata,
            id: d.id,
            name: d.name,
            enabled: d.enabled,
            source_id: d.source_id,
            workspace_id: d.workspace_id,
            created_at: d.created_at,
            updated_at: d.updated_at,
        }
    }
}

/// The destination `id` of the caller's workspace, or 404 (also for other
/// workspaces' ids).
async fn find(
    conn: impl Into<crate::db::Conn<'_>>,
    caller: &Identity,
    id: &str,
) -> Result<Destination, ApiError> {
    let id: DestinationId = path_id(id, "destination")?;
    destinations::find(conn, &caller.workspace_id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("destination"))
}

fn event(
    event_type: &'static str,
    caller: &Identity,
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

/// `GET /destinations`.
#[derive(Serialize, ToSchema)]
pub struct ListDestinationsOutput {
    destinations: Vec<DestinationView>,
    pagination: Pagination,
}

/// One destination: what `GET`, `POST` and `PATCH` answer.
#[derive(Serialize, ToSchema)]
pub struct DestinationOutput {
    destination: DestinationView,
}

impl From<Destination> for DestinationOutput {
    fn from(destination: Destination) -> DestinationOutput {
        DestinationOutput {
            destination: destination.into(),
        }
    }
}

/// `POST /destinations`.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct CreateDestinationInput {
    /// A source of this workspace, whose events the destination receives.
    source_id: SourceId,
    metadata_id: DestinationMetadataId,
    /// Default: the catalog entry's name.
    name: Option<Name>,
    /// Default: false.
    enabled: Option<bool>,
    /// The options of the `metadataId`'s catalog entry. Secrets are never
    /// shown again, and "••••" cannot be one.
    #[schema(value_type = Object)]
    settings: Map<String, Value>,
}

impl FromBody for CreateDestinationInput {
    const FIELDS: &'static [&'static str] =
        &["sourceId", "metadataId", "name", "enabled", "settings"];

    fn refine_schema(schemas: &mut std::collections::BTreeMap<String, Value>) {
        settings::one_variant_per_kind(schemas, "CreateDestinationInput", &catalog::DESTINATIONS);
    }

    fn read(fields: &mut Fields) -> Option<CreateDestinationInput> {
        let source_id = fields.required("sourceId");
        let metadata_id: Option<DestinationMetadataId> = fields.required("metadataId");
        let name = fields.optional("name");
        let enabled = fields.boolean("enabled", false);
        let settings = fields.required_settings("settings", metadata_id.map(|m| m.0));
        Some(CreateDestinationInput {
            source_id: source_id?,
            metadata_id: metadata_id?,
            name,
            enabled,
            settings: settings?,
        })
    }
}

/// `PATCH /destinations/{id}`: the fields to change.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct UpdateDestinationInput {
    name: Option<Name>,
    enabled: Option<bool>,
    /// Merged into the stored settings by top-level key: null removes a
    /// key, "••••" keeps the stored secret.
    #[schema(value_type = Option<Object>)]
    settings: Option<Map<String, Value>>,
}

impl FromBody for UpdateDestinationInput {
    const FIELDS: &'static [&'static str] = &["name", "enabled", "settings"];
    const AT_LEAST_ONE: bool = true;

    fn refine_schema(schemas: &mut std::collections::BTreeMap<String, Value>) {
        settings::patch_settings_property(
            schemas,
            "UpdateDestinationInput",
            &catalog::DESTINATIONS,
        );
    }

    fn read(fields: &mut Fields) -> Option<UpdateDestinationInput> {
        Some(UpdateDestinationInput {
            name: fields.optional("name"),
            enabled: fields.boolean("enabled", false),
            settings: fields.object("settings"),
        })
    }
}

pub async fn list(
    caller: Caller,
    page: Result<PageRequest, ApiError>,
    state: web::Data<AppState>,
) -> Result<Data<ListDestinationsOutput>, ApiError> {
    let request = page?;
    let page = destinations::page(&state.db, &caller.workspace_id, &request.keyset()?).await?;
    let pagination = request.pagination(&page);
    Ok(Data(ListDestinationsOutput {
        destinations: page.items.into_iter().map(DestinationView::from).collect(),
        pagination,
    }))
}

pub async fn create(
    caller: Caller<Member>,
    body: JsonBody<CreateDestinationInput>,
    state: web::Data<AppState>,
) -> Result<Created<DestinationOutput>, ApiError> {
    let mut body = body.parse(&state.settings).await?;
    // Held to the commit: the source cannot be deleted in between.
    let mut change = state.db.change(caller.workspace_id.as_str()).await?;
    // Looked up even when other fields failed, so that the 422 lists it too.
    let source_id = match &body.value {
        Some(b) => Some(b.source_id.clone()),
        None => body.peek::<SourceId>("sourceId"),
    };
    let source = match source_id {
        Some(id) => sources::find(&mut change, &caller.workspace_id, &id).await?,
        None => None,
    };
    let Some(source) = source else {
        if !body.has_error("sourceId") {
            // The same answer for an id of another workspace as for none.
            body.fail("sourceId", "is not the id of a source in this workspace");
        }
        return Err(body.into_error());
    };
    let body = body.finish()?;
    let DestinationMetadataId(metadata) = body.metadata_id;
    let now = Timestamp(change.at());
    let destination = Destination {
        id: DestinationId::generate(),
        name: match body.name {
            Some(name) => name,
            None => Name::parse(&metadata.name).map_err(|e| {
                ApiError::internal(anyhow::anyhow!("catalog name {:?}: {e}", metadata.name))
            })?,
        },
        enabled: body.enabled.unwrap_or(false),
        source_id: source.id,
        workspace_id: caller.workspace_id.clone(),
        settings: Value::Object(body.settings),
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
    Ok(Created(destination.into()))
}

pub async fn get(
    caller: Caller,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<Data<DestinationOutput>, ApiError> {
    Ok(Data(find(&state.db, &caller, &path).await?.into()))
}

pub async fn update(
    caller: Caller<Member>,
    path: web::Path<String>,
    body: JsonBody<UpdateDestinationInput>,
    state: web::Data<AppState>,
) -> Result<Data<DestinationOutput>, ApiError> {
    let mut body = body.parse(&state.settings).await?;
    // Held from the read to the commit: a concurrent PATCH cannot merge
    // settings into a stale copy.
    let mut change = state.db.change(caller.workspace_id.as_str()).await?;
    let before = find(&mut change, &caller, &path).await?;
    let mut after = before.clone();
    if let Some(patch) = body.value.as_mut().and_then(|b| b.settings.take()) {
        let entry = catalog::destination_entry(&before.catalog_id).ok_or_else(|| {
            ApiError::internal(anyhow::anyhow!("catalog id {:?}", before.catalog_id))
        })?;
        after.settings = settings::merge(entry, &before.settings, patch, &mut body.errors);
    }
    // Only now, so that mask errors are listed with all the others.
    let body = body.finish()?;
    after.name = body.name.unwrap_or(after.name);
    after.enabled = body.enabled.unwrap_or(after.enabled);
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
    Ok(Data(after.into()))
}

pub async fn delete(
    caller: Caller<Member>,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<Data<Done>, ApiError> {
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
    Ok(Done::success())
}
