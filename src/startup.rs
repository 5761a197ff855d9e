//! `Application::build` wires settings, database, key set, outbox worker and
//! HTTP server together. It binds its own listener, so tests use port 0.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::http::Method;
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpResponse, HttpServer};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tracing_actix_web::TracingLogger;

use crate::api::{
    self, body::BodyBudget, error::ApiError, last_used::LastUsed, rate_limit::RateLimiter,
    usage::Usage,
};
use crate::audit::checkpoints::Checkpointer;
use crate::config::Settings;
use crate::db::Db;
use crate::metrics::Metrics;
use crate::middleware::{echo_request_id, record_request, RequestSpan};
use crate::notify::{transport::Transport, worker::Worker, Notifier};
use crate::scanning::{keys::KeyStore, recorder::AlertRecorder};
use crate::state::AppState;
use crate::token_lookup::TokenLookup;

pub struct Application {
    port: u16,
    metrics_port: Option<u16>,
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
        let urgent_mail = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let keys = Arc::new(KeyStore::new(
            settings.github_keys_url.clone(),
            settings.github_token.clone(),
            settings.github_keys_min_refetch,
            settings.github_keys_refresh,
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
            urgent_mail.clone(),
            metrics.clone(),
        )?;

        let checkpointer = Checkpointer::from_settings(&settings, db.clone())?;
        if checkpointer.is_none() {
            tracing::warn!(
                "LEAKGUARD_AUDIT_CHECKPOINT_KEY is not set: the audit trail is not anchored \
                 outside the database (see docs/OPERATIONS.md)"
            );
        }

        let (shutdown, shutdown_rx) = watch::channel(false);
        let (alert_recorder, recorder_task) = AlertRecorder::start(db.clone(), shutdown_rx.clone());
        let (token_lookup, lookup_task) = TokenLookup::start(db.clone(), shutdown_rx.clone());
        let listener = TcpListener::bind(settings.bind)
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", settings.bind))?;
        let port = listener.local_addr()?.port();
        let metrics_listener = match settings.metrics_bind {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .map_err(|e| anyhow::anyhow!("cannot listen on {addr} for metrics: {e}"))?,
            ),
            None => None,
        };
        let metrics_port = match &metrics_listener {
            Some(listener) => Some(listener.local_addr()?.port()),
            None => None,
        };
        let state = web::Data::new(AppState {
            notifier: Notifier::new(
                settings.public_url.clone(),
                wake,
                urgent_mail,
                metrics.clone(),
            ),
            rate_limiter: RateLimiter::new(
                settings.rate_limit_burst,
                settings.rate_limit_per_second,
            ),
            auth_failures: RateLimiter::new(
                settings.auth_failure_burst,
                settings.auth_failure_per_second,
            ),
            sign_in_limits: crate::console::sign_in::SignInLimits::new(&settings),
            last_used: LastUsed::default(),
            usage: Usage::default(),
            alert_bodies: BodyBudget::new(
                settings.alert_bodies_max_bytes,
                settings.alert_bodies_max_bytes_per_client,
                settings.body_timeout,
            ),
            alert_recorder,
            token_lookup,
            readiness: Default::default(),
            settings,
            db,
            keys,
            metrics,
        });
        let server = http_server(listener, metrics_listener, state.clone())?;

