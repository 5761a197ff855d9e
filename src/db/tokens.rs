//! `tokens`: Public API tokens (`sgp_`) and OAuth access tokens (`sgo_`),
//! stored as the SHA-256 of their plaintext and a short hint, never the
//! plaintext itself. Both kinds are found by hash, revoked and reported
//! alike; an access token also has its app, scopes and expiry. `/tokens`
//! lists, reads and revokes by id the Public API tokens only.

use std::sync::LazyLock;

use super::pagination::{self, Keyed, Page, PageQuery, Position};
use super::{placeholders, Backend, Conn, Db, FromRow, Result, Row, Text, ToArg, Tx, MAX_BINDS};
use crate::args;
use crate::domain::{
    Name, OAuthAppId, OAuthKeyId, Parse, Role, Scopes, TokenHash, TokenId, WorkspaceId,
};
use crate::time::Timestamp;

#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = TokenView)]
pub struct Token {
    pub id: TokenId,
    #[serde(skip)]
    pub workspace_id: WorkspaceId,
    pub name: Name,
    pub role: Role,
    #[serde(skip)]
    pub token_hash: TokenHash,
    /// The token's last four characters, to tell tokens apart.
    pub hint: String,
    pub created_at: Timestamp,
    /// The actor that minted it (`public-api-token/<id>`, `cli`, …).
    pub created_by: String,
    #[schema(required)]
    pub last_used_at: Option<Timestamp>,
    #[schema(required)]
    pub revoked_at: Option<Timestamp>,
    /// Why it was revoked: `revoked_by_owner`, `github_secret_scanning` or
    /// `revoked_by_operator`.
    #[schema(required)]
    pub revoked_reason: Option<String>,
    /// The alert whose revocation took it (GitHub reported it, or a token
    /// that created it).
    #[serde(skip)]
    pub revoked_alert_id: Option<String>,
    /// Set for an OAuth access token, and only for one.
    #[serde(skip)]
    pub oauth: Option<OAuthGrant>,
}

/// What an OAuth access token was issued for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthGrant {
    pub app_id: OAuthAppId,
    /// The key that verified the assertion it was issued for.
    pub key_id: OAuthKeyId,
    pub scopes: Scopes,
    pub expires_at: Timestamp,
}

const COLUMNS: &str = "id, workspace_id, name, role, token_hash, hint, created_at, created_by, \
     last_used_at, revoked_at, revoked_reason, revoked_alert_id, oauth_app_id, oauth_key_id, \
     scopes, expires_at";

/// Public API tokens only: what `/tokens` and the CLI show and act on.
const API_TOKENS: &str = "oauth_app_id IS NULL";

impl FromRow for Token {
    fn from_row(row: &impl Row) -> Result<Self> {
        Ok(Token {
            id: row.parse("id")?,
            workspace_id: row.parse("workspace_id")?,
            name: row.parse("name")?,
            role: row.parse("role")?,
            token_hash: row.parse("token_hash")?,
            hint: row.text("hint")?,
            created_at: row.time("created_at")?,
            created_by: row.text("created_by")?,
            last_used_at: row.opt_time("last_used_at")?,
            revoked_at: row.opt_time("revoked_at")?,
            revoked_reason: row.opt_text("revoked_reason")?,
            revoked_alert_id: row.opt_text("revoked_alert_id")?,
            oauth: match row.opt_text("oauth_app_id")? {
                None => None,
                Some(app_id) => Some(OAuthGrant {
                    app_id: parse_column("oauth_app_id", &app_id)?,
                    key_id: row.parse("oauth_key_id")?,
                    scopes: row.parse("scopes")?,
                    expires_at: row.time("expires_at")?,
                }),
            },
        })
    }
}

fn parse_column<T: Parse>(column: &'static str, text: &str) -> Result<T> {
    T::parse(text).map_err(|e| super::Error::decode(column, e))
}

impl Keyed for Token {
    fn position(&self) -> Position {
        Position {
            created_at: self.created_at.micros(),
            id: self.id.to_string(),
        }
    }
}

impl Token {
    pub fn is_revoked(&self) -> bool {
        self.revoked_at.is_some()
    }

    /// Whether it is an access token past its expiry.
    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.oauth.as_ref().is_some_and(|g| g.expires_at <= now)
    }
}

