//! The OAuth apps page (owners): every app with its keys; registering an
//! app with its first key, changing it, adding and removing keys, and
//! deleting an app after a confirmation. The same operations as
//! `/oauth-apps` (`crate::oauth::apps`), audited as the signed-in owner.

use actix_web::http::Method;
use actix_web::{web, HttpResponse};
use minijinja::context;
use serde::Deserialize;

use super::route::Page;
use super::session::{Access, SignedIn};
use super::{page, see_other, ConsoleError};
use crate::db::oauth_apps::{self, OAuthApp};
use crate::db::pagination::PageQuery;
use crate::domain::{Name, Parse, PublicKey, Scope, Scopes, TokenLifetime};
use crate::oauth::apps::{self, AppChanges, CreateOAuthAppInput};
use crate::state::AppState;

pub fn endpoints() -> Vec<Page> {
    vec![
        Page::new(Method::GET, "/app/w/{workspace}/oauth-apps", list),
        Page::new(Method::POST, "/app/w/{workspace}/oauth-apps", create),
        Page::new(Method::POST, "/app/w/{workspace}/oauth-apps/{app}", update),
        Page::new(
            Method::POST,
            "/app/w/{workspace}/oauth-apps/{app}/keys",
            add_key,
        ),
        Page::new(
            Method::POST,
            "/app/w/{workspace}/oauth-apps/{app}/keys/{key}/remove",
            remove_key,
        ),
        Page::new(
            Method::GET,
            "/app/w/{workspace}/oauth-apps/{app}/delete",
            confirm_delete,
        ),
        Page::new(
            Method::POST,
            "/app/w/{workspace}/oauth-apps/{app}/delete",
            delete,
        ),
    ]
}

/// Apps per page: a workspace has a handful.
const PAGE: i64 = 1000;

#[derive(Deserialize)]
pub struct ListQuery {
    done: Option<String>,
}

fn view(app: &OAuthApp) -> minijinja::Value {
    let keys: Vec<_> = app
        .keys
        .iter()
        .map(|k| {
            context! {
                id => k.id.as_str(),
                name => k.name.as_str(),
                algorithm => k.algorithm.as_str(),
                created_at => k.created_at.to_string(),
            }
        })
        .collect();
    let scopes: Vec<&str> = app.scopes.iter().map(Scope::as_str).collect();
    context! {
        id => app.id.as_str(),
        name => app.name.as_str(),
        scopes => scopes,
        token_expires_in => app.token_expires_in.secs(),
        keys => keys,
        created_at => app.created_at.to_string(),
    }
}

/// `GET /app/w/{workspace}/oauth-apps` (owners).
pub async fn list(
    signed_in: SignedIn,
    path: web::Path<String>,
    query: web::Query<ListQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    let access = Access::owner(&state, signed_in, &path).await?;
    let done = match query.done.as_deref() {
        Some("created") => Some("The app was registered."),
        Some("changed") => Some("The app was changed."),
        Some("deleted") => Some("The app was deleted and its access tokens revoked."),
        Some("key-added") => Some("The key was added."),
        Some("key-removed") => Some("The key was removed and its access tokens revoked."),
        _ => None,
    };
    let query = PageQuery {
        count: PAGE,
        after: None,
    };
    let all = oauth_apps::page(&state.db, &access.workspace.id, &query).await?;
    let views: Vec<_> = all.items.iter().map(view).collect();
    let scopes = [
        ("read_write", Scope::PublicApiReadWrite.as_str()),
        ("read", Scope::PublicApiRead.as_str()),
    ];
    page(
        "oauth_apps.html",
        context! {
            apps => views,
            done => done,
            scopes => scopes,
            lifetimes => TokenLifetime::ALLOWED_SECS,
            max_keys => oauth_apps::MAX_KEYS,
            ..access.frame("OAuth apps", "oauth-apps")
        },
    )
}

/// The fields of the create and change forms, parsed as the API parses
/// them; every problem in one 400.
#[derive(Deserialize)]
pub struct AppForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    public_key: String,
    #[serde(default)]
    key_name: String,
    /// The scopes' checkboxes: present when checked.
    #[serde(default)]
    read_write: Option<String>,
    #[serde(default)]
    read: Option<String>,
    #[serde(default)]
    token_expires_in: String,
}

/// Collects the problems of a form, each as "<Field> <message>.".
#[derive(Default)]
struct Problems(Vec<String>);

impl Problems {
    fn check<T>(&mut self, field: &str, parsed: Result<T, String>) -> Option<T> {
        parsed
            .map_err(|e| self.0.push(format!("{field} {e}.")))
            .ok()
    }

    fn finish(self) -> Result<(), ConsoleError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ConsoleError::BadRequest(self.0.join(" ")))
        }
    }
}

/// The checked scopes (a form has one checkbox per scope).
fn scopes(problems: &mut Problems, form: &AppForm) -> Option<Scopes> {
    let mut list = Vec::new();
    if form.read_write.is_some() {
        list.push(Scope::PublicApiReadWrite);
    }
    if form.read.is_some() {
        list.push(Scope::PublicApiRead);
    }
    problems.check("Scopes", Scopes::from_list(list))
}

