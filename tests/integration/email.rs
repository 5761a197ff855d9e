//! Owner notifications through a real SMTP conversation (tests/integration/
//! smtp_server.rs): recipients and content, a mail server that is down or
//! refuses, crashed and stopping workers, two workers on one queue,
//! grouping, and the wake-up after commit.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use leakguard::config::Settings;
use leakguard::db::outbox;
use leakguard::db::Db;
use leakguard::metrics::Metrics;
use leakguard::notify::transport::Transport;
use leakguard::notify::worker::Worker;
use serde_json::{json, Value};
use test_support::db::TestDb;
use test_support::output::Captured;
use tokio::sync::{watch, Notify};

use crate::smtp_server::{Received, ReceivedExt, SmtpServer, Stage};
use crate::support::{json, TestApp, Workspace};

const PUBLIC_URL: &str = "https://leakguard.example.com";
const MAIL_FROM: &str = "leakguard <security@leakguard.example.com>";
const LEAK_URL: &str = "https://github.com/octo/repo/blob/main/.env";
/// How long to keep watching for a duplicate once everything arrived; the
/// test workers poll every 0.2 s, so this spans several of their cycles.
const QUIET: Duration = Duration::from_millis(1500);

/// A server whose mail goes to `smtp`.
async fn app_with(smtp: &SmtpServer, extra: &[(&str, &str)]) -> TestApp {
    let url = smtp.url();
    let mut settings = vec![
        ("SMTP_URL", url.as_str()),
        ("PUBLIC_URL", PUBLIC_URL),
        ("MAIL_FROM", MAIL_FROM),
    ];
    settings.extend_from_slice(extra);
    TestApp::spawn_with(&settings).await
}

