//! The console over HTTP: sign-in by email (single use, expiry, the same
//! answer for unknown addresses, rate limits, CSRF, cookies, timeouts),
//! the role and isolation matrices of every console route, the incident
//! page's actions and the audit trail's export.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{json, Value};

use crate::console_helpers::{cli_link, field, link_in, Visitor};
use crate::smtp_server::{ReceivedExt, SmtpServer};
use crate::support::{json, TestApp, Workspace};

async fn add_user(app: &TestApp, ws: &Workspace, email: &str, role: &str) -> String {
    let res = app
        .post(
            "/users",
            &ws.owner_token,
            &json!({ "email": email, "role": role }),
        )
        .await;
    assert_eq!(res.status(), 201);
    json(res).await["data"]["user"]["id"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn smtp_app(smtp: &SmtpServer, extra: &[(&str, &str)]) -> TestApp {
    let url = smtp.url();
    let mut settings = vec![("SMTP_URL", url.as_str())];
    settings.extend_from_slice(extra);
    TestApp::spawn_with(&settings).await
}

/// The one sign-in mail to `address` so far.
async fn sign_in_mail(smtp: &SmtpServer, address: &str, n: usize) -> String {
    let messages = smtp.wait_for(n, Duration::from_secs(10)).await;
    let to: Vec<_> = messages.iter().filter(|m| m.to == [address]).collect();
    let m = to.last().expect("a sign-in mail");
    assert_eq!(
        m.header("Subject").unwrap(),
        "[leakguard] Your sign-in link"
    );
    m.text()
}

#[tokio::test]
async fn a_sign_in_link_works_once_and_only_its_hash_is_stored() {
    let smtp = SmtpServer::start().await;
    let app = smtp_app(&smtp, &[]).await;
    let ws = app.workspace("Acme", "alice@example.com").await;

    let mut browser = Visitor::new(&app);
    let sent = browser.request_link("Alice@Example.com").await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    assert!(sent.text().contains("Check your inbox"));
    let text = sign_in_mail(&smtp, "alice@example.com", 1).await;
    let link = link_in(&text);
    assert!(text.contains("It works once, for 15 minutes"), "{text}");
    let secret = link.split("token=").nth(1).unwrap().to_string();

    // Only the SHA-256 of the link's secret is in the database.
    let stored: Vec<String> = sqlx::query_scalar("SELECT token_hash FROM console_sign_in_links")
        .fetch_all(app.test_db.pool())
        .await
        .unwrap();
    assert_eq!(stored, [leakguard::token::sha256_hex(secret.as_bytes())]);
    let everything = app.db_state().await;
    assert!(!format!("{everything:?}").contains(&secret));

    // Opening the link does not use it (mail scanners open links too).
    let opened = browser.get(&link).await;
    assert_eq!(opened.status, 200);
    assert!(opened.text().contains("Sign in as alice@example.com"));
    let again = browser.get(&link).await;
    assert_eq!(again.status, 200);

    let signed_in = browser.use_link(&link).await;
    assert_eq!(signed_in.status, 303, "{}", signed_in.body);
    assert_eq!(signed_in.location(), Some("/app"));
    let overview = browser.get("/app").await;
    assert_eq!(
        overview.location(),
        Some(format!("/app/w/{}", ws.id).as_str())
    );
    let page = browser.get(&format!("/app/w/{}", ws.id)).await;
    assert_eq!(page.status, 200);
    assert!(page.text().contains("alice@example.com"));

    // A second use, in this browser or another, is refused.
    let mut other = Visitor::new(&app);
    let page = other.get(&link).await;
    assert_eq!(page.status, 400);
    assert!(page.text().contains("has been used, has expired"));
    let csrf = other.csrf("/app/sign-in").await;
    let reused = other
        .post("/app/sign-in/link", &[("csrf", &csrf), ("token", &secret)])
        .await;
    assert_eq!(reused.status, 400);
    assert!(!other.cookies.keys().any(|k| k.contains("session")));
}

#[tokio::test]
async fn a_sign_in_link_expires() {
    let app = TestApp::spawn_with(&[("SIGN_IN_LINK_SECS", "1")]).await;
    app.workspace("Acme", "alice@example.com").await;
    let link = cli_link(&app, "alice@example.com", "/app").await;
    let mut browser = Visitor::new(&app);
    let csrf = browser.csrf("/app/sign-in").await;
    let secret = link.split("token=").nth(1).unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(browser.get(&link).await.status, 400);
    let late = browser
        .post("/app/sign-in/link", &[("csrf", &csrf), ("token", &secret)])
        .await;
    assert_eq!(late.status, 400);
    assert!(late.text().contains("has expired"));
    assert!(!browser.cookies.keys().any(|k| k.contains("session")));
}

#[tokio::test]
async fn an_unknown_address_gets_the_same_answer_and_no_mail() {
    let smtp = SmtpServer::start().await;
    let app = smtp_app(&smtp, &[]).await;
    app.workspace("Acme", "alice@example.com").await;

    let mut answers = Vec::new();
    for address in ["alice@example.com", "nobody@example.com"] {
        let mut browser = Visitor::new(&app);
        let page = browser.request_link(address).await;
        let mut headers: Vec<(String, String)> = page
            .headers
            .iter()
            .filter(|(k, _)| !["date", "x-request-id", "content-length"].contains(&k.as_str()))
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_string()))
            .collect();
        headers.sort();
        answers.push((page.status, headers, page.body.replace(address, "ADDRESS")));
    }
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[0].0, 200);

    smtp.wait_for(1, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let recipients: Vec<Vec<String>> = smtp.messages().iter().map(|m| m.to.clone()).collect();
    assert_eq!(recipients, [vec!["alice@example.com".to_string()]]);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM console_sign_in_links")
            .await,
        1
    );
}