/// `POST /app/w/{workspace}/oauth-apps` (owners).
pub async fn create(
    signed_in: SignedIn,
    path: web::Path<String>,
    form: web::Form<AppForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    let access = Access::owner(&state, signed_in, &path).await?;
    access.signed_in.check_csrf(&form.csrf)?;
    let mut problems = Problems::default();
    let name = problems.check("Name", Name::parse(&form.name));
    let public_key = problems.check("The public key", PublicKey::parse(&form.public_key));
    let key_name = problems.check("The key name", Name::parse(&form.key_name));
    let scopes = scopes(&mut problems, &form);
    let lifetime = problems.check(
        "The token lifetime",
        TokenLifetime::parse(&form.token_expires_in),
    );
    problems.finish()?;
    let (Some(name), Some(public_key), Some(key_name), Some(scopes), Some(token_expires_in)) =
        (name, public_key, key_name, scopes, lifetime)
    else {
        return Err(ConsoleError::BadRequest("the form is incomplete".into()));
    };
    let ws = &access.workspace.id;
    let mut change = state.db.change(ws.as_str()).await?;
    let new = CreateOAuthAppInput {
        name,
        public_key,
        key_name,
        scopes,
        token_expires_in,
    };
    apps::create_app(&mut change, ws, new, &access.actor()).await?;
    change.commit().await?;
    Ok(see_other(&format!("/app/w/{ws}/oauth-apps?done=created")))
}

/// `POST /app/w/{workspace}/oauth-apps/{app}` (owners): name, scopes and
/// token lifetime.
pub async fn update(
    signed_in: SignedIn,
    path: web::Path<(String, String)>,
    form: web::Form<AppForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    let (workspace, app) = path.into_inner();
    let access = Access::owner(&state, signed_in, &workspace).await?;
    access.signed_in.check_csrf(&form.csrf)?;
    let mut problems = Problems::default();
    let name = problems.check("Name", Name::parse(&form.name));
    let scopes = scopes(&mut problems, &form);
    let lifetime = problems.check(
        "The token lifetime",
        TokenLifetime::parse(&form.token_expires_in),
    );
    problems.finish()?;
    let ws = &access.workspace.id;
    let mut change = state.db.change(ws.as_str()).await?;
    let changes = AppChanges {
        name,
        scopes,
        token_expires_in: lifetime,
    };
    apps::update_app(&mut change, ws, &app, changes, &access.actor()).await?;
    change.commit().await?;
    Ok(see_other(&format!("/app/w/{ws}/oauth-apps?done=changed")))
}

/// `POST /app/w/{workspace}/oauth-apps/{app}/keys` (owners).
pub async fn add_key(
    signed_in: SignedIn,
    path: web::Path<(String, String)>,
    form: web::Form<AppForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    let (workspace, app) = path.into_inner();
    let access = Access::owner(&state, signed_in, &workspace).await?;
    access.signed_in.check_csrf(&form.csrf)?;
    let mut problems = Problems::default();
    let public_key = problems.check("The public key", PublicKey::parse(&form.public_key));
    let key_name = problems.check("The key name", Name::parse(&form.key_name));
    problems.finish()?;
    let (Some(public_key), Some(key_name)) = (public_key, key_name) else {
        return Err(ConsoleError::BadRequest("the form is incomplete".into()));
    };
    let ws = &access.workspace.id;
    let mut change = state.db.change(ws.as_str()).await?;
    apps::add_app_key(&mut change, ws, &app, key_name, public_key, &access.actor()).await?;
    change.commit().await?;
    Ok(see_other(&format!("/app/w/{ws}/oauth-apps?done=key-added")))
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /app/w/{workspace}/oauth-apps/{app}/keys/{key}/remove` (owners).
pub async fn remove_key(
    signed_in: SignedIn,
    path: web::Path<(String, String, String)>,
    form: web::Form<CsrfForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    let (workspace, app, key) = path.into_inner();
    let access = Access::owner(&state, signed_in, &workspace).await?;
    access.signed_in.check_csrf(&form.csrf)?;
    let ws = &access.workspace.id;
    let mut change = state.db.change(ws.as_str()).await?;
    let revoked = apps::remove_app_key(&mut change, ws, &app, &key, &access.actor()).await?;
    change.commit().await?;
    state.metrics.tokens_revoked.inc_by(revoked as u64);
    Ok(see_other(&format!(
        "/app/w/{ws}/oauth-apps?done=key-removed"
    )))
}

/// `GET /app/w/{workspace}/oauth-apps/{app}/delete` (owners): are you sure?
pub async fn confirm_delete(
    signed_in: SignedIn,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    let (workspace, app) = path.into_inner();
    let access = Access::owner(&state, signed_in, &workspace).await?;
    let id = crate::domain::OAuthAppId::parse(&app).map_err(|_| ConsoleError::NotFound)?;
    let app = oauth_apps::find(&state.db, &access.workspace.id, &id)
        .await?
        .ok_or(ConsoleError::NotFound)?;
    page(
        "oauth_app_delete.html",
        context! {
            app => view(&app),
            ..access.frame("Delete an OAuth app", "oauth-apps")
        },
    )
}

/// `POST /app/w/{workspace}/oauth-apps/{app}/delete` (owners).
pub async fn delete(
    signed_in: SignedIn,
    path: web::Path<(String, String)>,
    form: web::Form<CsrfForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    let (workspace, app) = path.into_inner();
    let access = Access::owner(&state, signed_in, &workspace).await?;
    access.signed_in.check_csrf(&form.csrf)?;
    let ws = &access.workspace.id;
    let mut change = state.db.change(ws.as_str()).await?;
    let revoked = apps::delete_app(&mut change, ws, &app, &access.actor()).await?;
    change.commit().await?;
    state.metrics.tokens_revoked.inc_by(revoked as u64);
    Ok(see_other(&format!("/app/w/{ws}/oauth-apps?done=deleted")))
}
