//! The owner console under `/app/`: server-rendered HTML for the moment a
//! token leaks, when the owner token may be the one that leaked. A person
//! signs in with a link sent to their email address; owners then see the
//! incident page, the audit trail and the tokens, and members and
//! read-only users the workspace overview.
//!
//! Every page works without JavaScript, and the Content-Security-Policy
//! allows no inline script or style and nothing from another origin: the
//! CSS (and a small script that only adds copy buttons) ship in the binary.

pub mod audit;
pub mod incidents;
pub mod pages;
pub mod route;
pub mod session;
pub mod sign_in;
pub mod tokens;

use std::sync::LazyLock;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, HttpResponse, ResponseError};
use minijinja::{Environment, Value};

use crate::api::error::ApiError;
use route::Page;

/// Where the console lives.
pub const ROOT: &str = "/app";

/// Every console route. The router is built from this list, and the
/// console's role and isolation tests read it, so a page cannot be added
/// without them noticing.
pub fn endpoints() -> Vec<Page> {
    let mut all = vec![
        Page::new(Method::GET, "/app", pages::workspaces),
        Page::new(Method::GET, "/app/", pages::workspaces),
        Page::new(Method::GET, "/app/static/{file}", pages::asset),
    ];
    all.extend(sign_in::endpoints());
    all.extend(pages::endpoints());
    all.extend(incidents::endpoints());
    all.extend(tokens::endpoints());
    all.extend(audit::endpoints());
    all
}

/// The console's scope: its routes, its security headers and its own
/// (HTML) answer for unknown paths and bad forms.
pub fn scope() -> actix_web::Scope<
    impl actix_web::dev::ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    web::scope(ROOT)
        .wrap(from_fn(security_headers))
        .app_data(
            web::FormConfig::default()
                .limit(16 * 1024)
                .error_handler(|err, _| ConsoleError::BadRequest(format!("{err}")).into()),
        )
        .app_data(
            web::QueryConfig::default()
                .error_handler(|err, _| ConsoleError::BadRequest(format!("{err}")).into()),
        )
        .configure(|cfg| route::register(cfg, endpoints()))
        .default_service(web::to(|| async {
            ConsoleError::NotFound.error_response()
        }))
}

/// The Content-Security-Policy of every console page: nothing inline,
/// nothing from elsewhere, no framing, forms only to this origin.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; \
     script-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; \
     base-uri 'none'";

