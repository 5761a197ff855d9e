//! `GET /`: the token's workspace. Also GitHub's validity check: 200 for a
//! live token, 401 for a revoked one.

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::auth::Caller;
use super::error::ApiError;
use crate::db::workspaces;
use crate::state::AppState;

#[utoipa::path(get, path = "/", tag = "Workspaces",
    responses((status = 200, description = "The token's workspace: {\"data\":{\"workspace\":{id,name,slug}}}"),
              (status = 401, description = "Missing, unknown or revoked token")))]
pub async fn get(caller: Caller, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let workspace = workspaces::find(&state.db, &caller.workspace_id)
        .await?
        .ok_or_else(|| ApiError::not_found("workspace"))?;
    Ok(super::data(json!({ "workspace": workspace })))
}
