//! A browser stand-in for the console's HTTP tests: keeps cookies, does not
//! follow redirects (so that tests see them), and reads forms' hidden
//! fields.

use std::collections::BTreeMap;

use leakguard::config::Settings;
use leakguard::domain::{Email, Parse};

use crate::support::TestApp;

pub struct Visitor<'a> {
    pub app: &'a TestApp,
    client: reqwest::Client,
    pub cookies: BTreeMap<String, String>,
    /// Every `Set-Cookie` seen, raw.
    pub set_cookies: Vec<String>,
}

/// A hidden (or any) input's value in an HTML page.
pub fn field(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(unescape(&html[start..end]))
}

/// Undoes the template engine's HTML escaping.
pub fn unescape(html: &str) -> String {
    html.replace("&#x2f;", "/")
        .replace("&#x27;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

pub struct Page {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Page {
    pub fn location(&self) -> Option<&str> {
        self.headers.get("location").and_then(|v| v.to_str().ok())
    }

    pub fn text(&self) -> String {
        unescape(&self.body)
    }
}

impl<'a> Visitor<'a> {
    pub fn new(app: &'a TestApp) -> Visitor<'a> {
        Visitor {
            app,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: BTreeMap::new(),
            set_cookies: Vec::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> Page {
        let request = if self.cookies.is_empty() {
            request
        } else {
            request.header("Cookie", self.cookie_header())
        };
        let res = request.send().await.unwrap();
        for value in res.headers().get_all("set-cookie") {
            let raw = value.to_str().unwrap().to_string();
            let pair = raw.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if raw.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_string(), value.to_string());
            }
            self.set_cookies.push(raw);
        }
        Page {
            status: res.status().as_u16(),
            headers: res.headers().clone(),
            body: res.text().await.unwrap(),
        }
    }

    /// A path (`/app/…`), or a full URL whose path and query are taken to
    /// this app (links are made with the public URL, which tests do not
    /// listen on).
    fn url(&self, target: &str) -> String {
        if target.starts_with("http") {
            let url = url::Url::parse(target).unwrap();
            match url.query() {
                Some(q) => self.app.url(&format!("{}?{q}", url.path())),
                None => self.app.url(url.path()),
            }
        } else {
            self.app.url(target)
        }
    }

    pub async fn get(&mut self, target: &str) -> Page {
        let request = self.client.get(self.url(target));
        self.send(request).await
    }

    pub async fn post(&mut self, target: &str, form: &[(&str, &str)]) -> Page {
        let request = self.client.post(self.url(target)).form(form);
        self.send(request).await
    }

    /// Asks for a sign-in link through the form, as a person would.
    pub async fn request_link(&mut self, email: &str) -> Page {
        let form = self.get("/app/sign-in").await;
        assert_eq!(form.status, 200, "{}", form.body);
        let csrf = field(&form.body, "csrf").expect("the form's CSRF token");
        self.post(
            "/app/sign-in",
            &[("email", email), ("next", "/app"), ("csrf", &csrf)],
        )
        .await
    }

    /// Opens a sign-in link and presses its button; the answer of the
    /// button.
    pub async fn use_link(&mut self, link: &str) -> Page {
        let page = self.get(link).await;
        assert_eq!(page.status, 200, "the link's page: {}", page.body);
        let csrf = field(&page.body, "csrf").unwrap();
        let token = field(&page.body, "token").unwrap();
        self.post("/app/sign-in/link", &[("csrf", &csrf), ("token", &token)])
            .await
    }

    /// Signs in as `email` with a link printed as the CLI prints it, and
    /// lands on `next`.
    pub async fn sign_in(&mut self, email: &str, next: &str) {
        let link = cli_link(self.app, email, next).await;
        let page = self.use_link(&link).await;
        assert_eq!(page.status, 303, "{}", page.body);
        assert_eq!(page.location(), Some(next));
    }

    /// The CSRF token of a page's forms.
    pub async fn csrf(&mut self, page: &str) -> String {
        let page = self.get(page).await;
        assert_eq!(page.status, 200, "{}", page.body);
        field(&page.body, "csrf").expect("a form with a CSRF token")
    }
}

/// A sign-in link as `leakguard user login-link` makes it.
pub async fn cli_link(app: &TestApp, email: &str, next: &str) -> String {
    let settings = Settings::from_map(&app.settings).unwrap();
    leakguard::console::sign_in::issue_link(&app.db, &settings, &Email::parse(email).unwrap(), next)
        .await
        .unwrap()
}

/// The sign-in link in an email's text.
pub fn link_in(text: &str) -> String {
    let start = text.find("http").expect("a link in the mail");
    let end = text[start..]
        .find(char::is_whitespace)
        .map(|e| e + start)
        .unwrap_or(text.len());
    text[start..end].to_string()
}
