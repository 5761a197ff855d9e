//! The append-only audit trail. Each workspace's events form a hash chain:
//! every event stores the previous event's hash, and the workspace row holds
//! the head, so an edited, removed or truncated history is detectable
//! (`leakguard audit verify`). Appends lock the workspace row, which keeps
//! the chain linear under concurrent writers.

use serde::Serialize;
use serde_json::Value;
use sqlx::Row;

use crate::db::{placeholders, rows_per_statement, Db, Tx};
use crate::id::new_id;
use crate::time::format_micros;

/// Who did something: `public-api-token/<id>`, `github-secret-scanning`, `cli`.
pub fn token_actor(token_id: &str) -> String {
    format!("public-api-token/{token_id}")
}
pub const GITHUB_ACTOR: &str = "github-secret-scanning";
pub const CLI_ACTOR: &str = "cli";

#[derive(Debug, Clone)]
pub struct NewEvent {
    pub event_type: &'static str,
    pub actor: String,
    pub resource_id: String,
    pub resource_type: &'static str,
    pub resource_name: String,
    pub details: Value,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    pub id: String,
    pub timestamp: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub actor: String,
    pub resource_id: String,
    pub resource_type: String,
    pub resource_name: String,
    #[schema(value_type = Object)]
    pub details: Value,
    #[serde(skip)]
    pub seq: i64,
}

/// The `details` of a "… Modified" event: what changed, from what to what.
#[derive(Debug, Default)]
pub struct Changes(serde_json::Map<String, Value>);

impl Changes {
    /// Records a field if its value changed.
    pub fn field<T: Serialize + PartialEq>(&mut self, name: &str, from: &T, to: &T) {
        if from != to {
            self.0.insert(
                name.to_string(),
                serde_json::json!({ "from": from, "to": to }),
            );
        }
    }

    /// Records which keys of a field changed, but not their values (which
    /// may be secrets that the audit trail must not repeat).
    pub fn keys(&mut self, name: &str, keys: Vec<String>) {
        if !keys.is_empty() {
            self.0
                .insert(name.to_string(), serde_json::json!({ "changedKeys": keys }));
        }
    }

    pub fn into_details(self) -> Value {
        serde_json::json!({ "changes": self.0 })
    }
}

/// Appends events to one workspace's chain inside the caller's transaction.
pub async fn append(
    tx: &mut Tx,
    workspace_id: &str,
    occurred_at: i64,
    events: Vec<NewEvent>,
) -> Result<(), sqlx::Error> {
    if events.is_empty() {
        return Ok(());
    }
    // The UPDATE takes the row lock before we read the head.
    let row = sqlx::query(
        "UPDATE workspaces SET audit_seq = audit_seq + $1 WHERE id = $2
         RETURNING audit_seq, audit_head",
    )
    .bind(events.len() as i64)
    .bind(workspace_id)
    .fetch_one(&mut **tx)
    .await?;
    let last_seq: i64 = row.get(0);
    let mut head: String = row.get(1);
    let first_seq = last_seq - events.len() as i64 + 1;

    let mut rows = Vec::with_capacity(events.len());
    for (i, event) in events.into_iter().enumerate() {
        let seq = first_seq + i as i64;
        let id = new_id();
        let details = event.details.to_string();
        let hash = chain_hash(
            &head,
            workspace_id,
            seq,
            &id,
            occurred_at,
            event.event_type,
            &event.actor,
            &event.resource_id,
            event.resource_type,
            &event.resource_name,
            &details,
        );
        rows.push((seq, id, event, details, head.clone(), hash.clone()));
        head = hash;
    }
    const COLUMNS: usize = 12;
    for chunk in rows.chunks(rows_per_statement(COLUMNS)) {
        let values = (0..chunk.len())
            .map(|i| format!("({})", placeholders(i * COLUMNS + 1, COLUMNS)))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "INSERT INTO audit_events (workspace_id, seq, id, occurred_at, type, actor,
                 resource_id, resource_type, resource_name, details, prev_hash, hash)
             VALUES {values}"
        );
        let mut query = sqlx::query(&sql);
        for (seq, id, event, details, prev, hash) in chunk {
            query = query
                .bind(workspace_id)
                .bind(*seq)
                .bind(id.as_str())
                .bind(occurred_at)
                .bind(event.event_type)
                .bind(event.actor.as_str())
                .bind(event.resource_id.as_str())
                .bind(event.resource_type)
                .bind(event.resource_name.as_str())
                .bind(details.as_str())
                .bind(prev.as_str())
                .bind(hash.as_str());
        }
        query.execute(&mut **tx).await?;
    }
    sqlx::query("UPDATE workspaces SET audit_head = $1 WHERE id = $2")
        .bind(head)
        .bind(workspace_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn chain_hash(
    prev: &str,
    workspace_id: &str,
    seq: i64,
    id: &str,
    occurred_at: i64,
    event_type: &str,
    actor: &str,
    resource_id: &str,
    resource_type: &str,
    resource_name: &str,
    details: &str,
) -> String {
    // A JSON array is an unambiguous encoding of the fields.
    let canonical = serde_json::json!([
        prev,
        workspace_id,
        seq,
        id,
        occurred_at,
        event_type,
        actor,
        resource_id,
        resource_type,
        resource_name,
        details
    ]);
    crate::token::sha256_hex(canonical.to_string().as_bytes())
}

#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub start_time: Option<i64>,
    pub end_time: Option<i64>,
    pub resource_id: Option<String>,
    pub resource_type: Option<String>,
    pub actor: Option<String>,
    /// Only events with a sequence number below this (newest-first paging).
    pub before_seq: Option<i64>,
}

