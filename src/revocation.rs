//! The one transaction that revokes tokens: marks them revoked, appends the
//! audit events and (for leaks) enqueues one email per workspace owner. Used
//! by the GitHub scanner, `DELETE /tokens/{id}`, the console and the CLI.
//!
//! A leak takes its blast radius with it: every token that the leaked
//! token created, directly or through tokens it created, is revoked in the
//! same transaction (`incident::REASON_CREATED_BY_LEAKED`), since whoever
//! scraped the token could have minted them.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::json;

use crate::audit::{self, Actor, NewEvent};
use crate::client::Client;
use crate::db::alerts::{self, AlertRecord, TokenReport};
use crate::db::tokens::Token;
use crate::db::{self, audit_events, users, workspaces, Change, Db};
use crate::domain::{TokenId, WorkspaceId};
use crate::incident::{self, REASON_CREATED_BY_LEAKED};
use crate::notify::{
    ActivityLine, AlertInfo, CreatedTokenInfo, LeakNotice, Notifier, Owner, RevokedTokenInfo,
    WorkspaceInfo, ACTIVITY_LIMIT, DETAILED_TOKENS,
};
use crate::time::{format_micros, Timestamp};

pub const REASON_GITHUB: &str = "github_secret_scanning";
pub const REASON_API: &str = "revoked_by_owner";
pub const REASON_OPERATOR: &str = "revoked_by_operator";
/// Where GitHub found a token.
#[derive(Debug, Clone)]
pub struct Report {
    pub url: String,
    pub source: String,
    pub token_type: String,
}

pub struct LeakOutcome {
    /// Reported tokens revoked.
    pub revoked: usize,
    /// Tokens revoked because a reported token created them.
    pub created_revoked: usize,
    pub emails_queued: usize,
}

fn revoked_event(token: &Token, actor: Actor, details: serde_json::Value) -> NewEvent {
    NewEvent {
        event_type: "Token Revoked",
        actor,
        resource_id: token.id.to_string(),
        resource_type: "token",
        resource_name: token.name.to_string(),
        details,
    }
}

/// Revokes one token (an owner through the API, an operator through the
/// CLI). False when it was already revoked; then nothing changes.
pub async fn revoke_one(
    db: &Db,
    token: &Token,
    actor: Actor,
    reason: &'static str,
) -> db::Result<bool> {
    let mut change = db.change(token.workspace_id.as_str()).await?;
    let at = Timestamp(change.at());
    let revoked = db::tokens::revoke(&mut change, &[&token.id], reason, None, at).await?;
    if revoked.is_empty() {
        return Ok(false);
    }
    change.record(revoked_event(token, actor, json!({ "reason": reason })));
    change.commit().await?;
    Ok(true)
}

