//! Every token's usage summary, without a database write per request:
//! uses are counted in memory per hour and per (client address, user
//! agent, method, route pattern, status class), and written in batches by
//! the same periodic flush as `last_used` (and at shutdown). Rows older
//! than `LEAKGUARD_USAGE_RETENTION_DAYS` are pruned.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use hashbrown::{Equivalent, HashMap};

use crate::client::Client;
use crate::db::token_usage::{self, UsageRow};
use crate::db::Db;
use crate::domain::{TokenId, WorkspaceId};
use crate::time::now_micros;

/// Put in a request's extensions once its bearer token is known (revoked
/// or not); the Public API's middleware counts the use when the answer is
/// ready.
#[derive(Debug, Clone)]
pub struct TokenUse {
    pub token_id: TokenId,
    pub workspace_id: WorkspaceId,
    pub client: Client,
}

const HOUR_MICROS: i64 = 3_600_000_000;

/// Distinct keys held between two flushes at most; uses with new keys
/// beyond this are dropped (and counted) rather than let a client that
/// varies its user agent grow memory without bound.
const MAX_PENDING: usize = 100_000;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Key {
    token_id: String,
    workspace_id: String,
    hour: i64,
    client_address: String,
    user_agent: String,
    method: &'static str,
    route: String,
    status_class: &'static str,
}

/// A `Key` borrowed from the request, so that counting a use under a key
/// already pending allocates nothing. `Key` hashes as its `KeyRef`, so the
/// two always hash alike.
#[derive(Hash, PartialEq, Eq)]
struct KeyRef<'a> {
    token_id: &'a str,
    workspace_id: &'a str,
    hour: i64,
    client_address: &'a str,
    user_agent: &'a str,
    method: &'static str,
    route: &'a str,
    status_class: &'static str,
}

impl Key {
    fn borrowed(&self) -> KeyRef<'_> {
        KeyRef {
            token_id: &self.token_id,
            workspace_id: &self.workspace_id,
            hour: self.hour,
            client_address: &self.client_address,
            user_agent: &self.user_agent,
            method: self.method,
            route: &self.route,
            status_class: self.status_class,
        }
    }
}

impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.borrowed().hash(state);
    }
}

impl Equivalent<Key> for KeyRef<'_> {
    fn equivalent(&self, key: &Key) -> bool {
        *self == key.borrowed()
    }
}

impl KeyRef<'_> {
    fn to_key(&self) -> Key {
        Key {
            token_id: self.token_id.to_string(),
            workspace_id: self.workspace_id.to_string(),
            hour: self.hour,
            client_address: self.client_address.to_string(),
            user_agent: self.user_agent.to_string(),
            method: self.method,
            route: self.route.to_string(),
            status_class: self.status_class,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Tally {
    requests: i64,
    first_seen: i64,
    last_seen: i64,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.requests += other.requests;
        self.first_seen = self.first_seen.min(other.first_seen);
        self.last_seen = self.last_seen.max(other.last_seen);
    }
}

#[derive(Default)]
pub struct Usage {
    pending: Mutex<HashMap<Key, Tally>>,
    dropped: AtomicU64,
}

/// `2xx`, `4xx`, …
fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

impl Usage {
    /// Counts one use. `method` is a label from a fixed set and `route` a
    /// route pattern (never a raw path), so keys stay few.
    pub fn record(&self, token: &TokenUse, method: &'static str, route: &str, status: u16) {
        let now = now_micros();
        let key = KeyRef {
            token_id: token.token_id.as_str(),
            workspace_id: token.workspace_id.as_str(),
            hour: now - now.rem_euclid(HOUR_MICROS),
            client_address: token.client.address.as_deref().unwrap_or_default(),
            user_agent: token.client.user_agent.as_deref().unwrap_or_default(),
            method,
            route,
            status_class: status_class(status),
        };
        let tally = Tally {
            requests: 1,
            first_seen: now,
            last_seen: now,
        };
        let mut pending = self.pending.lock().expect("usage lock");
        let full = pending.len() >= MAX_PENDING;
        match pending.get_mut(&key) {
            Some(existing) => existing.merge(tally),
            None if full => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            None => {
                pending.insert(key.to_key(), tally);
            }
        }
    }

    /// Uses dropped because too many distinct keys were pending.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// The not-yet-written uses of a token, so that an incident page shows
    /// uses from the last seconds too.
    pub fn pending_for(&self, token_id: &TokenId) -> Vec<UsageRow> {
        self.pending
            .lock()
            .expect("usage lock")
            .iter()
            .filter(|(key, _)| key.token_id == token_id.as_str())
            .map(|(key, tally)| row(key, tally))
            .collect()
    }

    /// Writes the pending uses. On failure they are kept (merged with any
    /// newer ones) for the next flush.
    pub async fn flush(&self, db: &Db) -> crate::db::Result<usize> {
        let batch: Vec<(Key, Tally)> = {
            let mut pending = self.pending.lock().expect("usage lock");
            pending.drain().collect()
        };
        if batch.is_empty() {
            return Ok(0);
        }
        let rows: Vec<UsageRow> = batch.iter().map(|(k, t)| row(k, t)).collect();
        match token_usage::upsert(db, &rows).await {
            Ok(()) => Ok(rows.len()),
            Err(e) => {
                let mut pending = self.pending.lock().expect("usage lock");
                for (key, tally) in batch {
                    pending
                        .entry(key)
                        .and_modify(|t| t.merge(tally))
                        .or_insert(tally);
                }
                Err(e)
            }
        }
    }
}

fn row(key: &Key, tally: &Tally) -> UsageRow {
    UsageRow {
        token_id: key.token_id.clone(),
        workspace_id: key.workspace_id.clone(),
        hour: key.hour,
        client_address: key.client_address.clone(),
        user_agent: key.user_agent.clone(),
        method: key.method.to_string(),
        route: key.route.clone(),
        status_class: key.status_class.to_string(),
        requests: tally.requests,
        first_seen: tally.first_seen,
        last_seen: tally.last_seen,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Parse;

    fn token_use(address: &str) -> TokenUse {
        TokenUse {
            token_id: TokenId::parse("tok1").unwrap(),
            workspace_id: WorkspaceId::parse("ws1").unwrap(),
            client: Client {
                address: Some(address.into()),
                user_agent: Some("curl/8".into()),
            },
        }
    }

    #[test]
    fn uses_are_coalesced_per_key() {
        let usage = Usage::default();
        for _ in 0..3 {
            usage.record(&token_use("10.0.0.1"), "GET", "/sources", 200);
        }
        usage.record(&token_use("10.0.0.1"), "GET", "/sources", 404);
        usage.record(&token_use("10.0.0.2"), "GET", "/sources", 200);
        let mut rows = usage.pending_for(&TokenId::parse("tok1").unwrap());
        rows.sort_by(|a, b| {
            (&a.client_address, &a.status_class).cmp(&(&b.client_address, &b.status_class))
        });
        let counts: Vec<(&str, &str, i64)> = rows
            .iter()
            .map(|r| {
                (
                    r.client_address.as_str(),
                    r.status_class.as_str(),
                    r.requests,
                )
            })
            .collect();
        assert_eq!(
            counts,
            [
                ("10.0.0.1", "2xx", 3),
                ("10.0.0.1", "4xx", 1),
                ("10.0.0.2", "2xx", 1)
            ]
        );
        assert!(usage
            .pending_for(&TokenId::parse("other").unwrap())
            .is_empty());
    }
}
