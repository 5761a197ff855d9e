//! Typed settings. Every value comes from a `LEAKGUARD_*` environment variable
//! or from the same key (lower case, without the prefix) in an optional TOML
//! file named by `LEAKGUARD_CONFIG`; the environment wins. Every bad value is
//! reported, by name, before anything starts.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;
use secrecy::SecretString;

use crate::client::TrustedProxies;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub database_url: String,
    pub bind: SocketAddr,
    pub public_url: String,
    pub log_format: LogFormat,

    pub github_keys_url: String,
    pub github_token: Option<SecretString>,
    /// Lower bound between two key-set fetches, so random key identifiers
    /// cannot make us hammer GitHub.
    pub github_keys_min_refetch: Duration,
    /// How often the key set is refreshed anyway, so that a key GitHub
    /// withdraws stops being trusted without a restart.
    pub github_keys_refresh: Duration,
    pub max_alert_bytes: usize,
    pub max_body_bytes: usize,
    /// Alert bytes held in memory at once, over all requests: past it an
    /// alert gets 503 before its body is read.
    pub alert_bodies_max_bytes: usize,
    /// The same, for the requests of one client address.
    pub alert_bodies_max_bytes_per_client: usize,
    /// How long a client may take to send a request's head (the first
    /// request of a connection; see docs/SECURITY.md).
    pub client_header_timeout: Duration,
    /// How long a client may take to send a request body, once the
    /// handler starts reading it.
    pub body_timeout: Duration,
    /// Proxies whose `X-Forwarded-For` names the client; everyone else is
    /// the client themselves (`crate::client`).
    pub trusted_proxies: TrustedProxies,
    /// Failed Public API authentications one client address may make at
    /// once, and per second afterwards, before it gets 429 without a lookup.
    pub auth_failure_burst: u32,
    pub auth_failure_per_second: f64,
    /// When set, `/metrics` is served on this address only, so that a
    /// network policy can keep it inside.
    pub metrics_bind: Option<SocketAddr>,

    pub smtp_url: Option<SecretString>,
    pub smtp_username: Option<String>,
    pub smtp_password: Option<SecretString>,
    pub smtp_timeout: Duration,
    /// Allows `smtp://` to a host that is not this machine without
    /// STARTTLS (credentials would then cross the network in clear).
    pub smtp_allow_plaintext: bool,
    pub mail_dir: PathBuf,
    pub mail_from: String,

    pub outbox_max_attempts: u32,
    pub outbox_backoff_base: Duration,
    pub outbox_poll_interval: Duration,
    pub outbox_lease: Duration,

    pub rate_limit_burst: u32,
    pub rate_limit_per_second: f64,

    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,

    /// The Ed25519 key that signs audit checkpoints; kept out of the
    /// database, so that a database writer cannot sign a rewritten chain.
    pub audit_checkpoint_key: Option<PathBuf>,
    /// Where checkpoints are appended (they are logged as well).
    pub audit_checkpoint_file: Option<PathBuf>,
    pub audit_checkpoint_interval: Duration,
    /// How long a token's usage summary is kept.
    pub usage_retention: Duration,
    /// How long a console sign-in link stays valid.
    pub sign_in_link_lifetime: Duration,
    /// A console session ends after this long without a request…
    pub session_idle_timeout: Duration,
    /// …and after this long in any case.
    pub session_absolute_timeout: Duration,
    /// Sign-in emails one address may ask for per hour.
    pub sign_in_per_address_per_hour: u32,
    /// Sign-in emails one client address may ask for per hour.
    pub sign_in_per_client_per_hour: u32,
}

/// One line per bad setting, each naming the variable.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.join("\n"))]
pub struct SettingsError(pub Vec<String>);

pub const ENV_PREFIX: &str = "LEAKGUARD_";

/// The largest value a `*_SECS` setting accepts.
const MAX_SECONDS: f64 = 365.0 * 24.0 * 3600.0;

