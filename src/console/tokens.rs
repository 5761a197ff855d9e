//! The tokens page (owners): every token with its creator, last use and
//! revocation; minting one (shown once); revoking one after a
//! confirmation.

use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpResponse};
use minijinja::context;
use serde::Deserialize;

use super::incidents::ActorNames;
use super::route::Page;
use super::session::{Access, SignedIn};
use super::{page, page_with_status, see_other, ConsoleError};
use crate::api::pagination::{decode_cursor, encode_cursor};
use crate::db::pagination::{PageQuery, Position};
use crate::db::tokens::{self, Token};
use crate::domain::{Name, Parse, Role, TokenId};
use crate::revocation;
use crate::state::AppState;

pub fn endpoints() -> Vec<Page> {
    vec![
        Page::new(Method::GET, "/app/w/{workspace}/tokens", list),
        Page::new(Method::POST, "/app/w/{workspace}/tokens", create),
        Page::new(
            Method::GET,
            "/app/w/{workspace}/tokens/{token}/revoke",
            confirm_revoke,
        ),
        Page::new(
            Method::POST,
            "/app/w/{workspace}/tokens/{token}/revoke",
            revoke,
        ),
    ]
}

/// Tokens per page.
const PAGE: i64 = 100;

#[derive(Deserialize)]
pub struct ListQuery {
    after: Option<String>,
    done: Option<String>,
}

/// `GET /app/w/{workspace}/tokens` (owners).
pub async fn list(
    signed_in: SignedIn,
    path: web::Path<String>,
    query: web::Query<ListQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    let access = Access::owner(&state, signed_in, &path).await?;
    let done = match query.done.as_deref() {
        Some("revoked") => Some("The token was revoked."),
        _ => None,
    };
    list_page(&state, &access, query.after.as_deref(), done, None).await
}

/// A page position from an `after` parameter.
fn position(after: Option<&str>) -> Result<Option<Position>, ConsoleError> {
    let Some(after) = after else { return Ok(None) };
    let bad = || ConsoleError::BadRequest("That page link is not one of ours.".into());
    let decoded = decode_cursor(after).ok_or_else(bad)?;
    let (created_at, id) = decoded.split_once(':').ok_or_else(bad)?;
    Ok(Some(Position {
        created_at: created_at.parse().map_err(|_| bad())?,
        id: id.to_string(),
    }))
}

/// A refused create form: what was sent and why it was refused.
struct Refused<'a> {
    name: &'a str,
    role: &'a str,
    errors: Vec<String>,
}

/// The list with the create form (and, after a refused create, its
/// errors).
async fn list_page(
    state: &AppState,
    access: &Access,
    after: Option<&str>,
    done: Option<&str>,
    refused: Option<Refused<'_>>,
) -> Result<HttpResponse, ConsoleError> {
    let query = PageQuery {
        count: PAGE,
        after: position(after)?,
    };
    let page_of = tokens::page(&state.db, &access.workspace.id, &query).await?;
    let names = ActorNames::load(
        &state.db,
        &access.workspace.id,
        page_of.items.iter().map(|t| t.created_by.as_str()),
    )
    .await?;
    let views: Vec<_> = page_of
        .items
        .iter()
        .map(|t| {
            let last_used = state.last_used.latest(t);
            context! {
                id => t.id.as_str(),
                name => t.name.as_str(),
                role => t.role.as_str(),
                hint => t.hint,
                created_at => t.created_at.to_string(),
                created_by => names.describe(&t.created_by),
                last_used_at => last_used.map(|t| t.to_string()),
                revoked_at => t.revoked_at.map(|t| t.to_string()),
                revoked_reason => t.revoked_reason,
                incident => t.revoked_alert_id.as_ref().map(|a| crate::incident::path(&access.workspace.id, a)),
            }
        })
        .collect();
    let next = page_of
        .next
        .map(|p| encode_cursor(&format!("{}:{}", p.created_at, p.id)));
    let status = if refused.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let (form_name, form_role, errors) = match refused {
        Some(r) => (r.name.to_string(), r.role.to_string(), r.errors),
        None => (String::new(), Role::Member.as_str().to_string(), Vec::new()),
    };
    page_with_status(
        status,
        "tokens.html",
        context! {
            tokens => views,
            total => page_of.total,
            next => next,
            first_page => after.is_none(),
            done => done,
            form_name => form_name,
            form_role => form_role,
            errors => errors,
            roles => Role::NAMES,
            ..access.frame("Tokens", "tokens")
        },
    )
}

