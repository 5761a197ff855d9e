//! The one error type of every HTTP endpoint, rendered Segment-style as
//! `{"errors":[{"type","message","field"?}]}`. Internal causes are logged
//! with their chain and answered with an opaque 500.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct FieldError {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl FieldError {
    pub fn new(field: &str, message: impl Into<String>) -> FieldError {
        FieldError {
            kind: "validation",
            message: message.into(),
            field: Some(field.to_string()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    NotAcceptable(String),
    /// A known path, a method it does not have.
    #[error("method {method} not allowed")]
    MethodNotAllowed { method: String, allow: String },
    #[error("rate limit exceeded")]
    RateLimited { retry_after_secs: u64 },
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn not_found(what: &str) -> ApiError {
        ApiError::NotFound(format!("{what} not found"))
    }

    pub fn internal(err: impl Into<anyhow::Error>) -> ApiError {
        ApiError::Internal(err.into())
    }
}

impl From<crate::db::Error> for ApiError {
    fn from(err: crate::db::Error) -> ApiError {
        // Down, restarting, full or read-only: the caller should retry.
        match err.unavailable_reason() {
            Some(reason) => {
                tracing::error!(error = %err, reason, "database unavailable");
                ApiError::Unavailable(reason.into())
            }
            None => ApiError::Internal(err.into()),
        }
    }
}

/// Maps a unique-constraint violation (a duplicate) to a 409, and every
/// other database error as `From` does.
pub trait OnUniqueViolation<T> {
    fn on_unique_violation(self, conflict: impl FnOnce() -> String) -> Result<T, ApiError>;
}

impl<T> OnUniqueViolation<T> for Result<T, crate::db::Error> {
    fn on_unique_violation(self, conflict: impl FnOnce() -> String) -> Result<T, ApiError> {
        self.map_err(|e| {
            if e.is_unique_violation() {
                ApiError::Conflict(conflict())
            } else {
                e.into()
            }
        })
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    errors: &'a [FieldError],
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let single = |kind: &'static str, message: String| {
            vec![FieldError {
                kind,
                message,
                field: None,
            }]
        };
        let errors = match self {
            ApiError::Unauthorized(m) => single("unauthorized", m.clone()),
            ApiError::Forbidden(m) => single("forbidden", m.clone()),
            ApiError::NotFound(m) => single("not-found", m.clone()),
            ApiError::Conflict(m) => single("conflict", m.clone()),
            ApiError::BadRequest(m) => single("bad-request", m.clone()),
            ApiError::Validation(list) => list.clone(),
            ApiError::PayloadTooLarge(m) => single("payload-too-large", m.clone()),
            ApiError::NotAcceptable(m) => single("not-acceptable", m.clone()),
            ApiError::MethodNotAllowed { method, allow } => single(
                "method-not-allowed",
                format!("{method} is not a method of this path; it takes {allow}"),
            ),
            ApiError::RateLimited { retry_after_secs } => single(
                "rate-limited",
                format!("too many requests for this token; retry in {retry_after_secs} s"),
            ),
            ApiError::Unavailable(m) => single("unavailable", m.clone()),
            ApiError::Internal(cause) => {
                tracing::error!(error = ?cause, "request failed");
                single("server-error", "internal server error".into())
            }
        };
        let mut response = HttpResponse::build(self.status_code());
        if let ApiError::RateLimited { retry_after_secs } = self {
            response.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
        }
        if let ApiError::MethodNotAllowed { allow, .. } = self {
            response.insert_header((header::ALLOW, allow.as_str()));
        }
        if let ApiError::Unavailable(_) = self {
            response.insert_header((header::RETRY_AFTER, "5"));
        }
        response.json(ErrorBody { errors: &errors })
    }
}

/// Turns a bad query string into our error shape.
pub fn query_error_handler(
    err: actix_web::error::QueryPayloadError,
    _req: &actix_web::HttpRequest,
) -> actix_web::Error {
    ApiError::BadRequest(format!("bad query string: {err}")).into()
}
