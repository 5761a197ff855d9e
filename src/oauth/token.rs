//! `POST /oauth2/token`: a client assertion in, an `sgo_` access token out
//! (RFC 6749 section 4.4, client authentication by RFC 7523 section 2.2).
//!
//! The request is form-encoded. Refusals are RFC 6749 section 5.2's JSON
//! (`{"error", "error_description"}`) with `Cache-Control: no-store`: a
//! bad request is `invalid_request` (400), another grant type
//! `unsupported_grant_type` (400), an assertion that fails any check
//! `invalid_client` (401, with the same description whatever the check,
//! as RFC 7521 section 4.2.1 has it), and a scope the app was not granted
//! `invalid_scope` (400). Each client address and each app have a rate
//! limit (429, `slow_down`).

use std::collections::BTreeMap;
use std::future::{ready, Ready};

use actix_web::body::BoxBody;
use actix_web::http::{header, StatusCode};
use actix_web::{dev, web, FromRequest, HttpRequest, HttpResponse, Responder, ResponseError};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use super::assertion::{self, Refusal};
use super::{ASSERTION_TYPE, GRANT_TYPE};
use crate::api::body::{read_limited, Limits};
use crate::api::doc::{Content, Describe, OperationDoc, RequestBodyDoc};
use crate::api::error::ApiError;
use crate::api::route::Resource;
use crate::audit::Actor;
use crate::audit::NewEvent;
use crate::client::Client;
use crate::db::oauth_apps::{self, OAuthApp, OAuthKey};
use crate::db::tokens::{self, OAuthGrant, Token};
use crate::domain::{Parse, Scopes, TokenId};
use crate::state::AppState;
use crate::time::Timestamp;
use crate::token::{PublicToken, TokenKind};

pub fn resources() -> Vec<Resource> {
    vec![Resource::new(super::TOKEN_PATH, "OAuth").post(
        issue,
        crate::api::OperationDoc::new(
            "createAccessToken",
            "Exchange a signed client assertion for an access token",
        )
        .describe(
            "OAuth 2.0's client credentials grant (RFC 6749 section 4.4) with a JWT client \
             assertion (RFC 7523): the app signs `{\"sub\": <app id>, \"aud\": <this server's \
             URL>, \"exp\", \"iat\", \"jti\"}` with the private key of one of its public keys, \
             named by `kid` in the header, with RS256 or ES256 as that key is. The access token \
             (`sgo_…`) is a bearer token of the Public API until it expires.",
        ),
    )]
}

/// What an access token request may hold (RFC 6749 section 4.4.2; RFC
/// 7521 section 4.2). Other parameters are ignored, as RFC 6749 says.
#[derive(ToSchema)]
#[schema(as = AccessTokenRequest)]
#[allow(dead_code)]
pub struct TokenRequestSchema {
    /// `client_credentials`.
    #[schema(pattern = "^client_credentials$")]
    grant_type: String,
    /// `urn:ietf:params:oauth:client-assertion-type:jwt-bearer`.
    #[schema(pattern = "^urn:ietf:params:oauth:client-assertion-type:jwt-bearer$")]
    client_assertion_type: String,
    /// The signed JWT.
    #[schema(min_length = 1)]
    client_assertion: String,
    /// Scope names separated by spaces; default: every scope of the app.
    #[schema(
        pattern = "^(public_api:read|public_api:read_write)( (public_api:read|public_api:read_write))*$"
    )]
    scope: Option<String>,
}

const FIELDS: &[&str] = &[
    "grant_type",
    "client_assertion_type",
    "client_assertion",
    "scope",
];

/// RFC 6749 section 5.1's answer.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = AccessTokenResponse)]
pub struct Issued {
    /// `sgo_…`: send it as `Authorization: Bearer`. Shown this once.
    access_token: String,
    #[schema(pattern = "^Bearer$")]
    token_type: &'static str,
    /// Seconds until it expires.
    expires_in: i64,
    /// The scopes granted, separated by spaces.
    scope: String,
}

/// The error codes this endpoint answers with (RFC 6749 section 5.2; RFC
/// 8628 section 3.5 for `slow_down`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidScope,
    UnsupportedGrantType,
    SlowDown,
    TemporarilyUnavailable,
    ServerError,
}

