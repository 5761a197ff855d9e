//! The leak story in a real browser (Debian's chromium through its
//! chromedriver, headless, with JavaScript switched off): a workspace, a
//! second token minted with the owner token, the owner token leaked
//! through a signed alert, the owner's email read from the SMTP server,
//! its link followed to the sign-in page, the emailed sign-in link used,
//! the incident page showing the minted token revoked with it and where
//! the token was used from, a replacement minted with the keyboard and
//! checked on `GET /`, and the audit trail filtered and its CSV
//! downloaded. Pages are checked for labelled fields and headings in
//! order. Nothing downloads a browser: `.ci/run` installs the packages.
//!
//! Screenshots of the incident page and the audit trail go to
//! `$LEAKGUARD_SCREENSHOT_DIR` when it is set (`docs/screenshots` in the
//! README).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use crate::console_helpers::{link_in, unescape};
use crate::smtp_server::{ReceivedExt, SmtpServer};
use crate::support::TestApp;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// chromedriver on a free port; killed when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start_driver() -> Driver {
    for path in [CHROMIUM, CHROMEDRIVER] {
        assert!(
            Path::new(path).exists(),
            "{path} is missing: the browser test needs Debian's chromium and chromium-driver \
             (apt-get install chromium chromium-driver; .ci/run installs them)"
        );
    }
    let port = free_port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let driver = Driver { child, port };
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "chromedriver did not listen");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    driver
}

async fn browser(driver: &Driver, profile: &Path, downloads: &Path) -> Client {
    let capabilities = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": [
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--window-size=1280,1600",
                format!("--user-data-dir={}", profile.display()),
            ],
            "prefs": {
                // Every page must work with scripting off.
                "profile.managed_default_content_settings.javascript": 2,
                "download.default_directory": downloads.display().to_string(),
                "download.prompt_for_download": false,
            },
        },
    });
    let Value::Object(capabilities) = capabilities else {
        unreachable!()
    };
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a chromium session")
}

