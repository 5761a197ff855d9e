//! `/tokens` (owner only): list, mint (the plaintext is in that one
//! response), read, and revoke through the shared revocation transaction;
//! and `/token-revocations`, which revokes a token of either kind given
//! whole (Segment's "enter the complete token").

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
use crate::domain::{Name, OAuthAppId, Parse, Role, TokenId};
use crate::revocation;
use crate::state::AppState;
use crate::time::Timestamp;
use crate::token::{PublicToken, TokenKind};

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
        Resource::new("/token-revocations", "Tokens").post(
            revoke_by_value,
            OperationDoc::new(
                "revokeTokenByValue",
                "Revoke a token given whole: a Public API token or an OAuth access token",
            )
            .describe(
                "For a token whose id is not at hand, such as an OAuth access token found in \
                 a log. Revoking a revoked token changes nothing. The token itself is never \
                 stored or logged, only its hash is looked up.",
            )
            .status(
                404,
                "No token of this workspace is this one (another workspace's tokens read the same)",
            ),
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

/// `POST /token-revocations`.
#[derive(ToSchema)]
pub struct RevokeTokenByValueInput {
    /// The whole token: `sgp_…` or `sgo_…`.
    #[schema(value_type = String, pattern = "^sg[po]_[A-Za-z0-9]{64}$")]
    token: TokenValue,
}

/// A token as typed in: the shape of either kind. A checksum that does not
/// match is not refused here: such a string is simply no token of the
/// workspace (404), as a well-formed unknown one is.
pub struct TokenValue(String);

impl Parse for TokenValue {
    fn parse(text: &str) -> Result<TokenValue, String> {
        let shaped = text.len() == crate::token::TOKEN_LEN
            && (text.starts_with(crate::token::PREFIX)
                || text.starts_with(crate::token::ACCESS_TOKEN_PREFIX))
            && text[4..].bytes().all(|b| b.is_ascii_alphanumeric());
        if shaped {
            Ok(TokenValue(text.to_string()))
        } else {
            Err("must be a whole token: sgp_ or sgo_ followed by 64 letters and digits".into())
        }
    }
}

impl FromBody for RevokeTokenByValueInput {
    const FIELDS: &'static [&'static str] = &["token"];

    fn read(fields: &mut Fields) -> Option<RevokeTokenByValueInput> {
        Some(RevokeTokenByValueInput {
            token: fields.required("token")?,
        })
    }
}

/// What a revocation by value revoked.
#[derive(Serialize, ToSchema)]
pub struct RevokedTokenOutput {
    token: RevokedToken,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RevokedToken {
    id: TokenId,
    kind: RevokedKind,
    /// The token's name; an access token's is its app's.
    name: Name,
    role: Role,
    /// The last four characters.
    hint: String,
    /// For an access token: its app.
    #[schema(required)]
    oauth_app_id: Option<OAuthAppId>,
    revoked_at: Timestamp,
    revoked_reason: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RevokedKind {
    ApiToken,
    OauthAccessToken,
}

pub async fn revoke_by_value(
    caller: Caller<Owner>,
    body: JsonBody<RevokeTokenByValueInput>,
    state: web::Data<AppState>,
) -> Result<Data<RevokedTokenOutput>, ApiError> {
    let body = body.read(&state.settings).await?;
    let no_such = || ApiError::NotFound("no token of this workspace is this one".into());
    let secret = PublicToken::parse(&body.token.0).map_err(|_| no_such())?;
    let token = tokens::find_by_hash(&state.db, &secret.hash())
        .await?
        .filter(|t| t.workspace_id == caller.workspace_id)
        .ok_or_else(no_such)?;
    if revocation::revoke_one(&state.db, &token, caller.actor(), revocation::REASON_API).await? {
        state.metrics.tokens_revoked.inc();
    }
    let token = tokens::find_by_hash(&state.db, &secret.hash())
        .await?
        .ok_or_else(no_such)?;
    Ok(Data(RevokedTokenOutput {
        token: RevokedToken {
            kind: match secret.kind() {
                TokenKind::ApiToken => RevokedKind::ApiToken,
                TokenKind::AccessToken => RevokedKind::OauthAccessToken,
            },
            revoked_at: token.revoked_at.unwrap_or_else(Timestamp::now),
            revoked_reason: token.revoked_reason.unwrap_or_default(),
            oauth_app_id: token.oauth.map(|g| g.app_id),
            id: token.id,
            name: token.name,
            role: token.role,
            hint: token.hint,
        },
    }))
}
