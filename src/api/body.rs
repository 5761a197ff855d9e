//! Request bodies, read only once the handler asks. Public API handlers
//! check the caller's role first, so a client learns of problems in a fixed
//! order: 401 (who are you), 403 (not allowed), then 415, 413, 408, 400
//! and 422 (what you sent). The alert endpoint reads raw bytes for its
//! signature check.
//!
//! Every body must arrive within `LEAKGUARD_BODY_TIMEOUT_SECS` of the
//! handler asking for it (408 otherwise), and alert bodies, which anyone
//! may send, are held in memory only within a `BodyBudget`.

use std::collections::HashMap;
use std::future::{ready, Ready};
use std::marker::PhantomData;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

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
    /// Reads the body within the settings' size and time limits and parses
    /// it as JSON, then into `T`: 415, 413, 408 or 400 when that fails; the
    /// field problems are in the answer, for `finish`.
    pub async fn parse(self, settings: &crate::config::Settings) -> Result<Parsed<T>, ApiError> {
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
        let limits = Limits {
            max_bytes: settings.max_body_bytes,
            timeout: settings.body_timeout,
        };
        let bytes = read_limited(&self.req, self.payload, limits, None).await?;
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
    pub async fn read(self, settings: &crate::config::Settings) -> Result<T, ApiError> {
        self.parse(settings).await?.finish()
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
            media_type: "application/json",
            schema,
            fields: T::FIELDS,
        });
        doc.error(400, "The body is not JSON");
        doc.error(413, "The body is larger than LEAKGUARD_MAX_BODY_BYTES");
        doc.error(415, "The body is not sent as application/json");
        doc.error(
            408,
            "The body did not arrive within LEAKGUARD_BODY_TIMEOUT_SECS",
        );
        doc.error(422, "Every problem with the body, each with its field");
    }
}

/// The bytes of a Public API body as JSON, or the 400 that says why not.
pub fn parse_json(bytes: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::BadRequest(format!("the body is not valid JSON: {e}")))
}

/// How much of a body is read, and for how long.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_bytes: usize,
    pub timeout: Duration,
}

/// The body's `Content-Length`, or 413 when it is over the limit: a body
/// too large is refused before a byte of it is read.
pub fn declared_length(req: &HttpRequest, max_bytes: usize) -> Result<Option<usize>, ApiError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().parse::<u64>());
    match declared {
        None => Ok(None),
        Some(Ok(length)) if length <= max_bytes as u64 => Ok(Some(length as usize)),
        // actix refuses a Content-Length that is not a number before any
        // handler runs; this is the one that is too large.
        Some(_) => Err(too_large(max_bytes)),
    }
}

fn too_large(max_bytes: usize) -> ApiError {
    ApiError::PayloadTooLarge(format!("the body exceeds the limit of {max_bytes} bytes"))
}

/// Reads the body up to `limits.max_bytes` (anything longer is a 413
/// without reading on, whatever Content-Length said) within
/// `limits.timeout` (408). With a `reservation`, every byte held is
/// reserved from its budget first (503 past it).
pub async fn read_limited<S, E>(
    req: &HttpRequest,
    mut payload: S,
    limits: Limits,
    mut reservation: Option<&mut Reservation<'_>>,
) -> Result<web::Bytes, ApiError>
where
    S: Stream<Item = Result<web::Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let declared = declared_length(req, limits.max_bytes)?;
    let read = async {
        let mut body = web::BytesMut::with_capacity(declared.unwrap_or(0));
        while let Some(chunk) = payload.next().await {
            let chunk =
                chunk.map_err(|e| ApiError::BadRequest(format!("cannot read the body: {e}")))?;
            let length = body.len() + chunk.len();
            if length > limits.max_bytes {
                return Err(too_large(limits.max_bytes));
            }
            if let Some(reservation) = reservation.as_deref_mut() {
                reservation.cover(length)?;
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    };
    match tokio::time::timeout(limits.timeout, read).await {
        Ok(result) => result,
        Err(_) => Err(ApiError::RequestTimeout(format!(
            "the body did not arrive within {} s",
            limits.timeout.as_secs_f64()
        ))),
    }
}

/// A bound on the bytes of request bodies held in memory at once: in all,
/// and per client address. Bodies reserve before they are read; what
/// cannot be reserved is refused with 503 and `Retry-After`, so a flood
/// of slow or large bodies costs a bounded amount of memory and leaves
/// room for other clients.
pub struct BodyBudget {
    total: usize,
    per_client: usize,
    /// How long a holder may keep its bytes: the body timeout.
    retry_after: Duration,
    held: Mutex<Held>,
}

#[derive(Default)]
struct Held {
    total: usize,
    by_client: HashMap<IpAddr, usize>,
}

/// Bytes of a `BodyBudget` held by one request; given back when dropped.
pub struct Reservation<'a> {
    budget: &'a BodyBudget,
    client: IpAddr,
    bytes: usize,
}

