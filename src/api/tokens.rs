//! `/tokens` (owner only): list, mint (the plaintext is in that one
//! response), read, and revoke through the shared revocation transaction.

use actix_web::http::Method;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use serde_json::json;
use sqlx::Row;

use super::auth::{Caller, Role, ROLE_NAMES};
use super::body::JsonBody;
use super::error::ApiError;
use super::pagination::{fetch_page, PageRequest};
use super::validate::{Fields, MAX_NAME};
use super::Endpoint;
use crate::audit::{self, NewEvent};
use crate::db::Tx;
use crate::revocation::{self, token_record, TOKEN_RECORD_COLUMNS};
use crate::startup::AppState;
use crate::time::{format_micros, now_micros};
use crate::token::PublicToken;

pub fn endpoints() -> Vec<Endpoint> {
    vec![
        Endpoint::new(Method::GET, "/tokens", list),
        Endpoint::new(Method::POST, "/tokens", create),
        Endpoint::new(Method::GET, "/tokens/{id}", get),
        Endpoint::new(Method::DELETE, "/tokens/{id}", delete),
    ]
}

/// What the API shows of a token: never its hash or plaintext.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenView {
    pub id: String,
    pub name: String,
    pub role: String,
    pub hint: String,
    pub created_at: String,
    pub created_by: String,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
    pub revoked_reason: Option<String>,
}

const COLUMNS: &str =
    "id, name, role, hint, created_at, created_by, last_used_at, revoked_at, revoked_reason";

fn view(row: &sqlx::any::AnyRow, state: &AppState) -> TokenView {
    let id: String = row.get(0);
    let stored: Option<i64> = row.get(6);
    let last_used = stored.max(state.last_used.pending(&id));
    TokenView {
        name: row.get(1),
        role: row.get(2),
        hint: row.get(3),
        created_at: format_micros(row.get(4)),
        created_by: row.get(5),
        last_used_at: last_used.map(format_micros),
        revoked_at: row.get::<Option<i64>, _>(7).map(format_micros),
        revoked_reason: row.get(8),
        id,
    }
}

pub struct MintedToken {
    pub secret: PublicToken,
    pub record: TokenView,
}

/// Creates a token and its audit event in the caller's transaction.
pub async fn mint(
    tx: &mut Tx,
    workspace_id: &str,
    name: &str,
    role: Role,
    actor: &str,
) -> Result<MintedToken, sqlx::Error> {
    let secret = PublicToken::generate();
    let id = crate::id::new_id();
    let now = now_micros();
    sqlx::query(
        "INSERT INTO tokens (id, workspace_id, name, role, token_hash, hint, created_at, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&id)
    .bind(workspace_id)
    .bind(name)
    .bind(role.as_str())
    .bind(secret.hash())
    .bind(secret.hint())
    .bind(now)
    .bind(actor)
    .execute(&mut **tx)
    .await?;
    audit::append(
        tx,
        workspace_id,
        now,
        vec![NewEvent {
            event_type: "Token Created",
            actor: actor.to_string(),
            resource_id: id.clone(),
            resource_type: "token",
            resource_name: name.to_string(),
            details: json!({ "role": role.as_str() }),
        }],
    )
    .await?;
    let record = TokenView {
        id,
        name: name.to_string(),
        role: role.as_str().to_string(),
        hint: secret.hint().to_string(),
        created_at: format_micros(now),
        created_by: actor.to_string(),
        last_used_at: None,
        revoked_at: None,
        revoked_reason: None,
    };
    Ok(MintedToken { secret, record })
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
    let page = PageRequest::from_request(&req)?;
    let (rows, pagination) =
        fetch_page(&state.db, "tokens", COLUMNS, &caller.workspace_id, &page).await?;
    let tokens: Vec<TokenView> = rows.iter().map(|r| view(r, &state)).collect();
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
    let body = body.parse(state.settings.max_body_bytes).await?;
    let mut fields = Fields::of(&body, &["name", "role"])?;
    let name = fields.string("name", true, MAX_NAME);
    let role = fields.one_of("role", true, ROLE_NAMES);
    fields.finish()?;
    let (name, role) = (name.expect("validated"), role.expect("validated"));
    let role = Role::parse(&role).expect("validated");
    let mut tx = state.db.begin().await?;
    let minted = mint(&mut tx, &caller.workspace_id, &name, role, &caller.actor()).await?;
    tx.commit().await?;
    Ok(super::created(json!({
        "token": minted.record,
        "secret": minted.secret.expose(),
    })))
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
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM tokens WHERE id = $1 AND workspace_id = $2"
    ))
    .bind(path.as_str())
    .bind(&caller.workspace_id)
    .fetch_optional(state.db.pool())
    .await?
    .ok_or_else(|| ApiError::not_found("token"))?;
    Ok(super::data(json!({ "token": view(&row, &state) })))
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
    let mut tx = state.db.begin().await?;
    let row = sqlx::query(&format!(
        "SELECT {TOKEN_RECORD_COLUMNS} FROM tokens WHERE id = $1 AND workspace_id = $2"
    ))
    .bind(path.as_str())
    .bind(&caller.workspace_id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| ApiError::not_found("token"))?;
    let record = token_record(&row);
    if revocation::revoke_by_owner(&mut tx, &record, caller.actor()).await? {
        state.metrics.tokens_revoked.inc();
    }
    tx.commit().await?;
    Ok(super::deleted())
}
