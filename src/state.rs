//! What every handler can reach.

use std::sync::Arc;

use crate::api::{last_used::LastUsed, rate_limit::RateLimiter, usage::Usage};
use crate::config::Settings;
use crate::db::Db;
use crate::metrics::Metrics;
use crate::notify::Notifier;
use crate::scanning::{keys::KeyStore, recorder::AlertRecorder};
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
    pub usage: Usage,
    pub alert_recorder: AlertRecorder,
    pub token_lookup: TokenLookup,
    pub sign_in_limits: crate::console::sign_in::SignInLimits,
}
