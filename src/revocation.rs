//! The one transaction that revokes tokens: marks them revoked, appends the
//! audit events and (for leaks) enqueues one email per workspace owner. Used
//! by the GitHub scanner and by `DELETE /tokens/{id}`.

use std::collections::BTreeMap;

use serde_json::json;
use sqlx::Row;

use crate::audit::{self, NewEvent};
use crate::db::{placeholders, rows_per_statement, Tx, MAX_BINDS};
use crate::notify::{
    ActivityLine, AlertInfo, Notifier, Owner, RevokedTokenInfo, WorkspaceInfo, ACTIVITY_LIMIT,
    DETAILED_TOKENS,
};
use crate::time::{format_micros, now_micros};

pub const REASON_GITHUB: &str = "github_secret_scanning";
pub const REASON_API: &str = "revoked_by_owner";

/// A stored token as the revocation needs it.
#[derive(Debug, Clone)]
pub struct TokenRecord {
    pub id: String,
    pub workspace_id: String,
    pub name: String,
    pub role: String,
    pub hint: String,
    pub token_hash: String,
    pub revoked_at: Option<i64>,
}

pub const TOKEN_RECORD_COLUMNS: &str = "id, workspace_id, name, role, hint, token_hash, revoked_at";

pub fn token_record(row: &sqlx::any::AnyRow) -> TokenRecord {
    TokenRecord {
        id: row.get(0),
        workspace_id: row.get(1),
        name: row.get(2),
        role: row.get(3),
        hint: row.get(4),
        token_hash: row.get(5),
        revoked_at: row.get(6),
    }
}

/// Where GitHub found a token.
#[derive(Debug, Clone)]
pub struct Report {
    pub url: String,
    pub source: String,
    pub token_type: String,
}

#[derive(Debug, Clone)]
pub struct LeakAlert {
    pub id: String,
    pub received_at: i64,
    pub key_identifier: String,
    pub reported: usize,
}

pub struct LeakOutcome {
    pub revoked: usize,
    pub emails_queued: usize,
}

/// Marks still-active tokens revoked; returns the ids this call revoked (a
/// concurrent revocation of the same token makes it skip that token).
async fn mark_revoked(
    tx: &mut Tx,
    ids: &[&str],
    reason: &str,
    at: i64,
) -> Result<Vec<String>, sqlx::Error> {
    let mut revoked = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(MAX_BINDS - 2) {
        let sql = format!(
            "UPDATE tokens SET revoked_at = $1, revoked_reason = $2
             WHERE revoked_at IS NULL AND id IN ({}) RETURNING id",
            placeholders(3, chunk.len())
        );
        let mut query = sqlx::query(&sql).bind(at).bind(reason);
        for id in chunk {
            query = query.bind(*id);
        }
        for row in query.fetch_all(&mut **tx).await? {
            revoked.push(row.get(0));
        }
    }
    Ok(revoked)
}

fn revoked_event(token: &TokenRecord, actor: String, details: serde_json::Value) -> NewEvent {
    NewEvent {
        event_type: "Token Revoked",
        actor,
        resource_id: token.id.clone(),
        resource_type: "token",
        resource_name: token.name.clone(),
        details,
    }
}

/// Revocation by an owner through the API. False when it was already revoked.
pub async fn revoke_by_owner(
    tx: &mut Tx,
    token: &TokenRecord,
    actor: String,
) -> Result<bool, sqlx::Error> {
    let now = now_micros();
    audit::lock_workspace(tx, &token.workspace_id).await?;
    let revoked = mark_revoked(tx, &[token.id.as_str()], REASON_API, now).await?;
    if revoked.is_empty() {
        return Ok(false);
    }
    let event = revoked_event(token, actor, json!({ "reason": REASON_API }));
    audit::append(tx, &token.workspace_id, now, vec![event]).await?;
    Ok(true)
}

