//! `sources`: where a workspace's events come from.

use std::sync::LazyLock;

use serde_json::Value;

use super::pagination::{self, Keyed, Page, PageQuery, Position};
use super::{json_text, Conn, Count, FromRow, Result, Row, Tx};
use crate::args;
use crate::domain::{Label, Name, Slug, SourceId, WorkspaceId};
use crate::time::Timestamp;

#[derive(Debug, Clone)]
pub struct Source {
    pub id: SourceId,
    pub workspace_id: WorkspaceId,
    /// Unique in the workspace.
    pub slug: Slug,
    pub name: Name,
    pub enabled: bool,
    /// Keys that identify this source to the tracking libraries (Segment's
    /// `writeKeys`).
    pub write_keys: Vec<String>,
    /// A JSON object.
    pub settings: Value,
    pub labels: Vec<Label>,
    /// The catalog entry (`GET /catalog/sources`) it is an instance of.
    pub catalog_id: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

pub const COLUMNS: &str = "id, workspace_id, slug, name, enabled, settings, labels, catalog_id, \
     created_at, updated_at, write_keys";

impl FromRow for Source {
    fn from_row(row: &impl Row) -> Result<Self> {
        Ok(Source {
            id: row.parse("id")?,
            workspace_id: row.parse("workspace_id")?,
            slug: row.parse("slug")?,
            name: row.parse("name")?,
            enabled: row.flag("enabled")?,
            write_keys: row.json("write_keys")?,
            settings: row.json("settings")?,
            labels: row.json("labels")?,
            catalog_id: row.text("catalog_id")?,
            created_at: row.time("created_at")?,
            updated_at: row.time("updated_at")?,
        })
    }
}

impl Keyed for Source {
    fn position(&self) -> Position {
        Position {
            created_at: self.created_at.micros(),
            id: self.id.to_string(),
        }
    }
}

/// Every authenticated `GET /sources/{id}` runs it: its text is built once.
static FIND: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {COLUMNS} FROM sources WHERE id = $1 AND workspace_id = $2"));

/// The source `id` of the workspace; None also for other workspaces' ids.
pub async fn find(
    conn: impl Into<Conn<'_>>,
    workspace_id: &WorkspaceId,
    id: &SourceId,
) -> Result<Option<Source>> {
    conn.into()
        .fetch_optional(&FIND, args![id, workspace_id])
        .await
}

pub async fn page(
    conn: impl Into<Conn<'_>>,
    workspace_id: &WorkspaceId,
    query: &PageQuery,
) -> Result<Page<Source>> {
    pagination::page(conn, "sources", COLUMNS, workspace_id.as_str(), query).await
}

/// Fails with a unique violation when the slug is taken in the workspace.
pub async fn insert(tx: &mut Tx, source: &Source) -> Result<()> {
    tx.execute(
        "INSERT INTO sources (id, workspace_id, slug, name, enabled, settings, labels,
             catalog_id, created_at, updated_at, write_keys)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        args![
            source.id,
            source.workspace_id,
            source.slug,
            source.name,
            source.enabled,
            json_text(&source.settings),
            json_text(&source.labels),
            source.catalog_id,
            source.created_at,
            source.updated_at,
            json_text(&source.write_keys)
        ],
    )
    .await?;
    Ok(())
}

/// Stores every field that can change. Fails with a unique violation when
/// the new slug is taken in the workspace.
pub async fn update(tx: &mut Tx, source: &Source) -> Result<()> {
    tx.execute(
        "UPDATE sources SET slug = $1, name = $2, enabled = $3, settings = $4, labels = $5,
             write_keys = $6, updated_at = $7
         WHERE id = $8",
        args![
            source.slug,
            source.name,
            source.enabled,
            json_text(&source.settings),
            json_text(&source.labels),
            json_text(&source.write_keys),
            source.updated_at,
            source.id
        ],
    )
    .await?;
    Ok(())
}

pub async fn delete(tx: &mut Tx, id: &SourceId) -> Result<()> {
    tx.execute("DELETE FROM sources WHERE id = $1", args![id])
        .await?;
    Ok(())
}

/// How many destinations receive this source's events.
pub async fn count_destinations(conn: impl Into<Conn<'_>>, id: &SourceId) -> Result<i64> {
    let Count(n) = conn
        .into()
        .fetch_one(
            "SELECT COUNT(*) AS n FROM destinations WHERE source_id = $1",
            args![id],
        )
        .await?;
    Ok(n)
}

/// Every source of the workspace, oldest first: for changes that touch
/// many (a label deleted from all of them).
pub async fn all(conn: impl Into<Conn<'_>>, workspace_id: &WorkspaceId) -> Result<Vec<Source>> {
    conn.into()
        .fetch_all(
            &format!(
                "SELECT {COLUMNS} FROM sources WHERE workspace_id = $1 ORDER BY created_at, id"
            ),
            args![workspace_id],
        )
        .await
}
