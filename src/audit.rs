//! The append-only audit trail. Each workspace's events form a hash chain:
//! every event stores the previous event's hash, and the workspace row holds
//! the head, so an edited, removed or truncated history is detectable
//! (`leakguard audit verify`). Appends lock the workspace row, which keeps
//! the chain linear under concurrent writers.

use serde::Serialize;
use serde_json::Value;

use crate::db::audit_events::{self, StoredEvent};
use crate::db::{Db, Tx};
use crate::id::new_id;

pub use crate::db::audit_events::{AuditEvent, Filter};

pub const TOKEN_ACTOR_PREFIX: &str = "public-api-token/";

/// Who did something: `public-api-token/<id>`, `github-secret-scanning`, `cli`.
pub fn token_actor(token_id: &impl std::fmt::Display) -> String {
    format!("{TOKEN_ACTOR_PREFIX}{token_id}")
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

/// Appends events to one workspace's chain inside the caller's transaction
/// (`db::Change` calls it at commit).
pub async fn append(
    tx: &mut Tx,
    workspace_id: &str,
    occurred_at: i64,
    events: Vec<NewEvent>,
) -> crate::db::Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let before = audit_events::reserve(tx, workspace_id, events.len() as i64).await?;
    let mut head = before.hash;
    let mut rows = Vec::with_capacity(events.len());
    for (i, event) in events.into_iter().enumerate() {
        let mut row = StoredEvent {
            workspace_id: workspace_id.to_string(),
            seq: before.seq + 1 + i as i64,
            id: new_id(),
            occurred_at,
            event_type: event.event_type.to_string(),
            actor: event.actor,
            resource_id: event.resource_id,
            resource_type: event.resource_type.to_string(),
            resource_name: event.resource_name,
            details: event.details.to_string(),
            prev_hash: head,
            hash: String::new(),
        };
        row.hash = chain_hash(&row);
        head = row.hash.clone();
        rows.push(row);
    }
    audit_events::insert(tx, &rows).await?;
    audit_events::set_head(tx, workspace_id, &head).await
}

/// The hash of an event, over its fields and the previous event's hash.
fn chain_hash(e: &StoredEvent) -> String {
    // A JSON array is an unambiguous encoding of the fields.
    let canonical = serde_json::json!([
        e.prev_hash,
        e.workspace_id,
        e.seq,
        e.id,
        e.occurred_at,
        e.event_type,
        e.actor,
        e.resource_id,
        e.resource_type,
        e.resource_name,
        e.details
    ]);
    crate::token::sha256_hex(canonical.to_string().as_bytes())
}

/// The `resourceType` values events carry.
pub const RESOURCE_TYPES: &[&str] = &[
    "source",
    "destination",
    "warehouse",
    "tracking_plan",
    "label",
    "token",
    "user",
];

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
pub async fn verify(db: &Db) -> crate::db::Result<(usize, Vec<ChainBreak>)> {
    let heads = audit_events::heads(db).await?;
    let mut breaks = Vec::new();
    for head in &heads {
        if let Some(b) = verify_workspace(db, head).await? {
            breaks.push(b);
        }
    }
    Ok((heads.len(), breaks))
}

async fn verify_workspace(
    db: &Db,
    head: &audit_events::Head,
) -> crate::db::Result<Option<ChainBreak>> {
    let broken = |seq: i64, event_id: Option<String>, reason: String| {
        Ok(Some(ChainBreak {
            workspace_id: head.workspace_id.clone(),
            event_id,
            seq,
            reason,
        }))
    };
    let mut prev = String::new();
    let mut expected_seq = 1;
    loop {
        let events = audit_events::chain(db, &head.workspace_id, expected_seq - 1, 1000).await?;
        if events.is_empty() {
            break;
        }
        for event in events {
            if event.seq != expected_seq {
                return broken(
                    expected_seq,
                    Some(event.id),
                    format!(
                        "event {expected_seq} is missing (next found is {})",
                        event.seq
                    ),
                );
            }
            if event.prev_hash != prev {
                return broken(
                    event.seq,
                    Some(event.id),
                    "previous-hash link does not match".into(),
                );
            }
            if chain_hash(&event) != event.hash {
                return broken(event.seq, Some(event.id), "contents were modified".into());
            }
            prev = event.hash;
            expected_seq += 1;
        }
    }
    if expected_seq - 1 != head.seq || prev != head.hash {
        return broken(
            expected_seq,
            None,
            format!(
                "the chain ends at event {} but the workspace records {} events",
                expected_seq - 1,
                head.seq
            ),
        );
    }
    Ok(None)
}