impl Settings {
    /// Settings from the process environment and the optional TOML file.
    pub fn load() -> Result<Settings, SettingsError> {
        let mut raw = BTreeMap::new();
        if let Ok(path) = std::env::var("LEAKGUARD_CONFIG") {
            let text = std::fs::read_to_string(&path).map_err(|e| {
                SettingsError(vec![format!("LEAKGUARD_CONFIG: cannot read {path}: {e}")])
            })?;
            raw.extend(parse_toml(&path, &text)?);
        }
        for (key, value) in std::env::vars() {
            if let Some(name) = key.strip_prefix(ENV_PREFIX) {
                if name != "CONFIG" && name != "TEST_DATABASE_URL" {
                    raw.insert(name.to_ascii_uppercase(), value);
                }
            }
        }
        Settings::from_map(&raw)
    }

    /// Settings from `KEY=value` pairs, keys without the prefix
    /// (`DATABASE_URL`). Unknown keys are errors: a typo must not silently
    /// fall back to a default.
    pub fn from_map(raw: &BTreeMap<String, String>) -> Result<Settings, SettingsError> {
        let mut p = Parser {
            raw,
            errors: Vec::new(),
        };
        let settings = Settings {
            database_url: p.string("DATABASE_URL", "sqlite://leakguard.db"),
            bind: p.parse(
                "BIND",
                "127.0.0.1:8080",
                "a socket address like 127.0.0.1:8080",
            ),
            public_url: p.url("PUBLIC_URL", "http://127.0.0.1:8080"),
            log_format: p.log_format(),
            github_keys_url: p.url(
                "GITHUB_KEYS_URL",
                "https://api.github.com/meta/public_keys/secret_scanning",
            ),
            github_token: p.secret("GITHUB_TOKEN"),
            github_keys_min_refetch: p.seconds("GITHUB_KEYS_MIN_REFETCH_SECS", 60.0),
            github_keys_refresh: p.seconds("GITHUB_KEYS_REFRESH_SECS", 3600.0),
            max_alert_bytes: p.positive("MAX_ALERT_BYTES", 8 * 1024 * 1024),
            max_body_bytes: p.positive("MAX_BODY_BYTES", 1024 * 1024),
            alert_bodies_max_bytes: p.positive("ALERT_BODIES_MAX_BYTES", 64 * 1024 * 1024),
            alert_bodies_max_bytes_per_client: p
                .positive("ALERT_BODIES_MAX_BYTES_PER_CLIENT", 16 * 1024 * 1024),
            client_header_timeout: p.seconds("CLIENT_HEADER_TIMEOUT_SECS", 5.0),
            body_timeout: p.seconds("BODY_TIMEOUT_SECS", 10.0),
            trusted_proxies: TrustedProxies::new(p.networks("TRUSTED_PROXIES")),
            auth_failure_burst: p.positive("AUTH_FAILURE_BURST", 30),
            auth_failure_per_second: p.parse("AUTH_FAILURE_PER_SECOND", "1", "a number"),
            metrics_bind: p.optional_parse("METRICS_BIND", "a socket address like 0.0.0.0:9090"),
            smtp_url: p.secret("SMTP_URL"),
            smtp_username: p.optional("SMTP_USERNAME"),
            smtp_password: p.secret("SMTP_PASSWORD"),
            smtp_timeout: p.seconds("SMTP_TIMEOUT_SECS", 10.0),
            smtp_allow_plaintext: p.parse("SMTP_ALLOW_PLAINTEXT", "false", "true or false"),
            mail_dir: PathBuf::from(p.string("MAIL_DIR", "./mail")),
            mail_from: p.string("MAIL_FROM", "leakguard <leakguard@localhost>"),
            outbox_max_attempts: p.positive("OUTBOX_MAX_ATTEMPTS", 10),
            outbox_backoff_base: p.seconds("OUTBOX_BACKOFF_BASE_SECS", 2.0),
            outbox_poll_interval: p.seconds("OUTBOX_POLL_SECS", 5.0),
            outbox_lease: p.seconds("OUTBOX_LEASE_SECS", 60.0),
            rate_limit_burst: p.positive("RATE_LIMIT_BURST", 120),
            rate_limit_per_second: p.parse("RATE_LIMIT_PER_SECOND", "20", "a number"),
            tls_cert: p.optional("TLS_CERT").map(PathBuf::from),
            tls_key: p.optional("TLS_KEY").map(PathBuf::from),
            audit_checkpoint_key: p.optional("AUDIT_CHECKPOINT_KEY").map(PathBuf::from),
            audit_checkpoint_file: p.optional("AUDIT_CHECKPOINT_FILE").map(PathBuf::from),
            audit_checkpoint_interval: p.seconds("AUDIT_CHECKPOINT_SECS", 60.0),
            usage_retention: p.days("USAGE_RETENTION_DAYS", 90),
            sign_in_link_lifetime: p.seconds("SIGN_IN_LINK_SECS", 900.0),
            session_idle_timeout: p.seconds("SESSION_IDLE_SECS", 1800.0),
            session_absolute_timeout: p.seconds("SESSION_MAX_SECS", 43_200.0),
            sign_in_per_address_per_hour: p.positive("SIGN_IN_PER_ADDRESS_PER_HOUR", 5),
            sign_in_per_client_per_hour: p.positive("SIGN_IN_PER_CLIENT_PER_HOUR", 30),
        };
        p.check_database_url(&settings.database_url);
        p.check_smtp(&settings);
        if settings.audit_checkpoint_file.is_some() && settings.audit_checkpoint_key.is_none() {
            p.errors.push(
                "LEAKGUARD_AUDIT_CHECKPOINT_FILE: needs LEAKGUARD_AUDIT_CHECKPOINT_KEY, the key \
                 that signs the checkpoints"
                    .to_string(),
            );
        }
        if settings.tls_cert.is_some() != settings.tls_key.is_some() {
            p.errors
                .push("LEAKGUARD_TLS_CERT / LEAKGUARD_TLS_KEY: set both or neither".to_string());
        }
        for (key, rate) in [
            ("RATE_LIMIT_PER_SECOND", settings.rate_limit_per_second),
            ("AUTH_FAILURE_PER_SECOND", settings.auth_failure_per_second),
        ] {
            if rate <= 0.0 || rate.is_nan() {
                p.errors
                    .push(format!("{ENV_PREFIX}{key}: must be a positive number"));
            }
        }
        p.check_limits(&settings);
        for key in raw.keys() {
            if !KNOWN_KEYS.contains(&key.as_str()) {
                p.errors.push(format!("{ENV_PREFIX}{key}: unknown setting"));
            }
        }
        if p.errors.is_empty() {
            Ok(settings)
        } else {
            Err(SettingsError(p.errors))
        }
    }

