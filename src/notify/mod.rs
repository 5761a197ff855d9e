//! Owner notifications: messages are rendered and written to the outbox in
//! the transaction that revokes the tokens, then delivered by the outbox
//! worker over SMTP (or into a directory of .eml files on a laptop).

pub mod templates;
pub mod transport;
pub mod worker;

use std::sync::Arc;

use serde::Serialize;
use tokio::sync::Notify;

use crate::db::Tx;
use crate::metrics::Metrics;
use templates::Templates;

/// How many of a token's last actions the email lists.
pub const ACTIVITY_LIMIT: i64 = 20;
/// Tokens listed per email; a huge batch would otherwise make an
/// unreadable (and undeliverable) message.
pub const DETAILED_TOKENS: usize = 100;

#[derive(Debug, Clone, Serialize)]
pub struct WorkspaceInfo {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct AlertInfo {
    pub id: String,
    pub received_at: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ActivityLine {
    pub timestamp: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub resource_type: String,
    pub resource_name: String,
    pub resource_id: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct RevokedTokenInfo {
    pub id: String,
    pub name: String,
    pub role: String,
    pub hint: String,
    pub url: String,
    pub source: String,
    pub token_type: String,
    pub activity: Vec<ActivityLine>,
}

#[derive(Debug, Clone)]
pub struct Owner {
    pub id: String,
    pub email: String,
    pub name: String,
}

/// Renders and enqueues notifications, and wakes the worker after commit.
pub struct Notifier {
    templates: Templates,
    public_url: String,
    wake: Arc<Notify>,
    metrics: Arc<Metrics>,
}

impl Notifier {
    pub fn new(public_url: String, wake: Arc<Notify>, metrics: Arc<Metrics>) -> Notifier {
        Notifier {
            templates: Templates::new(),
            public_url,
            wake,
            metrics,
        }
    }

    /// One message per owner for one alert, listing all of the workspace's
    /// revoked tokens. The Message-ID is derived from (alert, owner), and the
    /// outbox refuses a second row with it.
    pub async fn enqueue_leak_notice(
        &self,
        tx: &mut Tx,
        workspace: &WorkspaceInfo,
        owners: &[Owner],
        alert: &AlertInfo,
        tokens: &[RevokedTokenInfo],
        omitted_tokens: usize,
    ) -> anyhow::Result<usize> {
        let mut queued = 0;
        for owner in owners {
            let context = minijinja::context! {
                owner_name => if owner.name.is_empty() { owner.email.as_str() } else { owner.name.as_str() },
                workspace => workspace,
                alert => alert,
                tokens => tokens,
                token_count => tokens.len() + omitted_tokens,
                omitted_tokens => omitted_tokens,
                activity_limit => ACTIVITY_LIMIT,
                audit_url => format!("{}/audit-events", self.public_url),
                tokens_url => format!("{}/tokens", self.public_url),
            };
            let rendered = self.templates.render("token_revoked", &context)?;
            let message_id = format!("<alert-{}.{}@leakguard>", alert.id, owner.id);
            if crate::db::outbox::enqueue(tx, &workspace.id, &owner.email, &message_id, &rendered)
                .await?
            {
                queued += 1;
            }
        }
        Ok(queued)
    }

    /// Call after the enqueuing transaction committed.
    pub fn queued(&self, count: usize) {
        if count > 0 {
            self.metrics.outbox_queued.inc_by(count as u64);
            self.wake.notify_one();
        }
    }
}