/// Headers on every console answer, errors included. `no-referrer` keeps a
/// sign-in link (which carries its secret) out of any Referer header;
/// `no-store` keeps pages that show a token once out of caches.
async fn security_headers(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let is_asset = req.path().starts_with("/app/static/");
    let mut res = next.call(req).await?;
    let headers = res.headers_mut();
    for (name, value) in [
        ("content-security-policy", CONTENT_SECURITY_POLICY),
        ("referrer-policy", "no-referrer"),
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
        ("cross-origin-opener-policy", "same-origin"),
    ] {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    if !is_asset {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    Ok(res)
}

/// Why a console request failed, rendered as an HTML page (or, for a
/// visitor who is not signed in, a redirect to the sign-in page).
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("sign-in required")]
    SignInRequired { next: String },
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{method} is not allowed here")]
    MethodNotAllowed { method: String, allow: String },
    #[error("too many requests; retry in {0} s")]
    TooManyRequests(u64),
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<crate::db::Error> for ConsoleError {
    fn from(err: crate::db::Error) -> ConsoleError {
        ApiError::from(err).into()
    }
}

impl From<minijinja::Error> for ConsoleError {
    fn from(err: minijinja::Error) -> ConsoleError {
        ConsoleError::Internal(err.into())
    }
}

impl From<ApiError> for ConsoleError {
    fn from(err: ApiError) -> ConsoleError {
        match err {
            ApiError::NotFound(_) => ConsoleError::NotFound,
            ApiError::Forbidden(m) => ConsoleError::Forbidden(m),
            ApiError::Conflict(m) => ConsoleError::Conflict(m),
            ApiError::Unavailable(m) => ConsoleError::Unavailable(m),
            ApiError::RateLimited {
                retry_after_secs, ..
            } => ConsoleError::TooManyRequests(retry_after_secs),
            ApiError::Internal(e) => ConsoleError::Internal(e),
            ApiError::Validation(errors) => ConsoleError::BadRequest(
                errors
                    .iter()
                    .map(|e| match &e.field {
                        Some(f) => format!("{f}: {}", e.message),
                        None => e.message.clone(),
                    })
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            other => ConsoleError::BadRequest(other.to_string()),
        }
    }
}

impl ResponseError for ConsoleError {
    fn status_code(&self) -> StatusCode {
        match self {
            ConsoleError::SignInRequired { .. } => StatusCode::SEE_OTHER,
            ConsoleError::NotFound => StatusCode::NOT_FOUND,
            ConsoleError::Forbidden(_) => StatusCode::FORBIDDEN,
            ConsoleError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ConsoleError::Conflict(_) => StatusCode::CONFLICT,
            ConsoleError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ConsoleError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            ConsoleError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ConsoleError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let (title, message) = match self {
            ConsoleError::SignInRequired { next } => {
                let location = format!(
                    "/app/sign-in?{}",
                    url::form_urlencoded::Serializer::new(String::new())
                        .append_pair("next", next)
                        .finish()
                );
                return HttpResponse::SeeOther()
                    .insert_header((header::LOCATION, location))
                    .finish();
            }
            ConsoleError::NotFound => (
                "Not found",
                "There is no such page, or it belongs to a workspace you are not a member of."
                    .to_string(),
            ),
            ConsoleError::Forbidden(m) => ("Owners only", m.clone()),
            ConsoleError::BadRequest(m) => ("That did not work", m.clone()),
            ConsoleError::Conflict(m) => ("That cannot be done", m.clone()),
            ConsoleError::MethodNotAllowed { method, .. } => (
                "Not allowed",
                format!("This page does not take {method} requests."),
            ),
            ConsoleError::TooManyRequests(secs) => (
                "Too many requests",
                format!(
                    "Too many sign-in requests. Try again in {} minute(s).",
                    secs.div_ceil(60)
                ),
            ),
            ConsoleError::Unavailable(m) => (
                "Unavailable",
                format!("The database is unavailable ({m}). Try again in a moment."),
            ),
            ConsoleError::Internal(cause) => {
                tracing::error!(error = ?cause, "console request failed");
                (
                    "Something went wrong",
                    "An internal error happened; it has been logged.".to_string(),
                )
            }
        };
        let context = minijinja::context! { title => title, message => message };
        let body = render_html("error.html", &context).unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot render the error page");
            "<!doctype html><title>Error</title><p>Error</p>".to_string()
        });
        let mut res = HttpResponse::build(self.status_code());
        if let ConsoleError::TooManyRequests(secs) = self {
            res.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        if let ConsoleError::MethodNotAllowed { allow, .. } = self {
            res.insert_header((header::ALLOW, allow.clone()));
        }
        res.content_type("text/html; charset=utf-8").body(body)
    }
}

/// The console's templates, compiled in; `.html` ones are auto-escaped.
static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    for (name, source) in [
        ("layout.html", include_str!("templates/layout.html")),
        ("error.html", include_str!("templates/error.html")),
        ("sign_in.html", include_str!("templates/sign_in.html")),
        (
            "sign_in_sent.html",
            include_str!("templates/sign_in_sent.html"),
        ),
        (
            "sign_in_link.html",
            include_str!("templates/sign_in_link.html"),
        ),
        ("workspaces.html", include_str!("templates/workspaces.html")),
        ("workspace.html", include_str!("templates/workspace.html")),
        ("incidents.html", include_str!("templates/incidents.html")),
        ("incident.html", include_str!("templates/incident.html")),
        ("new_token.html", include_str!("templates/new_token.html")),
        ("tokens.html", include_str!("templates/tokens.html")),
        (
            "token_revoke.html",
            include_str!("templates/token_revoke.html"),
        ),
        ("audit.html", include_str!("templates/audit.html")),
    ] {
        env.add_template(name, source)
            .expect("console templates parse");
    }
    env
});

