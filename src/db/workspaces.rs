//! `workspaces`: where everything else belongs. Each row also holds the
//! head of its audit chain (`audit_events`).

use super::{Conn, FromRow, Result, Row, Tx};
use crate::args;
use crate::domain::{Name, Slug, WorkspaceId};
use crate::time::Timestamp;

#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Workspace {
    pub id: WorkspaceId,
    pub name: Name,
    pub slug: Slug,
    #[serde(skip)]
    pub created_at: Timestamp,
}

impl FromRow for Workspace {
    fn from_row(row: &impl Row) -> Result<Self> {
        Ok(Workspace {
            id: row.parse("id")?,
            name: row.parse("name")?,
            slug: row.parse("slug")?,
            created_at: row.time("created_at")?,
        })
    }
}

pub async fn find(conn: impl Into<Conn<'_>>, id: &WorkspaceId) -> Result<Option<Workspace>> {
    conn.into()
        .fetch_optional(
            "SELECT id, name, slug, created_at FROM workspaces WHERE id = $1",
            args![id],
        )
        .await
}

/// Fails with a unique violation when the slug is taken.
pub async fn insert(tx: &mut Tx, workspace: &Workspace) -> Result<()> {
    tx.execute(
        "INSERT INTO workspaces (id, name, slug, created_at) VALUES ($1, $2, $3, $4)",
        args![
            workspace.id,
            workspace.name,
            workspace.slug,
            workspace.created_at
        ],
    )
    .await?;
    Ok(())
}