/// A Public API token of the workspace (not an access token).
pub async fn find(
    conn: impl Into<Conn<'_>>,
    workspace_id: &WorkspaceId,
    id: &TokenId,
) -> Result<Option<Token>> {
    conn.into()
        .fetch_optional(
            &format!(
                "SELECT {COLUMNS} FROM tokens
                 WHERE id = $1 AND workspace_id = $2 AND {API_TOKENS}"
            ),
            args![id, workspace_id],
        )
        .await
}

/// The workspace's tokens among `ids`.
pub async fn find_many(
    conn: impl Into<Conn<'_>>,
    workspace_id: &WorkspaceId,
    ids: &[&TokenId],
) -> Result<Vec<Token>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let ids = &ids[..ids.len().min(MAX_BINDS - 1)];
    let sql = format!(
        "SELECT {COLUMNS} FROM tokens WHERE workspace_id = $1 AND id IN ({})",
        placeholders(2, ids.len())
    );
    let mut binds = vec![workspace_id.to_arg()];
    binds.extend(ids.iter().map(|id| id.to_arg()));
    conn.into().fetch_all(&sql, &binds).await
}

static FIND_BY_HASH: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {COLUMNS} FROM tokens WHERE token_hash = $1"));

/// The token of either kind with this hash, revoked or not: every
/// authenticated request, so its text is built once.
pub async fn find_by_hash(db: &Db, hash: &TokenHash) -> Result<Option<Token>> {
    db.fetch_optional(&FIND_BY_HASH, args![hash]).await
}

/// The tokens, revoked ones included, whose hash is in `hashes`: one query
/// for any number of hashes. They travel as one JSON array parameter, which
/// drives the join with one index probe per hash (an IN list of one
/// parameter per hash made SQLite look each parameter up by name).
pub async fn find_by_hashes(db: &Db, hashes: &[&TokenHash]) -> Result<Vec<Token>> {
    match hashes {
        [] => return Ok(Vec::new()),
        // Every authenticated request: a plain index lookup.
        [hash] => return Ok(find_by_hash(db, hash).await?.into_iter().collect()),
        _ => {}
    }
    let sql = match db.backend() {
        // CROSS JOIN is how SQLite is told the loop order; `IN (SELECT …)`
        // first copied the array into a temporary b-tree.
        Backend::Sqlite => &*SQLITE_BY_HASHES,
        Backend::Postgres => &*POSTGRES_BY_HASHES,
    };
    let hashes = serde_json::to_string(&hashes).map_err(|e| super::Error::decode("hashes", e))?;
    db.fetch_all(sql, args![hashes]).await
}

/// `COLUMNS` of the `tokens AS t` side of a join.
fn joined_columns() -> String {
    COLUMNS
        .split(", ")
        .map(|c| format!("t.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

static SQLITE_BY_HASHES: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "SELECT {} FROM json_each($1) AS j CROSS JOIN tokens AS t ON t.token_hash = j.value",
        joined_columns()
    )
});
static POSTGRES_BY_HASHES: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "SELECT {} FROM json_array_elements_text($1::json) AS j(hash)
         JOIN tokens AS t ON t.token_hash = j.hash",
        joined_columns()
    )
});

pub async fn page(
    conn: impl Into<Conn<'_>>,
    workspace_id: &WorkspaceId,
    query: &PageQuery,
) -> Result<Page<Token>> {
    pagination::page_where(
        conn,
        "tokens",
        COLUMNS,
        &format!("workspace_id = $1 AND {API_TOKENS}"),
        args![workspace_id],
        query,
    )
    .await
}

pub async fn insert(tx: &mut Tx, token: &Token) -> Result<()> {
    let grant = token.oauth.as_ref();
    tx.execute(
        "INSERT INTO tokens (id, workspace_id, name, role, token_hash, hint, created_at, created_by,
             oauth_app_id, oauth_key_id, scopes, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        args![
            token.id,
            token.workspace_id,
            token.name,
            token.role,
            token.token_hash,
            token.hint,
            token.created_at,
            token.created_by,
            grant.map(|g| g.app_id.as_str()),
            grant.map(|g| g.key_id.as_str()),
            grant.map(|g| g.scopes.as_str()),
            grant.map(|g| g.expires_at)
        ],
    )
    .await?;
    Ok(())
}

