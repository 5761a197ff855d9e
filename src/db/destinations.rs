//! `destinations`: where a source's events go.

use serde_json::Value;

use super::pagination::{self, Keyed, Page, PageQuery, Position};
use super::{json_text, Conn, FromRow, Result, Row, Tx};
use crate::args;
use crate::domain::{DestinationId, Name, SourceId, WorkspaceId};
use crate::time::Timestamp;

#[derive(Debug, Clone)]
pub struct Destination {
    pub id: DestinationId,
    pub workspace_id: WorkspaceId,
    /// The source (same workspace) whose events this destination receives.
    pub source_id: SourceId,
    pub name: Name,
    pub enabled: bool,
    /// A JSON object.
    pub settings: Value,
    /// The catalog entry (`GET /catalog/destinations`) it is an instance of.
    pub catalog_id: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

const COLUMNS: &str =
    "id, workspace_id, source_id, name, enabled, settings, catalog_id, created_at, updated_at";

impl FromRow for Destination {
    fn from_row(row: &impl Row) -> Result<Self> {
        Ok(Destination {
            id: row.parse("id")?,
            workspace_id: row.parse("workspace_id")?,
            source_id: row.parse("source_id")?,
            name: row.parse("name")?,
            enabled: row.flag("enabled")?,
            settings: row.json("settings")?,
            catalog_id: row.text("catalog_id")?,
            created_at: row.time("created_at")?,
            updated_at: row.time("updated_at")?,
        })
    }
}

impl Keyed for Destination {
    fn position(&self) -> Position {
        Position {
            created_at: self.created_at.micros(),
            id: self.id.to_string(),
        }
    }
}

/// The destination `id` of the workspace; None also for other workspaces'
/// ids.
pub async fn find(
    conn: impl Into<Conn<'_>>,
    workspace_id: &WorkspaceId,
    id: &DestinationId,
) -> Result<Option<Destination>> {
    conn.into()
        .fetch_optional(
            &format!("SELECT {COLUMNS} FROM destinations WHERE id = $1 AND workspace_id = $2"),
            args![id, workspace_id],
        )
        .await
}

pub async fn page(
    conn: impl Into<Conn<'_>>,
    workspace_id: &WorkspaceId,
    query: &PageQuery,
) -> Result<Page<Destination>> {
    pagination::page(conn, "destinations", COLUMNS, workspace_id.as_str(), query).await
}

pub async fn insert(tx: &mut Tx, destination: &Destination) -> Result<()> {
    tx.execute(
        "INSERT INTO destinations (id, workspace_id, source_id, name, enabled, settings,
             catalog_id, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        args![
            destination.id,
            destination.workspace_id,
            destination.source_id,
            destination.name,
            destination.enabled,
            json_text(&destination.settings),
            destination.catalog_id,
            destination.created_at,
            destination.updated_at
        ],
    )
    .await?;
    Ok(())
}

pub async fn update(tx: &mut Tx, destination: &Destination) -> Result<()> {
    tx.execute(
        "UPDATE destinations SET name = $1, enabled = $2, settings = $3, updated_at = $4
         WHERE id = $5",
        args![
            destination.name,
            destination.enabled,
            json_text(&destination.settings),
            destination.updated_at,
            destination.id
        ],
    )
    .await?;
    Ok(())
}

pub async fn delete(tx: &mut Tx, id: &DestinationId) -> Result<()> {
    tx.execute("DELETE FROM destinations WHERE id = $1", args![id])
        .await?;
    Ok(())
}

/// The destinations that receive `source`'s events, oldest first.
pub async fn page_of_source(
    conn: impl Into<Conn<'_>>,
    workspace_id: &WorkspaceId,
    source: &SourceId,
    query: &PageQuery,
) -> Result<Page<Destination>> {
    pagination::page_where(
        conn,
        "destinations",
        COLUMNS,
        "workspace_id = $1 AND source_id = $2",
        args![workspace_id, source],
        query,
    )
    .await
}
