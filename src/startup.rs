//! `Application::build` wires settings, database, key set, outbox worker and
//! HTTP server together. It binds its own listener, so tests use port 0.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServerHandle, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::Method;
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, App, HttpMessage, HttpResponse, HttpServer};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tracing_actix_web::{RequestId, TracingLogger};

use crate::api::{self, error::ApiError, last_used::LastUsed, rate_limit::RateLimiter, Endpoint};
use crate::config::Settings;
use crate::db::Db;
use crate::metrics::Metrics;
use crate::notify::{transport::Transport, worker::Worker, Notifier};
use crate::scanning::{self, keys::KeyStore, recorder::AlertRecorder};
use crate::token_lookup::TokenLookup;

/// What every handler can reach.
pub struct AppState {
    pub settings: Settings,
    pub db: Db,
    pub keys: Arc<KeyStore>,
    pub notifier: Notifier,
    pub metrics: Arc<Metrics>,
    pub rate_limiter: RateLimiter,
    pub last_used: LastUsed,
    pub alert_recorder: AlertRecorder,
    pub token_lookup: TokenLookup,
}

pub struct Application {
    port: u16,
    server: Server,
    state: web::Data<AppState>,
    shutdown: watch::Sender<bool>,
    background: Vec<JoinHandle<()>>,
}

impl Application {
    /// Connects, migrates, loads the key set and binds; nothing is served
    /// until `run_until_stopped`.
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        let db = Db::connect(&settings.database_url).await.map_err(|e| {
            anyhow::anyhow!(
                "cannot open the database {}: {e}",
                crate::telemetry::redact_url(&settings.database_url)
            )
        })?;
        db.migrate()
            .await
            .map_err(|e| anyhow::anyhow!("cannot apply database migrations: {e:#}"))?;
        Application::build_with_db(settings, db).await
    }

    pub async fn build_with_db(settings: Settings, db: Db) -> anyhow::Result<Application> {
        let metrics = Arc::new(Metrics::new());
        let wake = Arc::new(Notify::new());
        let keys = Arc::new(KeyStore::new(
            settings.github_keys_url.clone(),
            settings.github_token.clone(),
            settings.github_keys_min_refetch,
            db.clone(),
            metrics.clone(),
        ));
        keys.load().await;

        let transport = Transport::from_settings(&settings)?;
        tracing::info!("email delivery: {}", transport.describe());
        let worker = Worker::new(
            &settings,
            db.clone(),
            transport,
            wake.clone(),
            metrics.clone(),
        )?;

        let (shutdown, shutdown_rx) = watch::channel(false);
        let (alert_recorder, recorder_task) = AlertRecorder::start(db.clone(), shutdown_rx.clone());
        let (token_lookup, lookup_task) = TokenLookup::start(db.clone(), shutdown_rx.clone());
        let listener = TcpListener::bind(settings.bind)
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", settings.bind))?;
        let port = listener.local_addr()?.port();
        let state = web::Data::new(AppState {
            notifier: Notifier::new(settings.public_url.clone(), wake, metrics.clone()),
            rate_limiter: RateLimiter::new(
                settings.rate_limit_burst,
                settings.rate_limit_per_second,
            ),
            last_used: LastUsed::default(),
            alert_recorder,
            token_lookup,
            settings,
            db,
            keys,
            metrics,
        });
        let server = http_server(listener, state.clone())?;

        let background = vec![
            recorder_task,
            lookup_task,
            tokio::spawn(worker.run(shutdown_rx.clone())),
            tokio::spawn(flush_last_used(state.clone(), shutdown_rx.clone())),
            tokio::spawn(refresh_keys(state.clone(), shutdown_rx)),
        ];
        Ok(Application {
            port,
            server,
            state,
            shutdown,
            background,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone()
    }

    /// Serves until `handle().stop`, then drains: the server finishes
    /// in-flight requests, the worker the message in hand.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let result = self.server.await;
        let _ = self.shutdown.send(true);
        for task in self.background {
            let _ = task.await;
        }
        if let Err(e) = self.state.last_used.flush(&self.state.db).await {
            tracing::warn!(error = %e, "could not flush last-used times");
        }
        self.state.db.close().await;
        tracing::info!("stopped");
        Ok(result?)
    }
}

/// Stops `handle` gracefully on SIGTERM or SIGINT. Only `serve` installs
/// this: an application embedded in tests leaves the signals alone.
pub fn stop_on_signal(handle: ServerHandle) {
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown signal received; draining");
        handle.stop(true).await;
    });
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn flush_last_used(state: web::Data<AppState>, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(15)) => {}
            _ = shutdown.changed() => return,
        }
        if let Err(e) = state.last_used.flush(&state.db).await {
            tracing::warn!(error = %e, "could not flush last-used times");
        }
    }
}

