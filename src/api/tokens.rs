//! `/tokens` (owner only): list, mint (the plaintext is in that one
//! response), read, and revoke through the shared revocation transaction.

use actix_web::http::Method;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use super::auth::{Caller, Role};
use super::body::JsonBody;
use super::error::ApiError;
use super::pagination::PageRequest;
use super::validate::Fields;
use super::{path_id, Endpoint};
use crate::db::tokens::{self, Token};
use crate::domain::{Name, TokenId};
use crate::revocation;
use crate::state::AppState;

pub fn endpoints() -> Vec<Endpoint> {
    vec![
        Endpoint::new(Method::GET, "/tokens", list),
        Endpoint::new(Method::POST, "/tokens", create),
        Endpoint::new(Method::GET, "/tokens/{id}", get),
        Endpoint::new(Method::DELETE, "/tokens/{id}", delete),
    ]
}

/// A token as the API shows it: never its hash or plaintext, and its last
/// use including uses not yet flushed to the database.
fn view(mut token: Token, state: &AppState) -> Token {
    token.last_used_at = state.last_used.latest(&token);
    token
}

#[utoipa::path(get, path = "/tokens", tag = "Tokens",
    params(("pagination[count]" = Option<i64>, Query), ("pagination[cursor]" = Option<String>, Query)),
    responses((status = 200, description = "Tokens of the workspace"), (status = 403, description = "Not an owner token")))]
pub async fn list(
    caller: Caller,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Owner)?;
    let request = PageRequest::from_request(&req)?;
    let page = tokens::page(&state.db, &caller.workspace_id, &request.keyset()?).await?;
    let pagination = request.pagination(&page);
    let tokens: Vec<Token> = page.items.into_iter().map(|t| view(t, &state)).collect();
    Ok(super::data(
        json!({ "tokens": tokens, "pagination": pagination }),
    ))
}

#[utoipa::path(post, path = "/tokens", tag = "Tokens",
    request_body(content = Object, description = "{\"name\": string, \"role\": \"owner\"|\"member\"|\"read_only\"}"),
    responses((status = 201, description = "{\"data\":{\"token\":{…},\"secret\":\"sgp_…\"}}: the secret is shown once"),
              (status = 422, description = "Every validation failure")))]
pub async fn create(
    caller: Caller,
    body: JsonBody,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Owner)?;
    let body = body.parse(&state.settings).await?;
    let mut fields = Fields::of(&body, &["name", "role"])?;
    let name = fields.required::<Name>("name");
    let role = fields.required::<Role>("role");
    let (Some(name), Some(role)) = (name, role) else {
        return Err(fields.into_error());
    };
    fields.finish()?;
    let mut change = state.db.change(caller.workspace_id.as_str()).await?;
    let minted = crate::token::mint(
        &mut change,
        &caller.workspace_id,
        name,
        role,
        &caller.actor(),
    )
    .await?;
    change.commit().await?;
    Ok(super::created(json!({
        "token": minted.token,
        "secret": minted.secret.expose(),
    })))
}

async fn find(state: &AppState, caller: &Caller, id: &str) -> Result<Token, ApiError> {
    let id: TokenId = path_id(id, "token")?;
    tokens::find(&state.db, &caller.workspace_id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("token"))
}

#[utoipa::path(get, path = "/tokens/{id}", tag = "Tokens",
    params(("id" = String, Path)),
    responses((status = 200, description = "One token"), (status = 404, description = "No such token in this workspace")))]
pub async fn get(
    caller: Caller,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Owner)?;
    let token = find(&state, &caller, &path).await?;
    Ok(super::data(json!({ "token": view(token, &state) })))
}

#[utoipa::path(delete, path = "/tokens/{id}", tag = "Tokens",
    params(("id" = String, Path)),
    responses((status = 200, description = "{\"data\":{\"status\":\"SUCCESS\"}}; revoking a revoked token changes nothing"),
              (status = 404, description = "No such token in this workspace")))]
pub async fn delete(
    caller: Caller,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Owner)?;
    let token = find(&state, &caller, &path).await?;
    if revocation::revoke_one(&state.db, &token, caller.actor(), revocation::REASON_API).await? {
        state.metrics.tokens_revoked.inc();
    }
    Ok(super::deleted())
}
