//! `labels`: the `{key, value}` labels a workspace's sources may carry.
//! A source keeps its own copy of its labels (`sources.labels`).

use super::{Conn, Count, FromRow, Result, Row, Tx};
use crate::args;
use crate::domain::{Description, Label, LabelId, WorkspaceId};
use crate::time::Timestamp;

#[derive(Debug, Clone)]
pub struct StoredLabel {
    pub id: LabelId,
    pub workspace_id: WorkspaceId,
    pub label: Label,
    pub description: Description,
    pub created_at: Timestamp,
}

const COLUMNS: &str = "id, workspace_id, key, value, description, created_at";

impl FromRow for StoredLabel {
    fn from_row(row: &impl Row) -> Result<Self> {
        Ok(StoredLabel {
            id: row.parse("id")?,
            workspace_id: row.parse("workspace_id")?,
            label: Label {
                key: row.text("key")?,
                value: row.text("value")?,
            },
            description: row.parse("description")?,
            created_at: row.time("created_at")?,
        })
    }
}

/// Every label of the workspace, oldest first.
pub async fn all(
    conn: impl Into<Conn<'_>>,
    workspace_id: &WorkspaceId,
) -> Result<Vec<StoredLabel>> {
    conn.into()
        .fetch_all(
            &format!(
                "SELECT {COLUMNS} FROM labels WHERE workspace_id = $1 ORDER BY created_at, id"
            ),
            args![workspace_id],
        )
        .await
}

pub async fn find(
    conn: impl Into<Conn<'_>>,
    workspace_id: &WorkspaceId,
    label: &Label,
) -> Result<Option<StoredLabel>> {
    conn.into()
        .fetch_optional(
            &format!(
                "SELECT {COLUMNS} FROM labels WHERE workspace_id = $1 AND key = $2 AND value = $3"
            ),
            args![workspace_id, label.key, label.value],
        )
        .await
}

pub async fn count(conn: impl Into<Conn<'_>>, workspace_id: &WorkspaceId) -> Result<i64> {
    let Count(n) = conn
        .into()
        .fetch_one(
            "SELECT COUNT(*) AS n FROM labels WHERE workspace_id = $1",
            args![workspace_id],
        )
        .await?;
    Ok(n)
}

/// Fails with a unique violation when the workspace has the label.
pub async fn insert(tx: &mut Tx, label: &StoredLabel) -> Result<()> {
    tx.execute(
        "INSERT INTO labels (id, workspace_id, key, value, description, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
        args![
            label.id,
            label.workspace_id,
            label.label.key,
            label.label.value,
            label.description,
            label.created_at
        ],
    )
    .await?;
    Ok(())
}

pub async fn delete(tx: &mut Tx, id: &LabelId) -> Result<()> {
    tx.execute("DELETE FROM labels WHERE id = $1", args![id])
        .await?;
    Ok(())
}
