//! `warehouses`: where a workspace's events are loaded for analysis, and
//! `warehouse_sources`: which sources feed each of them.

use serde_json::Value;

use super::pagination::{self, Keyed, Page, PageQuery, Position};
use super::sources::{Source, COLUMNS as SOURCE_COLUMNS};
use super::{json_text, Conn, Count, FromRow, Result, Row, Text, Tx};
use crate::args;
use crate::domain::{Name, SourceId, WarehouseId, WorkspaceId};
use crate::time::Timestamp;

#[derive(Debug, Clone)]
pub struct Warehouse {
    pub id: WarehouseId,
    pub workspace_id: WorkspaceId,
    pub name: Name,
    pub enabled: bool,
    /// A JSON object.
    pub settings: Value,
    /// The catalog entry (`GET /catalog/warehouses`) it is an instance of.
    pub catalog_id: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

const COLUMNS: &str =
    "id, workspace_id, name, enabled, settings, catalog_id, created_at, updated_at";

impl FromRow for Warehouse {
    fn from_row(row: &impl Row) -> Result<Self> {
        Ok(Warehouse {
            id: row.parse("id")?,
            workspace_id: row.parse("workspace_id")?,
            name: row.parse("name")?,
            enabled: row.flag("enabled")?,
            settings: row.json("settings")?,
            catalog_id: row.text("catalog_id")?,
            created_at: row.time("created_at")?,
            updated_at: row.time("updated_at")?,
        })
    }
}

impl Keyed for Warehouse {
    fn position(&self) -> Position {
        Position {
            created_at: self.created_at.micros(),
            id: self.id.to_string(),
        }
    }
}

/// The warehouse `id` of the workspace; None also for other workspaces'
/// ids.
pub async fn find(
    conn: impl Into<Conn<'_>>,
    workspace_id: &WorkspaceId,
    id: &WarehouseId,
) -> Result<Option<Warehouse>> {
    conn.into()
        .fetch_optional(
            &format!("SELECT {COLUMNS} FROM warehouses WHERE id = $1 AND workspace_id = $2"),
            args![id, workspace_id],
        )
        .await
}

pub async fn page(
    conn: impl Into<Conn<'_>>,
    workspace_id: &WorkspaceId,
    query: &PageQuery,
) -> Result<Page<Warehouse>> {
    pagination::page(conn, "warehouses", COLUMNS, workspace_id.as_str(), query).await
}

/// The warehouses `source` feeds, oldest first.
pub async fn page_of_source(
    conn: impl Into<Conn<'_>>,
    workspace_id: &WorkspaceId,
    source: &SourceId,
    query: &PageQuery,
) -> Result<Page<Warehouse>> {
    pagination::page_where(
        conn,
        "warehouses",
        COLUMNS,
        "workspace_id = $1 AND id IN (SELECT warehouse_id FROM warehouse_sources WHERE source_id = $2)",
        args![workspace_id, source],
        query,
    )
    .await
}

/// The sources that feed `warehouse`, oldest first.
pub async fn page_sources(
    conn: impl Into<Conn<'_>>,
    workspace_id: &WorkspaceId,
    warehouse: &WarehouseId,
    query: &PageQuery,
) -> Result<Page<Source>> {
    pagination::page_where(
        conn,
        "sources",
        SOURCE_COLUMNS,
        "workspace_id = $1 AND id IN (SELECT source_id FROM warehouse_sources WHERE warehouse_id = $2)",
        args![workspace_id, warehouse],
        query,
    )
    .await
}

pub async fn insert(tx: &mut Tx, warehouse: &Warehouse) -> Result<()> {
    tx.execute(
        "INSERT INTO warehouses (id, workspace_id, name, enabled, settings, catalog_id,
             created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        args![
            warehouse.id,
            warehouse.workspace_id,
            warehouse.name,
            warehouse.enabled,
            json_text(&warehouse.settings),
            warehouse.catalog_id,
            warehouse.created_at,
            warehouse.updated_at
        ],
    )
    .await?;
    Ok(())
}

pub async fn update(tx: &mut Tx, warehouse: &Warehouse) -> Result<()> {
    tx.execute(
        "UPDATE warehouses SET name = $1, enabled = $2, settings = $3, updated_at = $4
         WHERE id = $5",
        args![
            warehouse.name,
            warehouse.enabled,
            json_text(&warehouse.settings),
            warehouse.updated_at,
            warehouse.id
        ],
    )
    .await?;
    Ok(())
}

/// Deletes the warehouse and its connections to sources.
pub async fn delete(tx: &mut Tx, id: &WarehouseId) -> Result<()> {
    tx.execute(
        "DELETE FROM warehouse_sources WHERE warehouse_id = $1",
        args![id],
    )
    .await?;
    tx.execute("DELETE FROM warehouses WHERE id = $1", args![id])
        .await?;
    Ok(())
}

/// Whether `source` feeds `warehouse`.
pub async fn is_connected(
    conn: impl Into<Conn<'_>>,
    warehouse: &WarehouseId,
    source: &SourceId,
) -> Result<bool> {
    let Count(n) = conn
        .into()
        .fetch_one(
            "SELECT COUNT(*) AS n FROM warehouse_sources WHERE warehouse_id = $1 AND source_id = $2",
            args![warehouse, source],
        )
        .await?;
    Ok(n > 0)
}

pub async fn connect(tx: &mut Tx, warehouse: &WarehouseId, source: &SourceId) -> Result<()> {
    tx.execute(
        "INSERT INTO warehouse_sources (warehouse_id, source_id) VALUES ($1, $2)",
        args![warehouse, source],
    )
    .await?;
    Ok(())
}

/// Whether there was a connection to remove.
pub async fn disconnect(tx: &mut Tx, warehouse: &WarehouseId, source: &SourceId) -> Result<bool> {
    let removed = tx
        .execute(
            "DELETE FROM warehouse_sources WHERE warehouse_id = $1 AND source_id = $2",
            args![warehouse, source],
        )
        .await?;
    Ok(removed > 0)
}

/// How many warehouses `source` feeds.
pub async fn count_of_source(conn: impl Into<Conn<'_>>, source: &SourceId) -> Result<i64> {
    let Count(n) = conn
        .into()
        .fetch_one(
            "SELECT COUNT(*) AS n FROM warehouse_sources WHERE source_id = $1",
            args![source],
        )
        .await?;
    Ok(n)
}

/// Disconnects `source` from every warehouse; the warehouses it fed.
pub async fn disconnect_source(tx: &mut Tx, source: &SourceId) -> Result<Vec<String>> {
    let fed: Vec<Text> = tx
        .fetch_all(
            "SELECT warehouse_id AS value FROM warehouse_sources WHERE source_id = $1
             ORDER BY warehouse_id",
            args![source],
        )
        .await?;
    tx.execute(
        "DELETE FROM warehouse_sources WHERE source_id = $1",
        args![source],
    )
    .await?;
    Ok(fed.into_iter().map(|Text(id)| id).collect())
}
