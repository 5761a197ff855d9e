//! `token_usage`: each token's use per hour and per (client address, user
//! agent, method, route pattern, status class), written in batches from
//! memory (`api::usage`).

use std::collections::{BTreeMap, BTreeSet};

use super::{rows_per_statement, values_rows, Arg, Conn, Db, FromRow, Result, Row, Text, ToArg};
use crate::args;
use crate::domain::{TokenId, WorkspaceId};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRow {
    pub token_id: String,
    pub workspace_id: String,
    pub hour: i64,
    pub client_address: String,
    pub user_agent: String,
    pub method: String,
    pub route: String,
    pub status_class: String,
    pub requests: i64,
    pub first_seen: i64,
    pub last_seen: i64,
}

impl FromRow for UsageRow {
    fn from_row(row: &impl Row) -> Result<Self> {
        Ok(UsageRow {
            token_id: row.text("token_id")?,
            workspace_id: row.text("workspace_id")?,
            hour: row.int("hour")?,
            client_address: row.text("client_address")?,
            user_agent: row.text("user_agent")?,
            method: row.text("method")?,
            route: row.text("route")?,
            status_class: row.text("status_class")?,
            requests: row.int("requests")?,
            first_seen: row.int("first_seen")?,
            last_seen: row.int("last_seen")?,
        })
    }
}

const COLUMNS: &str = "token_id, workspace_id, hour, client_address, user_agent, method, route, \
     status_class, requests, first_seen, last_seen";

/// Adds the rows' counts to what is stored, in multi-row statements. The
/// rows must have distinct keys (one statement cannot update a row twice).
pub async fn upsert(db: &Db, rows: &[UsageRow]) -> Result<()> {
    const WIDTH: usize = 11;
    let (min, max) = match db.backend() {
        super::Backend::Sqlite => ("MIN", "MAX"),
        super::Backend::Postgres => ("LEAST", "GREATEST"),
    };
    let mut tx = db.begin().await?;
    for chunk in rows.chunks(rows_per_statement(WIDTH)) {
        let sql = format!(
            "INSERT INTO token_usage ({COLUMNS}) VALUES {}
             ON CONFLICT (token_id, hour, client_address, user_agent, method, route, status_class)
             DO UPDATE SET requests = token_usage.requests + excluded.requests,
                 first_seen = {min}(token_usage.first_seen, excluded.first_seen),
                 last_seen = {max}(token_usage.last_seen, excluded.last_seen)",
            values_rows(chunk.len(), WIDTH)
        );
        let mut binds: Vec<Arg<'_>> = Vec::with_capacity(chunk.len() * WIDTH);
        for r in chunk {
            binds.extend([
                r.token_id.to_arg(),
                r.workspace_id.to_arg(),
                r.hour.to_arg(),
                r.client_address.to_arg(),
                r.user_agent.to_arg(),
                r.method.to_arg(),
                r.route.to_arg(),
                r.status_class.to_arg(),
                r.requests.to_arg(),
                r.first_seen.to_arg(),
                r.last_seen.to_arg(),
            ]);
        }
        tx.execute(&sql, &binds).await?;
    }
    tx.commit().await
}

/// Every stored row of one token of the workspace.
pub async fn of_token(
    conn: impl Into<Conn<'_>>,
    workspace_id: &WorkspaceId,
    token_id: &TokenId,
) -> Result<Vec<UsageRow>> {
    conn.into()
        .fetch_all(
            &format!(
                "SELECT {COLUMNS} FROM token_usage WHERE workspace_id = $1 AND token_id = $2
                 ORDER BY first_seen"
            ),
            args![workspace_id, token_id],
        )
        .await
}

/// The addresses that the workspace's tokens other than `excluded` were
/// used from, among `addresses`.
pub async fn addresses_used_by_others(
    db: &Db,
    workspace_id: &WorkspaceId,
    excluded: &[&TokenId],
    addresses: &BTreeSet<String>,
) -> Result<BTreeSet<String>> {
    if addresses.is_empty() {
        return Ok(BTreeSet::new());
    }
    let excluded: Vec<&str> = excluded.iter().map(|t| t.as_str()).collect();
    let excluded = super::json_text(&excluded);
    let addresses = super::json_text(addresses);
    let sql = db.pick(
        "SELECT DISTINCT client_address AS value FROM token_usage
         WHERE workspace_id = $1
           AND client_address IN (SELECT value FROM json_each($2))
           AND token_id NOT IN (SELECT value FROM json_each($3))",
        "SELECT DISTINCT client_address AS value FROM token_usage
         WHERE workspace_id = $1
           AND client_address IN (SELECT json_array_elements_text($2::json))
           AND token_id NOT IN (SELECT json_array_elements_text($3::json))",
    );
    let found: Vec<Text> = db
        .fetch_all(sql, args![workspace_id, addresses, excluded])
        .await?;
    Ok(found.into_iter().map(|Text(a)| a).collect())
}

/// Deletes the rows of hours that started before `before`.
pub async fn prune(db: &Db, before: i64) -> Result<u64> {
    db.execute("DELETE FROM token_usage WHERE hour < $1", args![before])
        .await
}

/// One client of a token: an address and a user agent, with when it was
/// first and last seen and how many requests it made.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ClientUsage {
    pub address: String,
    pub user_agent: String,
    pub requests: i64,
    pub refused: i64,
    pub first_seen: i64,
    pub last_seen: i64,
    /// Route patterns with their methods, as `GET /sources`.
    pub routes: Vec<String>,
}

/// Rows (stored and pending alike) summed per (address, user agent),
/// earliest first.
pub fn by_client(rows: impl IntoIterator<Item = UsageRow>) -> Vec<ClientUsage> {
    let mut clients: BTreeMap<(String, String), (ClientUsage, BTreeSet<String>)> = BTreeMap::new();
    for r in rows {
        let refused = if r.status_class == "2xx" || r.status_class == "3xx" {
            0
        } else {
            r.requests
        };
        let route = format!("{} {}", r.method, r.route);
        let entry = clients
            .entry((r.client_address.clone(), r.user_agent.clone()))
            .or_insert_with(|| {
                (
                    ClientUsage {
                        address: r.client_address.clone(),
                        user_agent: r.user_agent.clone(),
                        requests: 0,
                        refused: 0,
                        first_seen: r.first_seen,
                        last_seen: r.last_seen,
                        routes: Vec::new(),
                    },
                    BTreeSet::new(),
                )
            });
        entry.0.requests += r.requests;
        entry.0.refused += refused;
        entry.0.first_seen = entry.0.first_seen.min(r.first_seen);
        entry.0.last_seen = entry.0.last_seen.max(r.last_seen);
        entry.1.insert(route);
    }
    let mut out: Vec<ClientUsage> = clients
        .into_values()
        .map(|(mut usage, routes)| {
            usage.routes = routes.into_iter().collect();
            usage
        })
        .collect();
    out.sort_by_key(|u| (u.first_seen, u.last_seen));
    out
}
