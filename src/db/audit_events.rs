//! `audit_events`: each workspace's append-only, hash-chained trail. The
//! chain itself (what is hashed, how it is verified) is `crate::audit`;
//! this module only stores and reads it.

use serde_json::Value;

use super::{
    rows_per_statement, values_rows, Arg, Conn, Count, Db, FromRow, Result, Row, Text, ToArg, Tx,
};
use crate::args;
use crate::domain::WorkspaceId;
use crate::time::Timestamp;

/// An event as the API shows it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    pub id: String,
    pub timestamp: Timestamp,
    #[serde(rename = "type")]
    pub event_type: String,
    pub actor: String,
    pub resource_id: String,
    pub resource_type: String,
    pub resource_name: String,
    #[schema(value_type = Object)]
    pub details: Value,
    /// The client's address, as the trusted proxies vouch for it; null for
    /// events recorded before addresses were.
    pub client_address: Option<String>,
    pub user_agent: Option<String>,
    #[serde(skip)]
    pub seq: i64,
}

const EVENT_COLUMNS: &str = "seq, id, occurred_at, type, actor, resource_id, resource_type, \
     resource_name, details, client_address, user_agent";

impl FromRow for AuditEvent {
    fn from_row(row: &impl Row) -> Result<Self> {
        Ok(AuditEvent {
            seq: row.int("seq")?,
            id: row.text("id")?,
            timestamp: row.time("occurred_at")?,
            event_type: row.text("type")?,
            actor: row.text("actor")?,
            resource_id: row.text("resource_id")?,
            resource_type: row.text("resource_type")?,
            resource_name: row.text("resource_name")?,
            details: row.json("details")?,
            client_address: row.opt_text("client_address")?,
            user_agent: row.opt_text("user_agent")?,
        })
    }
}

/// An event as stored, with its links in the chain: what `audit verify`
/// re-derives.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub workspace_id: String,
    pub seq: i64,
    pub id: String,
    pub occurred_at: i64,
    pub event_type: String,
    pub actor: String,
    pub resource_id: String,
    pub resource_type: String,
    pub resource_name: String,
    /// The JSON text exactly as hashed.
    pub details: String,
    pub client_address: Option<String>,
    pub user_agent: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

const STORED_COLUMNS: &str = "workspace_id, seq, id, occurred_at, type, actor, resource_id, \
     resource_type, resource_name, details, client_address, user_agent, prev_hash, hash";

impl FromRow for StoredEvent {
    fn from_row(row: &impl Row) -> Result<Self> {
        Ok(StoredEvent {
            workspace_id: row.text("workspace_id")?,
            seq: row.int("seq")?,
            id: row.text("id")?,
            occurred_at: row.int("occurred_at")?,
            event_type: row.text("type")?,
            actor: row.text("actor")?,
            resource_id: row.text("resource_id")?,
            resource_type: row.text("resource_type")?,
            resource_name: row.text("resource_name")?,
            details: row.text("details")?,
            client_address: row.opt_text("client_address")?,
            user_agent: row.opt_text("user_agent")?,
            prev_hash: row.text("prev_hash")?,
            hash: row.text("hash")?,
        })
    }
}

/// A workspace's chain head: how many events it has and the last hash.
#[derive(Debug, Clone)]
pub struct Head {
    pub workspace_id: String,
    pub seq: i64,
    pub hash: String,
}

impl FromRow for Head {
    fn from_row(row: &impl Row) -> Result<Self> {
        Ok(Head {
            workspace_id: row.text("id")?,
            seq: row.int("audit_seq")?,
            hash: row.text("audit_head")?,
        })
    }
}

/// Takes the workspace row lock that every append takes, but early (see
/// `db::Change`).
pub async fn lock_workspace(tx: &mut Tx, workspace_id: &str) -> Result<()> {
    tx.execute(
        "UPDATE workspaces SET audit_seq = audit_seq WHERE id = $1",
        args![workspace_id],
    )
    .await?;
    Ok(())
}

/// The workspace's chain head, read under the row lock that every append
/// takes (the UPDATE takes it before the head is read).
pub async fn locked_head(tx: &mut Tx, workspace_id: &str) -> Result<Head> {
    tx.fetch_one(
        "UPDATE workspaces SET audit_seq = audit_seq WHERE id = $1
         RETURNING id, audit_seq, audit_head",
        args![workspace_id],
    )
    .await
}

/// Moves the head to the last event appended, in one statement: the
/// database refuses a head that moves back, or to an event that is not
/// there (migration 0021).
pub async fn advance_head(tx: &mut Tx, workspace_id: &str, seq: i64, hash: &str) -> Result<()> {
    tx.execute(
        "UPDATE workspaces SET audit_seq = $1, audit_head = $2 WHERE id = $3",
        args![seq, hash, workspace_id],
    )
    .await?;
    Ok(())
}

