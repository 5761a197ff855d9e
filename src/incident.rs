//! What a leak touched, beyond the token GitHub reported: the tokens it
//! created (directly or through tokens it created), and the users it added
//! or whose role it raised. The revocation acts on the first; the second is
//! for the owners to review (in the email and on the console's incident
//! page), never undone automatically.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;

use crate::audit::{self, AuditEvent};
use crate::db::tokens::Token;
use crate::db::{self, audit_events, users, Conn, Tx};
use crate::domain::{Parse, Role, TokenId, UserId, WorkspaceId};
use crate::time::Timestamp;

/// The revocation reason of a token revoked because a leaked token made it.
pub const REASON_CREATED_BY_LEAKED: &str = "created_by_leaked_token";

/// The console's page of one alert's revocations in one workspace: every
/// link in the owner email points here.
pub fn path(workspace_id: &WorkspaceId, alert_id: &str) -> String {
    format!("/app/w/{workspace_id}/incidents/{alert_id}")
}

/// Every token created by one of `roots`, or by a token created so, at any
/// depth; revoked ones included (a revoked token's children are still its
/// children). Each comes with the token that created it. Oldest first
/// within each generation.
pub async fn descendants(tx: &mut Tx, roots: &[&TokenId]) -> db::Result<Vec<(Token, TokenId)>> {
    let mut seen: HashSet<TokenId> = roots.iter().map(|id| (*id).clone()).collect();
    let mut frontier: Vec<TokenId> = seen.iter().cloned().collect();
    let mut found = Vec::new();
    while !frontier.is_empty() {
        let actors: Vec<String> = frontier.iter().map(audit::token_actor).collect();
        let children = db::tokens::created_by_any(tx, &actors).await?;
        frontier = Vec::new();
        for child in children {
            if !seen.insert(child.id.clone()) {
                continue;
            }
            let Some(parent) = child
                .created_by
                .strip_prefix(audit::TOKEN_ACTOR_PREFIX)
                .and_then(|id| TokenId::parse(id).ok())
            else {
                continue;
            };
            frontier.push(child.id.clone());
            found.push((child, parent));
        }
    }
    Ok(found)
}

/// A user that a leaked token (or one it created) added, or whose role it
/// raised: for the owners to review.
#[derive(Debug, Clone, Serialize)]
pub struct ReviewItem {
    /// `user_added` or `role_raised`.
    pub kind: &'static str,
    pub user_id: String,
    pub email: String,
    /// The role the token gave.
    pub role: String,
    /// For a raised role: the role before.
    pub previous_role: Option<String>,
    pub by_token_id: String,
    pub at: Timestamp,
    /// The user's role now; None when the user is no longer in the
    /// workspace (someone removed them since).
    pub current_role: Option<Role>,
}

/// The users that `tokens` added or raised, oldest first.
pub async fn review_items(
    conn: impl Into<Conn<'_>>,
    workspace_id: &WorkspaceId,
    tokens: &[&TokenId],
) -> db::Result<Vec<ReviewItem>> {
    let mut conn = conn.into();
    let actors: Vec<String> = tokens.iter().map(audit::token_actor).collect();
    let events = audit_events::by_actors(
        &mut conn,
        workspace_id,
        &actors,
        &["User Added", "User Modified"],
    )
    .await?;
    let mut items = Vec::new();
    let mut current: BTreeMap<String, Option<Role>> = BTreeMap::new();
    for event in events {
        let Some(item) = review_item(&event) else {
            continue;
        };
        if !current.contains_key(&item.user_id) {
            let role = match UserId::parse(&item.user_id) {
                Ok(id) => users::find(&mut conn, workspace_id, &id)
                    .await?
                    .map(|u| u.role),
                Err(_) => None,
            };
            current.insert(item.user_id.clone(), role);
        }
        items.push(ReviewItem {
            current_role: current[&item.user_id],
            ..item
        });
    }
    Ok(items)
}

/// The review item an event makes, if any: every `User Added`, and a `User
/// Modified` whose role went up.
fn review_item(event: &AuditEvent) -> Option<ReviewItem> {
    let role = event.details.get("role")?.as_str()?.to_string();
    let by_token_id = event
        .actor
        .strip_prefix(audit::TOKEN_ACTOR_PREFIX)?
        .to_string();
    let (kind, previous_role) = match event.event_type.as_str() {
        "User Added" => ("user_added", None),
        "User Modified" => {
            let previous = event.details.get("previousRole")?.as_str()?.to_string();
            let raised = Role::parse(&role).ok()? > Role::parse(&previous).ok()?;
            if !raised {
                return None;
            }
            ("role_raised", Some(previous))
        }
        _ => return None,
    };
    Some(ReviewItem {
        kind,
        user_id: event.resource_id.clone(),
        email: event.resource_name.clone(),
        role,
        previous_role,
        by_token_id,
        at: event.timestamp,
        current_role: None,
    })
}