const SELECT_EVENT: &str = "SELECT seq, id, occurred_at, type, actor, resource_id, resource_type,
        resource_name, details FROM audit_events";

/// The `resourceType` values events carry.
pub const RESOURCE_TYPES: &[&str] = &["source", "destination", "token", "user"];

/// Takes the workspace row lock that every append takes, but early. A
/// mutation that reads before it writes (a last-owner check, a settings
/// merge, a source's destination count) holds it from its first read, so
/// it serialises with every other audited change of the workspace and acts
/// on current data.
pub async fn lock_workspace(tx: &mut Tx, workspace_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE workspaces SET audit_seq = audit_seq WHERE id = $1")
        .bind(workspace_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The WHERE clause of a filter (without `before_seq`) and its binds.
fn filter_sql(workspace_id: &str, filter: &Filter) -> (String, Vec<BindValue>) {
    let mut clauses = vec!["workspace_id = $1".to_string()];
    let mut binds: Vec<BindValue> = vec![BindValue::Text(workspace_id.to_string())];
    let mut push = |clause: &str, value: BindValue, binds: &mut Vec<BindValue>| {
        binds.push(value);
        clauses.push(clause.replace('?', &format!("${}", binds.len())));
    };
    if let Some(t) = filter.start_time {
        push("occurred_at >= ?", BindValue::Int(t), &mut binds);
    }
    if let Some(t) = filter.end_time {
        push("occurred_at <= ?", BindValue::Int(t), &mut binds);
    }
    if let Some(r) = &filter.resource_id {
        push("resource_id = ?", BindValue::Text(r.clone()), &mut binds);
    }
    if let Some(r) = &filter.resource_type {
        push("resource_type = ?", BindValue::Text(r.clone()), &mut binds);
    }
    if let Some(actor) = &filter.actor {
        match actor.strip_prefix("public-api-token/") {
            Some(token_id) => {
                binds.push(BindValue::Text(actor.clone()));
                let a = binds.len();
                binds.push(BindValue::Text(token_id.to_string()));
                let t = binds.len();
                clauses.push(format!(
                    "(actor = ${a} OR (type = 'Token Revoked' AND resource_type = 'token' AND resource_id = ${t}))"
                ));
            }
            None => push("actor = ?", BindValue::Text(actor.clone()), &mut binds),
        }
    }
    (clauses.join(" AND "), binds)
}

/// Newest first. An `actor` filter of `public-api-token/<id>` also returns
/// that token's revocation: "what did this token do, and when did it stop".
/// Returns the page and the number of events matching the filter.
pub async fn list(
    db: &Db,
    workspace_id: &str,
    filter: &Filter,
    limit: i64,
) -> Result<(Vec<AuditEvent>, i64), sqlx::Error> {
    let (where_sql, binds) = filter_sql(workspace_id, filter);
    let total_sql = format!("SELECT COUNT(*) FROM audit_events WHERE {where_sql}");
    let mut page_where = where_sql.clone();
    let mut page_binds = binds.clone();
    if let Some(seq) = filter.before_seq {
        page_binds.push(BindValue::Int(seq));
        page_where.push_str(&format!(" AND seq < ${}", page_binds.len()));
    }
    page_binds.push(BindValue::Int(limit));
    let page_sql = format!(
        "{SELECT_EVENT} WHERE {page_where} ORDER BY seq DESC LIMIT ${}",
        page_binds.len()
    );
    let rows = bind_all(sqlx::query(&page_sql), &page_binds)
        .fetch_all(db.pool())
        .await?;
    let total: i64 = bind_all(sqlx::query(&total_sql), &binds)
        .fetch_one(db.pool())
        .await?
        .get(0);
    Ok((rows.iter().map(event_from_row).collect(), total))
}

/// The sequence numbers of up to `limit` matching events at or above
/// `from_seq`, oldest first: what lies just before a newest-first page, so
/// that a "previous" cursor can be computed. Ignores `filter.before_seq`.
pub async fn seqs_from(
    db: &Db,
    workspace_id: &str,
    filter: &Filter,
    from_seq: i64,
    limit: i64,
) -> Result<Vec<i64>, sqlx::Error> {
    let (where_sql, mut binds) = filter_sql(workspace_id, filter);
    binds.push(BindValue::Int(from_seq));
    let from = binds.len();
    binds.push(BindValue::Int(limit));
    let sql = format!(
        "SELECT seq FROM audit_events WHERE {where_sql} AND seq >= ${from}
         ORDER BY seq LIMIT ${}",
        binds.len()
    );
    let rows = bind_all(sqlx::query(&sql), &binds)
        .fetch_all(db.pool())
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// The last `limit` things a token did, newest first (for the owner email).
pub async fn recent_by_actor(
    tx: &mut Tx,
    workspace_id: &str,
    actor: &str,
    limit: i64,
) -> Result<Vec<AuditEvent>, sqlx::Error> {
    let sql =
        format!("{SELECT_EVENT} WHERE workspace_id = $1 AND actor = $2 ORDER BY seq DESC LIMIT $3");
    let rows = sqlx::query(&sql)
        .bind(workspace_id)
        .bind(actor)
        .bind(limit)
        .fetch_all(&mut **tx)
        .await?;
    Ok(rows.iter().map(event_from_row).collect())
}

#[derive(Debug, Clone)]
enum BindValue {
    Text(String),
    Int(i64),
}

fn bind_all<'q>(
    mut query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    binds: &'q [BindValue],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    for b in binds {
        query = match b {
            BindValue::Text(s) => query.bind(s.as_str()),
            BindValue::Int(i) => query.bind(*i),
        };
    }
    query
}

fn event_from_row(row: &sqlx::any::AnyRow) -> AuditEvent {
    let details: String = row.get(8);
    AuditEvent {
        seq: row.get(0),
        id: row.get(1),
        timestamp: format_micros(row.get(2)),
        event_type: row.get(3),
        actor: row.get(4),
        resource_id: row.get(5),
        resource_type: row.get(6),
        resource_name: row.get(7),
        details: serde_json::from_str(&details).unwrap_or(Value::Null),
    }
}

/// The first place a workspace's chain breaks.
#[derive(Debug, PartialEq, Eq)]
pub struct ChainBreak {
    pub workspace_id: String,
    pub event_id: Option<String>,
    pub seq: i64,
    pub reason: String,
}

/// Re-derives every workspace's chain; returns the workspaces checked and
/// the breaks found (at most one per workspace: the first).
pub async fn verify(db: &Db) -> Result<(usize, Vec<ChainBreak>), sqlx::Error> {
    let workspaces = sqlx::query("SELECT id, audit_seq, audit_head FROM workspaces ORDER BY id")
        .fetch_all(db.pool())
        .await?;
    let mut breaks = Vec::new();
    for ws in &workspaces {
        let workspace_id: String = ws.get(0);
        let head_seq: i64 = ws.get(1);
        let head_hash: String = ws.get(2);
        if let Some(b) = verify_workspace(db, &workspace_id, head_seq, &head_hash).await? {
            breaks.push(b);
        }
    }
    Ok((workspaces.len(), breaks))
}

async fn verify_workspace(
    db: &Db,
    workspace_id: &str,
    head_seq: i64,
    head_hash: &str,
) -> Result<Option<ChainBreak>, sqlx::Error> {
    let broken = |seq: i64, event_id: Option<String>, reason: String| {
        Ok(Some(ChainBreak {
            workspace_id: workspace_id.to_string(),
            event_id,
            seq,
            reason,
        }))
    };
    let mut prev = String::new();
    let mut expected_seq = 1;
    let mut after = 0i64;
    loop {
        let rows = sqlx::query(
            "SELECT seq, id, occurred_at, type, actor, resource_id, resource_type,
                    resource_name, details, prev_hash, hash
             FROM audit_events WHERE workspace_id = $1 AND seq > $2 ORDER BY seq LIMIT 1000",
        )
        .bind(workspace_id)
        .bind(after)
        .fetch_all(db.pool())
        .await?;
        if rows.is_empty() {
            break;
        }
        for row in &rows {
            let seq: i64 = row.get(0);
            let id: String = row.get(1);
            if seq != expected_seq {
                return broken(
                    expected_seq,
                    Some(id),
                    format!("event {expected_seq} is missing (next found is {seq})"),
                );
            }
            let stored_prev: String = row.get(9);
            let stored_hash: String = row.get(10);
            if stored_prev != prev {
                return broken(seq, Some(id), "previous-hash link does not match".into());
            }
            let recomputed = chain_hash(
                &prev,
                workspace_id,
                seq,
                &id,
                row.get(2),
                row.get::<String, _>(3).as_str(),
                row.get::<String, _>(4).as_str(),
                row.get::<String, _>(5).as_str(),
                row.get::<String, _>(6).as_str(),
                row.get::<String, _>(7).as_str(),
                row.get::<String, _>(8).as_str(),
            );
            if recomputed != stored_hash {
                return broken(seq, Some(id), "contents were modified".into());
            }
            prev = stored_hash;
            expected_seq += 1;
            after = seq;
        }
    }
    if expected_seq - 1 != head_seq || prev != head_hash {
        return broken(
            expected_seq,
            None,
            format!(
                "the chain ends at event {} but the workspace records {head_seq} events",
                expected_seq - 1
            ),
        );
    }
    Ok(None)
}
