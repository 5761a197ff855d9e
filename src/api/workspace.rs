//! `GET /`: the token's workspace. Also GitHub's validity check: 200 for a
//! live token, 401 for a revoked one.

use actix_web::web;
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::Caller;
use super::error::ApiError;
use super::reply::Data;
use super::route::Resource;
use super::OperationDoc;
use crate::db::workspaces::{self, Workspace};
use crate::state::AppState;

pub fn resources() -> Vec<Resource> {
    vec![Resource::new("/", "Workspaces").get(
        get,
        OperationDoc::new("getWorkspace", "The token's workspace")
            .describe("Also the check of whether a token is live: 200, or 401 once revoked."),
    )]
}

/// `GET /`.
#[derive(Serialize, ToSchema)]
pub struct GetWorkspaceOutput {
    workspace: Workspace,
}

pub async fn get(
    caller: Caller,
    state: web::Data<AppState>,
) -> Result<Data<GetWorkspaceOutput>, ApiError> {
    let workspace = workspaces::find(&state.db, &caller.workspace_id)
        .await?
        .ok_or_else(|| ApiError::not_found("workspace"))?;
    Ok(Data(GetWorkspaceOutput { workspace }))
}
