//! GitHub's secret-scanning key set: fetched from `LEAKGUARD_GITHUB_KEYS_URL`,
//! cached in memory, persisted in the database so that a restart during a
//! GitHub outage still verifies, and refetched when an alert names a key we
//! do not know (one fetch in flight, at most one per `min_refetch`).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::signature::VerifyingKey;
use crate::db::Db;
use crate::metrics::Metrics;
use crate::time::now_micros;

/// The JSON GitHub serves.
#[derive(Debug, Serialize, Deserialize)]
pub struct KeySetDocument {
    pub public_keys: Vec<PublishedKey>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct PublishedKey {
    pub key_identifier: String,
    pub key: String,
    #[serde(default)]
    pub is_current: bool,
}

#[derive(Debug)]
struct KeySet {
    keys: HashMap<String, VerifyingKey>,
    fetched_at_micros: i64,
}

#[derive(Debug, PartialEq, Eq)]
pub enum KeyLookup {
    Found(VerifyingKey),
    /// Not in the key set, even after a refetch (or a refetch was not due).
    Unknown,
    /// No key set at all: nothing cached and GitHub unreachable.
    Unavailable,
}

pub struct KeyStore {
    url: String,
    token: Option<SecretString>,
    min_refetch: Duration,
    http: reqwest::Client,
    db: Db,
    metrics: Arc<Metrics>,
    current: RwLock<Option<Arc<KeySet>>>,
    /// Held while fetching, so concurrent misses share one fetch; remembers
    /// when the last miss-driven fetch started.
    refetch: tokio::sync::Mutex<Option<Instant>>,
}

impl KeyStore {
    pub fn new(
        url: String,
        token: Option<SecretString>,
        min_refetch: Duration,
        db: Db,
        metrics: Arc<Metrics>,
    ) -> KeyStore {
        let http = reqwest::Client::builder()
            .user_agent(concat!("leakguard/", env!("CARGO_PKG_VERSION")))
            .timeout(Duration::from_secs(5))
            .build()
            .expect("HTTP client");
        KeyStore {
            url,
            token,
            min_refetch,
            http,
            db,
            metrics,
            current: RwLock::new(None),
            refetch: tokio::sync::Mutex::new(None),
        }
    }

    /// Start-up: fetch a fresh set; if GitHub is unreachable, fall back to
    /// the last good set from the database.
    pub async fn load(&self) {
        if self.fetch_and_store().await.is_ok() {
            return;
        }
        match self.load_persisted().await {
            Ok(true) => tracing::warn!("using the key set persisted by an earlier fetch"),
            Ok(false) => tracing::warn!(
                "no GitHub key set available yet; alerts get 503 until a fetch succeeds"
            ),
            Err(e) => tracing::error!(error = %e, "cannot read the persisted key set"),
        }
    }

    pub fn is_loaded(&self) -> bool {
        self.current.read().expect("lock").is_some()
    }

    pub async fn lookup(&self, identifier: &str) -> KeyLookup {
        if let Some(key) = self.cached(identifier) {
            return KeyLookup::Found(key);
        }
        {
            let mut last = self.refetch.lock().await;
            // Another request may have fetched while we waited for the lock.
            if let Some(key) = self.cached(identifier) {
                return KeyLookup::Found(key);
            }
            let due = last.is_none_or(|at| at.elapsed() >= self.min_refetch) || !self.is_loaded();
            if due {
                *last = Some(Instant::now());
                let _ = self.fetch_and_store().await;
            }
        }
        match self.cached(identifier) {
            Some(key) => KeyLookup::Found(key),
            None if self.is_loaded() => KeyLookup::Unknown,
            None => KeyLookup::Unavailable,
        }
    }

    /// The periodic refresh: one fetch, sharing the in-flight guard with
    /// miss-driven fetches; a failure keeps the last good set.
    pub async fn refresh(&self) {
        let _in_flight = self.refetch.lock().await;
        let _ = self.fetch_and_store().await;
    }

    fn cached(&self, identifier: &str) -> Option<VerifyingKey> {
        self.current
            .read()
            .expect("lock")
            .as_ref()
            .and_then(|set| set.keys.get(identifier).cloned())
    }

    async fn fetch_and_store(&self) -> anyhow::Result<()> {
        let result = self.fetch().await;
        let outcome = if result.is_ok() { "success" } else { "failure" };
        self.metrics.key_fetches.with_label_values(&[outcome]).inc();
        let body = match result {
            Ok(body) => body,
            Err(e) => {
                tracing::warn!(error = %e, "GitHub key-set fetch failed; keeping the last good set");
                return Err(e);
            }
        };
        let now = now_micros();
        let set = parse_key_set(&body, now)?;
        self.install(set);
        if let Err(e) = self.persist(&body, now).await {
            tracing::warn!(error = %e, "could not persist the key set");
        }
        Ok(())
    }

    async fn fetch(&self) -> anyhow::Result<String> {
        let body = if let Some(path) = self.url.strip_prefix("file://") {
            tokio::fs::read_to_string(path).await?
        } else {
            let mut request = self
                .http
                .get(&self.url)
                .header("Accept", "application/json");
            if let Some(token) = &self.token {
                request = request.bearer_auth(token.expose_secret());
            }
            let response = request.send().await?.error_for_status()?;
            response.text().await?
        };
        // Validate before accepting: a broken document must not replace a
        // good set.
        parse_key_set(&body, 0)?;
        Ok(body)
    }

    async fn load_persisted(&self) -> anyhow::Result<bool> {
        match crate::db::key_sets::load(&self.db).await? {
            Some(stored) => {
                self.install(parse_key_set(&stored.body, stored.fetched_at)?);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn persist(&self, body: &str, fetched_at: i64) -> crate::db::Result<()> {
        crate::db::key_sets::save(&self.db, body, fetched_at).await
    }

    fn install(&self, set: KeySet) {
        self.metrics
            .key_set_fetched_at
            .set(set.fetched_at_micros / 1_000_000);
        tracing::info!(keys = set.keys.len(), "GitHub key set loaded");
        *self.current.write().expect("lock") = Some(Arc::new(set));
    }
}

fn parse_key_set(body: &str, fetched_at_micros: i64) -> anyhow::Result<KeySet> {
    let doc: KeySetDocument = serde_json::from_str(body)
        .map_err(|e| anyhow::anyhow!("the key set is not GitHub's JSON format: {e}"))?;
    let mut keys = HashMap::new();
    for published in doc.public_keys {
        match VerifyingKey::from_spki_pem(&published.key) {
            // Every listed key is valid; is_current only marks the newest.
            Ok(key) => {
                keys.insert(published.key_identifier, key);
            }
            Err(e) => tracing::warn!(
                key_identifier = %published.key_identifier,
                error = %e,
                "skipping an unusable key in the key set"
            ),
        }
    }
    if keys.is_empty() {
        anyhow::bail!("the key set has no usable P-256 key");
    }
    Ok(KeySet {
        keys,
        fetched_at_micros,
    })
}
