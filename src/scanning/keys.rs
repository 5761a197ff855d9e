//! GitHub's secret-scanning key set: fetched from `LEAKGUARD_GITHUB_KEYS_URL`,
//! cached in memory, and stored in the database, where it serves two ends:
//! a restart during a GitHub outage can still verify, and replicas share
//! fetches. A replica fetches only after claiming the fetch in the database
//! (`db::key_sets::claim_fetch`); otherwise it reads the set that another
//! replica stored. So N replicas make one periodic fetch per refresh
//! interval, and one refetch per `min_refetch` for unknown key identifiers,
//! not N. An unknown identifier that cannot refetch yet is answered with
//! the time until it can (503 and `Retry-After`), so that GitHub retries
//! an alert signed with a key it has just rotated in.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::signature::VerifyingKey;
use crate::db::key_sets::{self, FetchPurpose};
use crate::db::Db;
use crate::metrics::Metrics;
use crate::time::now_micros;

/// The largest key-set document accepted. GitHub's is about 1 KiB; a
/// larger answer is a broken or hostile endpoint, never read whole.
pub const MAX_KEY_SET_BYTES: usize = 256 * 1024;

/// How often, at most, an unknown identifier makes a replica look in the
/// database for a set that another replica fetched.
const SHARED_SET_CHECK: Duration = Duration::from_secs(1);

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
    /// Not in the key set, even after a refetch.
    Unknown,
    /// Not in the key set, and a refetch is not allowed before
    /// `retry_after`: the key may be new, so the sender should retry then.
    NotYet {
        retry_after: Duration,
    },
    /// No key set at all: nothing cached and GitHub unreachable.
    Unavailable,
}

pub struct KeyStore {
    url: String,
    token: Option<SecretString>,
    min_refetch: Duration,
    refresh: Duration,
    http: reqwest::Client,
    db: Db,
    metrics: Arc<Metrics>,
    current: RwLock<Option<Arc<KeySet>>>,
    /// Held while looking for a key elsewhere (the database, GitHub), so
    /// that concurrent misses share one look.
    misses: tokio::sync::Mutex<Misses>,
}

#[derive(Default)]
struct Misses {
    /// When this replica last read the shared set after a miss.
    shared_checked: Option<Instant>,
    /// When this replica last fetched after a miss; the database's record
    /// is the shared one, this is the fallback while the database is away.
    fetched: Option<Instant>,
    /// No refetch for an unknown identifier before this, as the database
    /// said last: a flood of made-up identifiers is answered from here,
    /// without a claim (a write) per request.
    not_before: Option<Instant>,
}

