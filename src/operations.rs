//! The routes outside the Public API, for operators and their tooling:
//! health, readiness, metrics, the OpenAPI document, and GitHub's alert
//! endpoint. No token, no Public API conventions.

use std::time::{Duration, Instant};

use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{web, HttpRequest, HttpResponse, Responder, ResponseError};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use crate::api::doc::{Content, Describe, OperationDoc};
use crate::api::route::{Endpoint, Resource};
use crate::scanning;
use crate::state::AppState;

/// The routes outside the Public API: no token, no Public API conventions.
pub fn resources() -> Vec<Resource> {
    vec![
        Resource::new("/healthz", "Operations").get(
            healthz,
            OperationDoc::new("getHealth", "Whether the process is up"),
        ),
        Resource::new("/readyz", "Operations").get(
            readyz,
            OperationDoc::new("getReadiness", "Whether this replica can serve").describe(
                "Ready when the database answers and takes writes and a GitHub key set is \
                     loaded: without them, alerts could not be verified or applied.",
            ),
        ),
        Resource::new("/metrics", "Operations").get(
            metrics,
            OperationDoc::new("getMetrics", "Prometheus metrics").status(
                404,
                "Served on its own listener instead (LEAKGUARD_METRICS_BIND)",
            ),
        ),
        Resource::new("/openapi.json", "Operations")
            .get(openapi, OperationDoc::new("getOpenApi", "This document")),
        Resource::new("/secret-scanning/github", "Secret Scanning").post(
            scanning::handler::github_alert,
            OperationDoc::new(
                "reportLeakedTokens",
                "GitHub's secret-scanning partner endpoint",
            )
            .describe(
                "GitHub posts the tokens it found, signed over the raw body with ECDSA P-256 \
                 (headers Github-Public-Key-Identifier and Github-Public-Key-Signature). Every \
                 live leaked token is revoked before the answer, which is GitHub's feedback.",
            ),
        ),
    ]
}

/// Every (method, path) outside the Public API, with its documentation.
pub fn endpoints() -> Vec<Endpoint> {
    resources().iter().flat_map(Resource::endpoints).collect()
}

/// `GET /healthz`: `{"status": "ok"}`.
#[derive(Serialize, ToSchema)]
pub struct Health {
    #[schema(value_type = String, pattern = "^ok$")]
    status: &'static str,
}

pub async fn healthz() -> web::Json<Health> {
    web::Json(Health { status: "ok" })
}

impl Describe for web::Json<Health> {
    fn describe(doc: &mut OperationDoc) {
        let schema = doc.schema::<Health>();
        doc.answer(200, "The process is up", Content::Json(schema));
    }
}

/// How long one database probe answers `/readyz`. Anyone may call it, and
/// the probe is a committed write: without this, a flood of calls would
/// queue writes ahead of alerts on SQLite's single writer.
pub const READINESS_PROBE_TTL: Duration = Duration::from_secs(1);

/// The last database probe, shared by every `/readyz` within its TTL;
/// callers that arrive while a probe runs wait for that one.
#[derive(Default)]
pub struct Readiness {
    last: tokio::sync::Mutex<Option<Probe>>,
}

#[derive(Clone, Copy)]
struct Probe {
    at: Instant,
    checked_at: crate::time::Timestamp,
    database: Result<(), &'static str>,
}

impl Readiness {
    async fn database(&self, db: &crate::db::Db) -> Probe {
        let mut last = self.last.lock().await;
        match *last {
            Some(probe) if probe.at.elapsed() < READINESS_PROBE_TTL => probe,
            _ => {
                let probe = Probe {
                    checked_at: crate::time::Timestamp::now(),
                    database: db.check_writable().await,
                    at: Instant::now(),
                };
                *last = Some(probe);
                probe
            }
        }
    }
}

