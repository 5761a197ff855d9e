//! Request bodies, read only once the handler asks. Public API handlers
//! check the caller's role first, so a client learns of problems in a fixed
//! order: 401 (who are you), 403 (not allowed), then 413, 400 and 422 (what
//! you sent). The alert endpoint reads raw bytes for its signature check.

use std::future::{ready, Ready};

use actix_web::http::header;
use actix_web::{dev, web, FromRequest, HttpRequest};
use futures_util::{Stream, StreamExt};
use serde_json::Value;

use super::error::ApiError;

/// A JSON body not yet read.
pub struct JsonBody {
    req: HttpRequest,
    payload: dev::Payload,
}

impl FromRequest for JsonBody {
    type Error = ApiError;
    type Future = Ready<Result<JsonBody, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut dev::Payload) -> Self::Future {
        ready(Ok(JsonBody {
            req: req.clone(),
            payload: payload.take(),
        }))
    }
}

impl JsonBody {
    /// Reads at most `limit` bytes and parses them as JSON.
    pub async fn parse(self, limit: usize) -> Result<Value, ApiError> {
        let is_json = self
            .req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim().to_ascii_lowercase())
            .is_some_and(|v| v == "application/json" || v.ends_with("+json"));
        if !is_json {
            return Err(ApiError::BadRequest(
                "send the body as application/json".into(),
            ));
        }
        let bytes = read_limited(&self.req, self.payload, limit).await?;
        parse_json(&bytes)
    }
}

/// The bytes of a Public API body as JSON, or the 400 that says why not.
pub fn parse_json(bytes: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::BadRequest(format!("the body is not valid JSON: {e}")))
}

/// Reads the body up to `limit` bytes; anything longer is a 413 without
/// reading on (and without trusting Content-Length alone).
pub async fn read_limited<S, E>(
    req: &HttpRequest,
    mut payload: S,
    limit: usize,
) -> Result<web::Bytes, ApiError>
where
    S: Stream<Item = Result<web::Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let too_large =
        || ApiError::PayloadTooLarge(format!("the body exceeds the limit of {limit} bytes"));
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(too_large());
    }
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(0).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::BadRequest(format!("cannot read the body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}
