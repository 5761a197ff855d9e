//! Sign-in by email: a person asks for a link, the outbox sends it (ahead
//! of any notification), and the link, used once within its lifetime,
//! starts a session. The answer to "send me a link" is the same whether
//! or not the address belongs to anyone, and it is rate-limited per
//! address and per client.
//!
//! Opening the link shows a button rather than signing in at once: mail
//! scanners and link previews open links too, and must not use up (or
//! use) a sign-in.

use actix_web::http::header;
use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use minijinja::context;
use serde::Deserialize;

use super::route::Page;
use super::session::{self, SignedIn};
use super::{page, page_with_status, safe_next, see_other, ConsoleError};
use crate::api::rate_limit::RateLimiter;
use crate::client::Client;
use crate::config::Settings;
use crate::db::{self, console, Db};
use crate::domain::{Email, Parse, TokenHash};
use crate::notify::Notifier;
use crate::state::AppState;
use crate::time::Timestamp;

pub fn endpoints() -> Vec<Page> {
    vec![
        Page::new(Method::GET, "/app/sign-in", form),
        Page::new(Method::POST, "/app/sign-in", request_link),
        Page::new(Method::GET, "/app/sign-in/link", confirm),
        Page::new(Method::POST, "/app/sign-in/link", use_link),
        Page::new(Method::POST, "/app/sign-out", sign_out),
    ]
}

/// Sign-in requests allowed per address and per client, each a token
/// bucket refilled over an hour (per replica).
pub struct SignInLimits {
    per_address: RateLimiter,
    per_client: RateLimiter,
}

impl SignInLimits {
    pub fn new(settings: &Settings) -> SignInLimits {
        let bucket = |per_hour: u32| RateLimiter::new(per_hour, f64::from(per_hour) / 3600.0);
        SignInLimits {
            per_address: bucket(settings.sign_in_per_address_per_hour),
            per_client: bucket(settings.sign_in_per_client_per_hour),
        }
    }

    /// Takes one request from both buckets; `Err(seconds)` when either is
    /// empty.
    fn take(&self, email: &Email, client: &Client) -> Result<(), u64> {
        let by_address = self.per_address.take(email.as_str());
        let by_client = self
            .per_client
            .take(client.address.as_deref().unwrap_or("unknown"));
        match (by_address.allowed, by_client.allowed) {
            (true, true) => Ok(()),
            _ => Err(by_address.reset_secs.max(by_client.reset_secs).max(1)),
        }
    }
}

/// A new one-time link that signs `email` in and opens `next`: its URL.
/// Only its hash is stored.
pub async fn issue_link(
    db: &Db,
    settings: &Settings,
    email: &Email,
    next: &str,
) -> db::Result<String> {
    let secret = session::new_secret();
    let now = Timestamp::now();
    let expires = Timestamp(now.micros() + settings.sign_in_link_lifetime.as_micros() as i64);
    console::insert_link(
        db,
        &TokenHash::of(&secret),
        email,
        &safe_next(Some(next)),
        now,
        expires,
    )
    .await?;
    Ok(format!(
        "{}/app/sign-in/link?token={secret}",
        settings.public_url
    ))
}

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

/// `GET /app/sign-in`: the email form.
pub async fn form(
    req: HttpRequest,
    query: web::Query<NextQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    let next = safe_next(query.next.as_deref());
    if session::current_session(&req, &state).await?.is_some() {
        return Ok(see_other(&next));
    }
    form_page(&req, &state, StatusCode::OK, &next, "", None)
}

fn form_page(
    req: &HttpRequest,
    state: &AppState,
    status: StatusCode,
    next: &str,
    email: &str,
    error: Option<&str>,
) -> Result<HttpResponse, ConsoleError> {
    let (csrf, set_cookie) = session::anonymous_csrf(req, state);
    let mut res = page_with_status(
        status,
        "sign_in.html",
        context! {
            title => "Sign in",
            csrf => csrf,
            next => next,
            email => email,
            error => error,
            link_minutes => state.settings.sign_in_link_lifetime.as_secs().div_ceil(60),
        },
    )?;
    if let Some(cookie) = set_cookie {
        res.headers_mut().append(
            header::SET_COOKIE,
            header::HeaderValue::from_str(&cookie).map_err(anyhow::Error::from)?,
        );
    }
    Ok(res)
}

#[derive(Deserialize)]
pub struct SignInForm {
    email: String,
    #[serde(default)]
    next: String,
    #[serde(default)]
    csrf: String,
}

