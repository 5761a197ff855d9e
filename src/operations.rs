//! The routes outside the Public API, for operators and their tooling:
//! health, readiness, metrics, the OpenAPI document, and GitHub's alert
//! endpoint. No token, no Public API conventions.

use std::time::{Duration, Instant};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse, ResponseError};

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

/// Ready when the database answers and takes writes and a key set is
/// loaded: without them, alerts could not be verified or applied.
#[utoipa::path(get, path = "/readyz", tag = "Operations", security(()),
    responses((status = 200, description = "The database answers and takes writes, and a GitHub key set is loaded; `checkedAt` is when the database was last probed (at most once a second)"),
              (status = 503, description = "Not ready; `databaseError` says why the database is not")))]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let probe = state.readiness.database(&state.db).await;
    let database = probe.database;
    let keys = state.keys.is_loaded();
    let ready = database.is_ok() && keys;
    let mut body = serde_json::json!({
        "status": if ready { "ready" } else { "not ready" },
        "database": database.is_ok(),
        "checkedAt": probe.checked_at,
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