#[tokio::test]
async fn sign_in_requests_are_rate_limited_per_address_and_per_client() {
    let app = TestApp::spawn_with(&[
        ("SIGN_IN_PER_ADDRESS_PER_HOUR", "3"),
        ("SIGN_IN_PER_CLIENT_PER_HOUR", "8"),
    ])
    .await;
    app.workspace("Acme", "alice@example.com").await;
    let mut browser = Visitor::new(&app);
    // Per address: known and unknown alike, so a 429 tells nothing.
    for address in ["alice@example.com", "nobody@example.com"] {
        for i in 0..3 {
            let page = browser.request_link(address).await;
            assert_eq!(page.status, 200, "{address} request {i}");
        }
        let refused = browser.request_link(address).await;
        assert_eq!(refused.status, 429, "{address}");
        assert!(refused.headers.contains_key("retry-after"));
        assert!(refused.text().contains("Too many sign-in requests"));
    }
    // Per client: this client has made 8 requests, its bucket's worth; a
    // fresh address is refused too.
    let refused = browser.request_link("carol@example.com").await;
    assert_eq!(refused.status, 429);
    // Three links for alice at most, whatever was asked.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        app.count("SELECT COUNT(*) FROM console_sign_in_links")
            .await
            <= 3
    );
}

#[tokio::test]
async fn forms_without_their_csrf_token_are_refused_and_change_nothing() {
    let app = TestApp::spawn().await;
    let ws = app.workspace("Acme", "alice@example.com").await;

    // Before sign-in: the sign-in form and the link's button.
    let mut stranger = Visitor::new(&app);
    let page = stranger
        .post("/app/sign-in", &[("email", "alice@example.com")])
        .await;
    assert_eq!(page.status, 403);
    let link = cli_link(&app, "alice@example.com", "/app").await;
    let secret = link.split("token=").nth(1).unwrap();
    let forged = stranger
        .post(
            "/app/sign-in/link",
            &[("token", secret), ("csrf", "x".repeat(43).as_str())],
        )
        .await;
    assert_eq!(forged.status, 403);
    // The link is still good: the refused POST did not use it.
    let mut alice = Visitor::new(&app);
    assert_eq!(alice.use_link(&link).await.status, 303);

    let tokens_page = format!("/app/w/{}/tokens", ws.id);
    let good = alice.csrf(&tokens_page).await;
    let mut bob = Visitor::new(&app);
    bob.sign_in("alice@example.com", "/app").await;
    let before = app.db_state().await;
    for csrf in ["", "nonsense", &good[..good.len() - 1]] {
        let page = alice
            .post(
                &tokens_page,
                &[("csrf", csrf), ("name", "sneaky"), ("role", "owner")],
            )
            .await;
        assert_eq!(page.status, 403, "csrf {csrf:?}");
        let page = alice
            .post(
                &format!("/app/w/{}/tokens/{}/revoke", ws.id, ws.owner_token_id),
                &[("csrf", csrf)],
            )
            .await;
        assert_eq!(page.status, 403);
        let page = alice.post("/app/sign-out", &[("csrf", csrf)]).await;
        assert_eq!(page.status, 403);
    }
    // Another session's token is no better.
    let bobs = bob.csrf(&tokens_page).await;
    assert_ne!(bobs, good);
    let page = alice
        .post(
            &tokens_page,
            &[("csrf", &bobs), ("name", "sneaky"), ("role", "owner")],
        )
        .await;
    assert_eq!(page.status, 403);
    assert_eq!(app.db_state().await, before);
    assert_eq!(app.get("/", &ws.owner_token).await.status(), 200);

    // With it, the same form works.
    let page = alice
        .post(
            &tokens_page,
            &[("csrf", &good), ("name", "ci"), ("role", "member")],
        )
        .await;
    assert_eq!(page.status, 201, "{}", page.body);
    let minted = page.text();
    let start = minted.find("value=\"sgp_").unwrap() + 7;
    let token = &minted[start..start + 68];
    assert_eq!(app.get("/", token).await.status(), 200);
}

