//! `Authorization: Bearer sgp_…` (or an OAuth access token, `sgo_…`) →
//! the token, its workspace and its role.
//! A revocation is visible to the very next request on every replica
//! (`token_lookup`). The lookup is by SHA-256 of the presented token, so response
//! time does not depend on how much of a stored token a guess matches.
//!
//! A client address that keeps failing to authenticate is refused (429)
//! before its next token is looked up, so a flood of invalid tokens costs
//! no database reads past `LEAKGUARD_AUTH_FAILURE_BURST`.

use std::future::Future;
use std::marker::PhantomData;
use std::ops::Deref;
use std::pin::Pin;

use actix_web::{dev::Payload, web, FromRequest, HttpMessage, HttpRequest};
use subtle::ConstantTimeEq;

use super::doc::{Describe, OperationDoc};
use super::error::ApiError;
use super::rate_limit::RateLimitStatus;
use super::usage::TokenUse;
use crate::audit::Actor;
use crate::client::Client;
use crate::domain::{TokenId, WorkspaceId};
use crate::state::AppState;
use crate::time::Timestamp;
use crate::token::PublicToken;

pub use crate::domain::Role;

/// Who is calling: a live token (of either kind), its workspace and its
/// role (an access token's comes from its scopes), and the client it
/// called from.
#[derive(Debug, Clone)]
pub struct Identity {
    pub token_id: TokenId,
    pub workspace_id: WorkspaceId,
    pub role: Role,
    pub client: Client,
    /// `crate::audit::actor_of` the token.
    actor_id: String,
}

impl Identity {
    /// The actor recorded in the audit trail: this token, from this client.
    pub fn actor(&self) -> Actor {
        Actor {
            id: self.actor_id.clone(),
            client: self.client.clone(),
        }
    }
}

/// The least role an operation needs, as a type: `Caller<Member>`.
pub trait LeastRole {
    const ROLE: Role;
}

/// Any live token.
pub struct ReadOnly;
/// Members and owners.
pub struct Member;
/// Owners only.
pub struct Owner;

impl LeastRole for ReadOnly {
    const ROLE: Role = Role::ReadOnly;
}
impl LeastRole for Member {
    const ROLE: Role = Role::Member;
}
impl LeastRole for Owner {
    const ROLE: Role = Role::Owner;
}

/// A request by a live token of at least role `R`. As an extractor it
/// checks, in order, the client address's failed authentications (429),
/// the token (401), its rate limit (429) and its role (403), before the
/// handler reads anything else; the document learns the same from the type.
pub struct Caller<R: LeastRole = ReadOnly> {
    identity: Identity,
    least: PhantomData<R>,
}

impl<R: LeastRole> Deref for Caller<R> {
    type Target = Identity;

    fn deref(&self) -> &Identity {
        &self.identity
    }
}

/// 403 unless `role` is at least `needed`.
fn require(role: Role, needed: Role) -> Result<(), ApiError> {
    if role >= needed {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "this action needs a token with the {} role; this token has {}",
            needed.as_str(),
            role.as_str()
        )))
    }
}

impl<R: LeastRole + 'static> FromRequest for Caller<R> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Caller<R>, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let state = req
                .app_data::<web::Data<AppState>>()
                .expect("AppState is registered")
                .clone();
            let client = Client::of(&req, &state.settings.trusted_proxies);
            let address = client.address.clone().unwrap_or_default();
            let failures = state.auth_failures.peek(&address);
            if !failures.allowed {
                return Err(ApiError::RateLimited {
                    message: format!(
                        "too many failed authentications from this address; retry in {} s",
                        failures.reset_secs.max(1)
                    ),
                    retry_after_secs: failures.reset_secs,
                });
            }
            let identity = match authenticate(&req, &state, client).await {
                Ok(identity) => identity,
                Err(e @ ApiError::Unauthorized(_)) => {
                    state.auth_failures.take(&address);
                    return Err(e);
                }
                Err(e) => return Err(e),
            };
            let status = state.rate_limiter.take(identity.token_id.as_str());
            req.extensions_mut().insert(status);
            if let RateLimitStatus {
                allowed: false,
                reset_secs,
                ..
            } = status
            {
                return Err(ApiError::RateLimited {
                    message: format!(
                        "too many requests for this token; retry in {} s",
                        reset_secs.max(1)
                    ),
                    retry_after_secs: reset_secs,
                });
            }
            state.last_used.touch(identity.token_id.as_str());
            require(identity.role, R::ROLE)?;
            Ok(Caller {
                identity,
                least: PhantomData,
            })
        })
    }
}

impl<R: LeastRole> Describe for Caller<R> {
    fn describe(doc: &mut OperationDoc) {
        doc.least_role = Some(R::ROLE);
        doc.error(
            401,
            "The token is missing, malformed, unknown, revoked or expired, or Authorization is sent twice",
        );
        if R::ROLE > Role::ReadOnly {
            doc.error(403, "The token's role is too low");
        }
        doc.error(
            429,
            "The token's rate limit is spent, or this client address failed to \
             authenticate too often; see Retry-After",
        );
        doc.error(
            503,
            "The database is unavailable; see Retry-After. Nothing changed",
        );
    }
}

async fn authenticate(
    req: &HttpRequest,
    state: &AppState,
    client: Client,
) -> Result<Identity, ApiError> {
    let header = super::single_header(req, "Authorization")
        .map_err(ApiError::Unauthorized)?
        .ok_or_else(|| {
            ApiError::Unauthorized("missing Authorization header: send `Bearer <token>`".into())
        })?;
    let presented = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .map(str::trim)
        .ok_or_else(|| {
            ApiError::Unauthorized("the Authorization header must be `Bearer <token>`".into())
        })?;
    let token = PublicToken::parse(presented)
        .map_err(|e| ApiError::Unauthorized(format!("invalid token: {e}")))?;
    let hash = token.hash();
    let record = state
        .token_lookup
        .find(&[&hash])
        .await?
        .pop()
        .ok_or_else(|| ApiError::Unauthorized("unknown token".into()))?;
    if !bool::from(
        record
            .token_hash
            .as_str()
            .as_bytes()
            .ct_eq(hash.as_str().as_bytes()),
    ) {
        return Err(ApiError::Unauthorized("unknown token".into()));
    }
    // Counted in the token's usage summary, refused uses of a revoked token
    // included: someone still trying a leaked token is worth knowing.
    req.extensions_mut().insert(TokenUse {
        token_id: record.id.clone(),
        workspace_id: record.workspace_id.clone(),
        client: client.clone(),
    });
    if record.is_revoked() {
        return Err(ApiError::Unauthorized("this token has been revoked".into()));
    }
    if let Some(grant) = record
        .oauth
        .as_ref()
        .filter(|_| record.is_expired(Timestamp::now()))
    {
        return Err(ApiError::Unauthorized(format!(
            "this access token expired at {}; get a new one from POST /oauth2/token",
            grant.expires_at
        )));
    }
    Ok(Identity {
        actor_id: crate::audit::actor_of(&record),
        token_id: record.id,
        workspace_id: record.workspace_id,
        role: record.role,
        client,
    })
}
