//! `/users` (owner only): the workspace's members. Owners receive the leak
//! emails; the last owner can be neither removed nor demoted.

use actix_web::web;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use super::auth::{Caller, Identity, Owner};
use super::body::{FromBody, JsonBody};
use super::error::{ApiError, OnUniqueViolation};
use super::pagination::{PageRequest, Pagination};
use super::reply::{Created, Data, Done};
use super::route::Resource;
use super::validate::Fields;
use super::{path_id, OperationDoc};
use crate::audit::{Actor, NewEvent};
use crate::db::users::{self, User};
use crate::db::{Change, Conn};
use crate::domain::{Email, Name, Role, UserId, WorkspaceId};
use crate::state::AppState;
use crate::time::Timestamp;

pub fn resources() -> Vec<Resource> {
    const NO_SUCH: &str = "No such user in this workspace";
    vec![
        Resource::new("/users", "Users")
            .get(
                list,
                OperationDoc::new("listUsers", "The workspace's users, oldest first"),
            )
            .post(
                create,
                OperationDoc::new("createUser", "Add a user to the workspace")
                    .status(409, "A user with this email is already in the workspace"),
            ),
        Resource::new("/users/{id}", "Users")
            .get(
                get,
                OperationDoc::new("getUser", "One user").status(404, NO_SUCH),
            )
            .patch(
                update,
                OperationDoc::new("updateUser", "Change a user's role or name")
                    .status(404, NO_SUCH)
                    .status(409, "It would leave the workspace without an owner"),
            )
            .delete(
                delete,
                OperationDoc::new("deleteUser", "Remove a user from the workspace")
                    .status(404, NO_SUCH)
                    .status(409, "The workspace's last owner"),
            ),
    ]
}

/// `GET /users`.
#[derive(Serialize, ToSchema)]
pub struct ListUsersOutput {
    users: Vec<User>,
    pagination: Pagination,
}

/// One user.
#[derive(Serialize, ToSchema)]
pub struct UserOutput {
    user: User,
}

/// `POST /users`.
#[derive(ToSchema)]
pub struct CreateUserInput {
    email: Email,
    /// Default: the part of the email before the @.
    name: Option<Name>,
    role: Role,
}

impl FromBody for CreateUserInput {
    const FIELDS: &'static [&'static str] = &["email", "name", "role"];

    fn read(fields: &mut Fields) -> Option<CreateUserInput> {
        let email = fields.required("email");
        let name = fields.optional("name");
        let role = fields.required("role");
        Some(CreateUserInput {
            email: email?,
            name,
            role: role?,
        })
    }
}

/// `PATCH /users/{id}`: the fields to change.
#[derive(ToSchema)]
pub struct UpdateUserInput {
    role: Option<Role>,
    name: Option<Name>,
}

impl FromBody for UpdateUserInput {
    const FIELDS: &'static [&'static str] = &["role", "name"];
    const AT_LEAST_ONE: bool = true;

    fn read(fields: &mut Fields) -> Option<UpdateUserInput> {
        Some(UpdateUserInput {
            role: fields.optional("role"),
            name: fields.optional("name"),
        })
    }
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

async fn find(conn: impl Into<Conn<'_>>, caller: &Identity, id: &str) -> Result<User, ApiError> {
    let id: UserId = path_id(id, "user")?;
    users::find(conn, &caller.workspace_id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))
}

pub async fn list(
    caller: Caller<Owner>,
    page: Result<PageRequest, ApiError>,
    state: web::Data<AppState>,
) -> Result<Data<ListUsersOutput>, ApiError> {
    let request = page?;
    let page = users::page(&state.db, &caller.workspace_id, &request.keyset()?).await?;
    let pagination = request.pagination(&page);
    Ok(Data(ListUsersOutput {
        users: page.items,
        pagination,
    }))
}

pub async fn create(
    caller: Caller<Owner>,
    body: JsonBody<CreateUserInput>,
    state: web::Data<AppState>,
) -> Result<Created<UserOutput>, ApiError> {
    let body = body.read(&state.settings).await?;
    let name = body.name.unwrap_or_else(|| body.email.default_name());
    let mut change = state.db.change(caller.workspace_id.as_str()).await?;
    let user = add_user(
        &mut change,
        &caller.workspace_id,
        body.email,
        name,
        body.role,
        &caller.actor(),
    )
    .await
    // The address stays out of the message: errors end up in logs.
    .on_unique_violation(|| "a user with this email already exists in this workspace".into())?;
    change.commit().await?;
    Ok(Created(UserOutput { user }))
}

pub async fn get(
    caller: Caller<Owner>,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<Data<UserOutput>, ApiError> {
    let user = find(&state.db, &caller, &path).await?;
    Ok(Data(UserOutput { user }))
}

pub async fn update(
    caller: Caller<Owner>,
    path: web::Path<String>,
    body: JsonBody<UpdateUserInput>,
    state: web::Data<AppState>,
) -> Result<Data<UserOutput>, ApiError> {
    let body = body.read(&state.settings).await?;
    let id: UserId = path_id(&path, "user")?;
    let user = modify_user(
        &state.db,
        &caller.workspace_id,
        &id,
        body.role,
        body.name,
        &caller.actor(),
    )
    .await?;
    Ok(Data(UserOutput { user }))
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
    let mut user = users::find(&mut change, workspace_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    if user.role == Role::Owner
        && role.is_some_and(|r| r != Role::Owner)
        && users::count_owners(&mut change, workspace_id).await? <= 1
    {
        return Err(ApiError::Conflict(
            "this is the workspace's last owner; promote another user first".into(),
        ));
    }
    let before = user.role;
    user.role = role.unwrap_or(user.role);
    user.name = name.unwrap_or(user.name);
    user.updated_at = Timestamp(change.at());
    users::update(&mut change, &user).await?;
    change.record(event(
        "User Modified",
        actor,
        &user,
        json!({ "previousRole": before, "role": user.role, "name": user.name }),
    ));
    change.commit().await?;
    Ok(user)
}

pub async fn delete(
    caller: Caller<Owner>,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<Data<Done>, ApiError> {
    let id: UserId = path_id(&path, "user")?;
    remove_user(&state.db, &caller.workspace_id, &id, &caller.actor()).await?;
    Ok(Done::success())
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
    let user = users::find(&mut change, workspace_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    if user.role == Role::Owner && users::count_owners(&mut change, workspace_id).await? <= 1 {
        return Err(ApiError::Conflict(
            "this is the workspace's last owner and cannot be removed".into(),
        ));
    }
    users::delete(&mut change, &user.id).await?;
    change.record(event("User Removed", actor, &user, json!({})));
    change.commit().await?;
    Ok(user)
}
