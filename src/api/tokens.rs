//! `/tokens` (owner only): list, mint (the plaintext is in that one
//! response), read, and revoke through the shared revocation transaction.

use actix_web::web;
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::{Caller, Identity, Owner};
use super::body::{FromBody, JsonBody};
use super::error::ApiError;
use super::pagination::{PageRequest, Pagination};
use super::reply::{Created, Data, Done};
use super::route::Resource;
use super::validate::Fields;
use super::{path_id, OperationDoc};
use crate::db::tokens::{self, Token};
use crate::domain::{Name, Role, TokenId};
use crate::revocation;
use crate::state::AppState;

pub fn resources() -> Vec<Resource> {
    const NO_SUCH: &str = "No such token in this workspace";
    vec![
        Resource::new("/tokens", "Tokens")
            .get(
                list,
                OperationDoc::new("listTokens", "The workspace's tokens, oldest first"),
            )
            .post(
                create,
                OperationDoc::new(
                    "createToken",
                    "Mint a token: its secret is in this answer only",
                ),
            ),
        Resource::new("/tokens/{id}", "Tokens")
            .get(
                get,
                OperationDoc::new("getToken", "One token").status(404, NO_SUCH),
            )
            .delete(
                delete,
                OperationDoc::new("revokeToken", "Revoke a token")
                    .describe("Revoking a revoked token changes nothing.")
                    .status(404, NO_SUCH),
            ),
    ]
}

/// A token as the API shows it: never its hash or plaintext, and its last
/// use including uses not yet flushed to the database.
fn view(mut token: Token, state: &AppState) -> Token {
    token.last_used_at = state.last_used.latest(&token);
    token
}

/// `GET /tokens`.
#[derive(Serialize, ToSchema)]
pub struct ListTokensOutput {
    tokens: Vec<Token>,
    pagination: Pagination,
}

/// One token.
#[derive(Serialize, ToSchema)]
pub struct TokenOutput {
    token: Token,
}

/// A new token and its secret, shown this once.
#[derive(Serialize, ToSchema)]
pub struct CreateTokenOutput {
    token: Token,
    /// The token itself (`sgp_…`): keep it, it is never shown again.
    secret: String,
}

/// `POST /tokens`.
#[derive(ToSchema)]
pub struct CreateTokenInput {
    name: Name,
    role: Role,
}

impl FromBody for CreateTokenInput {
    const FIELDS: &'static [&'static str] = &["name", "role"];

    fn read(fields: &mut Fields) -> Option<CreateTokenInput> {
        let name = fields.required("name");
        let role = fields.required("role");
        Some(CreateTokenInput {
            name: name?,
            role: role?,
        })
    }
}

pub async fn list(
    caller: Caller<Owner>,
    page: Result<PageRequest, ApiError>,
    state: web::Data<AppState>,
) -> Result<Data<ListTokensOutput>, ApiError> {
    let request = page?;
    let page = tokens::page(&state.db, &caller.workspace_id, &request.keyset()?).await?;
    let pagination = request.pagination(&page);
    Ok(Data(ListTokensOutput {
        tokens: page.items.into_iter().map(|t| view(t, &state)).collect(),
        pagination,
    }))
}

pub async fn create(
    caller: Caller<Owner>,
    body: JsonBody<CreateTokenInput>,
    state: web::Data<AppState>,
) -> Result<Created<CreateTokenOutput>, ApiError> {
    let body = body.read(&state.settings).await?;
    let mut change = state.db.change(caller.workspace_id.as_str()).await?;
    let minted = crate::token::mint(
        &mut change,
        &caller.workspace_id,
        body.name,
        body.role,
        &caller.actor(),
    )
    .await?;
    change.commit().await?;
    Ok(Created(CreateTokenOutput {
        secret: minted.secret.expose().to_string(),
        token: minted.token,
    }))
}

async fn find(state: &AppState, caller: &Identity, id: &str) -> Result<Token, ApiError> {
    let id: TokenId = path_id(id, "token")?;
    tokens::find(&state.db, &caller.workspace_id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("token"))
}

pub async fn get(
    caller: Caller<Owner>,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<Data<TokenOutput>, ApiError> {
    let token = find(&state, &caller, &path).await?;
    Ok(Data(TokenOutput {
        token: view(token, &state),
    }))
}

pub async fn delete(
    caller: Caller<Owner>,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<Data<Done>, ApiError> {
    let token = find(&state, &caller, &path).await?;
    if revocation::revoke_one(&state.db, &token, caller.actor(), revocation::REASON_API).await? {
        state.metrics.tokens_revoked.inc();
    }
    Ok(Done::success())
}
