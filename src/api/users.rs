//! `/users` (owner only): the workspace's members. Owners receive the leak
//! emails; the last owner can be neither removed nor demoted.

use actix_web::http::Method;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use super::auth::{Caller, Role};
use super::body::JsonBody;
use super::error::{ApiError, OnUniqueViolation};
use super::pagination::PageRequest;
use super::validate::Fields;
use super::{path_id, Endpoint};
use crate::audit::{Actor, NewEvent};
use crate::db::users::{self, User};
use crate::db::{Change, Conn};
use crate::domain::{Email, Name, UserId, WorkspaceId};
use crate::state::AppState;
use crate::time::Timestamp;

pub fn endpoints() -> Vec<Endpoint> {
    vec![
        Endpoint::new(Method::GET, "/users", list),
        Endpoint::new(Method::POST, "/users", create),
        Endpoint::new(Method::GET, "/users/{id}", get),
        Endpoint::new(Method::PATCH, "/users/{id}", update),
        Endpoint::new(Method::DELETE, "/users/{id}", delete),
    ]
}

pub fn event(
    event_type: &'static str,
    actor: &Actor,
    user: &User,
    details: serde_json::Value,
) -> NewEvent {
    NewEvent {
        event_type,
        actor: actor.clone(),
        resource_id: user.id.to_string(),
        resource_type: "user",
        resource_name: user.email.to_string(),
        details,
    }
}

/// Adds a user to the change's workspace, with its `User Added` event.
/// Fails with a unique violation when the email is taken there.
pub async fn add_user(
    change: &mut Change,
    workspace_id: &WorkspaceId,
    email: Email,
    name: Name,
    role: Role,
    actor: &Actor,
) -> crate::db::Result<User> {
    let now = Timestamp(change.at());
    let user = User {
        id: UserId::generate(),
        workspace_id: workspace_id.clone(),
        email,
        name,
        role,
        created_at: now,
        updated_at: now,
    };
    users::insert(change, &user).await?;
    change.record_in(
        workspace_id.as_str(),
        event("User Added", actor, &user, json!({ "role": role })),
    )?;
    Ok(user)
}

async fn find(conn: impl Into<Conn<'_>>, caller: &Caller, id: &str) -> Result<User, ApiError> {
    let id: UserId = path_id(id, "user")?;
    users::find(conn, &caller.workspace_id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))
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
    let request = PageRequest::from_request(&req)?;
    let page = users::page(&state.db, &caller.workspace_id, &request.keyset()?).await?;
    let pagination = request.pagination(&page);
    Ok(super::data(
        json!({ "users": page.items, "pagination": pagination }),
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
    let body = body.parse(&state.settings).await?;
    let mut fields = Fields::of(&body, &["email", "name", "role"])?;
    let email = fields.required::<Email>("email");
    let name = fields.optional::<Name>("name");
    let role = fields.required::<Role>("role");
    let (Some(email), Some(role)) = (email, role) else {
        return Err(fields.into_error());
    };
    fields.finish()?;
    let name = name.unwrap_or_else(|| email.default_name());
    let mut change = state.db.change(caller.workspace_id.as_str()).await?;
    let user = add_user(
        &mut change,
        &caller.workspace_id,
        email,
        name,
        role,
        &caller.actor(),
    )
    .await
    // The address stays out of the message: errors end up in logs.
    .on_unique_violation(|| "a user with this email already exists in this workspace".into())?;
    change.commit().await?;
    Ok(super::created(json!({ "user": user })))
}

#[utoipa::path(get, path = "/users/{id}", tag = "Users", params(("id" = String, Path)),
    responses((status = 200, description = "One user"), (status = 404, description = "No such user in this workspace")))]
pub async fn get(
    caller: Caller,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Owner)?;
    let found = find(&state.db, &caller, &path).await?;
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
    let body = body.parse(&state.settings).await?;
    let mut fields = Fields::of(&body, &["role", "name"])?;
    let role = fields.optional::<Role>("role");
    let name = fields.optional::<Name>("name");
    fields.require_any(&["role", "name"]);
    fields.finish()?;
    let id: UserId = path_id(&path, "user")?;
    let user = modify_user(
        &state.db,
        &caller.workspace_id,
        &id,
        role,
        name,
        &caller.actor(),
    )
    .await?;
    Ok(super::data(json!({ "user": user })))
}

/// Changes a user's role and name (each when given), with its `User
/// Modified` event; 404 for a user not in the workspace, 409 for demoting
/// its last owner.
pub async fn modify_user(
    db: &crate::db::Db,
    workspace_id: &WorkspaceId,
    id: &UserId,
    role: Option<Role>,
    name: Option<Name>,
    actor: &Actor,
) -> Result<User, ApiError> {
    // Two concurrent demotions or removals must not both see a second owner.
    let mut change = db.change(workspace_id.as_str()).await?;
    let mut found = users::find(&mut change, workspace_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    if found.role == Role::Owner
        && role.is_some_and(|r| r != Role::Owner)
        && users::count_owners(&mut change, workspace_id).await? <= 1
    {
        return Err(ApiError::Conflict(
            "this is the workspace's last owner; promote another user first".into(),
        ));
    }
    let before = found.role;
    found.role = role.unwrap_or(found.role);
    found.name = name.unwrap_or(found.name);
    found.updated_at = Timestamp(change.at());
    users::update(&mut change, &found).await?;
    change.record(event(
        "User Modified",
        actor,
        &found,
        json!({ "previousRole": before, "role": found.role, "name": found.name }),
    ));
    change.commit().await?;
    Ok(found)
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
    let id: UserId = path_id(&path, "user")?;
    remove_user(&state.db, &caller.workspace_id, &id, &caller.actor()).await?;
    Ok(super::deleted())
}

/// Removes a user, with its `User Removed` event; 404 for a user not in
/// the workspace, 409 for its last owner.
pub async fn remove_user(
    db: &crate::db::Db,
    workspace_id: &WorkspaceId,
    id: &UserId,
    actor: &Actor,
) -> Result<User, ApiError> {
    // Two concurrent demotions or removals must not both see a second owner.
    let mut change = db.change(workspace_id.as_str()).await?;
    let found = users::find(&mut change, workspace_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    if found.role == Role::Owner && users::count_owners(&mut change, workspace_id).await? <= 1 {
        return Err(ApiError::Conflict(
            "this is the workspace's last owner and cannot be removed".into(),
        ));
    }
    users::delete(&mut change, &found.id).await?;
    change.record(event("User Removed", actor, &found, json!({})));
    change.commit().await?;
    Ok(found)
}
