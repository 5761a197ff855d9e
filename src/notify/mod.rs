//! Owner notifications: messages are rendered and written to the outbox in
//! the transaction that revokes the tokens, then delivered by the outbox
//! worker over SMTP (or into a directory of .eml files on a laptop).

pub mod templates;
pub mod transport;
pub mod worker;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde::Serialize;
use tokio::sync::Notify;

use crate::db::Tx;
use crate::metrics::Metrics;
use templates::Templates;

/// Which mail goes first: sign-in links are waited for by a person at a
/// browser, so they are sent before any notification still queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    SignIn = 0,
    Notification = 1,
}

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

/// A token that a leaked token created (directly or through tokens it
/// created), revoked with it.
#[derive(Debug, Clone, Serialize)]
pub struct CreatedTokenInfo {
    pub id: String,
    pub name: String,
    pub role: String,
    pub hint: String,
    /// The name of the token that created it.
    pub created_by_name: String,
    /// Revoked before this alert (so this alert changed nothing about it).
    pub already_revoked: bool,
}

/// Everything one workspace's owners are told about one alert.
#[derive(Debug, Clone)]
pub struct LeakNotice {
    pub workspace: WorkspaceInfo,
    pub alert: AlertInfo,
    /// The console's incident page, from the public URL on.
    pub incident_path: String,
    /// The reported tokens this alert revoked (the first `DETAILED_TOKENS`).
    pub tokens: Vec<RevokedTokenInfo>,
    pub omitted_tokens: usize,
    /// Their blast radius.
    pub created_tokens: Vec<CreatedTokenInfo>,
    /// Users they added and roles they raised.
    pub review: Vec<crate::incident::ReviewItem>,
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
    /// Set when sign-in mail is queued: a worker in the middle of a batch
    /// of notifications sends it before the rest of the batch.
    urgent: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
}

impl Notifier {
    pub fn new(
        public_url: String,
        wake: Arc<Notify>,
        urgent: Arc<AtomicBool>,
        metrics: Arc<Metrics>,
    ) -> Notifier {
        Notifier {
            templates: Templates::new(),
            public_url,
            wake,
            urgent,
            metrics,
        }
    }

    /// The public URL of a console path.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.public_url)
    }

    /// One message per owner for one alert, listing all of the workspace's
    /// revoked tokens; every link in it is the incident page. The
    /// Message-ID is derived from (alert, owner), and the outbox refuses a
    /// second row with it.
    pub async fn enqueue_leak_notice(
        &self,
        tx: &mut Tx,
        notice: &LeakNotice,
        owners: &[Owner],
    ) -> anyhow::Result<usize> {
        let mut queued = 0;
        let users_added = notice
            .review
            .iter()
            .filter(|r| r.kind == "user_added")
            .count();
        for owner in owners {
            let context = minijinja::context! {
                owner_name => if owner.name.is_empty() { owner.email.as_str() } else { owner.name.as_str() },
                workspace => notice.workspace,
                alert => notice.alert,
                tokens => notice.tokens,
                token_count => notice.tokens.len() + notice.omitted_tokens,
                omitted_tokens => notice.omitted_tokens,
                created_tokens => notice.created_tokens,
                created_revoked => notice.created_tokens.iter().filter(|t| !t.already_revoked).count(),
                review => notice.review,
                users_added => users_added,
                roles_raised => notice.review.len() - users_added,
                activity_limit => ACTIVITY_LIMIT,
                incident_url => self.url(&notice.incident_path),
            };
            let rendered = self.templates.render("token_revoked", &context)?;
            let message_id = format!("<alert-{}.{}@leakguard>", notice.alert.id, owner.id);
            if crate::db::outbox::enqueue(
                tx,
                &notice.workspace.id,
                &owner.email,
                &message_id,
                Priority::Notification,
                &rendered,
            )
            .await?
            {
                queued += 1;
            }
        }
        Ok(queued)
    }

    /// A console sign-in link for `email`, queued ahead of every
    /// notification and never grouped with one. Committed on return.
    pub async fn send_sign_in_link(
        &self,
        db: &crate::db::Db,
        email: &str,
        link: &str,
        valid_minutes: u64,
        workspaces: &[String],
    ) -> anyhow::Result<()> {
        let context = minijinja::context! {
            email => email,
            link => link,
            valid_minutes => valid_minutes,
            workspaces => workspaces,
        };
        let rendered = self.templates.render("sign_in", &context)?;
        let message_id = format!("<sign-in-{}@leakguard>", crate::id::new_id());
        let mut tx = db.begin().await?;
        crate::db::outbox::enqueue(&mut tx, "", email, &message_id, Priority::SignIn, &rendered)
            .await?;
        tx.commit().await?;
        self.urgent.store(true, Ordering::SeqCst);
        self.queued(1);
        Ok(())
    }

    /// Call after the enqueuing transaction committed.
    pub fn queued(&self, count: usize) {
        if count > 0 {
            self.metrics.outbox_queued.inc_by(count as u64);
            self.wake.notify_one();
        }
    }
}