/// A page: `template` renders the main content, `layout.html` the frame
/// around it, both from `context`.
pub fn render_html(template: &str, context: &Value) -> Result<String, minijinja::Error> {
    let content = TEMPLATES.get_template(template)?.render(context)?;
    TEMPLATES
        .get_template("layout.html")?
        .render(minijinja::context! {
            content => Value::from_safe_string(content),
            ..context.clone()
        })
}

/// A 200 page.
pub fn page(template: &str, context: Value) -> Result<HttpResponse, ConsoleError> {
    page_with_status(StatusCode::OK, template, context)
}

pub fn page_with_status(
    status: StatusCode,
    template: &str,
    context: Value,
) -> Result<HttpResponse, ConsoleError> {
    Ok(HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(render_html(template, &context)?))
}

/// A 303 to a console path (after a form: the browser then GETs it).
pub fn see_other(path: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, path.to_string()))
        .finish()
}

/// `next` if it is a console path this server may send a browser to, else
/// the console's start: never another site (an open redirect) and never
/// something a browser could read as one (`//host`, `/\host`).
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(path)
            if (path == ROOT || path.starts_with("/app/"))
                && path.len() <= 500
                && !path.contains("//")
                && !path.contains('\\')
                && !path.chars().any(char::is_control) =>
        {
            path.to_string()
        }
        _ => ROOT.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    /// A colour of the stylesheet's `:root` (`--name: #rrggbb;`).
    fn colour(name: &str) -> [f64; 3] {
        let css = include_str!("static/console.css");
        let marker = format!("--{name}: #");
        let start = css.find(&marker).unwrap_or_else(|| panic!("--{name}")) + marker.len();
        let hex = &css[start..start + 6];
        let channel = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).unwrap();
        [channel(0), channel(2), channel(4)].map(|c| f64::from(c) / 255.0)
    }

    /// WCAG 2's relative luminance and contrast ratio.
    fn contrast(a: [f64; 3], b: [f64; 3]) -> f64 {
        let luminance = |c: [f64; 3]| {
            let l = c.map(|v| {
                if v <= 0.03928 {
                    v / 12.92
                } else {
                    ((v + 0.055) / 1.055).powf(2.4)
                }
            });
            0.2126 * l[0] + 0.7152 * l[1] + 0.0722 * l[2]
        };
        let (x, y) = (luminance(a), luminance(b));
        (x.max(y) + 0.05) / (x.min(y) + 0.05)
    }

    /// Every pair of text and background the stylesheet uses reaches
    /// WCAG AA for normal text (4.5:1).
    #[test]
    fn the_stylesheet_keeps_text_readable() {
        let white = [1.0, 1.0, 1.0];
        for (text, background) in [
            ("text", "bg"),
            ("text", "panel"),
            ("text", "ok-bg"),
            ("text", "warn-bg"),
            ("text", "err-bg"),
            ("muted", "bg"),
            ("muted", "panel"),
            ("link", "bg"),
            ("link", "panel"),
            ("link", "ok-bg"),
            ("link", "warn-bg"),
            ("ok-line", "bg"),
        ] {
            let ratio = contrast(colour(text), colour(background));
            assert!(ratio >= 4.5, "{text} on {background}: {ratio:.2}");
        }
        for button in ["link", "err-line"] {
            let ratio = contrast(white, colour(button));
            assert!(ratio >= 4.5, "white on {button}: {ratio:.2}");
        }
    }

    #[test]
    fn next_paths_stay_in_the_console() {
        assert_eq!(
            safe_next(Some("/app/w/abc/incidents/xyz")),
            "/app/w/abc/incidents/xyz"
        );
        assert_eq!(safe_next(Some("/app")), "/app");
        for bad in [
            "https://evil.example/app/",
            "//evil.example/app/",
            "/app//evil.example",
            "/app/\\evil.example",
            "/apple",
            "/sources",
            "/app/\r\nSet-Cookie: x",
        ] {
            assert_eq!(safe_next(Some(bad)), "/app", "{bad}");
        }
        assert_eq!(safe_next(None), "/app");
    }
}