/// POST /users with `token`; returns the new user's id.
async fn add_user(app: &TestApp, token: &str, email: &str, name: &str, role: &str) -> String {
    let res = app
        .post(
            "/users",
            token,
            &json!({ "email": email, "name": name, "role": role }),
        )
        .await;
    assert_eq!(res.status(), 201, "adding user {email}");
    json(res).await["data"]["user"]["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Every message's Message-ID, checking that none came twice.
fn unique_message_ids(messages: &[Received]) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for m in messages {
        let id = m.header("Message-ID").expect("a Message-ID");
        assert!(seen.insert(id.clone()), "{id} delivered twice");
    }
    seen
}

fn hint(token: &str) -> &str {
    &token[token.len() - 4..]
}

/// Undoes the HTML escaping of the template engine (which also escapes
/// `/`), to look for text and links in the HTML part.
fn unescape_html(html: &str) -> String {
    html.replace("&#x2f;", "/")
        .replace("&#x27;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The message sent to `address`; exactly one.
fn only_message_to<'a>(messages: &'a [Received], address: &str) -> &'a Received {
    let to: Vec<&Received> = messages.iter().filter(|m| m.to == [address]).collect();
    assert_eq!(to.len(), 1, "messages to {address}");
    to[0]
}

#[tokio::test]
async fn every_owner_and_no_one_else_gets_one_complete_message() {
    let smtp = SmtpServer::start().await;
    let app = app_with(&smtp, &[]).await;
    let ws = app.workspace("Acme Zürich & Co", "alice@example.com").await;
    let bob_id = add_user(&app, &ws.owner_token, "bob@example.com", "Bob", "owner").await;
    add_user(
        &app,
        &ws.owner_token,
        "carol@example.com",
        "Carol",
        "member",
    )
    .await;
    // Another workspace's owner hears nothing of this one.
    app.workspace("Elsewhere", "eve@example.com").await;

    // The token that will leak does some work first: that is its activity.
    let (leaked, leaked_id) = app.mint(&ws, "ci-deploy", "owner").await;
    let as_leaked = Workspace {
        id: ws.id.clone(),
        owner_token: leaked.clone(),
        owner_token_id: leaked_id.clone(),
        owner_email: ws.owner_email.clone(),
    };
    let dave_id = add_user(&app, &leaked, "dave@example.com", "Dave", "member").await;
    let (_, nightly_id) = app.mint(&as_leaked, "nightly-export", "read_only").await;

    let feedback = app.report(&[&leaked]).await;
    assert_eq!(feedback[0]["label"], "true_positive");
    assert_eq!(app.count("SELECT COUNT(*) FROM outbox").await, 2);

    let messages = smtp.wait_for(2, Duration::from_secs(10)).await;
    let recipients: BTreeSet<&str> = messages.iter().map(|m| m.to[0].as_str()).collect();
    assert_eq!(
        recipients,
        BTreeSet::from(["alice@example.com", "bob@example.com"])
    );

    let alert_id = &app.test_db.scalars::<String>("SELECT id FROM alerts").await[0];
    let alert_time =
        leakguard::time::format_micros(app.test_db.scalar("SELECT received_at FROM alerts").await);
    let alice_id = &app
        .test_db
        .scalars::<String>("SELECT id FROM users WHERE email = 'alice@example.com'")
        .await[0];
    let incident_url = format!("{PUBLIC_URL}/app/w/{}/incidents/{alert_id}", ws.id);
    for (address, user_id, greeting) in [
        ("alice@example.com", alice_id.as_str(), "Hello alice"),
        ("bob@example.com", bob_id.as_str(), "Hello Bob"),
    ] {
        let m = only_message_to(&messages, address);
        assert_eq!(m.to.len(), 1, "one envelope recipient per message");
        assert_eq!(m.from, "security@leakguard.example.com");
        assert_eq!(m.header("From").unwrap(), MAIL_FROM);
        assert_eq!(m.header("To").unwrap(), address);
        assert_eq!(
            m.header("Subject").unwrap(),
            "[leakguard] 1 leaked token revoked in workspace Acme Zürich & Co"
        );
        assert_eq!(
            m.header("Message-ID").unwrap(),
            format!("<alert-{alert_id}.{user_id}@leakguard>")
        );
        let parsed = m.parsed();
        assert_eq!(parsed.ctype.mimetype, "multipart/alternative");
        let types: Vec<&str> = parsed
            .subparts
            .iter()
            .map(|p| p.ctype.mimetype.as_str())
            .collect();
        assert_eq!(types, ["text/plain", "text/html"]);
        assert!(m.header("Date").is_some());

        let (text, html) = (m.text(), m.html());
        let html_text = unescape_html(&html);
        assert!(text.contains(greeting), "{text}");
        for body in [&text, &html_text] {
            for expected in [
                ws.id.as_str(),
                "ci-deploy",
                leaked_id.as_str(),
                hint(&leaked),
                LEAK_URL,
                "commit",
                alert_time.as_str(),
                "revoked it automatically",
                // Its recent activity, newest first.
                "Token Created",
                "nightly-export",
                nightly_id.as_str(),
                "User Added",
                "dave@example.com",
                dave_id.as_str(),
                // The blast radius, in words: the token it minted was
                // revoked with it, the user it added is for review.
                "leakguard revoked it as well",
                "revoked now",
                "Review these",
                "added user dave@example.com as member",
                // Next steps.
                incident_url.as_str(),
                "Mint a replacement there",
                "git history",
            ] {
                assert!(
                    body.contains(expected),
                    "{expected:?} missing from:\n{body}"
                );
            }
            assert!(!body.contains("no recorded activity"));
            let newest = body.find("nightly-export").unwrap();
            let oldest = body.find("dave@example.com").unwrap();
            assert!(newest < oldest, "activity is listed newest first");
        }
        assert!(text.contains("Acme Zürich & Co"));
        assert!(text.contains("role:      owner"), "{text}");
        // HTML is escaped; the plain text is not.
        assert!(html.contains("Acme Zürich &amp; Co"), "{html}");
        assert!(!html.contains("Zürich & Co"));
        // Every link is the incident page (not even GitHub's URL is one).
        let links: Vec<&str> = html_text
            .split("href=\"")
            .skip(1)
            .map(|rest| &rest[..rest.find('"').unwrap()])
            .collect();
        assert!(links.len() >= 3, "{links:?}");
        assert!(links.iter().all(|l| *l == incident_url), "{links:?}");

        // The token itself appears nowhere, encoded or decoded.
        for haystack in [&m.raw(), &text, &html] {
            assert!(!haystack.contains(&leaked));
        }
        // Nor does anything of the other workspace.
        assert!(!text.contains("Elsewhere"));
    }
}

#[tokio::test]
async fn mail_queued_while_smtp_is_down_arrives_exactly_once_when_it_is_back() {
    let smtp = SmtpServer::down().await;
    let app = app_with(&smtp, &[("OUTBOX_MAX_ATTEMPTS", "50")]).await;
    let ws = app.workspace("Acme", "alice@example.com").await;
    let (leaked, _) = app.mint(&ws, "leaky", "member").await;

    // Answered 200 although no mail can go out.
    let feedback = app.report(&[&leaked]).await;
    assert_eq!(feedback[0]["label"], "true_positive");

    // The worker tried (and failed) more than once.
    let tried = app
        .wait_for_count(
            "SELECT COUNT(*) FROM outbox WHERE attempts >= 2 AND sent_at IS NULL
             AND dead_at IS NULL",
            1,
            20,
        )
        .await;
    assert_eq!(tried, 1, "two failed attempts while SMTP is down");
    assert!(app.state.metrics.outbox_failed.get() >= 2);
    assert_eq!(smtp.count(), 0);

    smtp.restart().await;
    let messages = smtp.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(messages[0].to, ["alice@example.com"]);
    assert_eq!(
        app.wait_for_count(
            "SELECT COUNT(*) FROM outbox WHERE sent_at IS NOT NULL",
            1,
            10
        )
        .await,
        1
    );
    tokio::time::sleep(QUIET).await;
    assert_eq!(smtp.count(), 1, "delivered exactly once");
    assert_eq!(app.state.metrics.outbox_sent.get(), 1);
}

fn cli(app: &TestApp, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_leakguard"))
        .args(args)
        .env("LEAKGUARD_DATABASE_URL", &app.db_url)
        .env("LEAKGUARD_LOG_FORMAT", "json")
        .output()
        .expect("the leakguard binary runs")
}

#[tokio::test]
async fn a_refused_message_is_retried_then_dead_then_requeued_from_the_cli() {
    // The outbox worker runs on this (single) test thread, so a thread-local
    // subscriber sees its log lines. A second live dispatcher makes tracing
    // ask every dispatcher about each new call site: with only one, a call
    // site first reached on another test's thread (which has none) would be
    // cached as disabled for this one too.
    // What the worker logs, read back.
    let logs = Captured::default();
    let writer = logs.clone();
    let _logging = tracing::subscriber::set_default(
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish(),
    );
    let _second_dispatcher = tracing::Dispatch::new(
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_writer(std::io::sink)
            .finish(),
    );

    let smtp = SmtpServer::start().await;
    // Real servers quote the address in their refusal.
    smtp.refuse(
        Stage::Rcpt,
        Some("550 5.1.1 <alice@example.com>: Recipient address rejected"),
    );
    let app = app_with(
        &smtp,
        &[
            ("OUTBOX_MAX_ATTEMPTS", "3"),
            ("OUTBOX_BACKOFF_BASE_SECS", "0.05"),
        ],
    )
    .await;
    let ws = app.workspace("Acme", "alice@example.com").await;
    let (leaked, _) = app.mint(&ws, "leaky", "member").await;
    app.report(&[&leaked]).await;

    let dead = app
        .wait_for_count(
            "SELECT COUNT(*) FROM outbox WHERE dead_at IS NOT NULL",
            1,
            20,
        )
        .await;
    assert_eq!(dead, 1, "dead after its last attempt");
    let listed = outbox::list(&app.db, true).await.unwrap();
    assert_eq!(listed.len(), 1);
    let entry = &listed[0];
    assert_eq!(entry.state, "dead");
    assert_eq!(entry.attempts, 3);
    assert_eq!(smtp.refused(), 3, "each attempt reached the SMTP server");
    assert_eq!(smtp.count(), 0);
    let error = entry.last_error.as_deref().unwrap();
    assert!(error.contains("550"), "{error}");
    assert!(
        !error.contains("alice"),
        "the stored error quotes no address"
    );
    // Kept, not deleted.
    assert_eq!(app.count("SELECT COUNT(*) FROM outbox").await, 1);

    // Metrics: the counters, and the gauge on /metrics.
    assert_eq!(app.state.metrics.outbox_failed.get(), 3);
    assert_eq!(app.state.metrics.outbox_dead.get(), 1);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = app.client.get(app.url("/metrics")).send().await.unwrap();
        let text = metrics.text().await.unwrap();
        if text.contains("\nleakguard_outbox_dead_messages 1\n") {
            assert!(text.contains("\nleakguard_outbox_dead_total 1\n"));
            assert!(text.contains("\nleakguard_outbox_due_messages 0\n"));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "dead gauge not exported:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The operator's view: `outbox list --dead`.
    let out = cli(&app, &["outbox", "list", "--dead"]);
    assert!(out.status.success(), "{out:?}");
    let listed: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], entry.id.as_str());
    assert_eq!(listed[0]["state"], "dead");
    assert_eq!(listed[0]["attempts"], 3);
    let out = cli(&app, &["outbox", "retry", "no-such-message"]);
    assert!(!out.status.success(), "retrying an unknown id fails");

    // The mail server accepts again; `outbox retry` requeues the message.
    smtp.refuse(Stage::Rcpt, None);
    let out = cli(&app, &["outbox", "retry", &entry.id]);
    assert!(out.status.success(), "{out:?}");
    let messages = smtp.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(messages[0].to, ["alice@example.com"]);
    assert_eq!(
        app.wait_for_count(
            "SELECT COUNT(*) FROM outbox WHERE sent_at IS NOT NULL AND dead_at IS NULL",
            1,
            10
        )
        .await,
        1
    );
    let out = cli(&app, &["outbox", "list", "--dead"]);
    let listed: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(listed.is_empty(), "{listed:?}");
    tokio::time::sleep(QUIET).await;
    assert_eq!(smtp.count(), 1, "delivered exactly once");

    // The log told the story with the recipient masked.
    let logged = logs.text();
    for line in ["will retry", "is dead", "email sent"] {
        assert!(logged.contains(line), "{line:?} not logged:\n{logged}");
    }
    assert!(logged.contains("a***@example.com"), "{logged}");
    assert!(!logged.contains("alice@example.com"), "{logged}");
}