        let mut background = vec![
            recorder_task,
            lookup_task,
            tokio::spawn(worker.run(shutdown_rx.clone())),
            tokio::spawn(flush_usage(state.clone(), shutdown_rx.clone())),
            tokio::spawn(refresh_keys(state.clone(), shutdown_rx.clone())),
        ];
        if let Some(checkpointer) = checkpointer {
            background.push(tokio::spawn(checkpointer.run(shutdown_rx)));
        }
        Ok(Application {
            port,
            metrics_port,
            server,
            state,
            shutdown,
            background,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port `/metrics` is served on when `LEAKGUARD_METRICS_BIND` is set.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics_port
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
        flush_use(&self.state).await;
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

/// How often what tokens' uses leave in memory (`last_used`, `usage`) is
/// written.
const FLUSH_INTERVAL: Duration = Duration::from_secs(15);
/// How often expired usage rows, sign-in links and sessions are deleted.
const PRUNE_INTERVAL: Duration = Duration::from_secs(3600);

/// Writes tokens' last-used times and usage summaries every
/// `FLUSH_INTERVAL`, and prunes what has expired every `PRUNE_INTERVAL`
/// (the first time right at start).
async fn flush_usage(state: web::Data<AppState>, mut shutdown: watch::Receiver<bool>) {
    let mut next_prune = std::time::Instant::now();
    loop {
        if std::time::Instant::now() >= next_prune {
            prune_expired(&state).await;
            next_prune = std::time::Instant::now() + PRUNE_INTERVAL;
        }
        tokio::select! {
            _ = tokio::time::sleep(FLUSH_INTERVAL) => {}
            _ = shutdown.changed() => return,
        }
        flush_use(&state).await;
    }
}

async fn flush_use(state: &AppState) {
    if let Err(e) = state.last_used.flush(&state.db).await {
        tracing::warn!(error = %e, "could not flush last-used times");
    }
    if let Err(e) = state.usage.flush(&state.db).await {
        tracing::warn!(error = %e, "could not flush token usage");
    }
}

async fn prune_expired(state: &AppState) {
    let now = crate::time::now_micros();
    let before = now - state.settings.usage_retention.as_micros() as i64;
    match crate::db::token_usage::prune(&state.db, before).await {
        Ok(n) if n > 0 => tracing::info!(rows = n, "pruned token usage past its retention"),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "could not prune token usage"),
    }
    let idle_before = now - state.settings.session_idle_timeout.as_micros() as i64;
    let pruned = crate::db::console::prune(
        &state.db,
        crate::time::Timestamp(now),
        crate::time::Timestamp(idle_before),
    )
    .await;
    if let Err(e) = pruned {
        tracing::warn!(error = %e, "could not prune expired console sessions and sign-in links");
    }
}

async fn refresh_keys(state: web::Data<AppState>, mut shutdown: watch::Receiver<bool>) {
    let every = state.keys.sync_interval();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => state.keys.refresh().await,
            _ = shutdown.changed() => return,
        }
    }
}

/// One server for both listeners: the main one, and the metrics one when
/// `LEAKGUARD_METRICS_BIND` is set (plain HTTP, `/metrics` only, which the
/// main listener then no longer answers).
fn http_server(
    listener: TcpListener,
    metrics: Option<TcpListener>,
    state: web::Data<AppState>,
) -> anyhow::Result<Server> {
    let tls = crate::tls::server_config(&state.settings)?;
    let client_header_timeout = state.settings.client_header_timeout;
    let metrics_listener = web::Data::new(MetricsListener(match &metrics {
        Some(listener) => Some(listener.local_addr()?),
        None => None,
    }));
    let server = HttpServer::new(move || {
        App::new()
            .wrap(from_fn(record_request))
            .wrap(from_fn(echo_request_id))
            .wrap(TracingLogger::<RequestSpan>::new())
            .wrap(from_fn(crate::operations::metrics_apart))
            .app_data(state.clone())
            .app_data(metrics_listener.clone())
            .app_data(web::QueryConfig::default().error_handler(api::error::query_error_handler))
            .configure(|cfg| api::route::configure(cfg, crate::operations::resources()))
            .service(crate::console::scope())
            .service(
                web::scope("")
                    .wrap(from_fn(api::conventions))
                    .configure(api::configure),
            )
            .default_service(web::to(not_found))
    })
    .disable_signals()
    .client_request_timeout(client_header_timeout)
    .shutdown_timeout(30);
    let server = match tls {
        Some(config) => server.listen_rustls_0_23(listener, config)?,
        None => server.listen(listener)?,
    };
    let server = match metrics {
        Some(listener) => server.listen(listener)?,
        None => server,
    };
    Ok(server.run())
}

/// The local address of the metrics listener, if there is one.
pub struct MetricsListener(pub Option<std::net::SocketAddr>);

/// Every (method, path) of the API and the operations routes, from the
/// registration that both the router and the OpenAPI document are built
/// from. The console's HTML pages (`console::endpoints()`) are no API and are
/// not in it; its own role and isolation tests read that list.
pub fn routes() -> Vec<(Method, &'static str)> {
    crate::operations::endpoints()
        .into_iter()
        .chain(api::endpoints())
        .map(|e| (e.method, e.path))
        .collect()
}

async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound("no such endpoint".into()))
}