    pub fn is_postgres(&self) -> bool {
        self.database_url.starts_with("postgres")
    }
}

const KNOWN_KEYS: &[&str] = &[
    "DATABASE_URL",
    "BIND",
    "PUBLIC_URL",
    "LOG_FORMAT",
    "GITHUB_KEYS_URL",
    "GITHUB_TOKEN",
    "GITHUB_KEYS_MIN_REFETCH_SECS",
    "GITHUB_KEYS_REFRESH_SECS",
    "MAX_ALERT_BYTES",
    "MAX_BODY_BYTES",
    "SMTP_URL",
    "SMTP_USERNAME",
    "SMTP_PASSWORD",
    "SMTP_TIMEOUT_SECS",
    "MAIL_DIR",
    "MAIL_FROM",
    "OUTBOX_MAX_ATTEMPTS",
    "OUTBOX_BACKOFF_BASE_SECS",
    "OUTBOX_POLL_SECS",
    "OUTBOX_LEASE_SECS",
    "RATE_LIMIT_BURST",
    "RATE_LIMIT_PER_SECOND",
    "TLS_CERT",
    "TLS_KEY",
    "ALERT_BODIES_MAX_BYTES",
    "ALERT_BODIES_MAX_BYTES_PER_CLIENT",
    "CLIENT_HEADER_TIMEOUT_SECS",
    "BODY_TIMEOUT_SECS",
    "TRUSTED_PROXIES",
    "AUTH_FAILURE_BURST",
    "AUTH_FAILURE_PER_SECOND",
    "METRICS_BIND",
    "SMTP_ALLOW_PLAINTEXT",
    "AUDIT_CHECKPOINT_KEY",
    "AUDIT_CHECKPOINT_FILE",
    "AUDIT_CHECKPOINT_SECS",
    "USAGE_RETENTION_DAYS",
    "SIGN_IN_LINK_SECS",
    "SESSION_IDLE_SECS",
    "SESSION_MAX_SECS",
    "SIGN_IN_PER_ADDRESS_PER_HOUR",
    "SIGN_IN_PER_CLIENT_PER_HOUR",
];