/// The live access tokens of an app (of one of its keys, if `key_id` is
/// given): what deleting the app or the key revokes.
pub async fn live_of_app(
    conn: impl Into<Conn<'_>>,
    app_id: &OAuthAppId,
    key_id: Option<&OAuthKeyId>,
    now: Timestamp,
) -> Result<Vec<Token>> {
    conn.into()
        .fetch_all(
            &format!(
                "SELECT {COLUMNS} FROM tokens
                 WHERE oauth_app_id = $1 AND ($2 = '' OR oauth_key_id = $2)
                   AND revoked_at IS NULL AND expires_at > $3
                 ORDER BY created_at, id"
            ),
            args![app_id, key_id.map_or("", |k| k.as_str()), now],
        )
        .await
}

/// Marks the still-active tokens among `ids` revoked (by `alert_id`, when
/// an alert is the cause); returns the ids this call revoked (a concurrent
/// revocation of the same token makes it skip that token).
pub async fn revoke(
    tx: &mut Tx,
    ids: &[&TokenId],
    reason: &str,
    alert_id: Option<&str>,
    at: Timestamp,
) -> Result<Vec<TokenId>> {
    let mut revoked = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(MAX_BINDS - 3) {
        let sql = format!(
            "UPDATE tokens SET revoked_at = $1, revoked_reason = $2, revoked_alert_id = $3
             WHERE revoked_at IS NULL AND id IN ({}) RETURNING id AS value",
            placeholders(4, chunk.len())
        );
        let mut binds = vec![at.to_arg(), reason.to_arg(), alert_id.to_arg()];
        binds.extend(chunk.iter().map(|id| id.to_arg()));
        let rows: Vec<Text> = tx.fetch_all(&sql, &binds).await?;
        for Text(id) in rows {
            revoked
                .push(crate::domain::Parse::parse(&id).map_err(|e| super::Error::decode("id", e))?);
        }
    }
    Ok(revoked)
}

/// The tokens, revoked or not, whose creator is one of `actors`
/// (`public-api-token/<id>`, …).
pub async fn created_by_any(tx: &mut Tx, actors: &[String]) -> Result<Vec<Token>> {
    let mut found = Vec::new();
    for chunk in actors.chunks(MAX_BINDS) {
        let sql = format!(
            "SELECT {COLUMNS} FROM tokens WHERE created_by IN ({}) ORDER BY created_at, id",
            placeholders(1, chunk.len())
        );
        let binds: Vec<_> = chunk.iter().map(|a| a.to_arg()).collect();
        found.extend(tx.fetch_all::<Token>(&sql, &binds).await?);
    }
    Ok(found)
}

/// The workspace's tokens that an alert revoked, oldest first.
pub async fn revoked_by_alert(
    conn: impl Into<Conn<'_>>,
    workspace_id: &WorkspaceId,
    alert_id: &str,
) -> Result<Vec<Token>> {
    conn.into()
        .fetch_all(
            &format!(
                "SELECT {COLUMNS} FROM tokens WHERE workspace_id = $1 AND revoked_alert_id = $2
                 ORDER BY created_at, id"
            ),
            args![workspace_id, alert_id],
        )
        .await
}

/// The ids of the alerts that revoked tokens of the workspace, newest
/// first, with when each revoked them.
pub async fn incident_alerts(
    conn: impl Into<Conn<'_>>,
    workspace_id: &WorkspaceId,
    limit: i64,
) -> Result<Vec<(String, Timestamp, i64)>> {
    let rows: Vec<IncidentRow> = conn
        .into()
        .fetch_all(
            "SELECT revoked_alert_id AS alert_id, MIN(revoked_at) AS revoked_at, COUNT(*) AS n
             FROM tokens WHERE workspace_id = $1 AND revoked_alert_id IS NOT NULL
             GROUP BY revoked_alert_id ORDER BY MIN(revoked_at) DESC LIMIT $2",
            args![workspace_id, limit],
        )
        .await?;
    Ok(rows.into_iter().map(|r| (r.0, r.1, r.2)).collect())
}

#[derive(Clone)]
struct IncidentRow(String, Timestamp, i64);

impl FromRow for IncidentRow {
    fn from_row(row: &impl Row) -> Result<Self> {
        Ok(IncidentRow(
            row.text("alert_id")?,
            row.time("revoked_at")?,
            row.int("n")?,
        ))
    }
}

/// Records that a token was last used at `at`, unless a later use is
/// already recorded.
pub async fn set_last_used(db: &Db, id: &str, at: i64) -> Result<()> {
    db.execute(
        "UPDATE tokens SET last_used_at = $1
         WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $1)",
        args![at, id],
    )
    .await?;
    Ok(())
}