/// RFC 6749 section 5.2's error body.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = OAuthError)]
pub struct ErrorBody<'a> {
    error: ErrorCode,
    /// For people; it never says which check an assertion failed.
    error_description: &'a str,
}

/// A refusal, as RFC 6749 words it.
#[derive(Debug, thiserror::Error)]
#[error("{code:?}: {description}")]
pub struct OAuthError {
    code: ErrorCode,
    description: String,
    /// Set where the status is not the code's own (413, 408).
    status: Option<StatusCode>,
    retry_after_secs: Option<u64>,
}

/// What every failed assertion is told.
const INVALID_CLIENT: &str = "the client assertion is not valid";

impl OAuthError {
    fn new(code: ErrorCode, description: impl Into<String>) -> OAuthError {
        OAuthError {
            code,
            description: description.into(),
            status: None,
            retry_after_secs: None,
        }
    }

    fn invalid_request(description: impl Into<String>) -> OAuthError {
        OAuthError::new(ErrorCode::InvalidRequest, description)
    }

    /// A failed assertion: the reason goes to the log only.
    fn invalid_client(why: Refusal) -> OAuthError {
        tracing::info!(reason = %why, "client assertion refused");
        OAuthError::new(ErrorCode::InvalidClient, INVALID_CLIENT)
    }
}

impl From<crate::db::Error> for OAuthError {
    fn from(err: crate::db::Error) -> OAuthError {
        match ApiError::from(err) {
            ApiError::Unavailable(reason) => OAuthError {
                retry_after_secs: Some(5),
                ..OAuthError::new(ErrorCode::TemporarilyUnavailable, reason)
            },
            other => {
                tracing::error!(error = ?other, "token request failed");
                OAuthError::new(ErrorCode::ServerError, "internal server error")
            }
        }
    }
}

impl ResponseError for OAuthError {
    fn status_code(&self) -> StatusCode {
        if let Some(status) = self.status {
            return status;
        }
        match self.code {
            ErrorCode::InvalidClient => StatusCode::UNAUTHORIZED,
            ErrorCode::SlowDown => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::InvalidRequest
            | ErrorCode::InvalidScope
            | ErrorCode::UnsupportedGrantType => StatusCode::BAD_REQUEST,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        no_store(&mut response);
        if let Some(secs) = self.retry_after_secs {
            response.insert_header((header::RETRY_AFTER, secs.max(1).to_string()));
        }
        response.json(ErrorBody {
            error: self.code,
            error_description: &self.description,
        })
    }
}

/// RFC 6749 sections 5.1 and 5.2: no cache may keep a token answer.
fn no_store(response: &mut actix_web::HttpResponseBuilder) {
    response
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"));
}

impl Responder for Issued {
    type Body = BoxBody;

    fn respond_to(self, _: &HttpRequest) -> HttpResponse {
        let mut response = HttpResponse::Ok();
        no_store(&mut response);
        response.json(self)
    }
}

impl<T: Describe> Describe for Result<T, OAuthError> {
    fn describe(doc: &mut OperationDoc) {
        T::describe(doc)
    }
}

impl Describe for Issued {
    fn describe(doc: &mut OperationDoc) {
        let schema = doc.schema::<Issued>();
        doc.answer(200, "The access token", Content::Json(schema));
        let error = doc.schema::<ErrorBody>();
        for (status, description) in [
            (
                400,
                "invalid_request (a parameter is missing, repeated or malformed, or the body is \
                 not form-encoded), unsupported_grant_type, or invalid_scope (a scope the app \
                 was not granted)",
            ),
            (
                401,
                "invalid_client: the assertion is missing a part, refers to no key, is signed \
                 with another algorithm or key, names another app or audience, has expired or \
                 lives too long, or was used before",
            ),
            (
                413,
                "invalid_request: the body is larger than LEAKGUARD_MAX_BODY_BYTES",
            ),
            (
                429,
                "slow_down: too many requests from this client address or for this app; see \
                 Retry-After",
            ),
            (
                503,
                "temporarily_unavailable: the database is unavailable; see Retry-After",
            ),
        ] {
            doc.answer(status, description, Content::Json(error.clone()));
        }
        let no_store = json!({ "type": "string", "enum": ["no-store"] });
        for status in [200, 400, 401, 408, 413, 429, 503] {
            doc.header(
                status,
                "Cache-Control",
                "No cache may keep this answer",
                no_store.clone(),
            );
        }
        for status in [429, 503] {
            doc.header(
                status,
                "Retry-After",
                "Seconds to wait before trying again",
                json!({ "type": "integer", "minimum": 1 }),
            );
        }
    }
}

/// The form body, read only once the handler asks.
pub struct TokenForm {
    req: HttpRequest,
    payload: dev::Payload,
}

impl FromRequest for TokenForm {
    type Error = ApiError;
    type Future = Ready<Result<TokenForm, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut dev::Payload) -> Self::Future {
        ready(Ok(TokenForm {
            req: req.clone(),
            payload: payload.take(),
        }))
    }
}