async fn refresh_keys(state: web::Data<AppState>, mut shutdown: watch::Receiver<bool>) {
    let every = state.settings.github_keys_refresh;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => state.keys.refresh().await,
            _ = shutdown.changed() => return,
        }
    }
}

fn http_server(listener: TcpListener, state: web::Data<AppState>) -> anyhow::Result<Server> {
    let tls = crate::tls::server_config(&state.settings)?;
    let server = HttpServer::new(move || {
        App::new()
            .wrap(from_fn(record_request))
            .wrap(from_fn(echo_request_id))
            .wrap(TracingLogger::default())
            .app_data(state.clone())
            .app_data(web::QueryConfig::default().error_handler(api::error::query_error_handler))
            .configure(|cfg| api::register(cfg, operational_endpoints()))
            .service(
                web::scope("")
                    .wrap(from_fn(api::conventions))
                    .configure(api::configure),
            )
            .default_service(web::to(not_found))
    })
    .disable_signals()
    .shutdown_timeout(30);
    let server = match tls {
        Some(config) => server.listen_rustls_0_23(listener, config)?,
        None => server.listen(listener)?,
    };
    Ok(server.run())
}

/// The routes outside the Public API: no token, no Public API conventions.
fn operational_endpoints() -> Vec<Endpoint> {
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

/// Every (method, path) the server answers: all of them must be in the
/// OpenAPI document (the `openapi` integration test checks).
pub fn routes() -> Vec<(Method, &'static str)> {
    operational_endpoints()
        .into_iter()
        .chain(api::endpoints())
        .map(|e| (e.method, e.path))
        .collect()
}

async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound("no such endpoint".into()))
}

#[utoipa::path(get, path = "/healthz", tag = "Operations", security(()),
    responses((status = 200, description = "The process is up")))]
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// Ready when the database answers and takes writes and a key set is
/// loaded: without them, alerts could not be verified or applied.
#[utoipa::path(get, path = "/readyz", tag = "Operations", security(()),
    responses((status = 200, description = "The database answers and takes writes, and a GitHub key set is loaded"),
              (status = 503, description = "Not ready; `databaseError` says why the database is not")))]
async fn readyz(state: web::Data<AppState>) -> HttpResponse {
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
async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    state.metrics.refresh(state.db.in_use());
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render())
}

#[utoipa::path(get, path = "/openapi.json", tag = "Operations", security(()),
    responses((status = 200, description = "This document")))]
async fn openapi() -> HttpResponse {
    HttpResponse::Ok().json(api::openapi::document())
}

/// Echoes tracing-actix-web's request id, which every log line of the
/// request carries, as `X-Request-Id`.
async fn echo_request_id(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = req.extensions().get::<RequestId>().copied();
    let mut res = next.call(req).await?;
    if let Some(id) = id {
        if let Ok(value) = HeaderValue::from_str(&id.to_string()) {
            res.headers_mut()
                .insert(HeaderName::from_static("x-request-id"), value);
        }
    }
    Ok(res)
}

/// HTTP request counts and latencies by route pattern (never by raw path,
/// which would carry ids) and status.
async fn record_request(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = std::time::Instant::now();
    let method = req.method().to_string();
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let res = next.call(req).await?;
    if let Some(state) = state {
        let route = res
            .request()
            .match_pattern()
            .unwrap_or_else(|| "unmatched".to_string());
        let route = if route.is_empty() {
            "/".to_string()
        } else {
            route
        };
        let status = res.status().as_u16();
        let elapsed = started.elapsed();
        let status_label = status.to_string();
        let labels = [route.as_str(), method.as_str(), status_label.as_str()];
        state.metrics.http_requests.with_label_values(&labels).inc();
        state
            .metrics
            .http_latency
            .with_label_values(&labels)
            .observe(elapsed.as_secs_f64());
        // The access log: inside the request's span, so it carries the
        // request id. Probes and scrapes only at debug level.
        let elapsed_ms = elapsed.as_secs_f64() * 1000.0;
        if matches!(route.as_str(), "/healthz" | "/readyz" | "/metrics") {
            tracing::debug!(status, elapsed_ms, "request completed");
        } else {
            tracing::info!(status, elapsed_ms, "request completed");
        }
    }
    Ok(res)
}