impl KeyStore {
    pub fn new(
        url: String,
        token: Option<SecretString>,
        min_refetch: Duration,
        refresh: Duration,
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
            refresh,
            http,
            db,
            metrics,
            current: RwLock::new(None),
            misses: tokio::sync::Mutex::new(Misses::default()),
        }
    }

    /// Start-up: the set another replica fetched within `min_refetch`, or a
    /// fresh fetch; if GitHub is unreachable, the last good set stored.
    pub async fn load(&self) {
        let stored = match key_sets::load(&self.db).await {
            Ok(stored) => stored,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the stored key set");
                None
            }
        };
        let fresh_enough = now_micros() - self.min_refetch.as_micros() as i64;
        if let Some(stored) = stored.as_ref().filter(|s| s.fetched_at >= fresh_enough) {
            if self.install_stored(stored) {
                tracing::info!("using the key set another replica fetched moments ago");
                return;
            }
        }
        let now = now_micros();
        let _ = key_sets::claim_fetch(&self.db, FetchPurpose::Refresh, now, now).await;
        if self.fetch_and_store().await.is_ok() {
            return;
        }
        match stored {
            Some(stored) if self.install_stored(&stored) => {
                tracing::warn!("using the key set stored by an earlier fetch")
            }
            _ => tracing::warn!(
                "no GitHub key set available yet; alerts get 503 until a fetch succeeds"
            ),
        }
    }

    pub fn is_loaded(&self) -> bool {
        self.current.read().expect("lock").is_some()
    }

    pub async fn lookup(&self, identifier: &str) -> KeyLookup {
        if let Some(key) = self.cached(identifier) {
            return KeyLookup::Found(key);
        }
        let mut misses = self.misses.lock().await;
        // Another request may have found it while we waited for the lock.
        if let Some(key) = self.cached(identifier) {
            return KeyLookup::Found(key);
        }
        // Another replica may have fetched a newer set already.
        if misses
            .shared_checked
            .is_none_or(|at| at.elapsed() >= SHARED_SET_CHECK)
        {
            misses.shared_checked = Some(Instant::now());
            self.adopt_shared_set().await;
            if let Some(key) = self.cached(identifier) {
                return KeyLookup::Found(key);
            }
        }
        if !self.is_loaded() {
            // Nothing to verify with at all: always worth a try.
            misses.fetched = Some(Instant::now());
            let _ = self.fetch_and_store().await;
        } else {
            if let Some(not_before) = misses.not_before {
                let now = Instant::now();
                if now < not_before {
                    return KeyLookup::NotYet {
                        retry_after: not_before - now,
                    };
                }
            }
            match self
                .claim(FetchPurpose::UnknownKey, self.min_refetch, misses.fetched)
                .await
            {
                Ok(()) => {
                    misses.fetched = Some(Instant::now());
                    misses.not_before = Some(Instant::now() + self.min_refetch);
                    let _ = self.fetch_and_store().await;
                }
                Err(retry_after) => {
                    misses.not_before = Some(Instant::now() + retry_after);
                    return KeyLookup::NotYet { retry_after };
                }
            }
        }
        match self.cached(identifier) {
            Some(key) => KeyLookup::Found(key),
            None if self.is_loaded() => KeyLookup::Unknown,
            None => KeyLookup::Unavailable,
        }
    }

    /// The periodic refresh, run every `sync_interval()`: adopts a set that
    /// another replica fetched, and fetches once the shared set is older
    /// than the refresh interval. A failure keeps the last good set.
    pub async fn refresh(&self) {
        let _in_flight = self.misses.lock().await;
        self.adopt_shared_set().await;
        if self
            .claim(FetchPurpose::Refresh, self.refresh, None)
            .await
            .is_ok()
        {
            let _ = self.fetch_and_store().await;
        }
    }

    /// How often `refresh` should run: often enough that a set fetched by
    /// another replica reaches this one within a minute.
    pub fn sync_interval(&self) -> Duration {
        self.refresh.min(Duration::from_secs(60))
    }

    /// Claims the next fetch, unless some replica started one within
    /// `interval`; Err says when the next is allowed. While the database
    /// is away, this replica's own last fetch decides.
    async fn claim(
        &self,
        purpose: FetchPurpose,
        interval: Duration,
        fetched: Option<Instant>,
    ) -> Result<(), Duration> {
        let now = now_micros();
        let interval_micros = interval.as_micros() as i64;
        match key_sets::claim_fetch(&self.db, purpose, now, now - interval_micros).await {
            Ok(true) => Ok(()),
            Ok(false) => {
                let started = key_sets::last_fetch_started(&self.db, purpose)
                    .await
                    .ok()
                    .flatten()
                    .unwrap_or(now);
                let wait = (started + interval_micros - now).max(0) as u64;
                Err(Duration::from_micros(wait))
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot claim a key-set fetch in the database");
                match fetched {
                    Some(at) if at.elapsed() < interval => Err(interval - at.elapsed()),
                    _ => Ok(()),
                }
            }
        }
    }

    fn cached(&self, identifier: &str) -> Option<VerifyingKey> {
        self.current
            .read()
            .expect("lock")
            .as_ref()
            .and_then(|set| set.keys.get(identifier).cloned())
    }

    fn loaded_fetched_at(&self) -> Option<i64> {
        self.current
            .read()
            .expect("lock")
            .as_ref()
            .map(|set| set.fetched_at_micros)
    }

    /// Installs the stored set if it is newer than the one loaded.
    async fn adopt_shared_set(&self) {
        match key_sets::load(&self.db).await {
            Ok(Some(stored))
                if self
                    .loaded_fetched_at()
                    .is_none_or(|at| stored.fetched_at > at) =>
            {
                self.install_stored(&stored);
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot read the stored key set"),
        }
    }

    /// Whether the stored set parsed and is now loaded.
    fn install_stored(&self, stored: &key_sets::StoredKeySet) -> bool {
        match parse_key_set(&stored.body, stored.fetched_at) {
            Ok(set) => {
                self.install(set);
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "the stored key set does not parse");
                false
            }
        }
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
        if let Err(e) = key_sets::save(&self.db, &body, now).await {
            tracing::warn!(error = %e, "could not store the key set");
        }
        Ok(())
    }

    async fn fetch(&self) -> anyhow::Result<String> {
        let too_large =
            || anyhow::anyhow!("the key set is larger than {MAX_KEY_SET_BYTES} bytes; not read");
        let bytes = if let Some(path) = self.url.strip_prefix("file://") {
            let file = tokio::fs::File::open(path).await?;
            if file.metadata().await?.len() > MAX_KEY_SET_BYTES as u64 {
                return Err(too_large());
            }
            let mut bytes = Vec::new();
            use tokio::io::AsyncReadExt;
            file.take(MAX_KEY_SET_BYTES as u64 + 1)
                .read_to_end(&mut bytes)
                .await?;
            bytes
        } else {
            let mut request = self
                .http
                .get(&self.url)
                .header("Accept", "application/json");
            if let Some(token) = &self.token {
                request = request.bearer_auth(token.expose_secret());
            }
            let mut response = request.send().await?.error_for_status()?;
            if response
                .content_length()
                .is_some_and(|length| length > MAX_KEY_SET_BYTES as u64)
            {
                return Err(too_large());
            }
            let mut bytes = Vec::new();
            while let Some(chunk) = response.chunk().await? {
                if bytes.len() + chunk.len() > MAX_KEY_SET_BYTES {
                    return Err(too_large());
                }
                bytes.extend_from_slice(&chunk);
            }
            bytes
        };
        if bytes.len() > MAX_KEY_SET_BYTES {
            return Err(too_large());
        }
        let body = String::from_utf8(bytes)
            .map_err(|_| anyhow::anyhow!("the key set is not UTF-8 text"))?;
        // Validate before accepting: a broken document must not replace a
        // good set.
        parse_key_set(&body, 0)?;
        Ok(body)
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
