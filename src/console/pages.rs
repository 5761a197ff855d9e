//! The console's start (the person's workspaces), each workspace's
//! overview, the users actions of the incident page, and the static files.

use actix_web::http::header;
use actix_web::http::Method;
use actix_web::{web, HttpResponse};
use minijinja::context;
use serde::Deserialize;

use super::route::Page;
use super::session::{Access, SignedIn};
use super::{page, safe_next, see_other, ConsoleError};
use crate::api::users::{modify_user, remove_user};
use crate::db::{self, tokens, users};
use crate::domain::{Parse, Role, UserId};
use crate::state::AppState;

pub fn endpoints() -> Vec<Page> {
    vec![
        Page::new(Method::GET, "/app/w/{workspace}", workspace),
        Page::new(
            Method::POST,
            "/app/w/{workspace}/users/{user}/remove",
            remove,
        ),
        Page::new(
            Method::POST,
            "/app/w/{workspace}/users/{user}/role",
            restore_role,
        ),
    ]
}

/// `GET /app`: the workspaces of the signed-in address; with exactly one,
/// straight to it.
pub async fn workspaces(
    signed_in: SignedIn,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    let users = users::with_email(&state.db, &signed_in.email).await?;
    if let [only] = users.as_slice() {
        return Ok(see_other(&format!("/app/w/{}", only.workspace_id)));
    }
    let mut memberships = Vec::with_capacity(users.len());
    for user in &users {
        if let Some(w) = db::workspaces::find(&state.db, &user.workspace_id).await? {
            memberships.push(context! {
                id => w.id.as_str(),
                name => w.name.as_str(),
                role => user.role.as_str(),
            });
        }
    }
    page(
        "workspaces.html",
        context! {
            title => "Your workspaces",
            signed_in_email => signed_in.email.as_str(),
            csrf => signed_in.csrf(),
            memberships => memberships,
        },
    )
}

/// How many incidents a workspace overview lists.
const RECENT_INCIDENTS: i64 = 10;

/// `GET /app/w/{workspace}`: the overview, for every role.
pub async fn workspace(
    signed_in: SignedIn,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    let access = Access::to(&state, signed_in, &path).await?;
    let incidents = if access.is_owner() {
        tokens::incident_alerts(&state.db, &access.workspace.id, RECENT_INCIDENTS)
            .await?
            .into_iter()
            .map(|(alert, at, revoked)| context! { alert => alert, at => at.to_string(), revoked => revoked })
            .collect()
    } else {
        Vec::new()
    };
    page(
        "workspace.html",
        context! {
            incidents => incidents,
            ..access.frame(access.workspace.name.as_str(), "overview")
        },
    )
}

#[derive(Deserialize)]
pub struct UserActionForm {
    #[serde(default)]
    csrf: String,
    /// The page to return to (the incident page).
    #[serde(default)]
    back: String,
    /// For `role`: the role to restore.
    #[serde(default)]
    role: String,
}

/// The form's return path, with a note for the page to show.
fn back_to(form: &UserActionForm, workspace: &str, done: &str) -> String {
    let back = safe_next(Some(&form.back));
    let back = if back == super::ROOT {
        format!("/app/w/{workspace}")
    } else {
        back
    };
    let separator = if back.contains('?') { '&' } else { '?' };
    format!("{back}{separator}done={done}")
}

/// `POST /app/w/{workspace}/users/{user}/remove` (owners): one-click
/// removal of a user that a leaked token added.
pub async fn remove(
    signed_in: SignedIn,
    path: web::Path<(String, String)>,
    form: web::Form<UserActionForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    let (workspace, user) = path.into_inner();
    let access = Access::owner(&state, signed_in, &workspace).await?;
    access.signed_in.check_csrf(&form.csrf)?;
    let id = UserId::parse(&user).map_err(|_| ConsoleError::NotFound)?;
    remove_user(&state.db, &access.workspace.id, &id, &access.actor()).await?;
    Ok(see_other(&back_to(&form, &workspace, "user-removed")))
}

/// `POST /app/w/{workspace}/users/{user}/role` (owners): sets a user's
/// role back (one click, for a role a leaked token raised).
pub async fn restore_role(
    signed_in: SignedIn,
    path: web::Path<(String, String)>,
    form: web::Form<UserActionForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    let (workspace, user) = path.into_inner();
    let access = Access::owner(&state, signed_in, &workspace).await?;
    access.signed_in.check_csrf(&form.csrf)?;
    let id = UserId::parse(&user).map_err(|_| ConsoleError::NotFound)?;
    let role =
        Role::parse(&form.role).map_err(|m| ConsoleError::BadRequest(format!("The role {m}.")))?;
    modify_user(
        &state.db,
        &access.workspace.id,
        &id,
        Some(role),
        None,
        &access.actor(),
    )
    .await?;
    Ok(see_other(&back_to(&form, &workspace, "role-restored")))
}

/// `GET /app/static/{file}`: the stylesheet and the copy-button script.
pub async fn asset(path: web::Path<String>) -> Result<HttpResponse, ConsoleError> {
    let (content_type, body) = match path.as_str() {
        "console.css" => (
            "text/css; charset=utf-8",
            include_str!("static/console.css"),
        ),
        "copy.js" => (
            "text/javascript; charset=utf-8",
            include_str!("static/copy.js"),
        ),
        _ => return Err(ConsoleError::NotFound),
    };
    Ok(HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(body))
}
