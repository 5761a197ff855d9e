//! `users`: the people of a workspace. Owners receive the leak emails.

use super::pagination::{self, Keyed, Page, PageQuery, Position};
use super::{placeholders, Conn, Count, FromRow, Result, Row, ToArg, Tx, MAX_BINDS};
use crate::args;
use crate::domain::{Email, Name, Role, UserId, WorkspaceId};
use crate::time::Timestamp;

#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: UserId,
    #[serde(skip)]
    pub workspace_id: WorkspaceId,
    pub email: Email,
    pub name: Name,
    pub role: Role,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

const COLUMNS: &str = "id, workspace_id, email, name, role, created_at, updated_at";

impl FromRow for User {
    fn from_row(row: &impl Row) -> Result<Self> {
        Ok(User {
            id: row.parse("id")?,
            workspace_id: row.parse("workspace_id")?,
            email: row.parse("email")?,
            name: row.parse("name")?,
            role: row.parse("role")?,
            created_at: row.time("created_at")?,
            updated_at: row.time("updated_at")?,
        })
    }
}

impl Keyed for User {
    fn position(&self) -> Position {
        Position {
            created_at: self.created_at.micros(),
            id: self.id.to_string(),
        }
    }
}

pub async fn find(
    conn: impl Into<Conn<'_>>,
    workspace_id: &WorkspaceId,
    id: &UserId,
) -> Result<Option<User>> {
    conn.into()
        .fetch_optional(
            &format!("SELECT {COLUMNS} FROM users WHERE id = $1 AND workspace_id = $2"),
            args![id, workspace_id],
        )
        .await
}

pub async fn page(
    conn: impl Into<Conn<'_>>,
    workspace_id: &WorkspaceId,
    query: &PageQuery,
) -> Result<Page<User>> {
    pagination::page(conn, "users", COLUMNS, workspace_id.as_str(), query).await
}

/// The workspace's users among `ids`.
pub async fn find_many(
    conn: impl Into<Conn<'_>>,
    workspace_id: &WorkspaceId,
    ids: &[&UserId],
) -> Result<Vec<User>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let ids = &ids[..ids.len().min(MAX_BINDS - 1)];
    let sql = format!(
        "SELECT {COLUMNS} FROM users WHERE workspace_id = $1 AND id IN ({})",
        placeholders(2, ids.len())
    );
    let mut binds = vec![workspace_id.to_arg()];
    binds.extend(ids.iter().map(|id| id.to_arg()));
    conn.into().fetch_all(&sql, &binds).await
}

/// The user with this address in the workspace.
pub async fn find_by_email(
    conn: impl Into<Conn<'_>>,
    workspace_id: &WorkspaceId,
    email: &Email,
) -> Result<Option<User>> {
    conn.into()
        .fetch_optional(
            &format!("SELECT {COLUMNS} FROM users WHERE workspace_id = $1 AND email = $2"),
            args![workspace_id, email],
        )
        .await
}

/// Every user with this address, one per workspace, oldest first.
pub async fn with_email(conn: impl Into<Conn<'_>>, email: &Email) -> Result<Vec<User>> {
    conn.into()
        .fetch_all(
            &format!("SELECT {COLUMNS} FROM users WHERE email = $1 ORDER BY created_at, id"),
            args![email],
        )
        .await
}

/// The workspace's owners, oldest first.
pub async fn owners(conn: impl Into<Conn<'_>>, workspace_id: &WorkspaceId) -> Result<Vec<User>> {
    conn.into()
        .fetch_all(
            &format!(
                "SELECT {COLUMNS} FROM users WHERE workspace_id = $1 AND role = 'owner'
                 ORDER BY created_at, id"
            ),
            args![workspace_id],
        )
        .await
}

pub async fn count_owners(conn: impl Into<Conn<'_>>, workspace_id: &WorkspaceId) -> Result<i64> {
    let Count(n) = conn
        .into()
        .fetch_one(
            "SELECT COUNT(*) AS n FROM users WHERE workspace_id = $1 AND role = 'owner'",
            args![workspace_id],
        )
        .await?;
    Ok(n)
}

/// Fails with a unique violation when the email is taken in the workspace.
pub async fn insert(tx: &mut Tx, user: &User) -> Result<()> {
    tx.execute(
        "INSERT INTO users (id, workspace_id, email, name, role, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        args![
            user.id,
            user.workspace_id,
            user.email,
            user.name,
            user.role,
            user.created_at,
            user.updated_at
        ],
    )
    .await?;
    Ok(())
}

pub async fn update(tx: &mut Tx, user: &User) -> Result<()> {
    tx.execute(
        "UPDATE users SET name = $1, role = $2, updated_at = $3 WHERE id = $4",
        args![user.name, user.role, user.updated_at, user.id],
    )
    .await?;
    Ok(())
}

pub async fn delete(tx: &mut Tx, id: &UserId) -> Result<()> {
    tx.execute("DELETE FROM users WHERE id = $1", args![id])
        .await?;
    Ok(())
}
