//! `/labels`: the `{key, value}` labels a workspace's sources may carry,
//! as Segment's `LabelsApi` has them. A source can only carry labels of
//! its workspace; deleting a label takes it off every source.

use actix_web::web;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use super::auth::{Caller, Identity, Member};
use super::body::{FromBody, JsonBody};
use super::error::{ApiError, FieldError, OnUniqueViolation};
use super::reply::{Created, Data, Done};
use super::route::Resource;
use super::validate::Fields;
use super::OperationDoc;
use crate::audit::{Changes, NewEvent};
use crate::db::labels::{self, StoredLabel};
use crate::db::{sources, Conn};
use crate::domain::{Description, Label, LabelId, LabelInput, WorkspaceId};
use crate::state::AppState;
use crate::time::Timestamp;

/// Enough for any labelling scheme; bounds `GET /labels`, which Segment
/// does not page.
pub const MAX_WORKSPACE_LABELS: i64 = 1000;

pub fn resources() -> Vec<Resource> {
    vec![
        Resource::new("/labels", "Labels")
            .get(
                list,
                OperationDoc::new("listLabels", "The workspace's labels, oldest first"),
            )
            .post(
                create,
                OperationDoc::new("createLabel", "Create a label").status(
                    409,
                    "The workspace has this label, or the most labels allowed",
                ),
            ),
        Resource::new("/labels/{key}/{value}", "Labels").delete(
            delete,
            OperationDoc::new("deleteLabel", "Delete a label")
                .describe("The label is also taken off every source that carries it.")
                .status(404, "No such label in this workspace"),
        ),
    ]
}

/// A label as `/labels` shows it: Segment's `LabelV1`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = WorkspaceLabel)]
pub struct LabelView {
    #[schema(min_length = 1, max_length = 100)]
    key: String,
    #[schema(min_length = 1, max_length = 100)]
    value: String,
    description: Description,
}

impl From<StoredLabel> for LabelView {
    fn from(stored: StoredLabel) -> LabelView {
        LabelView {
            key: stored.label.key,
            value: stored.label.value,
            description: stored.description,
        }
    }
}

/// `GET /labels`.
#[derive(Serialize, ToSchema)]
pub struct ListLabelsOutput {
    labels: Vec<LabelView>,
}

/// `POST /labels`.
#[derive(Serialize, ToSchema)]
pub struct LabelOutput {
    label: LabelView,
}

/// `POST /labels`: `{"label": {"key", "value", "description"?}}`.
#[derive(ToSchema)]
pub struct CreateLabelInput {
    #[schema(value_type = LabelInput)]
    label: (Label, Option<Description>),
}

impl FromBody for CreateLabelInput {
    const FIELDS: &'static [&'static str] = &["label"];

    fn read(fields: &mut Fields) -> Option<CreateLabelInput> {
        let label = fields.label("label")?;
        Some(CreateLabelInput { label })
    }
}

fn event(event_type: &'static str, caller: &Identity, label: &StoredLabel) -> NewEvent {
    NewEvent {
        event_type,
        actor: caller.actor(),
        resource_id: label.id.to_string(),
        resource_type: "label",
        resource_name: format!("{}:{}", label.label.key, label.label.value),
        details: json!({ "key": label.label.key, "value": label.label.value }),
    }
}

/// Records a problem for each of `given` that is not a label of the
/// workspace: a source carries only the workspace's labels.
pub async fn require_known(
    conn: impl Into<Conn<'_>>,
    workspace_id: &WorkspaceId,
    given: &[Label],
    errors: &mut Vec<FieldError>,
) -> Result<(), ApiError> {
    if given.is_empty() {
        return Ok(());
    }
    let known: Vec<Label> = labels::all(conn, workspace_id)
        .await?
        .into_iter()
        .map(|l| l.label)
        .collect();
    for (i, label) in given.iter().enumerate() {
        if !known.contains(label) {
            errors.push(FieldError::new(
                &format!("labels[{i}]"),
                format!(
                    "{}:{} is not a label of this workspace; create it with POST /labels first",
                    label.key, label.value
                ),
            ));
        }
    }
    Ok(())
}

pub async fn list(
    caller: Caller,
    state: web::Data<AppState>,
) -> Result<Data<ListLabelsOutput>, ApiError> {
    let labels = labels::all(&state.db, &caller.workspace_id).await?;
    Ok(Data(ListLabelsOutput {
        labels: labels.into_iter().map(LabelView::from).collect(),
    }))
}

pub async fn create(
    caller: Caller<Member>,
    body: JsonBody<CreateLabelInput>,
    state: web::Data<AppState>,
) -> Result<Created<LabelOutput>, ApiError> {
    let (label, description) = body.read(&state.settings).await?.label;
    let mut change = state.db.change(caller.workspace_id.as_str()).await?;
    if labels::count(&mut change, &caller.workspace_id).await? >= MAX_WORKSPACE_LABELS {
        return Err(ApiError::Conflict(format!(
            "the workspace already has {MAX_WORKSPACE_LABELS} labels; delete one first"
        )));
    }
    let stored = StoredLabel {
        id: LabelId::generate(),
        workspace_id: caller.workspace_id.clone(),
        label,
        description: description.unwrap_or_else(Description::empty),
        created_at: Timestamp(change.at()),
    };
    labels::insert(&mut change, &stored)
        .await
        .on_unique_violation(|| {
            format!(
                "the workspace already has the label {}:{}",
                stored.label.key, stored.label.value
            )
        })?;
    change.record(event("Label Created", &caller, &stored));
    change.commit().await?;
    Ok(Created(LabelOutput {
        label: stored.into(),
    }))
}

pub async fn delete(
    caller: Caller<Member>,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<Data<Done>, ApiError> {
    let (key, value) = path.into_inner();
    let label = Label { key, value };
    let mut change = state.db.change(caller.workspace_id.as_str()).await?;
    let stored = labels::find(&mut change, &caller.workspace_id, &label)
        .await?
        .ok_or_else(|| ApiError::not_found("label"))?;
    for before in sources::all(&mut change, &caller.workspace_id).await? {
        if !before.labels.contains(&label) {
            continue;
        }
        let mut after = before.clone();
        after.labels.retain(|l| *l != label);
        after.updated_at = Timestamp(change.at());
        sources::update(&mut change, &after).await?;
        let mut changes = Changes::default();
        changes.field("labels", &before.labels, &after.labels);
        change.record(super::sources::event(
            "Source Modified",
            &caller,
            &after,
            changes.into_details(),
        ));
    }
    labels::delete(&mut change, &stored.id).await?;
    change.record(event("Label Deleted", &caller, &stored));
    change.commit().await?;
    Ok(Done::success())
}