/// Everything a GitHub alert changes, in one transaction. Tokens already
/// revoked are recorded as reported again but get no second revocation,
/// audit event or email, and take nothing with them. `client` is where the
/// alert came from (GitHub).
pub async fn revoke_leaked(
    db: &Db,
    notifier: &Notifier,
    alert: &AlertRecord,
    matches: &[(Token, Report)],
    client: &Client,
) -> anyhow::Result<LeakOutcome> {
    let active: Vec<&Token> = matches
        .iter()
        .map(|(t, _)| t)
        .filter(|t| !t.is_revoked())
        .collect();
    // The workspaces are locked in a fixed order before any token row: the
    // order every audited change takes, so concurrent alerts and API calls
    // queue instead of deadlocking. Tokens a leaked token created are of
    // its own workspace, so no other lock is needed for them.
    let mut change = Change::begin(db, active.iter().map(|t| t.workspace_id.as_str())).await?;
    alerts::record_in(&mut change, alert).await?;
    let at = Timestamp(alert.received_at);
    let ids: Vec<&TokenId> = active.iter().map(|t| &t.id).collect();
    let newly_revoked: HashSet<TokenId> =
        db::tokens::revoke(&mut change, &ids, REASON_GITHUB, Some(&alert.id), at)
            .await?
            .into_iter()
            .collect();

    let reports: Vec<TokenReport<'_>> = matches
        .iter()
        .map(|(token, report)| TokenReport {
            token_id: &token.id,
            url: &report.url,
            source: &report.source,
            token_type: &report.token_type,
            revoked: newly_revoked.contains(&token.id),
        })
        .collect();
    alerts::record_reports(&mut change, &alert.id, alert.received_at, &reports).await?;

    // The blast radius: what the newly revoked tokens created, at any depth.
    let roots: Vec<&TokenId> = newly_revoked.iter().collect();
    let created = incident::descendants(&mut change, &roots).await?;
    let created_active: Vec<&TokenId> = created
        .iter()
        .filter(|(t, _)| !t.is_revoked())
        .map(|(t, _)| &t.id)
        .collect();
    let created_revoked: HashSet<TokenId> = db::tokens::revoke(
        &mut change,
        &created_active,
        REASON_CREATED_BY_LEAKED,
        Some(&alert.id),
        at,
    )
    .await?
    .into_iter()
    .collect();
    // Each created token's leaked ancestor, for its event and the email.
    let names: HashMap<&TokenId, &Token> = matches
        .iter()
        .map(|(t, _)| (&t.id, t))
        .chain(created.iter().map(|(t, _)| (&t.id, t)))
        .collect();
    let parents: HashMap<TokenId, TokenId> = created
        .iter()
        .map(|(t, parent)| (t.id.clone(), parent.clone()))
        .collect();
    let root_of = |id: &TokenId| {
        let mut id = id;
        while let Some(parent) = parents.get(id) {
            id = parent;
        }
        id.clone()
    };

    // Group the new revocations by workspace: one audit batch and one email
    // per owner for each.
    let mut by_workspace: BTreeMap<&WorkspaceId, Vec<&(Token, Report)>> = BTreeMap::new();
    for m in matches
        .iter()
        .filter(|(t, _)| newly_revoked.contains(&t.id))
    {
        by_workspace.entry(&m.0.workspace_id).or_default().push(m);
    }
    let mut emails_queued = 0;
    let alert_info = AlertInfo {
        id: alert.id.clone(),
        received_at: format_micros(alert.received_at),
    };
    let github = Actor::github(client.clone());
    for (workspace_id, tokens) in &by_workspace {
        // The email lists the first DETAILED_TOKENS tokens with their
        // activity and counts the rest; the incident page has them all.
        let mut details = Vec::with_capacity(tokens.len().min(DETAILED_TOKENS));
        for (token, report) in tokens.iter().take(DETAILED_TOKENS) {
            let activity = audit_events::recent_by_actor(
                &mut change,
                workspace_id,
                &audit::token_actor(&token.id),
                ACTIVITY_LIMIT,
            )
            .await?
            .into_iter()
            .map(|e| ActivityLine {
                timestamp: e.timestamp.to_string(),
                event_type: e.event_type,
                resource_type: e.resource_type,
                resource_name: e.resource_name,
                resource_id: e.resource_id,
            })
            .collect();
            details.push(RevokedTokenInfo {
                id: token.id.to_string(),
                name: token.name.to_string(),
                role: token.role.to_string(),
                hint: token.hint.clone(),
                url: report.url.clone(),
                source: report.source.clone(),
                token_type: report.token_type.clone(),
                activity,
            });
        }
        let omitted = tokens.len() - details.len();
        for (token, report) in tokens {
            change.record_in(
                workspace_id.as_str(),
                revoked_event(
                    token,
                    github.clone(),
                    json!({
                        "reason": REASON_GITHUB,
                        "alertId": alert.id,
                        "url": report.url,
                        "source": report.source,
                        "tokenType": report.token_type,
                    }),
                ),
            )?;
        }
        let mut created_here = Vec::new();
        for (token, parent) in created
            .iter()
            .filter(|(t, _)| &t.workspace_id == *workspace_id)
        {
            let newly = created_revoked.contains(&token.id);
            if newly {
                let leaked = root_of(&token.id);
                change.record_in(
                    workspace_id.as_str(),
                    revoked_event(
                        token,
                        github.clone(),
                        json!({
                            "reason": REASON_CREATED_BY_LEAKED,
                            "alertId": alert.id,
                            "createdBy": parent,
                            "leakedTokenId": leaked,
                        }),
                    ),
                )?;
            }
            created_here.push(CreatedTokenInfo {
                id: token.id.to_string(),
                name: token.name.to_string(),
                role: token.role.to_string(),
                hint: token.hint.clone(),
                created_by_name: names
                    .get(parent)
                    .map(|t| t.name.to_string())
                    .unwrap_or_default(),
                already_revoked: !newly,
            });
        }
        let mut incident_tokens: Vec<&TokenId> = tokens.iter().map(|(t, _)| &t.id).collect();
        incident_tokens.extend(
            created
                .iter()
                .filter(|(t, _)| &t.workspace_id == *workspace_id)
                .map(|(t, _)| &t.id),
        );
        let review = incident::review_items(&mut change, workspace_id, &incident_tokens).await?;

        let workspace = workspaces::find(&mut change, workspace_id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("workspace {workspace_id} of a token is missing"))?;
        // An owner that the leaked token added is most likely whoever
        // leaked it: they are listed for review, and not told.
        let added: HashSet<&str> = review
            .iter()
            .filter(|r| r.kind == "user_added")
            .map(|r| r.user_id.as_str())
            .collect();
        let owners: Vec<Owner> = users::owners(&mut change, workspace_id)
            .await?
            .into_iter()
            .filter(|u| !added.contains(u.id.as_str()))
            .map(|u| Owner {
                id: u.id.to_string(),
                email: u.email.to_string(),
                name: u.name.to_string(),
            })
            .collect();
        let notice = LeakNotice {
            workspace: WorkspaceInfo {
                id: workspace.id.to_string(),
                name: workspace.name.to_string(),
            },
            alert: alert_info.clone(),
            incident_path: incident::path(workspace_id, &alert.id),
            tokens: details,
            omitted_tokens: omitted,
            created_tokens: created_here,
            review,
        };
        emails_queued += notifier
            .enqueue_leak_notice(&mut change, &notice, &owners)
            .await?;
    }

    alerts::set_revoked(&mut change, &alert.id, newly_revoked.len() as i64).await?;
    change.commit().await?;
    Ok(LeakOutcome {
        revoked: newly_revoked.len(),
        created_revoked: created_revoked.len(),
        emails_queued,
    })
}