#[tokio::test]
async fn temporary_refusals_at_mail_and_after_the_data_are_retried_until_accepted() {
    let smtp = SmtpServer::start().await;
    smtp.refuse(Stage::Mail, Some("421 4.3.2 service busy, try later"));
    let app = app_with(&smtp, &[("OUTBOX_BACKOFF_BASE_SECS", "0.05")]).await;
    let ws = app.workspace("Acme", "alice@example.com").await;
    let (leaked, _) = app.mint(&ws, "leaky", "member").await;
    app.report(&[&leaked]).await;

    let deadline = Instant::now() + Duration::from_secs(20);
    while smtp.refused_at(Stage::Mail) < 2 {
        assert!(Instant::now() < deadline, "no second attempt");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Now the content goes through but is refused after the final dot: not
    // delivered either.
    smtp.refuse(Stage::EndOfData, Some("451 4.3.0 queue full"));
    smtp.refuse(Stage::Mail, None);
    while smtp.refused_at(Stage::EndOfData) < 2 {
        assert!(Instant::now() < deadline, "no attempt past MAIL");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(smtp.count(), 0);
    smtp.refuse(Stage::EndOfData, None);

    let messages = smtp.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(messages[0].to, ["alice@example.com"]);
    assert_eq!(
        app.wait_for_count(
            "SELECT COUNT(*) FROM outbox WHERE sent_at IS NOT NULL AND attempts >= 5",
            1,
            10
        )
        .await,
        1
    );
    tokio::time::sleep(QUIET).await;
    assert_eq!(smtp.count(), 1, "delivered exactly once");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM outbox WHERE dead_at IS NOT NULL")
            .await,
        0
    );
}

#[tokio::test]
async fn a_claim_left_by_a_crashed_worker_is_delivered_after_its_lease() {
    let smtp = SmtpServer::start().await;
    let app = app_with(&smtp, &[]).await;
    let first = app.workspace("First", "first@example.com").await;
    let crashy = app.workspace("Crashy", "owner@example.com").await;
    let (first_token, _) = app.mint(&first, "a", "member").await;
    let (crashy_token, _) = app.mint(&crashy, "b", "member").await;

    // Keep the application's worker busy mid-send, so that the next
    // message is left for the worker that is about to crash.
    smtp.hold(true);
    app.report(&[&first_token]).await;
    smtp.wait_held(1, Duration::from_secs(10)).await;
    app.report(&[&crashy_token]).await;

    // A worker of another replica claims it, then dies: it never sends
    // and never releases.
    let lease = Duration::from_secs(2);
    let claimed_from = Instant::now();
    let claimed = outbox::claim(
        &app.db,
        "worker-that-crashes",
        lease,
        10,
        leakguard::notify::Priority::Notification,
    )
    .await
    .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].recipient, "owner@example.com");

    smtp.hold(false);
    let messages = smtp.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(messages[0].to, ["first@example.com"]);

    // leakguard restarts too; its new worker picks the message up once the
    // dead worker's lease has run out.
    let app = app.restart().await;
    let messages = smtp.wait_for(2, Duration::from_secs(20)).await;
    let late = &messages[1];
    assert_eq!(late.to, ["owner@example.com"]);
    assert!(
        late.at >= claimed_from + lease,
        "taken from a live lease after {:?}",
        late.at - claimed_from
    );
    assert_eq!(late.header("Message-ID").unwrap(), claimed[0].message_id);
    assert_eq!(
        app.wait_for_count(
            "SELECT COUNT(*) FROM outbox WHERE sent_at IS NOT NULL",
            2,
            10
        )
        .await,
        2
    );
    tokio::time::sleep(QUIET).await;
    assert_eq!(smtp.count(), 2);
}

