//! `/users` (owner only): the workspace's members. Owners receive the leak
//! emails; the last owner can be neither removed nor demoted.

use actix_web::http::Method;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use serde_json::json;
use sqlx::Row;

use super::auth::{Caller, Role, ROLE_NAMES};
use super::body::JsonBody;
use super::error::ApiError;
use super::pagination::{fetch_page, PageRequest};
use super::validate::{Fields, MAX_NAME};
use super::Endpoint;
use crate::audit::{self, NewEvent};
use crate::db::{is_unique_violation, Tx};
use crate::startup::AppState;
use crate::time::{format_micros, now_micros};

pub fn endpoints() -> Vec<Endpoint> {
    vec![
        Endpoint::new(Method::GET, "/users", list),
        Endpoint::new(Method::POST, "/users", create),
        Endpoint::new(Method::GET, "/users/{id}", get),
        Endpoint::new(Method::PATCH, "/users/{id}", update),
        Endpoint::new(Method::DELETE, "/users/{id}", delete),
    ]
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: String,
    pub email: String,
    pub name: String,
    pub role: String,
    pub created_at: String,
    pub updated_at: String,
}

const COLUMNS: &str = "id, email, name, role, created_at, updated_at";

fn user(row: &sqlx::any::AnyRow) -> User {
    User {
        id: row.get(0),
        email: row.get(1),
        name: row.get(2),
        role: row.get(3),
        created_at: format_micros(row.get(4)),
        updated_at: format_micros(row.get(5)),
    }
}

fn event(
    event_type: &'static str,
    actor: &str,
    user: &User,
    details: serde_json::Value,
) -> NewEvent {
    NewEvent {
        event_type,
        actor: actor.to_string(),
        resource_id: user.id.clone(),
        resource_type: "user",
        resource_name: user.email.clone(),
        details,
    }
}

/// Inserts a user and its `User Added` event in the caller's transaction.
pub async fn insert_user(
    tx: &mut Tx,
    workspace_id: &str,
    email: &str,
    name: &str,
    role: &str,
    actor: &str,
) -> Result<User, sqlx::Error> {
    let now = now_micros();
    let user = User {
        id: crate::id::new_id(),
        email: email.to_string(),
        name: name.to_string(),
        role: role.to_string(),
        created_at: format_micros(now),
        updated_at: format_micros(now),
    };
    sqlx::query(
        "INSERT INTO users (id, workspace_id, email, name, role, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $6)",
    )
    .bind(&user.id)
    .bind(workspace_id)
    .bind(email)
    .bind(name)
    .bind(role)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    audit::append(
        tx,
        workspace_id,
        now,
        vec![event("User Added", actor, &user, json!({ "role": role }))],
    )
    .await?;
    Ok(user)
}

#[utoipa::path(get, path = "/users", tag = "Users",
    params(("pagination[count]" = Option<i64>, Query), ("pagination[cursor]" = Option<String>, Query)),
    responses((status = 200, description = "Users of the workspace")))]
pub async fn list(
    caller: Caller,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Owner)?;
    let page = PageRequest::from_request(&req)?;
    let (rows, pagination) =
        fetch_page(&state.db, "users", COLUMNS, &caller.workspace_id, &page).await?;
    let users: Vec<User> = rows.iter().map(user).collect();
    Ok(super::data(
        json!({ "users": users, "pagination": pagination }),
    ))
}

#[utoipa::path(post, path = "/users", tag = "Users",
    request_body(content = Object, description = "{\"email\": string, \"name\": string, \"role\": \"owner\"|\"member\"|\"read_only\"}"),
    responses((status = 201, description = "The new user"), (status = 409, description = "Email already in the workspace"),
              (status = 422, description = "Every validation failure")))]
pub async fn create(
    caller: Caller,
    body: JsonBody,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Owner)?;
    let body = body.parse(state.settings.max_body_bytes).await?;
    let mut fields = Fields::of(&body, &["email", "name", "role"])?;
    let email = fields.email("email", true);
    let name = fields.string("name", false, MAX_NAME);
    let role = fields.one_of("role", true, ROLE_NAMES);
    fields.finish()?;
    let email = email.expect("validated");
    let name = name.unwrap_or_else(|| email.split('@').next().unwrap_or("").to_string());
    let mut tx = state.db.begin().await?;
    let user = match insert_user(
        &mut tx,
        &caller.workspace_id,
        &email,
        &name,
        &role.expect("validated"),
        &caller.actor(),
    )
    .await
    {
        Err(e) if is_unique_violation(&e) => {
            // The address stays out of the message: errors end up in logs.
            return Err(ApiError::Conflict(
                "a user with this email already exists in this workspace".into(),
            ));
        }
        other => other?,
    };
    tx.commit().await?;
    Ok(super::created(json!({ "user": user })))
}