/// The page's text as a person reads it; empty while a navigation
/// replaces the page under the query (a stale element).
async fn page_text(client: &Client) -> String {
    match client.find(Locator::Css("body")).await {
        Ok(body) => body.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// Labels for every visible field, headings that never skip a level,
/// one `h1`, a language, a title.
async fn check_accessibility(client: &Client) {
    let html = client.source().await.unwrap();
    let url = client.current_url().await.unwrap();
    assert!(html.contains("<html lang=\"en\">"), "{url}: no language");
    assert!(html.contains("<title>"), "{url}: no title");
    let mut previous = 0;
    let mut h1 = 0;
    for (i, _) in html.match_indices("<h") {
        let level = html.as_bytes()[i + 2];
        if !(b'1'..=b'6').contains(&level) {
            continue;
        }
        let level = (level - b'0') as usize;
        assert!(level <= previous + 1, "{url}: h{level} after h{previous}");
        h1 += usize::from(level == 1);
        previous = level;
    }
    assert_eq!(h1, 1, "{url}: one h1");
    // Every field but hidden ones, read from the source (element handles
    // would go stale if the page moved on).
    for tag in ["<input", "<select", "<textarea"] {
        for (i, _) in html.match_indices(tag) {
            let element = &html[i..i + html[i..].find('>').unwrap()];
            if element.contains("type=\"hidden\"") {
                continue;
            }
            let id = element
                .split("id=\"")
                .nth(1)
                .map(|rest| &rest[..rest.find('"').unwrap()])
                .unwrap_or_else(|| panic!("{url}: a field without an id: {element}"));
            assert!(
                html.contains(&format!("<label for=\"{id}\">")),
                "{url}: field {id} has no label"
            );
        }
    }
}

/// Waits for the page to show `text`.
async fn wait_for_text(client: &Client, text: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let body = page_text(client).await;
        if body.contains(text) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "{text:?} never appeared; the page says:\n{body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn screenshot(client: &Client, name: &str, scratch: &Path) {
    let png = client.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    std::fs::write(scratch.join(name), &png).unwrap();
    if let Ok(dir) = std::env::var("LEAKGUARD_SCREENSHOT_DIR") {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(PathBuf::from(dir).join(name), &png).unwrap();
    }
}

#[tokio::test]
async fn an_owner_recovers_from_a_leaked_owner_token_in_the_browser() {
    let smtp = SmtpServer::start().await;
    // The links in the mail must reach this server: its port is fixed
    // before it starts.
    let port = free_port();
    let bind = format!("127.0.0.1:{port}");
    let public = format!("http://127.0.0.1:{port}");
    let smtp_url = smtp.url();
    let app = TestApp::spawn_with(&[
        ("BIND", &bind),
        ("PUBLIC_URL", &public),
        ("SMTP_URL", &smtp_url),
    ])
    .await;

    // A workspace, and a second token minted with its owner token.
    let ws = app.workspace("Acme Robotics", "alice@acme.test").await;
    let res = app
        .client
        .post(app.url("/tokens"))
        .bearer_auth(&ws.owner_token)
        .header("User-Agent", "deploy-script/1.0")
        .json(&json!({ "name": "deploy", "role": "member" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let minted: Value = res.json().await.unwrap();
    let minted_secret = minted["data"]["secret"].as_str().unwrap().to_string();

    // The owner token leaks.
    let feedback = app.report(&[&ws.owner_token]).await;
    assert_eq!(feedback[0]["label"], "true_positive");
    assert_eq!(app.get("/", &minted_secret).await.status(), 401);

    // The owner's email: every link is the incident page.
    let mail = smtp.wait_for(1, Duration::from_secs(10)).await[0].clone();
    assert_eq!(mail.to, ["alice@acme.test"]);
    let html = unescape(&mail.html());
    let incident_url = html
        .split("href=\"")
        .nth(1)
        .map(|rest| rest[..rest.find('"').unwrap()].to_string())
        .unwrap();
    assert!(
        incident_url.starts_with(&format!("{public}/app/w/{}/incidents/", ws.id)),
        "{incident_url}"
    );
    assert!(
        mail.text().contains("deploy"),
        "the mail names the minted token"
    );

    let driver = start_driver().await;
    let scratch = tempfile::tempdir().unwrap();
    let profile = scratch.path().join("profile");
    let downloads = scratch.path().join("downloads");
    std::fs::create_dir_all(&downloads).unwrap();
    let client = browser(&driver, &profile, &downloads).await;
    let result = story(
        &app,
        &smtp,
        &client,
        &incident_url,
        &minted_secret,
        &downloads,
        scratch.path(),
    )
    .await;
    client.close().await.unwrap();
    result
}

async fn story(
    app: &TestApp,
    smtp: &SmtpServer,
    client: &Client,
    incident_url: &str,
    minted_secret: &str,
    downloads: &Path,
    scratch: &Path,
) {
    // The email's link: not signed in yet, so the sign-in page.
    client.goto(incident_url).await.unwrap();
    wait_for_text(client, "Sign in to leakguard").await;
    check_accessibility(client).await;
    let email = client.find(Locator::Id("email")).await.unwrap();
    email.send_keys("alice@acme.test").await.unwrap();
    client
        .find(Locator::Css("form[action='/app/sign-in'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_text(client, "Check your inbox").await;

    // The emailed sign-in link, then its button.
    let messages = smtp.wait_for(2, Duration::from_secs(10)).await;
    let sign_in = messages
        .iter()
        .find(|m| m.header("Subject").unwrap() == "[leakguard] Your sign-in link")
        .unwrap();
    let link = link_in(&sign_in.text());
    client.goto(&link).await.unwrap();
    wait_for_text(client, "Sign in as alice@acme.test").await;
    check_accessibility(client).await;
    client
        .find(Locator::Id("sign-in"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();

    // Landed on the incident page.
    let text = wait_for_text(client, "Incident: leaked token revoked").await;
    assert_eq!(client.current_url().await.unwrap().as_str(), incident_url);
    check_accessibility(client).await;
    for expected in [
        "Token “owner token”",
        "https://github.com/octo/repo/blob/main/.env",
        // The minted token, revoked with it.
        "Revoked with it: tokens it created",
        "deploy",
        "created_by_leaked_token",
        // Where the owner token was used from: this test.
        "127.0.0.1",
        "deploy-script/1.0",
        "POST /tokens",
    ] {
        assert!(text.contains(expected), "{expected:?} missing:\n{text}");
    }
    screenshot(client, "incident.png", scratch).await;

    // Keyboard only: the first Tab reaches the skip link.
    client
        .find(Locator::Css("body"))
        .await
        .unwrap()
        .send_keys(&fantoccini::key::Key::Tab.to_string())
        .await
        .unwrap();
    let focused = client.active_element().await.unwrap();
    assert_eq!(focused.text().await.unwrap(), "Skip to content");

    // A replacement, submitted with the keyboard.
    let button = client
        .find(Locator::XPath(
            "//button[starts-with(normalize-space(.), 'Mint a replacement for “owner token”')]",
        ))
        .await
        .unwrap();
    button
        .send_keys(&fantoccini::key::Key::Enter.to_string())
        .await
        .unwrap();
    wait_for_text(client, "Copy the token now").await;
    check_accessibility(client).await;
    let field = client.find(Locator::Id("new-token")).await.unwrap();
    let replacement = field.prop("value").await.unwrap().unwrap();
    assert!(replacement.starts_with("sgp_"), "{replacement}");
    // Without JavaScript the copy button stays hidden; the field is there.
    let copy = client
        .find(Locator::Css("button[data-copy]"))
        .await
        .unwrap();
    assert!(!copy.is_displayed().await.unwrap());
    let res = app.get("/", &replacement).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["data"]["workspace"]["name"], "Acme Robotics");
    assert_eq!(
        app.get("/tokens", &replacement).await.status(),
        200,
        "an owner token"
    );
    assert_eq!(app.get("/", minted_secret).await.status(), 401);

    // The audit trail, filtered to revocations.
    client
        .find(Locator::LinkText("Audit trail"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let text = wait_for_text(client, "The hash chain verifies").await;
    assert!(text.contains("Token Created"), "{text}");
    check_accessibility(client).await;
    client
        .find(Locator::Id("f-type"))
        .await
        .unwrap()
        .select_by_value("Token Revoked")
        .await
        .unwrap();
    client
        .find(Locator::Css("form.filters button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let text = wait_for_text(client, "2 events match").await;
    let rows = client
        .find_all(Locator::Css("table.events tbody tr"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    for row in &rows {
        assert!(row.text().await.unwrap().contains("Token Revoked"));
    }
    assert!(text.contains("GitHub secret scanning"));
    screenshot(client, "audit-trail.png", scratch).await;

    // The CSV of the filtered view, downloaded by the browser.
    client
        .find(Locator::Id("export-csv"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let csv_path = loop {
        let done: Vec<PathBuf> = std::fs::read_dir(downloads)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "csv"))
            .collect();
        if let Some(path) = done.into_iter().next() {
            break path;
        }
        assert!(Instant::now() < deadline, "no CSV was downloaded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let name = csv_path.file_name().unwrap().to_str().unwrap().to_string();
    assert!(name.starts_with("audit-acme-robotics-"), "{name}");
    let mut reader = csv::Reader::from_path(&csv_path).unwrap();
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(records.len(), 2);
    let reasons: Vec<Value> = records
        .iter()
        .map(|r| serde_json::from_str::<Value>(&r[9]).unwrap()["reason"].clone())
        .collect();
    // Newest first: the minted token's event follows the leaked one's.
    assert_eq!(
        reasons,
        [
            json!("created_by_leaked_token"),
            json!("github_secret_scanning")
        ]
    );
}