fn parse_toml(path: &str, text: &str) -> Result<BTreeMap<String, String>, SettingsError> {
    let table: toml::Table = text
        .parse()
        .map_err(|e| SettingsError(vec![format!("LEAKGUARD_CONFIG: {path}: {e}")]))?;
    Ok(table
        .into_iter()
        .map(|(key, value)| {
            let value = match value {
                toml::Value::String(s) => s,
                other => other.to_string(),
            };
            (key.to_ascii_uppercase(), value)
        })
        .collect())
}

struct Parser<'a> {
    raw: &'a BTreeMap<String, String>,
    errors: Vec<String>,
}

impl Parser<'_> {
    fn optional(&self, key: &str) -> Option<String> {
        self.raw
            .get(key)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    fn string(&self, key: &str, default: &str) -> String {
        self.optional(key).unwrap_or_else(|| default.to_string())
    }

    fn secret(&self, key: &str) -> Option<SecretString> {
        self.optional(key).map(SecretString::from)
    }

    fn parse<T: FromStr>(&mut self, key: &str, default: &str, expected: &str) -> T
    where
        T::Err: std::fmt::Display,
    {
        let value = self.string(key, default);
        match value.parse() {
            Ok(v) => v,
            Err(e) => {
                self.errors.push(format!(
                    "{ENV_PREFIX}{key}: expected {expected}, got {value:?} ({e})"
                ));
                default.parse().ok().expect("defaults parse")
            }
        }
    }

    fn positive<T: FromStr + Default + PartialEq + ToString + Copy>(
        &mut self,
        key: &str,
        default: T,
    ) -> T
    where
        T::Err: std::fmt::Display,
    {
        let v: T = self.parse(key, &default.to_string(), "a positive whole number");
        if v == T::default() {
            self.errors
                .push(format!("{ENV_PREFIX}{key}: must be greater than zero"));
            return default;
        }
        v
    }

    fn optional_parse<T: FromStr>(&mut self, key: &str, expected: &str) -> Option<T>
    where
        T::Err: std::fmt::Display,
    {
        let value = self.optional(key)?;
        match value.parse() {
            Ok(v) => Some(v),
            Err(e) => {
                self.errors.push(format!(
                    "{ENV_PREFIX}{key}: expected {expected}, got {value:?} ({e})"
                ));
                None
            }
        }
    }

    /// A comma-separated list of addresses (`10.0.0.7`) and networks
    /// (`10.0.0.0/8`, `fd00::/8`).
    fn networks(&mut self, key: &str) -> Vec<IpNet> {
        let Some(value) = self.optional(key) else {
            return Vec::new();
        };
        let mut networks = Vec::new();
        for item in value.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let parsed = item
                .parse::<IpNet>()
                .or_else(|_| item.parse::<std::net::IpAddr>().map(IpNet::from));
            match parsed {
                Ok(net) => networks.push(net),
                Err(_) => self.errors.push(format!(
                    "{ENV_PREFIX}{key}: {item:?} is not an IP address or network like 10.0.0.0/8"
                )),
            }
        }
        networks
    }

    fn seconds(&mut self, key: &str, default: f64) -> Duration {
        let v: f64 = self.parse(key, &default.to_string(), "a number of seconds");
        if !(v.is_finite() && v > 0.0) {
            self.errors.push(format!(
                "{ENV_PREFIX}{key}: must be a positive number of seconds"
            ));
            return Duration::from_secs_f64(default);
        }
        // Durations are added to microsecond timestamps: keep them sane
        // (and `Duration::from_secs_f64` panics on huge values).
        if v > MAX_SECONDS {
            self.errors.push(format!(
                "{ENV_PREFIX}{key}: must be at most {MAX_SECONDS} seconds (a year), got {v}"
            ));
            return Duration::from_secs_f64(default);
        }
        Duration::from_secs_f64(v)
    }

    /// A whole number of days, from 1 to ten years.
    fn days(&mut self, key: &str, default: u32) -> Duration {
        let v: u32 = self.positive(key, default);
        if v > 3650 {
            self.errors.push(format!(
                "{ENV_PREFIX}{key}: must be at most 3650 days, got {v}"
            ));
            return Duration::from_secs(u64::from(default) * 86_400);
        }
        Duration::from_secs(u64::from(v) * 86_400)
    }

    fn url(&mut self, key: &str, default: &str) -> String {
        let value = self.string(key, default);
        match url::Url::parse(&value) {
            Ok(u) if ["http", "https", "file"].contains(&u.scheme()) => {
                value.trim_end_matches('/').to_string()
            }
            Ok(u) => {
                self.errors.push(format!(
                    "{ENV_PREFIX}{key}: unsupported scheme {:?} (use http, https or file)",
                    u.scheme()
                ));
                default.to_string()
            }
            Err(e) => {
                self.errors
                    .push(format!("{ENV_PREFIX}{key}: not a URL: {value:?} ({e})"));
                default.to_string()
            }
        }
    }

    fn log_format(&mut self) -> LogFormat {
        match self.string("LOG_FORMAT", "pretty").as_str() {
            "pretty" => LogFormat::Pretty,
            "json" => LogFormat::Json,
            other => {
                self.errors.push(format!(
                    "{ENV_PREFIX}LOG_FORMAT: expected pretty or json, got {other:?}"
                ));
                LogFormat::Pretty
            }
        }
    }

    fn check_database_url(&mut self, url: &str) {
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            self.errors.push(format!(
                "{ENV_PREFIX}DATABASE_URL: expected sqlite://PATH or postgres://..., got {:?}",
                crate::telemetry::redact_url(url)
            ));
        }
    }

    /// Limits that only make sense together.
    fn check_limits(&mut self, settings: &Settings) {
        for (key, budget) in [
            ("ALERT_BODIES_MAX_BYTES", settings.alert_bodies_max_bytes),
            (
                "ALERT_BODIES_MAX_BYTES_PER_CLIENT",
                settings.alert_bodies_max_bytes_per_client,
            ),
        ] {
            if budget < settings.max_alert_bytes {
                self.errors.push(format!(
                    "{ENV_PREFIX}{key}: must be at least LEAKGUARD_MAX_ALERT_BYTES ({}), \
                     or the largest alert could never be read",
                    settings.max_alert_bytes
                ));
            }
        }
        // A send must end well inside the lease that keeps other workers
        // off the message: the worker renews the lease before each send
        // and then spends up to the timeout sending and up to half the
        // lease recording the result.
        if settings.smtp_timeout * 2 > settings.outbox_lease {
            self.errors.push(format!(
                "{ENV_PREFIX}SMTP_TIMEOUT_SECS: must be at most half of \
                 LEAKGUARD_OUTBOX_LEASE_SECS ({} s), or a slow send could outlive its lease \
                 and another replica send the same email again",
                settings.outbox_lease.as_secs_f64()
            ));
        }
    }

    fn check_smtp(&mut self, settings: &Settings) {
        use secrecy::ExposeSecret;
        if let Some(url) = &settings.smtp_url {
            match url::Url::parse(url.expose_secret()) {
                Ok(u) if u.scheme() == "smtp" || u.scheme() == "smtps" => {
                    if u.host_str().is_none_or(str::is_empty) {
                        self.errors
                            .push(format!("{ENV_PREFIX}SMTP_URL: missing host"));
                    }
                }
                _ => self.errors.push(format!(
                    "{ENV_PREFIX}SMTP_URL: expected smtp://host:port or smtps://host:port"
                )),
            }
        }
        if lettre::message::Mailbox::from_str(&settings.mail_from).is_err() {
            self.errors.push(format!(
                "{ENV_PREFIX}MAIL_FROM: not a mailbox: {:?}",
                settings.mail_from
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_valid() {
        let s = Settings::from_map(&BTreeMap::new()).unwrap();
        assert_eq!(s.database_url, "sqlite://leakguard.db");
        assert_eq!(s.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(s.max_alert_bytes, 8 * 1024 * 1024);
    }

    #[test]
    fn every_bad_value_is_named() {
        let err = Settings::from_map(&map(&[
            ("BIND", "nowhere"),
            ("LOG_FORMAT", "xml"),
            ("OUTBOX_MAX_ATTEMPTS", "0"),
            ("SMTP_URL", "http://x"),
            ("BOGUS", "1"),
        ]))
        .unwrap_err();
        let text = err.to_string();
        for name in [
            "LEAKGUARD_BIND",
            "LEAKGUARD_LOG_FORMAT",
            "LEAKGUARD_OUTBOX_MAX_ATTEMPTS",
            "LEAKGUARD_SMTP_URL",
            "LEAKGUARD_BOGUS",
        ] {
            assert!(text.contains(name), "{name} missing from {text}");
        }
        assert_eq!(err.0.len(), 5);
    }

    /// Issue 17, finding 7: with an SMTP timeout at or above the lease, a
    /// slow send outlives its lease and another replica sends the same
    /// mail again.
    #[test]
    fn the_smtp_timeout_must_fit_well_inside_the_lease() {
        for (timeout, lease) in [("60", "60"), ("90", "60"), ("31", "60")] {
            let err = Settings::from_map(&map(&[
                ("SMTP_TIMEOUT_SECS", timeout),
                ("OUTBOX_LEASE_SECS", lease),
            ]))
            .unwrap_err();
            assert_eq!(err.0.len(), 1, "{err}");
            assert!(err.0[0].starts_with("LEAKGUARD_SMTP_TIMEOUT_SECS"), "{err}");
            assert!(err.0[0].contains("LEAKGUARD_OUTBOX_LEASE_SECS"), "{err}");
        }
        let ok = Settings::from_map(&map(&[
            ("SMTP_TIMEOUT_SECS", "30"),
            ("OUTBOX_LEASE_SECS", "60"),
        ]))
        .unwrap();
        assert_eq!(ok.smtp_timeout * 2, ok.outbox_lease);
    }

    #[test]
    fn body_budgets_must_hold_the_largest_alert() {
        let err = Settings::from_map(&map(&[
            ("MAX_ALERT_BYTES", "1000"),
            ("ALERT_BODIES_MAX_BYTES", "999"),
            ("ALERT_BODIES_MAX_BYTES_PER_CLIENT", "500"),
            ("TRUSTED_PROXIES", "10.0.0.0/8, nonsense"),
        ]))
        .unwrap_err();
        assert_eq!(err.0.len(), 3, "{err}");
        let ok =
            Settings::from_map(&map(&[("TRUSTED_PROXIES", "10.0.0.0/8, 192.0.2.7,::1")])).unwrap();
        assert_eq!(ok.trusted_proxies.len(), 3);
    }

    #[test]
    fn huge_durations_are_errors_not_panics() {
        let err = Settings::from_map(&map(&[
            ("OUTBOX_LEASE_SECS", "1e300"),
            ("SMTP_TIMEOUT_SECS", "31536001"),
        ]))
        .unwrap_err();
        assert_eq!(err.0.len(), 2, "{err}");
        assert!(
            err.0[0].starts_with("LEAKGUARD_SMTP_TIMEOUT_SECS")
                || err.0[1].starts_with("LEAKGUARD_SMTP_TIMEOUT_SECS")
        );
        let ok = Settings::from_map(&map(&[("OUTBOX_LEASE_SECS", "31536000")])).unwrap();
        assert_eq!(ok.outbox_lease, Duration::from_secs(31_536_000));
    }
}
