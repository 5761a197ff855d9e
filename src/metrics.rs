//! Prometheus metrics. One registry per application (tests run several in a
//! process), exposed at `GET /metrics`.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    pub http_requests: IntCounterVec,
    pub http_latency: HistogramVec,
    pub alerts: IntCounterVec,
    pub alert_latency: Histogram,
    pub tokens_reported: IntCounterVec,
    pub tokens_revoked: IntCounter,
    pub key_fetches: IntCounterVec,
    pub key_set_fetched_at: IntGauge,
    pub key_set_age: IntGauge,
    pub outbox_queued: IntCounter,
    pub outbox_sent: IntCounter,
    pub outbox_failed: IntCounter,
    pub outbox_dead: IntCounter,
    pub outbox_due: IntGauge,
    pub outbox_dead_messages: IntGauge,
    pub outbox_oldest_due_seconds: IntGauge,
    pub db_connections_in_use: IntGauge,
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new_custom(Some("leakguard".into()), None).expect("registry");
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("metric");
            registry.register(Box::new(c.clone())).expect("register");
            c
        };
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("metric");
            registry.register(Box::new(c.clone())).expect("register");
            c
        };
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("metric");
            registry.register(Box::new(g.clone())).expect("register");
            g
        };
        let http_latency = HistogramVec::new(
            HistogramOpts::new("http_request_duration_seconds", "HTTP request latency"),
            &["route", "method", "status"],
        )
        .expect("metric");
        registry
            .register(Box::new(http_latency.clone()))
            .expect("register");
        let alert_latency = Histogram::with_opts(
            HistogramOpts::new(
                "alert_duration_seconds",
                "Time to verify and process one GitHub alert",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
        )
        .expect("metric");
        registry
            .register(Box::new(alert_latency.clone()))
            .expect("register");
        Metrics {
            http_requests: counter_vec(
                "http_requests_total",
                "HTTP requests by route and status",
                &["route", "method", "status"],
            ),
            http_latency,
            alerts: counter_vec(
                "alerts_total",
                "GitHub secret-scanning alerts by outcome",
                &["outcome"],
            ),
            alert_latency,
            tokens_reported: counter_vec(
                "tokens_reported_total",
                "Tokens reported by GitHub, by feedback label",
                &["label"],
            ),
            tokens_revoked: counter("tokens_revoked_total", "Tokens revoked"),
            key_fetches: counter_vec(
                "github_key_fetches_total",
                "GitHub key-set fetches by result",
                &["result"],
            ),
            key_set_fetched_at: gauge(
                "github_key_set_fetched_at_seconds",
                "Unix time at which the loaded key set was fetched (0: none loaded)",
            ),
            key_set_age: gauge(
                "github_key_set_age_seconds",
                "Seconds since the loaded key set was fetched (-1: none loaded)",
            ),
            outbox_queued: counter("outbox_queued_total", "Emails queued"),
            outbox_sent: counter("outbox_sent_total", "Emails sent"),
            outbox_failed: counter("outbox_failed_total", "Email send attempts that failed"),
            outbox_dead: counter(
                "outbox_dead_total",
                "Emails given up on after the last attempt",
            ),
            outbox_due: gauge("outbox_due_messages", "Emails waiting to be sent"),
            outbox_dead_messages: gauge("outbox_dead_messages", "Dead emails kept in the outbox"),
            outbox_oldest_due_seconds: gauge(
                "outbox_oldest_due_age_seconds",
                "Age of the oldest email waiting to be sent",
            ),
            db_connections_in_use: gauge(
                "db_connections_in_use",
                "Database pool connections in use",
            ),
            registry,
        }
    }

    /// Gauges that are computed when scraped.
    pub fn refresh(&self, db_connections_in_use: u32) {
        self.db_connections_in_use.set(db_connections_in_use as i64);
        let fetched_at = self.key_set_fetched_at.get();
        self.key_set_age.set(if fetched_at > 0 {
            (crate::time::now_micros() / 1_000_000 - fetched_at).max(0)
        } else {
            -1
        });
    }

    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding");
        String::from_utf8(buf).expect("prometheus text is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
