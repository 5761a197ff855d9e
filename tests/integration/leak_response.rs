//! What a leak takes with it and what is recorded about it: the blast
//! radius revoked in the alert's transaction, the client of every audit
//! event (and when X-Forwarded-For is believed), the per-token usage
//! summary written only by its flush, and sign-in mail sent ahead of
//! queued notifications.

use std::time::Duration;

use serde_json::{json, Value};

use crate::console_helpers::{link_in, Visitor};
use crate::smtp_server::{ReceivedExt, SmtpServer};
use crate::support::{json, TestApp, Workspace};

/// `ws` with its token replaced by `token`, to mint as that token.
fn as_token(ws: &Workspace, token: &str, id: &str) -> Workspace {
    Workspace {
        id: ws.id.clone(),
        owner_token: token.to_string(),
        owner_token_id: id.to_string(),
        owner_email: ws.owner_email.clone(),
    }
}

async fn token_row(app: &TestApp, id: &str) -> (Option<String>, Option<String>) {
    sqlx::query_as(&format!(
        "SELECT revoked_reason, revoked_alert_id FROM tokens WHERE id = '{id}'"
    ))
    .fetch_one(app.test_db.pool())
    .await
    .unwrap()
}

#[tokio::test]
async fn a_leak_revokes_every_token_it_created_at_any_depth_and_nothing_else() {
    let app = TestApp::spawn().await;
    let ws = app.workspace("Acme", "alice@acme.test").await;
    let other = app.workspace("Other", "olga@other.test").await;
    let (leaked, leaked_id) = app.mint(&ws, "leaky", "owner").await;
    let (child, child_id) = app
        .mint(&as_token(&ws, &leaked, &leaked_id), "child", "owner")
        .await;
    let (grandchild, grandchild_id) = app
        .mint(&as_token(&ws, &child, &child_id), "grandchild", "member")
        .await;
    // Revoked already, but what it made is still the leak's.
    let (dead, dead_id) = app
        .mint(&as_token(&ws, &leaked, &leaked_id), "dead", "owner")
        .await;
    let (_, under_dead_id) = app
        .mint(&as_token(&ws, &dead, &dead_id), "under-dead", "member")
        .await;
    assert_eq!(
        app.delete(&format!("/tokens/{dead_id}"), &ws.owner_token)
            .await
            .status(),
        200
    );
    // Bystanders: the owner's own token and what it made, another workspace.
    let (_, bystander_id) = app.mint(&ws, "bystander", "member").await;

    app.report(&[&leaked]).await;
    let alert: String = sqlx::query_scalar("SELECT id FROM alerts")
        .fetch_one(app.test_db.pool())
        .await
        .unwrap();
    assert_eq!(
        token_row(&app, &leaked_id).await,
        (Some("github_secret_scanning".into()), Some(alert.clone()))
    );
    for id in [&child_id, &grandchild_id, &under_dead_id] {
        assert_eq!(
            token_row(&app, id).await,
            (Some("created_by_leaked_token".into()), Some(alert.clone())),
            "{id}"
        );
    }
    assert_eq!(
        token_row(&app, &dead_id).await,
        (Some("revoked_by_owner".into()), None)
    );
    assert_eq!(token_row(&app, &bystander_id).await, (None, None));
    for token in [&leaked, &child, &grandchild] {
        assert_eq!(app.get("/", token).await.status(), 401);
    }
    assert_eq!(app.get("/", &ws.owner_token).await.status(), 200);
    assert_eq!(app.get("/", &other.owner_token).await.status(), 200);

    // One event each, with the reason and the token that made it.
    let events = json(
        app.get(
            "/audit-events?resourceType=token&pagination[count]=20",
            &ws.owner_token,
        )
        .await,
    )
    .await["data"]["events"]
        .clone();
    let revoked: Vec<&Value> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "Token Revoked" && e["details"]["alertId"] == alert.as_str())
        .collect();
    assert_eq!(revoked.len(), 4);
    let grandchild_event = revoked
        .iter()
        .find(|e| e["resourceId"] == grandchild_id.as_str())
        .unwrap();
    assert_eq!(
        grandchild_event["details"]["reason"],
        "created_by_leaked_token"
    );
    assert_eq!(grandchild_event["details"]["createdBy"], child_id.as_str());
    assert_eq!(
        grandchild_event["details"]["leakedTokenId"],
        leaked_id.as_str()
    );
    assert_eq!(grandchild_event["actor"], "github-secret-scanning");
    let (_, breaks) = leakguard::audit::verify(&app.db).await.unwrap();
    assert!(breaks.is_empty());

    // The same leak reported again contributes nothing new.
    let before = app.db_state().await;
    let (_, late_id) = app.mint(&ws, "late", "member").await;
    let before_late = app.db_state().await;
    app.report(&[&leaked]).await;
    let after = app.db_state().await;
    assert_eq!(token_row(&app, &late_id).await, (None, None));
    for key in ["rows in tokens", "rows in audit_events", "rows in outbox"] {
        assert_eq!(after[key], before_late[key], "{key}");
    }
    assert_ne!(before["rows in tokens"], after["rows in tokens"]);
}

