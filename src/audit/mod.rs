//! The append-only audit trail. Each workspace's events form a hash chain:
//! every event stores the previous event's hash, and the workspace row holds
//! the head, so an edited, removed or truncated history is detectable
//! (`leakguard audit verify`). Appends lock the workspace row, which keeps
//! the chain linear under concurrent writers.
//!
//! Someone who can write the database could recompute a chain and its head.
//! Signed checkpoints (`checkpoints`) anchor each chain outside the
//! database, with a key the database never sees: `audit verify
//! --checkpoints` catches a chain rewritten or cut short before the latest
//! checkpoint.

pub mod checkpoints;

use serde::Serialize;
use serde_json::Value;

use crate::client::Client;
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
pub const CONSOLE_USER_ACTOR_PREFIX: &str = "console-user/";
pub const OAUTH_APP_ACTOR_PREFIX: &str = "oauth-app/";

/// An OAuth app: `oauth-app/<id>`, the creator of its access tokens.
pub fn oauth_app_actor(app_id: &impl std::fmt::Display) -> String {
    format!("{OAUTH_APP_ACTOR_PREFIX}{app_id}")
}

/// Who acts with `token`: `public-api-token/<id>` for a Public API token;
/// for an access token its app and the token's last four characters,
/// `oauth-app/<app id>/token/<hint>`, which its holder can tell it by.
pub fn actor_of(token: &crate::db::tokens::Token) -> String {
    match &token.oauth {
        None => token_actor(&token.id),
        Some(grant) => format!("{}/token/{}", oauth_app_actor(&grant.app_id), token.hint),
    }
}

/// Who did something, and from where: every audit event records both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// `public-api-token/<id>`, `console-user/<id>`, `github-secret-scanning`, `cli`.
    pub id: String,
    pub client: Client,
}

impl Actor {
    /// A Public API token, calling from `client`.
    pub fn token(token_id: &impl std::fmt::Display, client: Client) -> Actor {
        Actor {
            id: token_actor(token_id),
            client,
        }
    }

    /// A person signed in to the console.
    pub fn console_user(user_id: &impl std::fmt::Display, client: Client) -> Actor {
        Actor {
            id: format!("{CONSOLE_USER_ACTOR_PREFIX}{user_id}"),
            client,
        }
    }

    /// GitHub's secret scanning, posting an alert from `client`.
    pub fn github(client: Client) -> Actor {
        Actor {
            id: GITHUB_ACTOR.to_string(),
            client,
        }
    }

