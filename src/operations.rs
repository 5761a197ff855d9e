//! The routes outside the Public API, for operators and their tooling:
//! health, readiness, metrics, the OpenAPI document, and GitHub's alert
//! endpoint. No token, no Public API conventions.

use actix_web::http::Method;
use actix_web::{web, HttpResponse};

use crate::api::{self, Endpoint};
use crate::scanning;
use crate::state::AppState;

/// The routes outside the Public API: no token, no Public API conventions.
pub fn endpoints() -> Vec<Endpoint> {
    vec![
        Endpoint::new(Method::GET, "/healthz", healthz),
        Endpoint::new(Method::GET, "/readyz", readyz),
        Endpoint::new(Method::GET, "/metrics", metrics),
        Endpoint::new(Method::GET, "/openapi.json", openapi),
        Endpoint::new(
            Method::POST,
            "/secret-scanning/github",
            scanning::handler::github_alert,
        ),
    ]
}

#[utoipa::path(get, path = "/healthz", tag = "Operations", security(()),
    responses((status = 200, description = "The process is up")))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// Ready when the database answers and takes writes and a key set is
/// loaded: without them, alerts could not be verified or applied.
#[utoipa::path(get, path = "/readyz", tag = "Operations", security(()),
    responses((status = 200, description = "The database answers and takes writes, and a GitHub key set is loaded"),
              (status = 503, description = "Not ready; `databaseError` says why the database is not")))]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let database = state.db.check_writable().await;
    let keys = state.keys.is_loaded();
    let ready = database.is_ok() && keys;
    let mut body = serde_json::json!({
        "status": if ready { "ready" } else { "not ready" },
        "database": database.is_ok(),
        "githubKeys": keys,
    });
    if let Err(reason) = database {
        body["databaseError"] = reason.into();
    }
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

#[utoipa::path(get, path = "/metrics", tag = "Operations", security(()),
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    state.metrics.refresh(state.db.in_use());
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render())
}

#[utoipa::path(get, path = "/openapi.json", tag = "Operations", security(()),
    responses((status = 200, description = "This document")))]
pub async fn openapi() -> HttpResponse {
    HttpResponse::Ok().json(api::openapi::document())
}