#[derive(Deserialize)]
pub struct CreateForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    role: String,
}

/// `POST /app/w/{workspace}/tokens` (owners): mints a token and shows it
/// once.
pub async fn create(
    signed_in: SignedIn,
    path: web::Path<String>,
    form: web::Form<CreateForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    let access = Access::owner(&state, signed_in, &path).await?;
    access.signed_in.check_csrf(&form.csrf)?;
    let name = Name::parse(&form.name);
    let role = Role::parse(&form.role);
    let (name, role) = match (name, role) {
        (Ok(name), Ok(role)) => (name, role),
        (name, role) => {
            let errors = [("Name", name.err()), ("Role", role.err())]
                .into_iter()
                .filter_map(|(field, e)| e.map(|e| format!("{field} {e}.")))
                .collect();
            let refused = Refused {
                name: &form.name,
                role: &form.role,
                errors,
            };
            return list_page(&state, &access, None, None, Some(refused)).await;
        }
    };
    let ws = &access.workspace.id;
    let mut change = state.db.change(ws.as_str()).await?;
    let minted = crate::token::mint(&mut change, ws, name, role, &access.actor()).await?;
    change.commit().await?;
    page_with_status(
        StatusCode::CREATED,
        "new_token.html",
        context! {
            secret => minted.secret.expose(),
            token => context! {
                id => minted.token.id.as_str(),
                name => minted.token.name.as_str(),
                role => minted.token.role.as_str(),
                hint => minted.token.hint,
            },
            back => format!("/app/w/{ws}/tokens"),
            back_label => "Back to the tokens",
            ..access.frame("New token", "tokens")
        },
    )
}

/// `GET /app/w/{workspace}/tokens/{token}/revoke` (owners): are you sure?
pub async fn confirm_revoke(
    signed_in: SignedIn,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    let (workspace, token) = path.into_inner();
    let access = Access::owner(&state, signed_in, &workspace).await?;
    let token = find(&state, &access, &token).await?;
    page(
        "token_revoke.html",
        context! {
            token => context! {
                id => token.id.as_str(),
                name => token.name.as_str(),
                role => token.role.as_str(),
                hint => token.hint,
                revoked => token.is_revoked(),
            },
            ..access.frame("Revoke a token", "tokens")
        },
    )
}

async fn find(state: &AppState, access: &Access, raw: &str) -> Result<Token, ConsoleError> {
    let id = TokenId::parse(raw).map_err(|_| ConsoleError::NotFound)?;
    tokens::find(&state.db, &access.workspace.id, &id)
        .await?
        .ok_or(ConsoleError::NotFound)
}

#[derive(Deserialize)]
pub struct RevokeForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /app/w/{workspace}/tokens/{token}/revoke` (owners).
pub async fn revoke(
    signed_in: SignedIn,
    path: web::Path<(String, String)>,
    form: web::Form<RevokeForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    let (workspace, token) = path.into_inner();
    let access = Access::owner(&state, signed_in, &workspace).await?;
    access.signed_in.check_csrf(&form.csrf)?;
    let token = find(&state, &access, &token).await?;
    if revocation::revoke_one(&state.db, &token, access.actor(), revocation::REASON_API).await? {
        state.metrics.tokens_revoked.inc();
    }
    Ok(see_other(&format!(
        "/app/w/{}/tokens?done=revoked",
        access.workspace.id
    )))
}
