//! `Authorization: Bearer sgp_…` (or an OAuth access token, `sgo_…`) →
//! the token, its workspace and its role.
//! No cache: a revocation is visible to the very next request on every
//! replica. The lookup is by SHA-256 of the presented token, so response
//! time does not depend on how much of a stored token a guess matches.

use std::future::Future;
use std::marker::PhantomData;
use std::ops::Deref;
use std::pin::Pin;

use actix_web::{dev::Payload, web, FromRequest, HttpMessage, HttpRequest};
use subtle::ConstantTimeEq;

use super::doc::{Describe, OperationDoc};
use super::error::ApiError;
use super::rate_limit::RateLimitStatus;
use crate::domain::{TokenId, WorkspaceId};
use crate::state::AppState;
use crate::time::Timestamp;
use crate::token::PublicToken;

pub use crate::domain::Role;

/// Who is calling: a live token (of either kind), its workspace and its
/// role (an access token's comes from its scopes).
#[derive(Debug, Clone)]
pub struct Identity {
    pub token_id: TokenId,
    pub workspace_id: WorkspaceId,
    pub role: Role,
    /// `crate::audit::actor_of` the token.
    actor: String,
}

impl Identity {
    /// The actor recorded in the audit trail.
    pub fn actor(&self) -> String {
        self.actor.clone()
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
/// checks, in order, the token (401), its rate limit (429) and its role
/// (403), before the handler reads anything else; the document learns the
/// same from the type.
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
            let identity = authenticate(&req, &state).await?;
            let status = state.rate_limiter.take(identity.token_id.as_str());
            req.extensions_mut().insert(status);
            if let RateLimitStatus {
                allowed: false,
                reset_secs,
                ..
            } = status
            {
                return Err(ApiError::RateLimited {
                    retry_after_secs: reset_secs.max(1),
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
        doc.error(429, "The token's rate limit is spent; see Retry-After");
        doc.error(
            503,
            "The database is unavailable; see Retry-After. Nothing changed",
        );
    }
}

async fn authenticate(req: &HttpRequest, state: &AppState) -> Result<Identity, ApiError> {
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
        actor: crate::audit::actor_of(&record),
        token_id: record.id,
        workspace_id: record.workspace_id,
        role: record.role,
    })
}