/// `GET /readyz`: what this replica needs to serve, and whether it has it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReadinessReport {
    /// `ready` or `not ready`.
    #[schema(value_type = String, pattern = "^(ready|not ready)$")]
    status: &'static str,
    /// Whether the database answers and takes writes.
    database: bool,
    /// When the database was last probed: at most once per
    /// `READINESS_PROBE_TTL`, whoever asks.
    checked_at: crate::time::Timestamp,
    /// Whether a GitHub key set is loaded.
    github_keys: bool,
    /// Why the database is not ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    database_error: Option<String>,
}

impl Responder for ReadinessReport {
    type Body = BoxBody;

    fn respond_to(self, _: &HttpRequest) -> HttpResponse {
        let status = if self.database && self.github_keys {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        HttpResponse::build(status).json(self)
    }
}

impl Describe for ReadinessReport {
    fn describe(doc: &mut OperationDoc) {
        let schema = doc.schema::<ReadinessReport>();
        doc.answer(
            200,
            "The database answers and takes writes, and a GitHub key set is loaded; \
             checkedAt is when the database was last probed (at most once a second)",
            Content::Json(schema.clone()),
        );
        doc.answer(
            503,
            "Not ready; databaseError says why the database is not",
            Content::Json(schema),
        );
    }
}

pub async fn readyz(state: web::Data<AppState>) -> ReadinessReport {
    let probe = state.readiness.database(&state.db).await;
    let database = probe.database;
    let github_keys = state.keys.is_loaded();
    ReadinessReport {
        status: if database.is_ok() && github_keys {
            "ready"
        } else {
            "not ready"
        },
        database: database.is_ok(),
        checked_at: probe.checked_at,
        github_keys,
        database_error: database.err().map(Into::into),
    }
}

/// With a metrics listener of its own (`LEAKGUARD_METRICS_BIND`), that
/// listener answers `/metrics` only, and the main one everything else: a
/// network policy can then keep the metrics inside by port.
pub async fn metrics_apart(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let metrics_addr = req
        .app_data::<web::Data<crate::startup::MetricsListener>>()
        .and_then(|listener| listener.0);
    if let Some(metrics_addr) = metrics_addr {
        let on_metrics_listener = req.app_config().local_addr() == metrics_addr;
        let is_metrics = req.path() == "/metrics";
        if on_metrics_listener != is_metrics {
            let error = crate::api::error::ApiError::NotFound(if is_metrics {
                "no such endpoint here: /metrics is served on LEAKGUARD_METRICS_BIND".into()
            } else {
                "no such endpoint: this listener serves /metrics only".into()
            });
            return Ok(req
                .into_response(error.error_response())
                .map_into_right_body());
        }
    }
    Ok(next.call(req).await?.map_into_left_body())
}

/// `GET /metrics`: Prometheus's text format.
pub struct MetricsText(String);

impl Responder for MetricsText {
    type Body = BoxBody;

    fn respond_to(self, _: &HttpRequest) -> HttpResponse {
        HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4")
            .body(self.0)
    }
}

impl Describe for MetricsText {
    fn describe(doc: &mut OperationDoc) {
        doc.answer(
            200,
            "Prometheus text format",
            Content::Other {
                media_type: "text/plain",
                schema: json!({ "type": "string" }),
            },
        );
    }
}

pub async fn metrics(state: web::Data<AppState>) -> MetricsText {
    state.metrics.refresh(state.db.in_use());
    MetricsText(state.metrics.render())
}

/// `GET /openapi.json`.
pub struct Document;

impl Responder for Document {
    type Body = BoxBody;

    fn respond_to(self, _: &HttpRequest) -> HttpResponse {
        HttpResponse::Ok()
            .content_type("application/json")
            .body(crate::api::openapi::DOCUMENT.as_slice())
    }
}

impl Describe for Document {
    fn describe(doc: &mut OperationDoc) {
        doc.answer(
            200,
            "An OpenAPI 3.1 document",
            Content::Json(json!({ "type": "object" })),
        );
    }
}

pub async fn openapi() -> Document {
    Document
}
