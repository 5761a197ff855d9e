//! A new workspace with its first owner and an owner token, in one
//! transaction (`leakguard workspace create`). No token can create a
//! workspace: a workspace is where tokens come from.

use serde::Serialize;

use crate::api::users::add_user;
use crate::audit::Actor;
use crate::db::users::User;
use crate::db::workspaces::{self, Workspace};
use crate::db::{Change, Db};
use crate::domain::{Email, Name, Parse, Role, Slug, WorkspaceId};
use crate::time::Timestamp;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatedWorkspace {
    pub workspace: Workspace,
    pub owner: User,
    /// The owner token's plaintext: shown once, here.
    pub token: String,
    pub token_id: String,
}

/// Creates the workspace; a taken slug gets a random suffix.
pub async fn create_workspace(
    db: &Db,
    name: Name,
    owner_email: Email,
) -> anyhow::Result<CreatedWorkspace> {
    let base = Slug::from_name(name.as_str());
    for attempt in 0..5 {
        let slug = if attempt == 0 {
            base.clone()
        } else {
            base.with_suffix(&crate::id::random_base62(6).to_ascii_lowercase())
        };
        let id = WorkspaceId::generate();
        let workspace = Workspace {
            id: id.clone(),
            name: name.clone(),
            slug,
            created_at: Timestamp::now(),
        };
        // Its lock takes nothing yet (the row is new), and nothing else can
        // know of the workspace before the commit.
        let mut change = Change::begin(db, [id.as_str()]).await?;
        match workspaces::insert(&mut change, &workspace).await {
            // The slug is taken: a new transaction and another slug.
            Err(e) if e.is_unique_violation() => continue,
            other => other?,
        }
        let owner = add_user(
            &mut change,
            &id,
            owner_email.clone(),
            owner_email.default_name(),
            Role::Owner,
            &Actor::cli(),
        )
        .await?;
        let token_name = Name::parse("owner token").map_err(anyhow::Error::msg)?;
        let minted =
            crate::token::mint(&mut change, &id, token_name, Role::Owner, &Actor::cli()).await?;
        change.commit().await?;
        return Ok(CreatedWorkspace {
            workspace,
            owner,
            token: minted.secret.expose().to_string(),
            token_id: minted.token.id.to_string(),
        });
    }
    anyhow::bail!("could not find a free slug for {:?}", name.as_str())
}