#[tokio::test]
async fn cookies_and_security_headers() {
    let app = TestApp::spawn().await;
    app.workspace("Acme", "alice@example.com").await;
    let mut browser = Visitor::new(&app);
    let form = browser.get("/app/sign-in").await;
    for (name, value) in [
        (
            "content-security-policy",
            leakguard::console::CONTENT_SECURITY_POLICY,
        ),
        ("referrer-policy", "no-referrer"),
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
        ("cache-control", "no-store"),
    ] {
        assert_eq!(form.headers[name], value, "{name}");
    }
    let csp = leakguard::console::CONTENT_SECURITY_POLICY;
    assert!(csp.contains("frame-ancestors 'none'"));
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"));
    // The pre-session CSRF cookie.
    let csrf_cookie = &browser.set_cookies[0];
    assert!(csrf_cookie.starts_with("leakguard_csrf="), "{csrf_cookie}");
    assert!(csrf_cookie.contains("HttpOnly") && csrf_cookie.contains("SameSite=Strict"));

    browser.sign_in("alice@example.com", "/app").await;
    let session = browser
        .set_cookies
        .iter()
        .find(|c| c.starts_with("leakguard_session="))
        .unwrap();
    for flag in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=43200"] {
        assert!(session.contains(flag), "{flag} missing: {session}");
    }
    assert!(!session.contains("Secure"), "plain http: {session}");
    // Even a 404 carries the headers.
    let missing = browser.get("/app/nowhere").await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.headers["content-security-policy"], csp);
    assert!(missing.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));

    // Behind https, cookies are Secure and __Host- prefixed.
    let app = TestApp::spawn_with(&[("PUBLIC_URL", "https://leakguard.example.com")]).await;
    app.workspace("Acme", "alice@example.com").await;
    let mut browser = Visitor::new(&app);
    browser.get("/app/sign-in").await;
    let link = cli_link(&app, "alice@example.com", "/app").await;
    assert!(link.starts_with("https://leakguard.example.com/app/sign-in/link?token="));
    browser.use_link(&link).await;
    let cookies: Vec<&String> = browser.set_cookies.iter().collect();
    assert!(
        cookies
            .iter()
            .all(|c| c.starts_with("__Host-") && c.contains("; Secure")),
        "{cookies:?}"
    );
}

