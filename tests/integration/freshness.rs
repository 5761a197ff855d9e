//! A token revoked by any path is refused by the very next request: an
//! alert, `DELETE /tokens/{id}`, the CLI in another process, and another
//! replica. Each revocation happens while other clients keep the server
//! busy with the same token, so that reads run on every connection the
//! server has; every request that started after the revoking call
//! returned must get 401. The full-disk and PostgreSQL-restart cases are
//! in faults.rs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{json, TestApp};

const CONNECTIONS: usize = 8;

/// Clients that send `GET /` with each of `tokens` in turn until stopped.
struct Load {
    stop: Arc<AtomicBool>,
    clients: Vec<tokio::task::JoinHandle<Vec<Answer>>>,
}

#[derive(Debug, Clone)]
struct Answer {
    token: usize,
    started: Instant,
    status: u16,
}

impl Load {
    fn start(address: &str, tokens: &[String]) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let clients = (0..CONNECTIONS)
            .map(|c| {
                let stop = stop.clone();
                let tokens = tokens.to_vec();
                let url = format!("{address}/");
                tokio::spawn(async move {
                    let client = reqwest::Client::new();
                    let mut answers = Vec::new();
                    let mut i = c;
                    while !stop.load(Ordering::SeqCst) {
                        let token = i % tokens.len();
                        i += 1;
                        let started = Instant::now();
                        let res = client
                            .get(&url)
                            .bearer_auth(&tokens[token])
                            .send()
                            .await
                            .expect("an answer");
                        answers.push(Answer {
                            token,
                            started,
                            status: res.status().as_u16(),
                        });
                    }
                    answers
                })
            })
            .collect();
        Load { stop, clients }
    }

    async fn stop(self) -> Vec<Answer> {
        self.stop.store(true, Ordering::SeqCst);
        let mut all = Vec::new();
        for client in self.clients {
            all.extend(client.await.unwrap());
        }
        all
    }
}

/// Runs `revoke` under load with the doomed token (index 0) and a live one
/// (index 1), then checks every answer: 200 for the live token throughout;
/// for the doomed one, 200 before and 401 for every request that started
/// after `revoke` returned.
async fn revoked_under_load<F, Fut>(app: &TestApp, doomed: &str, live: &str, revoke: F)
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let load = Load::start(&app.address, &[doomed.to_string(), live.to_string()]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    revoke().await;
    let revoked_at = Instant::now();
    // The very next request, from this task.
    assert_eq!(app.get("/", doomed).await.status(), 401, "the next request");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let answers = load.stop().await;

    let doomed_before = answers
        .iter()
        .filter(|a| a.token == 0 && a.status == 200)
        .count();
    assert!(
        doomed_before > 0,
        "the load used the token before it was revoked"
    );
    let after: Vec<&Answer> = answers
        .iter()
        .filter(|a| a.token == 0 && a.started > revoked_at)
        .collect();
    assert!(
        after.len() >= CONNECTIONS,
        "the load went on after the revocation"
    );
    let stale: Vec<&&Answer> = after.iter().filter(|a| a.status != 401).collect();
    assert!(
        stale.is_empty(),
        "{} of {} requests after the revocation were not refused: {:?}",
        stale.len(),
        after.len(),
        stale.first()
    );
    assert!(
        answers
            .iter()
            .filter(|a| a.token == 1)
            .all(|a| a.status == 200),
        "the live token kept working"
    );
}

fn load_settings() -> [(&'static str, &'static str); 4] {
    // The load would otherwise meet the per-token rate limit, and the
    // requests with the revoked token the limit on failed authentications
    // (which answers 429 instead of looking the token up).
    [
        ("RATE_LIMIT_BURST", "1000000"),
        ("RATE_LIMIT_PER_SECOND", "1000000"),
        ("AUTH_FAILURE_BURST", "1000000"),
        ("AUTH_FAILURE_PER_SECOND", "1000000"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_revoked_by_an_alert_is_refused_by_the_next_request() {
    let app = TestApp::spawn_with(&load_settings()).await;
    let ws = app.workspace("Acme", "alice@example.com").await;
    let (doomed, _) = app.mint(&ws, "doomed", "member").await;
    let (live, _) = app.mint(&ws, "live", "read_only").await;
    revoked_under_load(&app, &doomed, &live, || async {
        let feedback = app.report(&[&doomed]).await;
        assert_eq!(feedback[0]["label"], "true_positive");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_revoked_through_the_api_is_refused_by_the_next_request() {
    let app = TestApp::spawn_with(&load_settings()).await;
    let ws = app.workspace("Acme", "alice@example.com").await;
    let (doomed, doomed_id) = app.mint(&ws, "doomed", "member").await;
    let (live, _) = app.mint(&ws, "live", "read_only").await;
    revoked_under_load(&app, &doomed, &live, || async {
        let res = app
            .delete(&format!("/tokens/{doomed_id}"), &ws.owner_token)
            .await;
        assert_eq!(res.status(), 200);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_revoked_by_the_cli_in_another_process_is_refused_by_the_next_request() {
    let app = TestApp::spawn_with(&load_settings()).await;
    let ws = app.workspace("Acme", "alice@example.com").await;
    let (doomed, doomed_id) = app.mint(&ws, "doomed", "member").await;
    let (live, _) = app.mint(&ws, "live", "read_only").await;
    revoked_under_load(&app, &doomed, &live, || async {
        let mut cli = std::process::Command::new(env!("CARGO_BIN_EXE_leakguard"));
        cli.args(["token", "revoke", "--workspace", &ws.id, "--id", &doomed_id])
            .env_clear()
            .env("LEAKGUARD_DATABASE_URL", &app.db_url)
            .current_dir(app.dir.path());
        let out = tokio::task::spawn_blocking(move || cli.output())
            .await
            .unwrap()
            .unwrap();
        assert!(
            out.status.success(),
            "leakguard token revoke: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    })
    .await;
    // The CLI's revocation is audited like any other.
    let res = app
        .get(
            &format!("/audit-events?resourceId={doomed_id}"),
            &ws.owner_token,
        )
        .await;
    let events: Value = json(res).await;
    let revoked = &events["data"]["events"][0];
    assert_eq!(revoked["type"], "Token Revoked");
    assert_eq!(revoked["actor"], "cli");
    assert_eq!(revoked["details"]["reason"], "revoked_by_operator");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_revoked_on_another_replica_is_refused_by_the_next_request() {
    let app = TestApp::spawn_with(&load_settings()).await;
    let mut settings: Vec<(&str, &str)> = load_settings().to_vec();
    settings.push(("DATABASE_URL", &app.db_url));
    let replica = TestApp::spawn_with(&settings).await;
    let ws = app.workspace("Acme", "alice@example.com").await;
    let (doomed, doomed_id) = app.mint(&ws, "doomed", "member").await;
    let (live, _) = app.mint(&ws, "live", "read_only").await;
    // The load is on `app`; the revocation on the replica.
    revoked_under_load(&app, &doomed, &live, || async {
        let res = replica
            .delete(&format!("/tokens/{doomed_id}"), &ws.owner_token)
            .await;
        assert_eq!(res.status(), 200);
    })
    .await;
    assert_eq!(replica.get("/", &doomed).await.status(), 401);
}