#[tokio::test]
async fn every_audit_event_records_its_client_and_forwarded_for_is_believed_only_from_trusted_proxies(
) {
    for (trusted, expected) in [(None, "127.0.0.1"), (Some("127.0.0.1"), "203.0.113.7")] {
        let settings: Vec<(&str, &str)> = trusted
            .map(|t| ("TRUSTED_PROXIES", t))
            .into_iter()
            .collect();
        let app = TestApp::spawn_with(&settings).await;
        let ws = app.workspace("Acme", "alice@acme.test").await;
        let res = app
            .client
            .post(app.url("/tokens"))
            .bearer_auth(&ws.owner_token)
            .header("User-Agent", "deploy-bot/2.1\t")
            .header("X-Forwarded-For", "198.51.100.1, 203.0.113.7")
            .json(&json!({ "name": "ci", "role": "member" }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
        let events = json(app.get("/audit-events", &ws.owner_token).await).await;
        let newest = &events["data"]["events"][0];
        assert_eq!(newest["type"], "Token Created");
        assert_eq!(newest["clientAddress"], expected, "trusted {trusted:?}");
        assert_eq!(newest["userAgent"], "deploy-bot/2.1");
        // The CLI's events name the CLI.
        let oldest = &events["data"]["events"][2];
        assert_eq!(oldest["actor"], "cli");
        assert!(oldest["clientAddress"].is_null());
        assert!(oldest["userAgent"]
            .as_str()
            .unwrap()
            .starts_with("leakguard-cli/"));
    }
}

#[tokio::test]
async fn usage_is_counted_in_memory_and_written_only_by_the_flush() {
    let app = TestApp::spawn().await;
    let ws = app.workspace("Acme", "alice@acme.test").await;
    let (token, token_id) = app.mint(&ws, "ci", "member").await;
    let send = |ua: &'static str, path: &'static str| {
        app.client
            .get(app.url(path))
            .bearer_auth(&token)
            .header("User-Agent", ua)
            .send()
    };
    for _ in 0..3 {
        assert_eq!(send("curl/8", "/sources").await.unwrap().status(), 200);
    }
    assert_eq!(send("curl/8", "/tokens").await.unwrap().status(), 403);
    assert_eq!(send("python-requests/2", "/").await.unwrap().status(), 200);
    // Nothing written by the requests themselves.
    assert_eq!(app.count("SELECT COUNT(*) FROM token_usage").await, 0);

    app.state.usage.flush(&app.db).await.unwrap();
    let rows: Vec<(String, String, String, String, String, i64)> = sqlx::query_as(&format!(
        "SELECT client_address, user_agent, method, route, status_class, requests
         FROM token_usage WHERE token_id = '{token_id}' ORDER BY user_agent, route, status_class"
    ))
    .fetch_all(app.test_db.pool())
    .await
    .unwrap();
    let expected: Vec<(String, String, String, String, String, i64)> = [
        ("curl/8", "/sources", "2xx", 3),
        ("curl/8", "/tokens", "4xx", 1),
        ("python-requests/2", "/", "2xx", 1),
    ]
    .iter()
    .map(|(ua, route, class, n)| {
        (
            "127.0.0.1".into(),
            ua.to_string(),
            "GET".into(),
            route.to_string(),
            class.to_string(),
            *n,
        )
    })
    .collect();
    assert_eq!(rows, expected);

    // A revoked token's tries are counted too; a second flush adds up.
    app.report(&[&token]).await;
    assert_eq!(send("curl/8", "/sources").await.unwrap().status(), 401);
    assert_eq!(send("curl/8", "/sources").await.unwrap().status(), 401);
    app.state.usage.flush(&app.db).await.unwrap();
    let refused = app
        .count(&format!(
            "SELECT CAST(SUM(requests) AS BIGINT) FROM token_usage WHERE token_id = '{token_id}' AND status_class = '4xx'"
        ))
        .await;
    let all: Vec<(String, String, i64)> = sqlx::query_as(&format!(
        "SELECT route, status_class, requests FROM token_usage WHERE token_id = '{token_id}'"
    ))
    .fetch_all(app.test_db.pool())
    .await
    .unwrap();
    assert_eq!(refused, 3, "{all:?}");

    // Rows past the retention are pruned.
    let old_hour = leakguard::time::now_micros() - 91 * 86_400_000_000;
    sqlx::query(&format!(
        "INSERT INTO token_usage VALUES ('{token_id}', '{}', {old_hour}, '10.0.0.1', 'old', 'GET',
             '/', '2xx', 1, {old_hour}, {old_hour})",
        ws.id
    ))
    .execute(app.test_db.pool())
    .await
    .unwrap();
    let retention = leakguard::time::now_micros() - 90 * 86_400_000_000;
    assert_eq!(
        leakguard::db::token_usage::prune(&app.db, retention)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM token_usage WHERE token_id = '{token_id}'"
        ))
        .await,
        4,
        "the three rows of before and the refused tries'"
    );
}

