//! Console sessions and CSRF tokens.
//!
//! A session is a database row behind a cookie that holds its secret
//! (`HttpOnly`, `SameSite=Lax`, `Secure` and `__Host-` when the public URL
//! is https); the row keeps only the secret's SHA-256. It ends after
//! `LEAKGUARD_SESSION_IDLE_SECS` without a request, after
//! `LEAKGUARD_SESSION_MAX_SECS` in any case, and at sign-out.
//!
//! Every state-changing form carries a CSRF token. Signed in, it is an
//! HMAC of the session's secret: the page can show it, only the cookie's
//! holder can have made it. Before sign-in (the email form, the link's
//! confirmation) it is a random value that must match a cookie of its own
//! (double submit), so another site cannot sign a browser in as someone
//! else.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use subtle::ConstantTimeEq;

use super::ConsoleError;
use crate::audit::Actor;
use crate::client::Client;
use crate::db::users::User;
use crate::db::workspaces::Workspace;
use crate::db::{self, console};
use crate::domain::{Email, Parse, Role, TokenHash, WorkspaceId};
use crate::state::AppState;
use crate::time::Timestamp;

/// A session's `last_seen_at` is rewritten at most this often.
const TOUCH_EVERY_MICROS: i64 = 60_000_000;

/// Length of session and sign-in secrets: base62, about 256 bits.
const SECRET_LEN: usize = 43;

/// A fresh random secret for a session, a sign-in link or a pre-session
/// CSRF cookie.
pub fn new_secret() -> String {
    crate::id::random_base62(SECRET_LEN)
}

/// Whether cookies get `Secure` (and the `__Host-` name prefix).
pub fn secure_cookies(state: &AppState) -> bool {
    state.settings.public_url.starts_with("https://")
}

pub fn session_cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-leakguard_session"
    } else {
        "leakguard_session"
    }
}

pub fn csrf_cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-leakguard_csrf"
    } else {
        "leakguard_csrf"
    }
}

/// A `Set-Cookie` value. `max_age` 0 removes the cookie.
pub fn set_cookie(
    name: &str,
    value: &str,
    max_age_secs: u64,
    same_site: &str,
    secure: bool,
) -> String {
    let mut cookie =
        format!("{name}={value}; Path=/; Max-Age={max_age_secs}; HttpOnly; SameSite={same_site}");
    if secure {
        cookie.push_str("; Secure");
    }
    cookie
}

/// The value of the cookie `name` in the request, if sent exactly once.
pub fn cookie(req: &HttpRequest, name: &str) -> Option<String> {
    let mut found = req
        .headers()
        .get_all(header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(n, _)| *n == name)
        .map(|(_, v)| v.to_string());
    let first = found.next()?;
    // Two cookies of one name (one planted by a sibling domain, say) are
    // refused rather than guessed between.
    found.next().is_none().then_some(first)
}

fn equal(a: &str, b: &str) -> bool {
    !a.is_empty() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// The pre-session CSRF token of a request: the cookie's value if it has
/// one, else a new value and the `Set-Cookie` that stores it.
pub fn anonymous_csrf(req: &HttpRequest, state: &AppState) -> (String, Option<String>) {
    let secure = secure_cookies(state);
    match cookie(req, csrf_cookie_name(secure)).filter(|v| v.len() == SECRET_LEN) {
        Some(value) => (value, None),
        None => {
            let value = new_secret();
            let set = set_cookie(csrf_cookie_name(secure), &value, 3600, "Strict", secure);
            (value, Some(set))
        }
    }
}

/// Checks a form's pre-session CSRF token against its cookie.
pub fn check_anonymous_csrf(
    req: &HttpRequest,
    state: &AppState,
    presented: &str,
) -> Result<(), ConsoleError> {
    let expected = cookie(req, csrf_cookie_name(secure_cookies(state))).unwrap_or_default();
    if equal(&expected, presented) {
        Ok(())
    } else {
        Err(csrf_refused())
    }
}

fn csrf_refused() -> ConsoleError {
    ConsoleError::Forbidden(
        "This form was not sent from this page, or it has expired. Go back, reload the page \
         and try again."
            .into(),
    )
}

/// A signed-in visitor. As an extractor it sends anyone else to the
/// sign-in page (and back here after it).
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub email: Email,
    pub expires_at: Timestamp,
    hash: TokenHash,
    csrf: String,
    pub client: Client,
}

impl SignedIn {
    /// The CSRF token that this session's forms carry.
    pub fn csrf(&self) -> &str {
        &self.csrf
    }

    /// Refuses a form whose CSRF token is not this session's.
    pub fn check_csrf(&self, presented: &str) -> Result<(), ConsoleError> {
        if equal(&self.csrf, presented) {
            Ok(())
        } else {
            Err(csrf_refused())
        }
    }

    /// Ends the session: the row goes, so the cookie is worthless even
    /// where it survives.
    pub async fn end(&self, db: &db::Db) -> db::Result<()> {
        console::delete_session(db, &self.hash).await
    }
}

/// The CSRF token of a session secret.
fn csrf_of(secret: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    hex::encode(ring::hmac::sign(&key, b"leakguard console csrf").as_ref())
}