impl Describe for TokenForm {
    fn describe(doc: &mut OperationDoc) {
        let schema = doc.schema::<TokenRequestSchema>();
        if let Some(serde_json::Value::Object(component)) =
            doc.schemas.get_mut(TokenRequestSchema::name().as_ref())
        {
            // RFC 6749 section 3.2: unknown parameters are ignored.
            component.insert("additionalProperties".into(), true.into());
        }
        doc.request_body = Some(RequestBodyDoc {
            media_type: "application/x-www-form-urlencoded",
            schema,
            fields: FIELDS,
        });
    }
}

impl TokenForm {
    /// The parameters, each at most once (RFC 6749 section 3.2).
    async fn read(self, limits: Limits) -> Result<BTreeMap<String, String>, OAuthError> {
        let form = self
            .req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| {
                v.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
        if !form {
            return Err(OAuthError::invalid_request(
                "send the parameters as application/x-www-form-urlencoded",
            ));
        }
        let bytes = read_limited(&self.req, self.payload, limits, None)
            .await
            .map_err(|e| {
                let status = e.status_code();
                OAuthError {
                    // 413 and 408 keep their status; the rest is a 400.
                    status: matches!(status.as_u16(), 408 | 413).then_some(status),
                    ..OAuthError::invalid_request(e.to_string())
                }
            })?;
        let mut params = BTreeMap::new();
        for (name, value) in url::form_urlencoded::parse(&bytes) {
            if params.insert(name.to_string(), value.to_string()).is_some() {
                return Err(OAuthError::invalid_request(format!(
                    "{name} is sent more than once"
                )));
            }
        }
        Ok(params)
    }
}

/// `POST /oauth2/token`.
pub async fn issue(form: TokenForm, state: web::Data<AppState>) -> Result<Issued, OAuthError> {
    let client = Client::of(&form.req, &state.settings.trusted_proxies);
    limit(
        &state,
        &format!("client:{}", client.address.as_deref().unwrap_or_default()),
    )?;
    let params = form
        .read(Limits {
            max_bytes: state.settings.max_body_bytes,
            timeout: state.settings.body_timeout,
        })
        .await?;
    let param = |name: &str| -> Result<&str, OAuthError> {
        params
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| OAuthError::invalid_request(format!("{name} is missing")))
    };
    let grant_type = param("grant_type")?;
    if grant_type != GRANT_TYPE {
        return Err(OAuthError::new(
            ErrorCode::UnsupportedGrantType,
            format!("the one grant type is {GRANT_TYPE}"),
        ));
    }
    let assertion_type = param("client_assertion_type")?;
    let jwt = param("client_assertion")?;
    if assertion_type != ASSERTION_TYPE {
        return Err(OAuthError::new(
            ErrorCode::InvalidClient,
            format!("the one client assertion type is {ASSERTION_TYPE}"),
        ));
    }
    if jwt.len() > assertion::MAX_ASSERTION_BYTES {
        return Err(OAuthError::invalid_client(Refusal::Malformed));
    }
    let requested = match params.get("scope") {
        None => None,
        Some(text) => Some(
            Scopes::parse(text)
                .map_err(|e| OAuthError::new(ErrorCode::InvalidScope, format!("scope {e}")))?,
        ),
    };