/// Inserts chained events in multi-row statements.
pub async fn insert(tx: &mut Tx, events: &[StoredEvent]) -> Result<()> {
    const COLUMNS: usize = 14;
    for chunk in events.chunks(rows_per_statement(COLUMNS)) {
        let sql = format!(
            "INSERT INTO audit_events ({STORED_COLUMNS}) VALUES {}",
            values_rows(chunk.len(), COLUMNS)
        );
        let mut binds: Vec<Arg<'_>> = Vec::with_capacity(chunk.len() * COLUMNS);
        for e in chunk {
            binds.extend([
                e.workspace_id.to_arg(),
                e.seq.to_arg(),
                e.id.to_arg(),
                e.occurred_at.to_arg(),
                e.event_type.to_arg(),
                e.actor.to_arg(),
                e.resource_id.to_arg(),
                e.resource_type.to_arg(),
                e.resource_name.to_arg(),
                e.details.to_arg(),
                e.client_address.to_arg(),
                e.user_agent.to_arg(),
                e.prev_hash.to_arg(),
                e.hash.to_arg(),
            ]);
        }
        tx.execute(&sql, &binds).await?;
    }
    Ok(())
}

/// Which events a query of the trail selects.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub start_time: Option<i64>,
    pub end_time: Option<i64>,
    pub resource_id: Option<String>,
    pub resource_type: Option<String>,
    /// An actor of `public-api-token/<id>` also selects that token's
    /// revocation: "what did this token do, and when did it stop".
    /// `oauth-app/<id>` also selects what the app's access tokens did
    /// (`oauth-app/<id>/token/<hint>`).
    pub actor: Option<String>,
    /// The event's type (`Token Created`, …).
    pub event_type: Option<String>,
    /// Only events with a sequence number below this (newest-first paging).
    pub before_seq: Option<i64>,
}

/// The WHERE clause of a filter (without `before_seq`) and its arguments.
fn filter_sql<'a>(workspace_id: &'a WorkspaceId, filter: &'a Filter) -> (String, Vec<Arg<'a>>) {
    let mut clauses = vec!["workspace_id = $1".to_string()];
    let mut binds = vec![workspace_id.to_arg()];
    let mut push = |clause: &str, value: Arg<'a>, binds: &mut Vec<Arg<'a>>| {
        binds.push(value);
        clauses.push(clause.replace('?', &format!("${}", binds.len())));
    };
    if let Some(t) = &filter.start_time {
        push("occurred_at >= ?", t.to_arg(), &mut binds);
    }
    if let Some(t) = &filter.end_time {
        push("occurred_at <= ?", t.to_arg(), &mut binds);
    }
    if let Some(r) = &filter.resource_id {
        push("resource_id = ?", r.to_arg(), &mut binds);
    }
    if let Some(r) = &filter.resource_type {
        push("resource_type = ?", r.to_arg(), &mut binds);
    }
    if let Some(t) = &filter.event_type {
        push("type = ?", t.to_arg(), &mut binds);
    }
    if let Some(actor) = &filter.actor {
        match actor.strip_prefix(crate::audit::TOKEN_ACTOR_PREFIX) {
            Some(token_id) => {
                binds.push(actor.to_arg());
                let a = binds.len();
                binds.push(token_id.to_arg());
                let t = binds.len();
                clauses.push(format!(
                    "(actor = ${a} OR (type = 'Token Revoked' AND resource_type = 'token' AND resource_id = ${t}))"
                ));
            }
            None if is_oauth_app(actor) => {
                binds.push(actor.to_arg());
                let a = binds.len();
                // The app's tokens: `<actor>/…`. Compared by substring, as
                // LIKE would read the `_` an id may hold as a wildcard.
                clauses.push(format!(
                    "(actor = ${a} OR substr(actor, 1, length(${a}) + 1) = ${a} || '/')"
                ));
            }
            None => push("actor = ?", actor.to_arg(), &mut binds),
        }
    }
    (clauses.join(" AND "), binds)
}

/// `oauth-app/<id>` (and not one of its tokens).
fn is_oauth_app(actor: &str) -> bool {
    actor
        .strip_prefix(crate::audit::OAUTH_APP_ACTOR_PREFIX)
        .is_some_and(|id| !id.is_empty() && !id.contains('/'))
}

/// Newest first: up to `limit` events below `filter.before_seq`, and the
/// number of events matching the filter in all.
pub async fn list(
    db: &Db,
    workspace_id: &WorkspaceId,
    filter: &Filter,
    limit: i64,
) -> Result<(Vec<AuditEvent>, i64)> {
    let (where_sql, binds) = filter_sql(workspace_id, filter);
    let Count(total) = db
        .fetch_one(
            &format!("SELECT COUNT(*) AS n FROM audit_events WHERE {where_sql}"),
            &binds,
        )
        .await?;
    Ok((batch(db, workspace_id, filter, limit).await?, total))
}