impl FromRequest for SignedIn {
    type Error = ConsoleError;
    type Future = Pin<Box<dyn Future<Output = Result<SignedIn, ConsoleError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let state = req
                .app_data::<web::Data<AppState>>()
                .expect("AppState is registered")
                .clone();
            match current_session(&req, &state).await? {
                Some(signed_in) => Ok(signed_in),
                None => Err(ConsoleError::SignInRequired {
                    next: back_here(&req),
                }),
            }
        })
    }
}

/// Where to come back to after signing in: this page for a GET, the
/// console's start otherwise (a form cannot be re-sent from a redirect).
fn back_here(req: &HttpRequest) -> String {
    if req.method() == actix_web::http::Method::GET {
        let path = req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("");
        super::safe_next(Some(path))
    } else {
        super::ROOT.to_string()
    }
}

/// The request's live session, if any; an expired one is deleted.
pub async fn current_session(
    req: &HttpRequest,
    state: &AppState,
) -> Result<Option<SignedIn>, ConsoleError> {
    let Some(secret) = cookie(req, session_cookie_name(secure_cookies(state))) else {
        return Ok(None);
    };
    if secret.len() != SECRET_LEN {
        return Ok(None);
    }
    let hash = TokenHash::of(&secret);
    let Some(session) = console::find_session(&state.db, &hash).await? else {
        return Ok(None);
    };
    let now = Timestamp::now();
    let idle = state.settings.session_idle_timeout.as_micros() as i64;
    if now >= session.expires_at || now.micros() - session.last_seen_at.micros() >= idle {
        console::delete_session(&state.db, &hash).await?;
        return Ok(None);
    }
    if now.micros() - session.last_seen_at.micros() >= TOUCH_EVERY_MICROS {
        console::touch_session(&state.db, &hash, now).await?;
    }
    Ok(Some(SignedIn {
        email: session.email,
        expires_at: session.expires_at,
        csrf: csrf_of(&secret),
        hash,
        client: Client::of(req, &state.settings.trusted_proxies),
    }))
}

/// Starts a session for `email`; returns the `Set-Cookie` value.
pub async fn start(state: &AppState, email: &Email, client: &Client) -> db::Result<String> {
    let secret = new_secret();
    let now = Timestamp::now();
    let lifetime = state.settings.session_absolute_timeout;
    console::insert_session(
        &state.db,
        &TokenHash::of(&secret),
        email,
        now,
        Timestamp(now.micros() + lifetime.as_micros() as i64),
        client.address.as_deref(),
        client.user_agent.as_deref(),
    )
    .await?;
    let secure = secure_cookies(state);
    Ok(set_cookie(
        session_cookie_name(secure),
        &secret,
        lifetime.as_secs(),
        "Lax",
        secure,
    ))
}

/// The `Set-Cookie` that removes the session cookie.
pub fn end_cookie(state: &AppState) -> String {
    let secure = secure_cookies(state);
    set_cookie(session_cookie_name(secure), "", 0, "Lax", secure)
}

/// A signed-in person in one workspace: the workspace and their user
/// there, which carries their role.
#[derive(Debug, Clone)]
pub struct Access {
    pub workspace: Workspace,
    pub user: User,
    pub signed_in: SignedIn,
}

impl Access {
    /// The person's access to the workspace `raw_id`: 404 when they have
    /// none (exactly as for a workspace that does not exist).
    pub async fn to(
        state: &AppState,
        signed_in: SignedIn,
        raw_id: &str,
    ) -> Result<Access, ConsoleError> {
        let id = WorkspaceId::parse(raw_id).map_err(|_| ConsoleError::NotFound)?;
        let user = db::users::find_by_email(&state.db, &id, &signed_in.email)
            .await?
            .ok_or(ConsoleError::NotFound)?;
        let workspace = db::workspaces::find(&state.db, &id)
            .await?
            .ok_or(ConsoleError::NotFound)?;
        Ok(Access {
            workspace,
            user,
            signed_in,
        })
    }

    /// As `to`, and 403 unless the person is an owner of the workspace.
    pub async fn owner(
        state: &AppState,
        signed_in: SignedIn,
        raw_id: &str,
    ) -> Result<Access, ConsoleError> {
        let access = Access::to(state, signed_in, raw_id).await?;
        if access.user.role != Role::Owner {
            return Err(ConsoleError::Forbidden(format!(
                "Only owners of {} can open this page; your role there is {}.",
                access.workspace.name, access.user.role
            )));
        }
        Ok(access)
    }

    pub fn is_owner(&self) -> bool {
        self.user.role == Role::Owner
    }

    /// The audit trail's actor for what this person does here.
    pub fn actor(&self) -> Actor {
        Actor::console_user(&self.user.id, self.signed_in.client.clone())
    }

    /// What every page of the workspace's frame shows.
    pub fn frame(&self, title: &str, section: &str) -> minijinja::Value {
        minijinja::context! {
            title => title,
            section => section,
            signed_in_email => self.signed_in.email.as_str(),
            csrf => self.signed_in.csrf(),
            workspace => minijinja::context! {
                id => self.workspace.id.as_str(),
                name => self.workspace.name.as_str(),
                slug => self.workspace.slug.as_str(),
            },
            role => self.user.role.as_str(),
            is_owner => self.is_owner(),
        }
    }
}