    /// An operator at this host's command line.
    pub fn cli() -> Actor {
        Actor {
            id: CLI_ACTOR.to_string(),
            client: Client::cli(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewEvent {
    pub event_type: &'static str,
    pub actor: Actor,
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
    let before = audit_events::locked_head(tx, workspace_id).await?;
    let mut head = before.hash;
    let mut rows = Vec::with_capacity(events.len());
    for (i, event) in events.into_iter().enumerate() {
        let mut row = StoredEvent {
            workspace_id: workspace_id.to_string(),
            seq: before.seq + 1 + i as i64,
            id: new_id(),
            occurred_at,
            event_type: event.event_type.to_string(),
            actor: event.actor.id,
            client_address: event.actor.client.address,
            user_agent: event.actor.client.user_agent,
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
    let seq = before.seq + rows.len() as i64;
    audit_events::advance_head(tx, workspace_id, seq, &head).await
}

/// The hash of an event, over its fields and the previous event's hash.
///
/// The client's address and user agent were added later: an event that has
/// neither hashes exactly as events did before them, so existing chains
/// keep verifying; an event that has either hashes both, and removing them
/// from such an event breaks its hash.
pub fn chain_hash(e: &StoredEvent) -> String {
    // A JSON array is an unambiguous encoding of the fields.
    let mut canonical = serde_json::json!([
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
    if e.client_address.is_some() || e.user_agent.is_some() {
        let fields = canonical.as_array_mut().expect("built as an array");
        fields.push(e.client_address.clone().into());
        fields.push(e.user_agent.clone().into());
    }
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
    "oauth_app",
];

/// The first place a workspace's chain breaks.
#[derive(Debug, PartialEq, Eq)]
pub struct ChainBreak {
    pub workspace_id: String,
    pub event_id: Option<String>,
    pub seq: i64,
    pub reason: String,
}

/// A point in a workspace's chain: its first `seq` events, the last of
/// which has hash `hash` (`seq` 0 and an empty hash: no events yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    pub seq: i64,
    pub hash: String,
}

impl Anchor {
    pub fn genesis() -> Anchor {
        Anchor {
            seq: 0,
            hash: String::new(),
        }
    }
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

/// Re-derives one workspace's chain: None when it verifies.
pub async fn verify_one(
    db: &Db,
    workspace_id: &crate::domain::WorkspaceId,
) -> crate::db::Result<Option<ChainBreak>> {
    match audit_events::head(db, workspace_id).await? {
        Some(head) => verify_workspace(db, &head).await,
        None => Ok(None),
    }
}

async fn verify_workspace(
    db: &Db,
    head: &audit_events::Head,
) -> crate::db::Result<Option<ChainBreak>> {
    let end = match walk(db, &head.workspace_id, Anchor::genesis(), |_| None).await? {
        Ok(end) => end,
        Err(b) => return Ok(Some(b)),
    };
    if end.seq != head.seq || end.hash != head.hash {
        return Ok(Some(ChainBreak {
            workspace_id: head.workspace_id.clone(),
            event_id: None,
            seq: end.seq + 1,
            reason: format!(
                "the chain ends at event {} but the workspace records {} events",
                end.seq, head.seq
            ),
        }));
    }
    Ok(None)
}

/// Follows a workspace's chain from `from` (which the caller vouches for)
/// to its last stored event, checking every link and every event's hash.
/// `check` may refuse a verified event with a reason. Returns the last
/// event's anchor, or the first break.
pub async fn walk(
    db: &Db,
    workspace_id: &str,
    from: Anchor,
    mut check: impl FnMut(&StoredEvent) -> Option<String>,
) -> crate::db::Result<Result<Anchor, ChainBreak>> {
    let broken = |seq: i64, event_id: Option<String>, reason: String| {
        Ok(Err(ChainBreak {
            workspace_id: workspace_id.to_string(),
            event_id,
            seq,
            reason,
        }))
    };
    let mut at = from;
    loop {
        let events = audit_events::chain(db, workspace_id, at.seq, 1000).await?;
        if events.is_empty() {
            return Ok(Ok(at));
        }
        for event in events {
            let expected_seq = at.seq + 1;
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
            if event.prev_hash != at.hash {
                return broken(
                    event.seq,
                    Some(event.id),
                    "previous-hash link does not match".into(),
                );
            }
            if chain_hash(&event) != event.hash {
                return broken(event.seq, Some(event.id), "contents were modified".into());
            }
            if let Some(reason) = check(&event) {
                return broken(event.seq, Some(event.id), reason);
            }
            at = Anchor {
                seq: event.seq,
                hash: event.hash,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(client_address: Option<&str>, user_agent: Option<&str>) -> StoredEvent {
        StoredEvent {
            workspace_id: "ws".into(),
            seq: 1,
            id: "ev".into(),
            occurred_at: 1_700_000_000_000_000,
            event_type: "Token Created".into(),
            actor: "cli".into(),
            resource_id: "tok".into(),
            resource_type: "token".into(),
            resource_name: "ci".into(),
            details: r#"{"role":"owner"}"#.into(),
            client_address: client_address.map(str::to_string),
            user_agent: user_agent.map(str::to_string),
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    /// Events recorded before client addresses existed must keep their
    /// hashes: the canonical form without a client is the original one,
    /// written out here as it was.
    #[test]
    fn an_event_without_a_client_hashes_as_before() {
        let original = r#"["","ws",1,"ev",1700000000000000,"Token Created","cli","tok","token","ci","{\"role\":\"owner\"}"]"#;
        assert_eq!(
            chain_hash(&event(None, None)),
            crate::token::sha256_hex(original.as_bytes())
        );
    }

    #[test]
    fn the_client_is_covered_by_the_hash() {
        let with_client = chain_hash(&event(Some("203.0.113.9"), Some("curl/8")));
        assert_ne!(with_client, chain_hash(&event(None, None)));
        assert_ne!(
            with_client,
            chain_hash(&event(Some("203.0.113.10"), Some("curl/8")))
        );
        assert_ne!(with_client, chain_hash(&event(Some("203.0.113.9"), None)));
        // Moving a value from one field to the other changes the hash too.
        assert_ne!(
            chain_hash(&event(Some("x"), None)),
            chain_hash(&event(None, Some("x")))
        );
    }
}