#[tokio::test]
async fn a_graceful_stop_releases_what_the_worker_holds() {
    let smtp = SmtpServer::start().await;
    let app = app_with(&smtp, &[("SMTP_TIMEOUT_SECS", "2")]).await;
    let ws = app.workspace("Acme", "alice@example.com").await;
    add_user(&app, &ws.owner_token, "bob@example.com", "Bob", "owner").await;
    add_user(&app, &ws.owner_token, "carol@example.com", "Carol", "owner").await;
    let (leaked, _) = app.mint(&ws, "leaky", "member").await;

    // The worker claims all three messages and hangs on the first.
    smtp.hold(true);
    app.report(&[&leaked]).await;
    smtp.wait_held(1, Duration::from_secs(10)).await;
    let held_by_worker = app
        .count("SELECT COUNT(*) FROM outbox WHERE locked_by IS NOT NULL")
        .await;
    assert_eq!(held_by_worker, 3);

    // It stops although its SMTP conversation hangs: that send times out.
    let (key, keys, dir, settings) = tokio::time::timeout(Duration::from_secs(20), app.stop())
        .await
        .expect("stopped within 20 s");
    // The hung conversation goes away with the mail server's restart.
    smtp.restart().await;
    smtp.hold(false);

    let db = TestDb::connect(&settings["DATABASE_URL"]).await;
    let state = db
        .scalars::<String>(
            "SELECT CASE WHEN sent_at IS NOT NULL THEN 'sent'
                     WHEN locked_by IS NOT NULL OR locked_until IS NOT NULL THEN 'held'
                     ELSE 'free' END
         FROM outbox",
        )
        .await;
    assert_eq!(state, ["free", "free", "free"], "nothing held after stop");
    db.close().await;

    // Started again, it delivers all three well within the 60 s lease that
    // a claim not released would have had to wait out.
    let started = Instant::now();
    let app = TestApp::start(settings, key, keys, dir).await;
    let messages = smtp.wait_for(3, Duration::from_secs(20)).await;
    assert!(started.elapsed() < Duration::from_secs(20));
    let recipients: BTreeSet<&str> = messages.iter().map(|m| m.to[0].as_str()).collect();
    assert_eq!(recipients.len(), 3);
    assert_eq!(
        app.wait_for_count(
            "SELECT COUNT(*) FROM outbox WHERE sent_at IS NOT NULL",
            3,
            10
        )
        .await,
        3
    );
    tokio::time::sleep(QUIET).await;
    assert_eq!(smtp.count(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_deliver_a_queue_of_200_without_duplicates() {
    const N: usize = 200;
    let smtp = SmtpServer::start().await;
    // A slightly slow mail server, so that both workers are busy at once.
    smtp.set_delay(Duration::from_millis(5));
    let app = app_with(&smtp, &[]).await;

    // A second replica's worker: its own pool, wake-up and metrics.
    let settings = Settings::from_map(&app.settings).unwrap();
    let second_metrics = Arc::new(Metrics::new());
    let second = Worker::new(
        &settings,
        Db::connect(&app.db_url).await.unwrap(),
        Transport::from_settings(&settings).unwrap(),
        Arc::new(Notify::new()),
        Arc::new(std::sync::atomic::AtomicBool::new(false)),
        second_metrics.clone(),
    )
    .unwrap();
    let (stop_second, stopped) = watch::channel(false);
    let second = tokio::spawn(second.run(stopped));

    // 200 workspaces, one owner each; one alert reports every owner token.
    let mut tokens = Vec::with_capacity(N);
    let mut owners = BTreeSet::new();
    for i in 0..N {
        let email = format!("owner{i}@example.com");
        tokens.push(app.workspace(&format!("ws {i}"), &email).await.owner_token);
        owners.insert(email);
    }
    let refs: Vec<&str> = tokens.iter().map(String::as_str).collect();
    let feedback = app.report(&refs).await;
    assert_eq!(feedback.len(), N);
    assert_eq!(app.count("SELECT COUNT(*) FROM outbox").await, N as i64);

    let messages = smtp.wait_for(N, Duration::from_secs(60)).await;
    assert_eq!(
        app.wait_for_count(
            "SELECT COUNT(*) FROM outbox WHERE sent_at IS NOT NULL",
            N as i64,
            10
        )
        .await,
        N as i64
    );
    tokio::time::sleep(QUIET).await;
    let messages_after = smtp.messages();
    assert_eq!(messages_after.len(), N, "no duplicates");
    assert_eq!(unique_message_ids(&messages).len(), N);
    let recipients: BTreeSet<String> = messages_after.iter().map(|m| m.to[0].clone()).collect();
    assert_eq!(recipients, owners);

    // Both took part, and between them sent each message once.
    let first_sent = app.state.metrics.outbox_sent.get();
    let second_sent = second_metrics.outbox_sent.get();
    assert!(
        first_sent > 0 && second_sent > 0,
        "both workers send (first {first_sent}, second {second_sent})"
    );
    assert_eq!(first_sent + second_sent, N as u64);

    stop_second.send(true).unwrap();
    second.await.unwrap();
}

#[tokio::test]
async fn fifty_tokens_in_one_alert_give_one_message_per_owner() {
    let smtp = SmtpServer::start().await;
    let app = app_with(&smtp, &[]).await;
    let ws = app.workspace("Acme", "alice@example.com").await;
    add_user(&app, &ws.owner_token, "bob@example.com", "Bob", "owner").await;
    add_user(
        &app,
        &ws.owner_token,
        "carol@example.com",
        "Carol",
        "member",
    )
    .await;
    let mut minted = Vec::new();
    for i in 0..50 {
        minted.push(app.mint(&ws, &format!("service-{i:02}"), "member").await);
    }
    let refs: Vec<&str> = minted.iter().map(|(t, _)| t.as_str()).collect();
    app.report(&refs).await;

    let messages = smtp.wait_for(2, Duration::from_secs(10)).await;
    tokio::time::sleep(QUIET).await;
    assert_eq!(smtp.count(), 2, "one message per owner, not per token");
    for address in ["alice@example.com", "bob@example.com"] {
        let m = only_message_to(&messages, address);
        assert_eq!(
            m.header("Subject").unwrap(),
            "[leakguard] 50 leaked tokens revoked in workspace Acme"
        );
        let (text, html) = (m.text(), m.html());
        for (i, (token, id)) in minted.iter().enumerate() {
            let name = format!("service-{i:02}");
            for body in [&text, &html] {
                assert!(body.contains(&name), "{name} missing");
                assert!(body.contains(id.as_str()), "{id} missing");
                assert!(!body.contains(token.as_str()));
            }
            assert!(!m.raw().contains(token.as_str()));
        }
        // Freshly minted, they did nothing yet.
        assert_eq!(text.matches("no recorded activity").count(), 50);
        assert_eq!(html.matches("no recorded activity").count(), 50);
    }
}

#[tokio::test]
async fn mail_leaves_right_after_commit_not_at_the_next_poll() {
    let smtp = SmtpServer::start().await;
    // The worker polls at start, then not for 30 s.
    let app = app_with(&smtp, &[("OUTBOX_POLL_SECS", "30")]).await;
    let ws = app.workspace("Acme", "alice@example.com").await;
    for i in 0..3 {
        let (leaked, _) = app.mint(&ws, &format!("leaky-{i}"), "member").await;
        let posted = Instant::now();
        app.report(&[&leaked]).await;
        let messages = smtp.wait_for(i + 1, Duration::from_secs(10)).await;
        let latency = messages[i].at - posted;
        assert!(
            latency < Duration::from_secs(2),
            "alert {i}: mail after {latency:?}"
        );
    }
}

/// An address of this machine that is not loopback: where a mail server
/// "elsewhere" can listen during a test. (The UDP socket only picks the
/// outgoing interface; nothing is sent.)
fn non_loopback_address() -> std::net::IpAddr {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    socket.connect("192.0.2.1:9").unwrap();
    let ip = socket.local_addr().unwrap().ip();
    assert!(
        !ip.is_loopback() && !ip.is_unspecified(),
        "this test needs a network interface besides loopback; found {ip}"
    );
    ip
}

/// Issue 17, finding 6. `smtp://` to a host that is not this machine used
/// to fall back to plain text when the server offered no STARTTLS (or a
/// network in between stripped the offer), and lettre then sent AUTH, and
/// the mail, in clear. Now STARTTLS is required there: nothing is sent,
/// the attempt is recorded as such, and the mail waits. Plain text needs
/// the operator's explicit LEAKGUARD_SMTP_ALLOW_PLAINTEXT (and a mail
/// catcher on this machine needs nothing: every other test here uses one).
#[tokio::test]
async fn smtp_elsewhere_without_starttls_gets_neither_credentials_nor_mail() {
    let smtp = SmtpServer::start_on(non_loopback_address()).await;
    smtp.offer_auth(true);
    let url = smtp.url().replace("smtp://", "smtp://mailer:s3cr3t@");
    let app = TestApp::spawn_with(&[("SMTP_URL", &url)]).await;
    let ws = app.workspace("Acme", "alice@example.com").await;
    let (leaked, _) = app.mint(&ws, "leaky", "member").await;
    app.report(&[&leaked]).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let last_error = loop {
        let errors: Vec<String> = app
            .test_db
            .scalars("SELECT last_error FROM outbox WHERE last_error IS NOT NULL")
            .await;
        if let Some(error) = errors.into_iter().next() {
            break error;
        }
        assert!(Instant::now() < deadline, "no failed attempt recorded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(last_error.contains("STARTTLS"), "{last_error}");
    assert!(smtp.connections() >= 1, "the server was reached");
    assert_eq!(smtp.auth_commands(), Vec::<String>::new(), "no credentials");
    assert_eq!(smtp.count(), 0, "no mail in clear");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL AND dead_at IS NULL")
            .await,
        1,
        "the mail waits for a fixed mail server"
    );
    let (key, keys, dir, mut settings) = app.stop().await;

    // The operator's explicit choice: plain text it is.
    settings.insert("SMTP_ALLOW_PLAINTEXT".into(), "true".into());
    let app = TestApp::start(settings, key, keys, dir).await;
    let messages = smtp.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(messages[0].to, ["alice@example.com"]);
    let auth = smtp.auth_commands();
    assert_eq!(auth.len(), 1, "{auth:?}");
    assert!(auth[0].starts_with("AUTH PLAIN"), "{auth:?}");
    drop(app);
}

/// Issue 17, finding 7. A worker whose lease ran out, and whose message
/// another worker took over meanwhile, must not settle that message: its
/// late 250 must not mark it sent (which would end the other worker's
/// claim), and its late failure must not reschedule it.
#[tokio::test]
async fn a_worker_that_lost_its_lease_leaves_the_message_to_the_worker_that_has_it() {
    let smtp = SmtpServer::start().await;
    let app = app_with(&smtp, &[]).await;
    let delivered = app.workspace("Delivered", "delivered@example.com").await;
    let refused = app.workspace("Refused", "refused@example.com").await;
    let (first, _) = app.mint(&delivered, "a", "member").await;
    let (second, _) = app.mint(&refused, "b", "member").await;
    let take_over = |recipient: &str| {
        format!(
            "UPDATE outbox SET locked_by = 'worker-of-another-replica', locked_until = {}
             WHERE recipient = '{recipient}'",
            leakguard::time::now_micros() + 3_600_000_000
        )
    };
    let row = |recipient: &str| {
        format!(
            "SELECT COALESCE(locked_by, '-') || ' sent=' || (sent_at IS NOT NULL) || ' attempts=' \
             || attempts || ' error=' || COALESCE(last_error, '-') FROM outbox
             WHERE recipient = '{recipient}'"
        )
    };
    let expected = "worker-of-another-replica sent=false attempts=0 error=-";

    for (token, recipient, refusal) in [
        (&first, "delivered@example.com", None),
        (
            &second,
            "refused@example.com",
            Some("451 4.3.0 try again later"),
        ),
    ] {
        smtp.refuse(Stage::EndOfData, refusal);
        // The worker is mid-send: the data is out, the answer held back.
        smtp.hold(true);
        app.report(&[token]).await;
        smtp.wait_held(1, Duration::from_secs(10)).await;
        // Its lease runs out and another worker claims the message.
        sqlx::query(&take_over(recipient))
            .execute(app.test_db.pool())
            .await
            .unwrap();
        smtp.hold(false);
        smtp.wait_idle(Duration::from_secs(10)).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let state: Vec<String> = app.test_db.scalars(&row(recipient)).await;
        let state = state[0].replace("sent=0", "sent=false");
        assert_eq!(state, expected, "{recipient}");
    }
    assert_eq!(smtp.count(), 1);
    assert_eq!(smtp.refused_at(Stage::EndOfData), 1);
}

/// Issue 17, finding 7. Two replicas, a lease of one second, and a mail
/// server that takes a third of a second per message: the first worker's
/// batch outlives its lease, and the second worker claims what is left.
/// Each message is still sent once, since a worker renews its lease right
/// before each send and skips a message it no longer holds. (Settings where
/// the SMTP timeout is more than half the lease are refused at start:
/// `config::tests::the_smtp_timeout_must_fit_well_inside_the_lease`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_that_outlives_its_lease_is_still_sent_once() {
    const N: usize = 8;
    let smtp = SmtpServer::start().await;
    smtp.set_delay(Duration::from_millis(300));
    let app = app_with(
        &smtp,
        &[("OUTBOX_LEASE_SECS", "1"), ("SMTP_TIMEOUT_SECS", "0.5")],
    )
    .await;
    let settings = Settings::from_map(&app.settings).unwrap();
    let second = Worker::new(
        &settings,
        Db::connect(&app.db_url).await.unwrap(),
        Transport::from_settings(&settings).unwrap(),
        Arc::new(Notify::new()),
        Arc::new(std::sync::atomic::AtomicBool::new(false)),
        Arc::new(Metrics::new()),
    )
    .unwrap();
    let (stop_second, stopped) = watch::channel(false);
    let second = tokio::spawn(second.run(stopped));

    let mut tokens = Vec::new();
    for i in 0..N {
        let email = format!("owner{i}@example.com");
        tokens.push(app.workspace(&format!("ws {i}"), &email).await.owner_token);
    }
    let refs: Vec<&str> = tokens.iter().map(String::as_str).collect();
    app.report(&refs).await;
    let messages = smtp.wait_for(N, Duration::from_secs(30)).await;
    assert_eq!(
        app.wait_for_count(
            "SELECT COUNT(*) FROM outbox WHERE sent_at IS NOT NULL",
            N as i64,
            10
        )
        .await,
        N as i64
    );
    tokio::time::sleep(QUIET).await;
    let all = smtp.messages();
    assert_eq!(unique_message_ids(&all).len(), N, "each message once");
    assert_eq!(all.len(), messages.len().max(N));
    stop_second.send(true).unwrap();
    second.await.unwrap();
}
