//! `oauth_apps` with their `oauth_app_keys`, and `oauth_assertion_ids`:
//! the OAuth apps an owner manages (`/oauth-apps`) and what
//! `POST /oauth2/token` checks an assertion against.

use super::pagination::{self, Keyed, Page, PageQuery, Position};
use super::{placeholders, Conn, FromRow, Result, Row, ToArg, Tx};
use crate::args;
use crate::domain::{
    KeyAlgorithm, Name, OAuthAppId, OAuthKeyId, Parse, Scopes, TokenLifetime, WorkspaceId,
};
use crate::time::Timestamp;

/// The most keys an app may have: two, so that a key can be replaced
/// without a moment in which the app has none.
pub const MAX_KEYS: usize = 2;

#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OAuthApp {
    /// The `sub` of the app's client assertions.
    pub id: OAuthAppId,
    #[serde(skip)]
    pub workspace_id: WorkspaceId,
    pub name: Name,
    /// What its access tokens may be granted.
    pub scopes: Scopes,
    /// How long its access tokens live, in seconds.
    pub token_expires_in: TokenLifetime,
    /// Oldest first; one or two.
    pub keys: Vec<OAuthKey>,
    pub created_at: Timestamp,
    #[serde(skip)]
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = OAuthAppKey)]
pub struct OAuthKey {
    /// The `kid` of the assertions this key verifies.
    pub id: OAuthKeyId,
    #[serde(skip)]
    pub app_id: OAuthAppId,
    pub name: Name,
    /// The one algorithm its assertions may be signed with.
    pub algorithm: KeyAlgorithm,
    /// SubjectPublicKeyInfo, PEM.
    #[serde(skip)]
    pub public_key: String,
    pub created_at: Timestamp,
}

const APP_COLUMNS: &str =
    "id, workspace_id, name, scopes, token_lifetime_secs, created_at, updated_at";
const KEY_COLUMNS: &str = "id, app_id, name, algorithm, public_key, created_at";

impl FromRow for OAuthApp {
    fn from_row(row: &impl Row) -> Result<Self> {
        Ok(OAuthApp {
            id: row.parse("id")?,
            workspace_id: row.parse("workspace_id")?,
            name: row.parse("name")?,
            scopes: row.parse("scopes")?,
            token_expires_in: TokenLifetime::from_secs(row.int("token_lifetime_secs")?)
                .map_err(|e| super::Error::decode("token_lifetime_secs", e))?,
            keys: Vec::new(),
            created_at: row.time("created_at")?,
            updated_at: row.time("updated_at")?,
        })
    }
}

impl FromRow for OAuthKey {
    fn from_row(row: &impl Row) -> Result<Self> {
        Ok(OAuthKey {
            id: row.parse("id")?,
            app_id: row.parse("app_id")?,
            name: row.parse("name")?,
            algorithm: row.parse("algorithm")?,
            public_key: row.text("public_key")?,
            created_at: row.time("created_at")?,
        })
    }
}

impl Keyed for OAuthApp {
    fn position(&self) -> Position {
        Position {
            created_at: self.created_at.micros(),
            id: self.id.to_string(),
        }
    }
}

/// An app of the workspace, with its keys.
pub async fn find(
    conn: impl Into<Conn<'_>>,
    workspace_id: &WorkspaceId,
    id: &OAuthAppId,
) -> Result<Option<OAuthApp>> {
    let mut conn = conn.into();
    let app: Option<OAuthApp> = conn
        .fetch_optional(
            &format!("SELECT {APP_COLUMNS} FROM oauth_apps WHERE id = $1 AND workspace_id = $2"),
            args![id, workspace_id],
        )
        .await?;
    let Some(mut app) = app else {
        return Ok(None);
    };
    app.keys = keys_of(&mut conn, &[&app.id]).await?;
    Ok(Some(app))
}

/// A page of the workspace's apps, oldest first, with their keys.
pub async fn page(
    conn: impl Into<Conn<'_>>,
    workspace_id: &WorkspaceId,
    query: &PageQuery,
) -> Result<Page<OAuthApp>> {
    let mut conn = conn.into();
    let mut page: Page<OAuthApp> = pagination::page(
        conn.reborrow(),
        "oauth_apps",
        APP_COLUMNS,
        workspace_id.as_str(),
        query,
    )
    .await?;
    let ids: Vec<&OAuthAppId> = page.items.iter().map(|a| &a.id).collect();
    let mut keys = keys_of(&mut conn, &ids).await?;
    for app in &mut page.items {
        let (mine, others) = keys.into_iter().partition(|k| k.app_id == app.id);
        app.keys = mine;
        keys = others;
    }
    Ok(page)
}

