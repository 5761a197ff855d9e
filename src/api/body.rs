//! Request bodies, read only once the handler asks. Public API handlers
//! check the caller's role first, so a client learns of problems in a fixed
//! order: 401 (who are you), 403 (not allowed), then 415, 413, 400 and 422
//! (what you sent). The alert endpoint reads raw bytes for its signature check.

use std::future::{ready, Ready};
use std::marker::PhantomData;

use actix_web::http::header;
use actix_web::{dev, web, FromRequest, HttpRequest};
use futures_util::{Stream, StreamExt};
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::doc::{Describe, OperationDoc, RequestBodyDoc};
use super::error::{ApiError, FieldError};
use super::validate::Fields;
use crate::domain::Parse;

/// A request body type, read field by field (`validate::Fields`) so that a
/// 422 lists every problem at once. Its `ToSchema` is what the document
/// declares; `FIELDS` must name exactly its properties (a unit test checks).
pub trait FromBody: ToSchema + Sized {
    /// Every field the body may have; any other is refused.
    const FIELDS: &'static [&'static str];

    /// For updates: at least one field must be set to something other than
    /// null, or the request would change nothing.
    const AT_LEAST_ONE: bool = false;

    /// Reads every field, recording each problem in `fields`; None when a
    /// required field is missing or unusable.
    fn read(fields: &mut Fields) -> Option<Self>;

    /// Says in the document what the derived schema cannot, by rewriting
    /// the body's component (`schemas[Self::name()]`) and adding others:
    /// the settings that each kind of resource takes (`settings`).
    fn refine_schema(_schemas: &mut std::collections::BTreeMap<String, Value>) {}
}

/// A JSON body of type `T`, not yet read: handlers read it only once the
/// token and its role have been checked, so that those errors come first.
pub struct JsonBody<T> {
    req: HttpRequest,
    payload: dev::Payload,
    body: PhantomData<T>,
}

/// A body that parsed as JSON, read into `T` as far as it could be.
/// Handlers may add problems that need the database (a stored secret
/// behind a mask, a source that must exist) before `finish`.
pub struct Parsed<T> {
    /// None when a required field is missing or unusable.
    pub value: Option<T>,
    pub errors: Vec<FieldError>,
    json: Value,
}

impl<T> FromRequest for JsonBody<T> {
    type Error = ApiError;
    type Future = Ready<Result<JsonBody<T>, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut dev::Payload) -> Self::Future {
        ready(Ok(JsonBody {
            req: req.clone(),
            payload: payload.take(),
            body: PhantomData,
        }))
    }
}

/// Whether a `Content-Type` names JSON: `application/json` or any
/// `application/…+json` (Segment's SDK sends its versioned types).
fn is_json(content_type: Option<&str>) -> bool {
    content_type
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .is_some_and(|v| {
            v == "application/json" || (v.starts_with("application/") && v.ends_with("+json"))
        })
}

impl<T: FromBody> JsonBody<T> {
    /// Reads at most `limit` bytes and parses them as JSON, then into `T`:
    /// 415, 413 or 400 when that fails; the field problems are in the
    /// answer, for `finish`.
    pub async fn parse(self, limit: usize) -> Result<Parsed<T>, ApiError> {
        let content_type = self
            .req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        if !is_json(content_type) {
            return Err(ApiError::UnsupportedMediaType(
                "send the body as application/json".into(),
            ));
        }
        let bytes = read_limited(&self.req, self.payload, limit).await?;
        let json = parse_json(&bytes)?;
        let mut fields = Fields::of(&json, T::FIELDS)?;
        let value = T::read(&mut fields);
        if T::AT_LEAST_ONE {
            fields.require_any(T::FIELDS);
        }
        let errors = fields.errors;
        Ok(Parsed {
            value,
            errors,
            json,
        })
    }

    /// `parse`, then `finish`: the body, or every problem with it.
    pub async fn read(self, limit: usize) -> Result<T, ApiError> {
        self.parse(limit).await?.finish()
    }
}

impl<T> Parsed<T> {
    pub fn fail(&mut self, field: &str, message: impl Into<String>) {
        self.errors.push(FieldError::new(field, message));
    }

    pub fn has_error(&self, field: &str) -> bool {
        self.errors
            .iter()
            .any(|e| e.field.as_deref() == Some(field))
    }

    /// A string field parsed as `U`, without recording a problem: for a
    /// check that must run even when another field failed.
    pub fn peek<U: Parse>(&self, field: &str) -> Option<U> {
        self.json
            .get(field)
            .and_then(Value::as_str)
            .and_then(|s| U::parse(s).ok())
    }

    /// The value, or a 422 listing every problem found.
    pub fn finish(self) -> Result<T, ApiError> {
        match self.value {
            Some(value) if self.errors.is_empty() => Ok(value),
            _ => Err(self.into_error()),
        }
    }

    /// The 422 of every problem found so far.
    pub fn into_error(self) -> ApiError {
        ApiError::Validation(self.errors)
    }
}

impl<T: FromBody> Describe for JsonBody<T> {
    fn describe(doc: &mut OperationDoc) {
        let schema = doc.schema::<T>();
        T::refine_schema(&mut doc.schemas);
        if T::AT_LEAST_ONE {
            // Some field must be present and not null.
            let nulls: serde_json::Map<String, Value> = T::FIELDS
                .iter()
                .map(|f| (f.to_string(), json!({ "type": "null" })))
                .collect();
            if let Some(Value::Object(component)) = doc.schemas.get_mut(T::name().as_ref()) {
                component.insert("not".into(), json!({ "properties": nulls }));
                component.insert("minProperties".into(), 1.into());
            }
        }
        doc.request_body = Some(RequestBodyDoc {
            schema,
            fields: T::FIELDS,
        });
        doc.error(400, "The body is not JSON");
        doc.error(413, "The body is larger than LEAKGUARD_MAX_BODY_BYTES");
        doc.error(415, "The body is not sent as application/json");
        doc.error(422, "Every problem with the body, each with its field");
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