#[tokio::test]
async fn the_incident_page_sets_apart_addresses_that_appear_after_the_last_known_one() {
    let app = TestApp::spawn_with(&[("TRUSTED_PROXIES", "127.0.0.1")]).await;
    let ws = app.workspace("Acme", "alice@acme.test").await;
    let (leaked, _) = app.mint(&ws, "ci", "member").await;
    let from = |token: &str, address: &str| {
        app.client
            .get(app.url("/sources"))
            .bearer_auth(token)
            .header("X-Forwarded-For", address)
            .header("User-Agent", format!("agent-of-{address}"))
            .send()
    };
    // The office: the owner token and the CI token both use it.
    from(&ws.owner_token, "192.0.2.10").await.unwrap();
    from(&leaked, "192.0.2.10").await.unwrap();
    app.state.usage.flush(&app.db).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    // Then someone else, still unflushed when the page is read.
    from(&leaked, "198.51.100.66").await.unwrap();
    from(&leaked, "198.51.100.66").await.unwrap();
    app.report(&[&leaked]).await;
    let alert: String = sqlx::query_scalar("SELECT id FROM alerts")
        .fetch_one(app.test_db.pool())
        .await
        .unwrap();

    let mut alice = Visitor::new(&app);
    let path = format!("/app/w/{}/incidents/{alert}", ws.id);
    alice.sign_in("alice@acme.test", &path).await;
    let text = alice.get(&path).await.text();
    let apart = text
        .find("New addresses after the last use from a known address")
        .expect(&text);
    let stranger = text.find("198.51.100.66").unwrap();
    let office = text.find("192.0.2.10").unwrap();
    assert!(apart < stranger && stranger < office, "{text}");
    assert!(text.contains("agent-of-198.51.100.66"));
    let row_start = text[..office].rfind("<tr>").unwrap();
    let row = &text[row_start..text[office..].find("</tr>").unwrap() + office];
    assert!(row.contains("known"), "{row}");
}

#[tokio::test]
async fn sign_in_mail_goes_ahead_of_queued_notifications() {
    let smtp = SmtpServer::start().await;
    let url = smtp.url();
    let app = TestApp::spawn_with(&[("SMTP_URL", &url), ("SMTP_TIMEOUT_SECS", "30")]).await;
    // One alert for 30 workspaces' tokens: 30 notifications queued in
    // one transaction, so the worker claims a full batch of them at once.
    let mut tokens = Vec::new();
    for i in 0..30 {
        let ws = app
            .workspace(&format!("W{i}"), &format!("owner{i}@acme.test"))
            .await;
        tokens.push(ws.owner_token);
    }
    app.workspace("Acme", "alice@acme.test").await;
    // The mail server holds the first message of the worker's batch.
    smtp.hold(true);
    let refs: Vec<&str> = tokens.iter().map(String::as_str).collect();
    app.report(&refs).await;
    smtp.wait_held(1, Duration::from_secs(10)).await;
    let mut browser = Visitor::new(&app);
    assert_eq!(browser.request_link("alice@acme.test").await.status, 200);
    app.wait_for_count("SELECT COUNT(*) FROM outbox WHERE priority = 0", 1, 10)
        .await;
    smtp.hold(false);

    let messages = smtp.wait_for(31, Duration::from_secs(30)).await;
    let subjects: Vec<String> = messages
        .iter()
        .map(|m| m.header("Subject").unwrap())
        .collect();
    let position = subjects
        .iter()
        .position(|s| s == "[leakguard] Your sign-in link")
        .unwrap();
    assert!(
        position <= 1,
        "sign-in mail was message {position}: {subjects:?}"
    );
    assert_eq!(
        subjects
            .iter()
            .filter(|s| s.contains("leaked token"))
            .count(),
        30,
        "never merged into a notification"
    );
    let link = link_in(&messages[position].text());
    assert_eq!(browser.use_link(&link).await.status, 303);
}
