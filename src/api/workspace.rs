//! `GET /`: the token's workspace. Also creation (CLI only: a workspace is
//! where tokens come from, so no token can create one).

use actix_web::{web, HttpResponse};
use serde::Serialize;
use serde_json::json;
use sqlx::Row;

use super::auth::{Caller, Role};
use super::error::ApiError;
use super::tokens::{mint, MintedToken};
use super::users::insert_user;
use crate::audit::CLI_ACTOR;
use crate::db::{is_unique_violation, Db};
use crate::startup::AppState;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Workspace {
    pub id: String,
    pub name: String,
    pub slug: String,
}

#[utoipa::path(get, path = "/", tag = "Workspaces",
    responses((status = 200, description = "The token's workspace: {\"data\":{\"workspace\":{id,name,slug}}}"),
              (status = 401, description = "Missing, unknown or revoked token")))]
pub async fn get(caller: Caller, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let row = sqlx::query("SELECT id, name, slug FROM workspaces WHERE id = $1")
        .bind(&caller.workspace_id)
        .fetch_one(state.db.pool())
        .await?;
    Ok(super::data(json!({
        "workspace": Workspace { id: row.get(0), name: row.get(1), slug: row.get(2) }
    })))
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatedWorkspace {
    pub workspace: Workspace,
    pub owner: super::users::User,
    /// The owner token's plaintext: shown once, here.
    pub token: String,
    pub token_id: String,
}

/// A workspace with its first owner and an owner token, in one transaction.
pub async fn create(db: &Db, name: &str, owner_email: &str) -> anyhow::Result<CreatedWorkspace> {
    let name = name.trim();
    anyhow::ensure!(
        !name.is_empty() && name.chars().count() <= super::validate::MAX_NAME,
        "--name must be 1 to {} characters",
        super::validate::MAX_NAME
    );
    let email: lettre::Address = owner_email
        .trim()
        .parse()
        .map_err(|_| anyhow::anyhow!("--owner-email is not an email address: {owner_email:?}"))?;
    let email = email.to_string().to_ascii_lowercase();
    let base = slugify(name);
    for attempt in 0..5 {
        let slug = if attempt == 0 {
            base.clone()
        } else {
            format!("{base}-{}", &crate::id::new_id()[..6].to_ascii_lowercase())
        };
        let workspace = Workspace {
            id: crate::id::new_id(),
            name: name.to_string(),
            slug,
        };
        let mut tx = db.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO workspaces (id, name, slug, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&workspace.id)
        .bind(&workspace.name)
        .bind(&workspace.slug)
        .bind(crate::time::now_micros())
        .execute(&mut *tx)
        .await;
        match inserted {
            Err(e) if is_unique_violation(&e) => continue,
            other => other?,
        };
        let local = email.split('@').next().unwrap_or("owner").to_string();
        let owner = insert_user(&mut tx, &workspace.id, &email, &local, "owner", CLI_ACTOR).await?;
        let MintedToken { secret, record } = mint(
            &mut tx,
            &workspace.id,
            "owner token",
            Role::Owner,
            CLI_ACTOR,
        )
        .await?;
        tx.commit().await?;
        return Ok(CreatedWorkspace {
            workspace,
            owner,
            token: secret.expose().to_string(),
            token_id: record.id,
        });
    }
    anyhow::bail!("could not find a free slug for {name:?}")
}

fn slugify(name: &str) -> String {
    let mut slug = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
    }
    let slug = slug.trim_end_matches('-').to_string();
    if slug.is_empty() {
        "workspace".to_string()
    } else {
        slug.chars().take(60).collect()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn slugs() {
        assert_eq!(super::slugify("Acme Inc."), "acme-inc");
        assert_eq!(super::slugify("  ***  "), "workspace");
    }
}