impl BodyBudget {
    pub fn new(total: usize, per_client: usize, retry_after: Duration) -> BodyBudget {
        BodyBudget {
            total,
            per_client,
            retry_after,
            held: Mutex::new(Held::default()),
        }
    }

    /// Reserves `bytes` for `client`, or the 503 that says to come back.
    pub fn reserve(&self, client: IpAddr, bytes: usize) -> Result<Reservation<'_>, ApiError> {
        let mut reservation = Reservation {
            budget: self,
            client,
            bytes: 0,
        };
        reservation.cover(bytes)?;
        Ok(reservation)
    }

    /// Bytes reserved now, in all.
    pub fn held(&self) -> usize {
        self.held.lock().expect("budget lock").total
    }

    fn refusal(&self, whose: &str) -> ApiError {
        ApiError::retry_later(
            format!("too many request bodies in flight {whose}; retry later"),
            self.retry_after,
        )
    }
}

impl Reservation<'_> {
    /// Grows the reservation to at least `bytes`.
    pub fn cover(&mut self, bytes: usize) -> Result<(), ApiError> {
        let more = bytes.saturating_sub(self.bytes);
        if more == 0 {
            return Ok(());
        }
        let budget = self.budget;
        let mut held = budget.held.lock().expect("budget lock");
        let client = held.by_client.get(&self.client).copied().unwrap_or(0);
        if client + more > budget.per_client {
            return Err(budget.refusal("from this address"));
        }
        if held.total + more > budget.total {
            return Err(budget.refusal("on this server"));
        }
        held.total += more;
        *held.by_client.entry(self.client).or_default() += more;
        self.bytes = bytes;
        Ok(())
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if self.bytes == 0 {
            return;
        }
        let mut held = self.budget.held.lock().expect("budget lock");
        held.total -= self.bytes;
        if let Some(client) = held.by_client.get_mut(&self.client) {
            *client -= self.bytes;
            if *client == 0 {
                held.by_client.remove(&self.client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_bounds_each_client_and_the_total_and_is_given_back() {
        let budget = BodyBudget::new(100, 60, Duration::from_secs(10));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let first = budget.reserve(a, 50).unwrap();
        assert!(budget.reserve(a, 20).is_err(), "over a's share");
        let mut second = budget.reserve(b, 40).unwrap();
        assert!(second.cover(60).is_err(), "over the total");
        assert!(second.cover(50).is_ok());
        assert_eq!(budget.held(), 100);
        drop(first);
        assert_eq!(budget.held(), 50);
        assert!(budget.reserve(a, 50).is_ok());
        drop(second);
        assert_eq!(budget.held(), 0);
        let refused = budget.reserve(a, 61).err();
        assert!(
            matches!(
                refused,
                Some(ApiError::RetryLater {
                    retry_after_secs: 10,
                    ..
                })
            ),
            "expected a 503 with Retry-After: {refused:?}"
        );
    }
}