/// The keys of `apps`, oldest first.
async fn keys_of(conn: &mut Conn<'_>, apps: &[&OAuthAppId]) -> Result<Vec<OAuthKey>> {
    if apps.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT {KEY_COLUMNS} FROM oauth_app_keys WHERE app_id IN ({})
         ORDER BY created_at, id",
        placeholders(1, apps.len())
    );
    let binds: Vec<_> = apps.iter().map(|id| id.to_arg()).collect();
    conn.fetch_all(&sql, &binds).await
}

/// The key with this id (an assertion's `kid`) and its app (whose `keys`
/// are not read): in any workspace, for the token endpoint.
pub async fn find_key(
    conn: impl Into<Conn<'_>>,
    id: &OAuthKeyId,
) -> Result<Option<(OAuthKey, OAuthApp)>> {
    let mut conn = conn.into();
    let key: Option<OAuthKey> = conn
        .fetch_optional(
            &format!("SELECT {KEY_COLUMNS} FROM oauth_app_keys WHERE id = $1"),
            args![id],
        )
        .await?;
    let Some(key) = key else { return Ok(None) };
    let app: Option<OAuthApp> = conn
        .fetch_optional(
            &format!("SELECT {APP_COLUMNS} FROM oauth_apps WHERE id = $1"),
            args![key.app_id],
        )
        .await?;
    Ok(app.map(|app| (key, app)))
}

pub async fn insert(tx: &mut Tx, app: &OAuthApp) -> Result<()> {
    tx.execute(
        "INSERT INTO oauth_apps (id, workspace_id, name, scopes, token_lifetime_secs,
             created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        args![
            app.id,
            app.workspace_id,
            app.name,
            app.scopes,
            app.token_expires_in,
            app.created_at,
            app.updated_at
        ],
    )
    .await?;
    Ok(())
}

pub async fn insert_key(tx: &mut Tx, key: &OAuthKey) -> Result<()> {
    tx.execute(
        "INSERT INTO oauth_app_keys (id, app_id, name, algorithm, public_key, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
        args![
            key.id,
            key.app_id,
            key.name,
            key.algorithm,
            key.public_key,
            key.created_at
        ],
    )
    .await?;
    Ok(())
}

pub async fn update(tx: &mut Tx, app: &OAuthApp) -> Result<()> {
    tx.execute(
        "UPDATE oauth_apps SET name = $1, scopes = $2, token_lifetime_secs = $3, updated_at = $4
         WHERE id = $5",
        args![
            app.name,
            app.scopes,
            app.token_expires_in,
            app.updated_at,
            app.id
        ],
    )
    .await?;
    Ok(())
}

/// Removes the app, its keys and the assertion ids it used. Its access
/// tokens stay (revoked), for the audit trail and for alerts about them.
pub async fn delete(tx: &mut Tx, id: &OAuthAppId) -> Result<()> {
    tx.execute(
        "DELETE FROM oauth_assertion_ids WHERE app_id = $1",
        args![id],
    )
    .await?;
    tx.execute("DELETE FROM oauth_app_keys WHERE app_id = $1", args![id])
        .await?;
    tx.execute("DELETE FROM oauth_apps WHERE id = $1", args![id])
        .await?;
    Ok(())
}

pub async fn delete_key(tx: &mut Tx, id: &OAuthKeyId) -> Result<()> {
    tx.execute("DELETE FROM oauth_app_keys WHERE id = $1", args![id])
        .await?;
    Ok(())
}

/// Records that an assertion with this `jti` was accepted for `app_id`,
/// to be remembered until `expires_at`; false when one already was (a
/// replay), on this replica or any other. Ids of the app's assertions that
/// have expired are forgotten on the way, which keeps the table as small
/// as the rate limit allows.
pub async fn remember_assertion(
    tx: &mut Tx,
    app_id: &OAuthAppId,
    jti: &str,
    expires_at: Timestamp,
    now: Timestamp,
) -> Result<bool> {
    tx.execute(
        "DELETE FROM oauth_assertion_ids WHERE app_id = $1 AND expires_at < $2",
        args![app_id, now],
    )
    .await?;
    let inserted = tx
        .execute(
            "INSERT INTO oauth_assertion_ids (app_id, jti, expires_at) VALUES ($1, $2, $3)
             ON CONFLICT (app_id, jti) DO NOTHING",
            args![app_id, jti, expires_at],
        )
        .await?;
    Ok(inserted == 1)
}

impl OAuthKey {
    /// The stored key as the domain type (it parsed when it was added).
    pub fn parsed(&self) -> Result<crate::domain::PublicKey> {
        crate::domain::PublicKey::parse(&self.public_key)
            .map_err(|e| super::Error::decode("public_key", e))
    }
}