async fn find(tx: &mut Tx, workspace_id: &str, id: &str) -> Result<User, ApiError> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM users WHERE id = $1 AND workspace_id = $2"
    ))
    .bind(id)
    .bind(workspace_id)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| ApiError::not_found("user"))?;
    Ok(user(&row))
}

async fn owner_count(tx: &mut Tx, workspace_id: &str) -> Result<i64, sqlx::Error> {
    Ok(
        sqlx::query("SELECT COUNT(*) FROM users WHERE workspace_id = $1 AND role = 'owner'")
            .bind(workspace_id)
            .fetch_one(&mut **tx)
            .await?
            .get(0),
    )
}

#[utoipa::path(get, path = "/users/{id}", tag = "Users", params(("id" = String, Path)),
    responses((status = 200, description = "One user"), (status = 404, description = "No such user in this workspace")))]
pub async fn get(
    caller: Caller,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Owner)?;
    let mut tx = state.db.begin().await?;
    let found = find(&mut tx, &caller.workspace_id, &path).await?;
    tx.commit().await?;
    Ok(super::data(json!({ "user": found })))
}

#[utoipa::path(patch, path = "/users/{id}", tag = "Users", params(("id" = String, Path)),
    request_body(content = Object, description = "{\"role\": \"owner\"|\"member\"|\"read_only\", \"name\"?: string}"),
    responses((status = 200, description = "The updated user"), (status = 409, description = "Would leave the workspace without an owner")))]
pub async fn update(
    caller: Caller,
    path: web::Path<String>,
    body: JsonBody,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Owner)?;
    let body = body.parse(state.settings.max_body_bytes).await?;
    let mut fields = Fields::of(&body, &["role", "name"])?;
    let role = fields.one_of("role", false, ROLE_NAMES);
    let name = fields.string("name", false, MAX_NAME);
    fields.require_any(&["role", "name"]);
    fields.finish()?;
    let mut tx = state.db.begin().await?;
    // Two concurrent demotions or removals must not both see a second owner.
    audit::lock_workspace(&mut tx, &caller.workspace_id).await?;
    let mut found = find(&mut tx, &caller.workspace_id, &path).await?;
    if found.role == "owner"
        && role.as_deref().is_some_and(|r| r != "owner")
        && owner_count(&mut tx, &caller.workspace_id).await? <= 1
    {
        return Err(ApiError::Conflict(
            "this is the workspace's last owner; promote another user first".into(),
        ));
    }
    let now = now_micros();
    let before = found.role.clone();
    if let Some(r) = &role {
        found.role = r.clone();
    }
    if let Some(n) = &name {
        found.name = n.clone();
    }
    found.updated_at = format_micros(now);
    sqlx::query("UPDATE users SET role = $1, name = $2, updated_at = $3 WHERE id = $4")
        .bind(&found.role)
        .bind(&found.name)
        .bind(now)
        .bind(&found.id)
        .execute(&mut *tx)
        .await?;
    audit::append(
        &mut tx,
        &caller.workspace_id,
        now,
        vec![event(
            "User Modified",
            &caller.actor(),
            &found,
            json!({ "previousRole": before, "role": found.role, "name": found.name }),
        )],
    )
    .await?;
    tx.commit().await?;
    Ok(super::data(json!({ "user": found })))
}

#[utoipa::path(delete, path = "/users/{id}", tag = "Users", params(("id" = String, Path)),
    responses((status = 200, description = "{\"data\":{\"status\":\"SUCCESS\"}}"),
              (status = 409, description = "The workspace's last owner")))]
pub async fn delete(
    caller: Caller,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Owner)?;
    let mut tx = state.db.begin().await?;
    // Two concurrent demotions or removals must not both see a second owner.
    audit::lock_workspace(&mut tx, &caller.workspace_id).await?;
    let found = find(&mut tx, &caller.workspace_id, &path).await?;
    if found.role == "owner" && owner_count(&mut tx, &caller.workspace_id).await? <= 1 {
        return Err(ApiError::Conflict(
            "this is the workspace's last owner and cannot be removed".into(),
        ));
    }
    sqlx::query("DELETE FROM users WHERE id = $1")
        .bind(&found.id)
        .execute(&mut *tx)
        .await?;
    audit::append(
        &mut tx,
        &caller.workspace_id,
        now_micros(),
        vec![event("User Removed", &caller.actor(), &found, json!({}))],
    )
    .await?;
    tx.commit().await?;
    Ok(super::deleted())
}
