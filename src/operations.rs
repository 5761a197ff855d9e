//! The routes outside the Public API, for operators and their tooling:
//! health, readiness, metrics, the OpenAPI document, GitHub's alert
//! endpoint, and OAuth's token endpoint. No token, no Public API
//! conventions.

use actix_web::body::BoxBody;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, Responder};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use crate::api::doc::{Content, Describe, OperationDoc};
use crate::api::route::{Endpoint, Resource};
use crate::scanning;
use crate::state::AppState;

/// The routes outside the Public API: no token, no Public API conventions.
pub fn resources() -> Vec<Resource> {
    let mut all = vec![
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
            OperationDoc::new("getMetrics", "Prometheus metrics"),
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
    ];
    all.extend(crate::oauth::token::resources());
    all
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

/// `GET /readyz`: what this replica needs to serve, and whether it has it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Readiness {
    /// `ready` or `not ready`.
    #[schema(value_type = String, pattern = "^(ready|not ready)$")]
    status: &'static str,
    /// Whether the database answers and takes writes.
    database: bool,
    /// Whether a GitHub key set is loaded.
    github_keys: bool,
    /// Why the database is not ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    database_error: Option<String>,
}

impl Responder for Readiness {
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

impl Describe for Readiness {
    fn describe(doc: &mut OperationDoc) {
        let schema = doc.schema::<Readiness>();
        doc.answer(
            200,
            "The database answers and takes writes, and a GitHub key set is loaded",
            Content::Json(schema.clone()),
        );
        doc.answer(
            503,
            "Not ready; databaseError says why the database is not",
            Content::Json(schema),
        );
    }
}

pub async fn readyz(state: web::Data<AppState>) -> Readiness {
    let database = state.db.check_writable().await;
    let github_keys = state.keys.is_loaded();
    Readiness {
        status: if database.is_ok() && github_keys {
            "ready"
        } else {
            "not ready"
        },
        database: database.is_ok(),
        github_keys,
        database_error: database.err().map(Into::into),
    }
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