/// Everything a GitHub alert changes, in the caller's transaction. Tokens
/// already revoked are recorded as reported again but get no second
/// revocation, audit event or email.
pub async fn revoke_leaked(
    tx: &mut Tx,
    notifier: &Notifier,
    alert: &LeakAlert,
    matches: &[(TokenRecord, Report)],
) -> anyhow::Result<LeakOutcome> {
    record_alerts(&mut **tx, &[(alert, matches.len())]).await?;

    // Workspace locks first, in a fixed order, then token rows: the order
    // every audited change takes, so concurrent alerts and API calls queue
    // instead of deadlocking.
    let active: Vec<&TokenRecord> = matches
        .iter()
        .map(|(t, _)| t)
        .filter(|t| t.revoked_at.is_none())
        .collect();
    let workspaces: std::collections::BTreeSet<&str> =
        active.iter().map(|t| t.workspace_id.as_str()).collect();
    for workspace_id in workspaces {
        audit::lock_workspace(tx, workspace_id).await?;
    }
    let active: Vec<&str> = active.iter().map(|t| t.id.as_str()).collect();
    let newly_revoked: std::collections::HashSet<String> =
        mark_revoked(tx, &active, REASON_GITHUB, alert.received_at)
            .await?
            .into_iter()
            .collect();

    record_reports(tx, alert, matches, &newly_revoked).await?;

    // Group the new revocations by workspace: one audit batch and one email
    // per owner for each.
    let mut by_workspace: BTreeMap<&str, Vec<&(TokenRecord, Report)>> = BTreeMap::new();
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
    for (workspace_id, tokens) in &by_workspace {
        // The email lists the first DETAILED_TOKENS tokens with their
        // activity and counts the rest; the audit trail has them all.
        let mut details = Vec::with_capacity(tokens.len().min(DETAILED_TOKENS));
        for (token, report) in tokens.iter().take(DETAILED_TOKENS) {
            let activity = audit::recent_by_actor(
                tx,
                workspace_id,
                &audit::token_actor(&token.id),
                ACTIVITY_LIMIT,
            )
            .await?
            .into_iter()
            .map(|e| ActivityLine {
                timestamp: e.timestamp,
                event_type: e.event_type,
                resource_type: e.resource_type,
                resource_name: e.resource_name,
                resource_id: e.resource_id,
            })
            .collect();
            details.push(RevokedTokenInfo {
                id: token.id.clone(),
                name: token.name.clone(),
                role: token.role.clone(),
                hint: token.hint.clone(),
                url: report.url.clone(),
                source: report.source.clone(),
                token_type: report.token_type.clone(),
                activity,
            });
        }
        let omitted = tokens.len() - details.len();
        let events = tokens
            .iter()
            .map(|(token, report)| {
                revoked_event(
                    token,
                    audit::GITHUB_ACTOR.to_string(),
                    json!({
                        "reason": REASON_GITHUB,
                        "alertId": alert.id,
                        "url": report.url,
                        "source": report.source,
                        "tokenType": report.token_type,
                    }),
                )
            })
            .collect();
        audit::append(tx, workspace_id, alert.received_at, events).await?;

        let (workspace, owners) = workspace_and_owners(tx, workspace_id).await?;
        emails_queued += notifier
            .enqueue_leak_notice(tx, &workspace, &owners, &alert_info, &details, omitted)
            .await?;
    }

    sqlx::query("UPDATE alerts SET revoked = $1 WHERE id = $2")
        .bind(newly_revoked.len() as i64)
        .bind(&alert.id)
        .execute(&mut **tx)
        .await?;
    Ok(LeakOutcome {
        revoked: newly_revoked.len(),
        emails_queued,
    })
}

/// Columns of one alert record.
pub const ALERT_COLUMNS: usize = 5;

/// The alerts' own records, (alert, tokens of ours in it), in one
/// statement: at most `rows_per_statement(ALERT_COLUMNS)` of them.
/// `revoked` starts at 0 and is set once known.
pub async fn record_alerts<'c, E>(db: E, alerts: &[(&LeakAlert, usize)]) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    let values = (0..alerts.len())
        .map(|i| {
            format!(
                "({}, 0)",
                placeholders(i * ALERT_COLUMNS + 1, ALERT_COLUMNS)
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "INSERT INTO alerts (id, received_at, key_identifier, reported, matched, revoked)
         VALUES {values}"
    );
    let mut query = sqlx::query(&sql);
    for (alert, matched) in alerts {
        query = query
            .bind(&alert.id)
            .bind(alert.received_at)
            .bind(&alert.key_identifier)
            .bind(alert.reported as i64)
            .bind(*matched as i64);
    }
    query.execute(db).await?;
    Ok(())
}

async fn record_reports(
    tx: &mut Tx,
    alert: &LeakAlert,
    matches: &[(TokenRecord, Report)],
    newly_revoked: &std::collections::HashSet<String>,
) -> Result<(), sqlx::Error> {
    const COLUMNS: usize = 7;
    for chunk in matches.chunks(rows_per_statement(COLUMNS)) {
        let values = (0..chunk.len())
            .map(|i| format!("({})", placeholders(i * COLUMNS + 1, COLUMNS)))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "INSERT INTO token_reports (alert_id, token_id, url, source, token_type,
                 reported_at, revoked)
             VALUES {values}"
        );
        let mut query = sqlx::query(&sql);
        for (token, report) in chunk {
            query = query
                .bind(&alert.id)
                .bind(&token.id)
                .bind(&report.url)
                .bind(&report.source)
                .bind(&report.token_type)
                .bind(alert.received_at)
                .bind(newly_revoked.contains(&token.id) as i64);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

async fn workspace_and_owners(
    tx: &mut Tx,
    workspace_id: &str,
) -> Result<(WorkspaceInfo, Vec<Owner>), sqlx::Error> {
    let ws = sqlx::query("SELECT id, name FROM workspaces WHERE id = $1")
        .bind(workspace_id)
        .fetch_one(&mut **tx)
        .await?;
    let owners = sqlx::query(
        "SELECT id, email, name FROM users WHERE workspace_id = $1 AND role = 'owner'
         ORDER BY created_at, id",
    )
    .bind(workspace_id)
    .fetch_all(&mut **tx)
    .await?;
    Ok((
        WorkspaceInfo {
            id: ws.get(0),
            name: ws.get(1),
        },
        owners
            .iter()
            .map(|r| Owner {
                id: r.get(0),
                email: r.get(1),
                name: r.get(2),
            })
            .collect(),
    ))
}