/// Newest first: up to `limit` events below `filter.before_seq`.
pub async fn batch(
    db: &Db,
    workspace_id: &WorkspaceId,
    filter: &Filter,
    limit: i64,
) -> Result<Vec<AuditEvent>> {
    let (where_sql, binds) = filter_sql(workspace_id, filter);
    let mut page_where = where_sql;
    let mut page_binds = binds;
    if let Some(seq) = &filter.before_seq {
        page_binds.push(seq.to_arg());
        page_where.push_str(&format!(" AND seq < ${}", page_binds.len()));
    }
    page_binds.push(Arg::Int(limit));
    let events = db
        .fetch_all(
            &format!(
                "SELECT {EVENT_COLUMNS} FROM audit_events WHERE {page_where}
                 ORDER BY seq DESC LIMIT ${}",
                page_binds.len()
            ),
            &page_binds,
        )
        .await?;
    Ok(events)
}

/// The event types the workspace's trail holds, in order.
pub async fn types(db: &Db, workspace_id: &WorkspaceId) -> Result<Vec<String>> {
    let types: Vec<Text> = db
        .fetch_all(
            "SELECT DISTINCT type AS value FROM audit_events WHERE workspace_id = $1 ORDER BY type",
            args![workspace_id],
        )
        .await?;
    Ok(types.into_iter().map(|Text(t)| t).collect())
}

/// One workspace's chain head.
pub async fn head(db: &Db, workspace_id: &WorkspaceId) -> Result<Option<Head>> {
    db.fetch_optional(
        "SELECT id, audit_seq, audit_head FROM workspaces WHERE id = $1",
        args![workspace_id],
    )
    .await
}

#[derive(Debug, Clone)]
struct Seq(i64);

impl FromRow for Seq {
    fn from_row(row: &impl Row) -> Result<Self> {
        Ok(Seq(row.int("seq")?))
    }
}

/// The sequence numbers of up to `limit` matching events at or above
/// `from_seq`, oldest first: what lies just before a newest-first page, so
/// that a "previous" cursor can be computed. Ignores `filter.before_seq`.
pub async fn seqs_from(
    db: &Db,
    workspace_id: &WorkspaceId,
    filter: &Filter,
    from_seq: i64,
    limit: i64,
) -> Result<Vec<i64>> {
    let (where_sql, mut binds) = filter_sql(workspace_id, filter);
    binds.push(Arg::Int(from_seq));
    let from = binds.len();
    binds.push(Arg::Int(limit));
    let sql = format!(
        "SELECT seq FROM audit_events WHERE {where_sql} AND seq >= ${from}
         ORDER BY seq LIMIT ${}",
        binds.len()
    );
    let seqs: Vec<Seq> = db.fetch_all(&sql, &binds).await?;
    Ok(seqs.into_iter().map(|Seq(s)| s).collect())
}

/// The last `limit` things an actor did, newest first.
pub async fn recent_by_actor(
    conn: impl Into<Conn<'_>>,
    workspace_id: &WorkspaceId,
    actor: &str,
    limit: i64,
) -> Result<Vec<AuditEvent>> {
    conn.into()
        .fetch_all(
            &format!(
                "SELECT {EVENT_COLUMNS} FROM audit_events WHERE workspace_id = $1 AND actor = $2
                 ORDER BY seq DESC LIMIT $3"
            ),
            args![workspace_id, actor, limit],
        )
        .await
}

/// The events of any of `actors` with one of `types`, oldest first.
pub async fn by_actors(
    conn: impl Into<Conn<'_>>,
    workspace_id: &WorkspaceId,
    actors: &[String],
    types: &[&str],
) -> Result<Vec<AuditEvent>> {
    if actors.is_empty() || types.is_empty() {
        return Ok(Vec::new());
    }
    let mut binds = vec![workspace_id.to_arg()];
    binds.extend(actors.iter().map(|a| a.to_arg()));
    binds.extend(types.iter().map(|t| t.to_arg()));
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM audit_events
         WHERE workspace_id = $1 AND actor IN ({}) AND type IN ({}) ORDER BY seq",
        super::placeholders(2, actors.len()),
        super::placeholders(2 + actors.len(), types.len())
    );
    conn.into().fetch_all(&sql, &binds).await
}

/// Every workspace's chain head.
pub async fn heads(db: &Db) -> Result<Vec<Head>> {
    db.fetch_all(
        "SELECT id, audit_seq, audit_head FROM workspaces ORDER BY id",
        args![],
    )
    .await
}

/// Up to `limit` stored events of a workspace after `after_seq`, in order.
pub async fn chain(
    db: &Db,
    workspace_id: &str,
    after_seq: i64,
    limit: i64,
) -> Result<Vec<StoredEvent>> {
    db.fetch_all(
        &format!(
            "SELECT {STORED_COLUMNS} FROM audit_events WHERE workspace_id = $1 AND seq > $2
             ORDER BY seq LIMIT $3"
        ),
        args![workspace_id, after_seq, limit],
    )
    .await
}