/// `POST /app/sign-in`: sends a link if the address belongs to a user.
/// The answer is the same either way, and the work behind it happens
/// after the answer, so that its time tells nothing either.
pub async fn request_link(
    req: HttpRequest,
    form: web::Form<SignInForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    session::check_anonymous_csrf(&req, &state, &form.csrf)?;
    let next = safe_next(Some(&form.next));
    let email = match Email::parse(&form.email) {
        Ok(email) => email,
        Err(message) => {
            return form_page(
                &req,
                &state,
                StatusCode::UNPROCESSABLE_ENTITY,
                &next,
                &form.email,
                Some(&format!("The email address {message}.")),
            )
        }
    };
    let client = Client::of(&req, &state.settings.trusted_proxies);
    state
        .sign_in_limits
        .take(&email, &client)
        .map_err(ConsoleError::TooManyRequests)?;
    let state_for_mail = state.clone();
    let address = email.clone();
    let next_for_mail = next.clone();
    tokio::spawn(async move {
        if let Err(e) = send_link(&state_for_mail, &address, &next_for_mail).await {
            tracing::error!(error = %e, to = %crate::telemetry::mask_email(address.as_str()), "could not send a sign-in link");
        }
    });
    page(
        "sign_in_sent.html",
        context! {
            title => "Check your inbox",
            email => email.as_str(),
            link_minutes => state.settings.sign_in_link_lifetime.as_secs().div_ceil(60),
        },
    )
}

/// Issues and queues a link for `email`, if any workspace has a user with
/// that address.
async fn send_link(state: &AppState, email: &Email, next: &str) -> anyhow::Result<()> {
    let users = db::users::with_email(&state.db, email).await?;
    if users.is_empty() {
        tracing::info!(
            to = %crate::telemetry::mask_email(email.as_str()),
            "sign-in requested for an address that has no user; nothing sent"
        );
        return Ok(());
    }
    let mut workspaces = Vec::with_capacity(users.len());
    for user in &users {
        if let Some(w) = db::workspaces::find(&state.db, &user.workspace_id).await? {
            workspaces.push(w.name.to_string());
        }
    }
    let link = issue_link(&state.db, &state.settings, email, next).await?;
    send(
        &state.notifier,
        &state.db,
        &state.settings,
        email,
        &link,
        &workspaces,
    )
    .await
}

async fn send(
    notifier: &Notifier,
    db: &Db,
    settings: &Settings,
    email: &Email,
    link: &str,
    workspaces: &[String],
) -> anyhow::Result<()> {
    let minutes = settings.sign_in_link_lifetime.as_secs().div_ceil(60);
    notifier
        .send_sign_in_link(db, email.as_str(), link, minutes, workspaces)
        .await
}

#[derive(Deserialize)]
pub struct LinkQuery {
    #[serde(default)]
    token: String,
}

fn link_invalid() -> ConsoleError {
    ConsoleError::BadRequest(
        "This sign-in link has been used, has expired or is not one of ours. Ask for a new one \
         on the sign-in page."
            .into(),
    )
}

/// `GET /app/sign-in/link?token=…`: a button that uses the link.
pub async fn confirm(
    req: HttpRequest,
    query: web::Query<LinkQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    let link = console::find_usable_link(&state.db, &TokenHash::of(&query.token), Timestamp::now())
        .await?
        .ok_or_else(link_invalid)?;
    let (csrf, set_cookie) = session::anonymous_csrf(&req, &state);
    let mut res = page(
        "sign_in_link.html",
        context! {
            title => "Sign in",
            email => link.email.as_str(),
            token => query.token.as_str(),
            csrf => csrf,
        },
    )?;
    if let Some(cookie) = set_cookie {
        res.headers_mut().append(
            header::SET_COOKIE,
            header::HeaderValue::from_str(&cookie).map_err(anyhow::Error::from)?,
        );
    }
    Ok(res)
}

#[derive(Deserialize)]
pub struct UseLinkForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    csrf: String,
}

/// `POST /app/sign-in/link`: uses the link (once) and starts a session.
pub async fn use_link(
    req: HttpRequest,
    form: web::Form<UseLinkForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    session::check_anonymous_csrf(&req, &state, &form.csrf)?;
    let link = console::use_link(&state.db, &TokenHash::of(&form.token), Timestamp::now())
        .await?
        .ok_or_else(link_invalid)?;
    // An earlier session in this browser ends: the new one replaces it.
    if let Some(previous) = session::current_session(&req, &state).await? {
        previous.end(&state.db).await?;
    }
    let client = Client::of(&req, &state.settings.trusted_proxies);
    let cookie = session::start(&state, &link.email, &client).await?;
    tracing::info!(
        user = %crate::telemetry::mask_email(link.email.as_str()),
        "console sign-in"
    );
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, safe_next(Some(&link.next_path))))
        .insert_header((header::SET_COOKIE, cookie))
        .finish())
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /app/sign-out`: ends the session.
pub async fn sign_out(
    signed_in: SignedIn,
    form: web::Form<CsrfForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    signed_in.check_csrf(&form.csrf)?;
    signed_in.end(&state.db).await?;
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/app/sign-in"))
        .insert_header((header::SET_COOKIE, session::end_cookie(&state)))
        .finish())
}
