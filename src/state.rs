//! What every handler can reach.

use std::sync::Arc;

use crate::api::{body::BodyBudget, last_used::LastUsed, rate_limit::RateLimiter, usage::Usage};
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
    /// Per token.
    pub rate_limiter: RateLimiter,
    /// Failed authentications, per client address.
    pub auth_failures: RateLimiter,
    pub last_used: LastUsed,
    /// Alert bodies held in memory (see `BodyBudget`).
    pub alert_bodies: BodyBudget,
    pub alert_recorder: AlertRecorder,
    pub token_lookup: TokenLookup,
    pub readiness: crate::operations::Readiness,
    pub usage: Usage,
    pub sign_in_limits: crate::console::sign_in::SignInLimits,
}
