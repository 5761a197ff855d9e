//! The one error type of every HTTP endpoint, rendered Segment-style as
//! `{"errors":[{"type","message","field"?}]}`. Internal causes are logged
//! with their chain and answered with an opaque 500.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

/// One problem with a request. A 422 lists every problem found, each with
/// the `field` it is about; other errors have exactly one, without `field`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct FieldError {
    /// What kind of problem: one per status (`validation` for 422).
    #[serde(rename = "type")]
    pub kind: ErrorType,
    /// For people: what was wrong, and what to do about it.
    pub message: String,
    /// The body field, query parameter or header the problem is about, in
    /// the body's own spelling (`labels[2]`, `settings.apiKey`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub field: Option<String>,
}

/// Every `type` an error can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorType {
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    NotAcceptable,
    Conflict,
    BadRequest,
    PayloadTooLarge,
    RequestTimeout,
    UnsupportedMediaType,
    Validation,
    RateLimited,
    Unavailable,
    ServerError,
}

/// The body of every error answer: `{"errors": [...]}`, never with `data`.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Errors)]
pub struct ErrorBody<'a> {
    #[schema(min_items = 1)]
    pub errors: &'a [FieldError],
}

impl FieldError {
    pub fn new(field: &str, message: impl Into<String>) -> FieldError {
        FieldError {
            kind: ErrorType::Validation,
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
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    NotAcceptable(String),
    /// A known path, a method it does not have.
    #[error("method {method} not allowed")]
    MethodNotAllowed { method: String, allow: String },
    /// 429; the message says whose limit it was.
    #[error("{message}")]
    RateLimited {
        message: String,
        retry_after_secs: u64,
    },
    /// 408: the body did not arrive in time.
    #[error("{0}")]
    RequestTimeout(String),
    /// 503 with the default `Retry-After`.
    #[error("{0}")]
    Unavailable(String),
    /// 503 with a `Retry-After` that says when retrying can help.
    #[error("{message}")]
    RetryLater {
        message: String,
        retry_after_secs: u64,
    },
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn not_found(what: &str) -> ApiError {
        ApiError::NotFound(format!("{what} not found"))
    }

    pub fn retry_later(message: impl Into<String>, after: std::time::Duration) -> ApiError {
        ApiError::RetryLater {
            message: message.into(),
            retry_after_secs: after.as_secs_f64().ceil() as u64,
        }
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

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::Unavailable(_) | ApiError::RetryLater { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let single = |kind: ErrorType, message: String| {
            vec![FieldError {
                kind,
                message,
                field: None,
            }]
        };
        let errors = match self {
            ApiError::Unauthorized(m) => single(ErrorType::Unauthorized, m.clone()),
            ApiError::Forbidden(m) => single(ErrorType::Forbidden, m.clone()),
            ApiError::NotFound(m) => single(ErrorType::NotFound, m.clone()),
            ApiError::Conflict(m) => single(ErrorType::Conflict, m.clone()),
            ApiError::BadRequest(m) => single(ErrorType::BadRequest, m.clone()),
            ApiError::UnsupportedMediaType(m) => single(ErrorType::UnsupportedMediaType, m.clone()),
            ApiError::Validation(list) => list.clone(),
            ApiError::PayloadTooLarge(m) => single(ErrorType::PayloadTooLarge, m.clone()),
            ApiError::NotAcceptable(m) => single(ErrorType::NotAcceptable, m.clone()),
            ApiError::MethodNotAllowed { method, allow } => single(
                ErrorType::MethodNotAllowed,
                format!("{method} is not a method of this path; it takes {allow}"),
            ),
            ApiError::RateLimited { message, .. } => {
                single(ErrorType::RateLimited, message.clone())
            }
            ApiError::RequestTimeout(m) => single(ErrorType::RequestTimeout, m.clone()),
            ApiError::Unavailable(m) => single(ErrorType::Unavailable, m.clone()),
            ApiError::RetryLater { message, .. } => single(ErrorType::Unavailable, message.clone()),
            ApiError::Internal(cause) => {
                tracing::error!(error = ?cause, "request failed");
                single(ErrorType::ServerError, "internal server error".into())
            }
        };
        let mut response = HttpResponse::build(self.status_code());
        let retry_after = match self {
            ApiError::RateLimited {
                retry_after_secs, ..
            }
            | ApiError::RetryLater {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            ApiError::Unavailable(_) => Some(5),
            _ => None,
        };
        if let Some(seconds) = retry_after {
            response.insert_header((header::RETRY_AFTER, seconds.max(1).to_string()));
        }
        if let ApiError::MethodNotAllowed { allow, .. } = self {
            response.insert_header((header::ALLOW, allow.as_str()));
        }
        // A client that stalled or was refused before its body was read
        // may still be sending it: the connection cannot carry another
        // request.
        if matches!(
            self,
            ApiError::RequestTimeout(_)
                | ApiError::PayloadTooLarge(_)
                | ApiError::RetryLater { .. }
        ) {
            response.force_close();
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