#[tokio::test]
async fn sessions_end_when_idle_and_at_sign_out() {
    let app = TestApp::spawn_with(&[("SESSION_IDLE_SECS", "1")]).await;
    let ws = app.workspace("Acme", "alice@example.com").await;
    let overview = format!("/app/w/{}", ws.id);

    let mut idle = Visitor::new(&app);
    idle.sign_in("alice@example.com", "/app").await;
    assert_eq!(idle.get(&overview).await.status, 200);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let page = idle.get(&overview).await;
    assert_eq!(page.status, 303);
    // Back to sign-in, and after it, back here.
    let location = page.location().unwrap();
    assert_eq!(
        location,
        format!("/app/sign-in?next=%2Fapp%2Fw%2F{}", ws.id)
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM console_sessions").await, 0);

    let app = TestApp::spawn_with(&[("SESSION_MAX_SECS", "1")]).await;
    let ws = app.workspace("Acme", "alice@example.com").await;
    let overview = format!("/app/w/{}", ws.id);
    let mut busy = Visitor::new(&app);
    busy.sign_in("alice@example.com", "/app").await;
    for _ in 0..3 {
        assert_eq!(busy.get(&overview).await.status, 200);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(busy.get(&overview).await.status, 303, "absolute timeout");

    let mut leaving = Visitor::new(&app);
    leaving.sign_in("alice@example.com", "/app").await;
    let cookie = leaving.cookies.clone();
    let csrf = leaving.csrf(&overview).await;
    let out = leaving.post("/app/sign-out", &[("csrf", &csrf)]).await;
    assert_eq!(out.status, 303);
    assert_eq!(out.location(), Some("/app/sign-in"));
    assert!(leaving.set_cookies.last().unwrap().contains("Max-Age=0"));
    // The old cookie, replayed, no longer signs anyone in.
    leaving.cookies = cookie;
    assert_eq!(leaving.get(&overview).await.status, 303);
}

/// What each console route needs: the least role, and a request that
/// exercises it (method, concrete path, form without the CSRF token).
struct ConsoleTargets {
    workspace: String,
    alert: String,
    token: String,
    added_user: String,
    raised_user: String,
}

/// The least role, the concrete path and the form fields of one route.
type ConsoleCase = (&'static str, String, Vec<(&'static str, String)>);

fn console_case(method: &str, path: &str, t: &ConsoleTargets) -> Option<ConsoleCase> {
    let concrete = path
        .replace("{workspace}", &t.workspace)
        .replace("{alert}", &t.alert)
        .replace("{token}", &t.token);
    let (least, concrete, form) = match (method, path) {
        (_, p) if !p.starts_with("/app/w/") => return None,
        ("GET", "/app/w/{workspace}") => ("member", concrete, vec![]),
        ("GET", _) => ("owner", concrete, vec![]),
        ("POST", "/app/w/{workspace}/incidents/{alert}/replacements") => {
            ("owner", concrete, vec![("token_id", t.token.clone())])
        }
        ("POST", "/app/w/{workspace}/tokens") => (
            "owner",
            concrete,
            vec![("name", "matrix".into()), ("role", "read_only".into())],
        ),
        ("POST", "/app/w/{workspace}/tokens/{token}/revoke") => ("owner", concrete, vec![]),
        ("POST", "/app/w/{workspace}/users/{user}/remove") => {
            ("owner", concrete.replace("{user}", &t.added_user), vec![])
        }
        ("POST", "/app/w/{workspace}/users/{user}/role") => (
            "owner",
            concrete.replace("{user}", &t.raised_user),
            vec![("role", "read_only".into())],
        ),
        other => panic!("the console matrix does not cover {other:?}: add it"),
    };
    Some((least, concrete, form))
}

/// A workspace with an incident: the owner token minted a token and
/// added and raised users, then leaked.
async fn incident_workspace(app: &TestApp, name: &str, owner: &str) -> (Workspace, ConsoleTargets) {
    let ws = app.workspace(name, owner).await;
    let (_, minted) = app.mint(&ws, "minted", "member").await;
    let domain = owner.split('@').nth(1).unwrap();
    let added = add_user(app, &ws, &format!("added@{domain}"), "member").await;
    let raised = add_user(app, &ws, &format!("raised@{domain}"), "read_only").await;
    let res = app
        .patch(
            &format!("/users/{raised}"),
            &ws.owner_token,
            &json!({ "role": "owner" }),
        )
        .await;
    assert_eq!(res.status(), 200);
    app.report(&[&ws.owner_token]).await;
    let alert: String = sqlx::query_scalar(&format!(
        "SELECT revoked_alert_id FROM tokens WHERE id = '{}'",
        ws.owner_token_id
    ))
    .fetch_one(app.test_db.pool())
    .await
    .unwrap();
    let targets = ConsoleTargets {
        workspace: ws.id.clone(),
        alert,
        token: minted,
        added_user: added,
        raised_user: raised,
    };
    (ws, targets)
}

#[tokio::test]
async fn members_and_read_only_users_see_the_overview_only() {
    let app = TestApp::spawn().await;
    let (ws, targets) = incident_workspace(&app, "Acme", "alice@acme.test").await;
    // Users straight into the table: the owner token has leaked.
    let member = "member@acme.test";
    let reader = "reader@acme.test";
    for (email, role) in [(member, "member"), (reader, "read_only")] {
        sqlx::query(&format!(
            "INSERT INTO users (id, workspace_id, email, name, role, created_at, updated_at)
             VALUES ('u{role}', '{}', '{email}', '{role}', '{role}', 0, 0)",
            ws.id
        ))
        .execute(app.test_db.pool())
        .await
        .unwrap();
    }
    let mut covered = BTreeSet::new();
    let endpoints: Vec<(String, &str)> = leakguard::console::endpoints()
        .into_iter()
        .map(|e| (e.method.to_string(), e.path))
        .collect();
    for (email, role) in [
        (member, "member"),
        (reader, "read_only"),
        ("alice@acme.test", "owner"),
    ] {
        let mut browser = Visitor::new(&app);
        browser.sign_in(email, "/app").await;
        let overview = format!("/app/w/{}", ws.id);
        let csrf = browser.csrf(&overview).await;
        for (method, path) in &endpoints {
            let Some((least, concrete, mut form)) = console_case(method, path, &targets) else {
                continue;
            };
            covered.insert((method.clone(), path.to_string()));
            form.push(("csrf", csrf.clone()));
            let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let before = app.db_state().await;
            let page = if method == "GET" {
                browser.get(&concrete).await
            } else {
                browser.post(&concrete, &form).await
            };
            let what = format!("{role} {method} {path}");
            let allowed = role == "owner" || least == "member";
            if allowed {
                assert!(
                    [200, 201, 303].contains(&page.status),
                    "{what}: {} {}",
                    page.status,
                    page.body
                );
            } else {
                assert_eq!(page.status, 403, "{what}: {}", page.body);
                assert!(page.text().contains("Only owners"), "{what}");
                assert_eq!(app.db_state().await, before, "{what} changed something");
            }
        }
    }
    let all: BTreeSet<(String, String)> = leakguard::console::endpoints()
        .into_iter()
        .filter(|e| e.path.starts_with("/app/w/"))
        .map(|e| (e.method.to_string(), e.path.to_string()))
        .collect();
    assert_eq!(covered, all);
}

#[tokio::test]
async fn another_workspaces_pages_and_incidents_are_404() {
    let app = TestApp::spawn().await;
    let (_a, _) = incident_workspace(&app, "Alpha", "alice@alpha.test").await;
    let (_b, b_targets) = incident_workspace(&app, "Beta", "bob@beta.test").await;
    let mut alice = Visitor::new(&app);
    alice.sign_in("alice@alpha.test", "/app").await;
    let a_id: String = sqlx::query_scalar("SELECT id FROM workspaces WHERE slug = 'alpha'")
        .fetch_one(app.test_db.pool())
        .await
        .unwrap();
    let csrf = alice.csrf(&format!("/app/w/{a_id}")).await;
    let before = app.db_state().await;
    let bogus = ConsoleTargets {
        workspace: "AAAAAAAAAAAAAAAAAAAAAAAA".into(),
        alert: "AAAAAAAAAAAAAAAAAAAAAAAA".into(),
        token: "AAAAAAAAAAAAAAAAAAAAAAAA".into(),
        added_user: "AAAAAAAAAAAAAAAAAAAAAAAA".into(),
        raised_user: "AAAAAAAAAAAAAAAAAAAAAAAA".into(),
    };
    // B's incident under A's workspace id, too.
    let cross = ConsoleTargets {
        workspace: a_id.clone(),
        alert: b_targets.alert.clone(),
        token: b_targets.token.clone(),
        added_user: b_targets.added_user.clone(),
        raised_user: b_targets.raised_user.clone(),
    };
    let mut checked = 0;
    for e in leakguard::console::endpoints() {
        let method = e.method.to_string();
        let mut answers = Vec::new();
        for targets in [&b_targets, &bogus, &cross] {
            let Some((_, concrete, mut form)) = console_case(&method, e.path, targets) else {
                continue;
            };
            if targets.workspace == a_id
                && !e.path.contains("{alert}")
                && !e.path.contains("{token}")
                && !e.path.contains("{user}")
            {
                continue;
            }
            form.push(("csrf", csrf.clone()));
            let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let page = if method == "GET" {
                alice.get(&concrete).await
            } else {
                alice.post(&concrete, &form).await
            };
            assert_eq!(page.status, 404, "{method} {concrete}: {}", page.body);
            answers.push(page.body);
        }
        if answers.is_empty() {
            continue;
        }
        assert!(
            answers.windows(2).all(|w| w[0] == w[1]),
            "{method} {}",
            e.path
        );
        checked += 1;
    }
    assert_eq!(checked, 13, "every /app/w/ route");
    assert_eq!(app.db_state().await, before);
}

#[tokio::test]
async fn the_incident_page_shows_the_blast_radius_and_its_actions_work() {
    let app = TestApp::spawn().await;
    let (ws, t) = incident_workspace(&app, "Acme", "alice@acme.test").await;
    let mut alice = Visitor::new(&app);
    let path = format!("/app/w/{}/incidents/{}", ws.id, t.alert);
    alice.sign_in("alice@acme.test", &path).await;
    let page = alice.get(&path).await;
    assert_eq!(page.status, 200);
    let text = page.text();
    for expected in [
        "Token “owner token”",
        "https://github.com/octo/repo/blob/main/.env",
        "commit",
        "leakguard_public_api_token",
        "Revoked with it: tokens it created",
        "minted",
        "created_by_leaked_token",
        "added as member",
        "raised from read_only to owner",
        "Remove added@acme.test",
        "Set raised@acme.test back to read_only",
        "127.0.0.1",
        "POST /tokens",
    ] {
        assert!(text.contains(expected), "{expected:?} missing:\n{text}");
    }
    let csrf = field(&page.body, "csrf").unwrap();

    // One click each.
    let removed = alice
        .post(
            &format!("/app/w/{}/users/{}/remove", ws.id, t.added_user),
            &[("csrf", &csrf), ("back", &path)],
        )
        .await;
    assert_eq!(removed.status, 303);
    assert_eq!(
        removed.location().unwrap(),
        format!("{path}?done=user-removed")
    );
    let restored = alice
        .post(
            &format!("/app/w/{}/users/{}/role", ws.id, t.raised_user),
            &[("csrf", &csrf), ("back", &path), ("role", "read_only")],
        )
        .await;
    assert_eq!(restored.status, 303);
    let roles: Vec<(String, String)> =
        sqlx::query_as("SELECT email, role FROM users ORDER BY email")
            .fetch_all(app.test_db.pool())
            .await
            .unwrap();
    assert_eq!(
        roles,
        [
            ("alice@acme.test".into(), "owner".into()),
            ("raised@acme.test".into(), "read_only".into())
        ]
    );
    let page = alice.get(&format!("{path}?done=user-removed")).await.text();
    assert!(page.contains("The user was removed."));
    assert!(!page.contains("Remove added@acme.test"));

    // The replacement: same role, the name with a suffix, shown once.
    let replaced = alice
        .post(
            &format!("{path}/replacements"),
            &[("csrf", &csrf), ("token_id", &ws.owner_token_id)],
        )
        .await;
    assert_eq!(replaced.status, 201, "{}", replaced.body);
    let html = replaced.text();
    let start = html.find("value=\"sgp_").unwrap() + 7;
    let token = html[start..start + 68].to_string();
    let res = app.get("/tokens", &token).await;
    assert_eq!(res.status(), 200, "the replacement is an owner token");
    let tokens = json(res).await["data"]["tokens"].clone();
    let replacement = tokens
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "owner token (replacement)")
        .unwrap()
        .clone();
    assert_eq!(replacement["role"], "owner");
    let alice_id: String =
        sqlx::query_scalar("SELECT id FROM users WHERE email = 'alice@acme.test'")
            .fetch_one(app.test_db.pool())
            .await
            .unwrap();
    assert_eq!(replacement["createdBy"], format!("console-user/{alice_id}"));

    // The console's actions are audited as the person, from their client.
    let events: Value = json(app.get("/audit-events?pagination[count]=3", &token).await).await;
    let newest: Vec<(&str, &str)> = events["data"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap(),
                e["clientAddress"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        newest,
        [
            ("Token Created", "127.0.0.1"),
            ("User Modified", "127.0.0.1"),
            ("User Removed", "127.0.0.1")
        ]
    );
    for e in events["data"]["events"].as_array().unwrap() {
        assert_eq!(e["actor"], format!("console-user/{alice_id}"));
    }
}

#[tokio::test]
async fn the_audit_export_streams_the_filtered_view() {
    let app = TestApp::spawn().await;
    let ws = app.workspace("Acme", "alice@acme.test").await;
    for i in 0..30 {
        app.mint(&ws, &format!("=cmd|{i}"), "read_only").await;
    }
    let mut alice = Visitor::new(&app);
    alice.sign_in("alice@acme.test", "/app").await;
    let base = format!("/app/w/{}/audit", ws.id);
    let page = alice
        .get(&format!("{base}?type=Token+Created&to=2999-01-01T00:00"))
        .await;
    assert_eq!(page.status, 200);
    let text = page.text();
    assert!(text.contains("31 events match"), "{text}");
    assert!(
        text.contains("The hash chain verifies: all 32 events"),
        "{text}"
    );

    let csv = alice
        .get(&format!("{base}/export.csv?type=Token+Created"))
        .await;
    assert_eq!(csv.status, 200);
    assert!(csv.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    assert!(csv.headers["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("attachment; filename=\"audit-acme-"));
    assert!(
        !csv.headers.contains_key("content-length"),
        "streamed, not buffered"
    );
    let mut reader = csv::Reader::from_reader(csv.body.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_string)
        .collect();
    assert_eq!(header[..4], ["id", "timestamp", "type", "actor"]);
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 31);
    assert!(rows.iter().all(|r| &r[2] == "Token Created"));
    // A name that a spreadsheet would run is defused.
    assert_eq!(&rows[0][6], "'=cmd|29");

    let lines = alice.get(&format!("{base}/export.jsonl?actor=cli")).await;
    assert_eq!(lines.status, 200);
    let events: Vec<Value> = lines
        .body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        events.len(),
        2,
        "the CLI created the owner and the owner token"
    );
    assert!(events.iter().all(|e| e["actor"] == "cli"));
}