    let kid = assertion::key_id(jwt).map_err(OAuthError::invalid_client)?;
    let (key, app) = oauth_apps::find_key(&state.db, &kid)
        .await?
        .ok_or_else(|| OAuthError::invalid_client(Refusal::UnknownKey))?;
    let audiences = super::audiences(&state.settings.public_url);
    let now = Timestamp::now();
    let claims = assertion::verify(jwt, &key, &app.id, &audiences, now.micros() / 1_000_000)
        .map_err(OAuthError::invalid_client)?;
    limit(&state, &format!("app:{}", app.id))?;

    let scopes = match requested {
        None => app.scopes.clone(),
        Some(scopes) if app.scopes.contains_all(&scopes) => scopes,
        Some(_) => {
            return Err(OAuthError::new(
                ErrorCode::InvalidScope,
                format!("this app may be granted {} only", app.scopes),
            ))
        }
    };

    let mut change = state.db.change(app.workspace_id.as_str()).await?;
    // The key may have been removed (and its tokens revoked) since it was
    // read: under the workspace's lock, it must still be there.
    let still = oauth_apps::find_key(&mut change, &kid).await?;
    if still.as_ref().is_none_or(|(_, a)| a.id != app.id) {
        return Err(OAuthError::invalid_client(Refusal::UnknownKey));
    }
    let remember_until = Timestamp((claims.exp + assertion::CLOCK_SKEW_SECS) * 1_000_000);
    if !oauth_apps::remember_assertion(&mut change, &app.id, &claims.jti, remember_until, now)
        .await?
    {
        return Err(OAuthError::invalid_client(Refusal::Replayed));
    }
    let (secret, token) = mint(&mut change, &app, &key, scopes, client).await?;
    change.commit().await?;
    tracing::info!(app_id = %app.id, token_id = %token.id, "access token issued");
    Ok(Issued {
        access_token: secret.expose().to_string(),
        token_type: "Bearer",
        expires_in: app.token_expires_in.secs(),
        scope: token
            .oauth
            .as_ref()
            .map(|g| g.scopes.to_string())
            .unwrap_or_default(),
    })
}

/// 429 once `key` has spent its requests.
fn limit(state: &AppState, key: &str) -> Result<(), OAuthError> {
    let status = state.oauth_rate_limiter.take(key);
    if status.allowed {
        Ok(())
    } else {
        Err(OAuthError {
            retry_after_secs: Some(status.reset_secs),
            ..OAuthError::new(
                ErrorCode::SlowDown,
                format!(
                    "too many token requests; retry in {} s",
                    status.reset_secs.max(1)
                ),
            )
        })
    }
}

/// A new access token of `app`, as part of `change`, with its audit event.
async fn mint(
    change: &mut crate::db::Change,
    app: &OAuthApp,
    key: &OAuthKey,
    scopes: Scopes,
    client: Client,
) -> crate::db::Result<(PublicToken, Token)> {
    let secret = PublicToken::generate_kind(TokenKind::AccessToken);
    let at = Timestamp(change.at());
    let token = Token {
        id: TokenId::generate(),
        workspace_id: app.workspace_id.clone(),
        name: app.name.clone(),
        role: scopes.role(),
        token_hash: secret.hash(),
        hint: secret.hint().to_string(),
        created_at: at,
        created_by: crate::audit::oauth_app_actor(&app.id),
        last_used_at: None,
        revoked_at: None,
        revoked_reason: None,
        revoked_alert_id: None,
        oauth: Some(OAuthGrant {
            app_id: app.id.clone(),
            key_id: key.id.clone(),
            scopes,
            expires_at: Timestamp(at.micros() + app.token_expires_in.micros()),
        }),
    };
    tokens::insert(change, &token).await?;
    let grant = token.oauth.as_ref().expect("set just above");
    change.record(NewEvent {
        event_type: "Access Token Issued",
        actor: Actor {
            id: crate::audit::actor_of(&token),
            client,
        },
        resource_id: token.id.to_string(),
        resource_type: "token",
        resource_name: app.name.to_string(),
        details: json!({
            "oauthAppId": app.id,
            "keyId": key.id,
            "scope": grant.scopes.to_string(),
            "role": token.role,
            "expiresAt": grant.expires_at,
            "hint": token.hint,
        }),
    });
    Ok((secret, token))
}
