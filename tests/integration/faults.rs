//! Dependencies failing under a running leakguard: the key endpoint slow or
//! returning garbage, PostgreSQL stopped and restarted mid-stream, a slow
//! mail server, a full disk, a read-only SQLite file, and SIGKILL during a
//! stream of alerts (the real binary, through binary/mod.rs's helpers). Each
//! fault ends with the same checks: nothing half-applied, and the service
//! back without a restart (or, after SIGKILL, after one).
//!
//! The PostgreSQL and disk faults need root (initdb as the postgres user,
//! tmpfs mounts); CI runs as root, so they fail rather than skip without it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use leakguard::config::Settings;
use leakguard::scanning::simulate::{alert_body, DevKey};
use leakguard::startup::Application;
use serde_json::{json, Value};

use crate::smtp_server::{ReceivedExt, SmtpServer};
use crate::support::{json, TestApp};

const TOKEN_TYPE: &str = "leakguard_public_api_token";

/// Every token an alert revoked has its audit event, its report and its
/// owners' mail: the revocation transaction applied whole or not at all.
pub const HALF_APPLIED: [(&str, &str); 3] = [
    (
        "revoked without a 'Token Revoked' audit event",
        "SELECT COUNT(*) FROM tokens t WHERE t.revoked_reason = 'github_secret_scanning'
           AND NOT EXISTS (SELECT 1 FROM audit_events e
                           WHERE e.resource_id = t.id AND e.type = 'Token Revoked')",
    ),
    (
        "revoked without a report of the alert that revoked it",
        "SELECT COUNT(*) FROM tokens t WHERE t.revoked_reason = 'github_secret_scanning'
           AND NOT EXISTS (SELECT 1 FROM token_reports r WHERE r.token_id = t.id AND r.revoked = 1)",
    ),
    (
        "an alert that revoked tokens but queued no mail",
        "SELECT COUNT(*) FROM alerts a WHERE a.revoked > 0
           AND NOT EXISTS (SELECT 1 FROM outbox o
                           WHERE o.message_id LIKE '<alert-' || a.id || '.%')",
    ),
];

async fn assert_nothing_half_applied(app: &TestApp) {
    for (what, sql) in HALF_APPLIED {
        assert_eq!(app.count(sql).await, 0, "{what}");
    }
    let (_, breaks) = leakguard::audit::verify(&app.db).await.unwrap();
    assert!(breaks.is_empty(), "audit chain broken: {breaks:?}");
}

/// Runs a command to success, or fails the test with its output.
fn run(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `/readyz` once it answers `status`, or its last answer after a few
/// seconds: one database probe answers it for up to
/// `READINESS_PROBE_TTL`, so a change shows within that time, not at once.
async fn readyz(app: &TestApp, status: u16) -> (u16, Value) {
    let deadline = std::time::Instant::now() + leakguard::operations::READINESS_PROBE_TTL * 3;
    loop {
        let res = app
            .client
            .get(app.url("/readyz"))
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .expect("/readyz answers within 30 s");
        let answer = (res.status().as_u16(), json(res).await);
        if answer.0 == status || std::time::Instant::now() > deadline {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ------------------------------------------------------------ key endpoint

/// scanning.rs covers the key endpoint down (503), a restart during the
/// outage, a rotation fetched once and a withdrawn key. Here: garbage and a
/// fetch that hangs past the client's timeout, each with a rotation after.
#[tokio::test]
async fn a_key_endpoint_returning_garbage_or_hanging_keeps_the_last_good_set() {
    // Every unknown identifier may refetch, so each phase really fetches.
    let app = TestApp::spawn_with(&[("GITHUB_KEYS_MIN_REFETCH_SECS", "0.001")]).await;
    let ws = app.workspace("Acme", "alice@example.com").await;
    let stranger = DevKey::generate();
    let (stranger_id, stranger_sig) = (stranger.identifier(), stranger.sign(b"[]"));
    let unknown_alert = || app.post_alert_raw(b"[]".to_vec(), &stranger_id, &stranger_sig);

    let garbage = [
        "",
        "<html>rate limited</html>",
        "{\"public_keys\":[]}",
        "{\"public_keys\":[{\"key_identifier\":\"k\",\"key\":\"-----BEGIN PUBLIC KEY-----\\nAAAA\\n-----END PUBLIC KEY-----\\n\"}]}",
        "{\"public_keys\":{}}",
    ];
    for body in garbage {
        app.keys.set(Some(body.to_string()));
        let hits = app.keys.hits();
        // Past the minimum interval between refetches.
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(unknown_alert().await.status(), 401, "after {body:?}");
        assert_eq!(app.keys.hits(), hits + 1, "{body:?} was fetched");
        let (token, _) = app.mint(&ws, "t", "member").await;
        let feedback = app.report(&[&token]).await;
        assert_eq!(feedback[0]["label"], "true_positive", "after {body:?}");
        assert_eq!(readyz(&app, 200).await.0, 200, "after {body:?}");
    }

    // A key endpoint that hangs longer than the fetch's 5 s timeout,
    // while GitHub has rotated to `stranger`.
    app.keys.set(Some(DevKey::key_set(&[&stranger, &app.key])));
    app.keys.set_delay(Duration::from_secs(8));
    let hits = app.keys.hits();
    let hanging = tokio::spawn({
        let (client, url, id) = (
            app.client.clone(),
            app.url("/secret-scanning/github"),
            stranger.identifier(),
        );
        let sig = stranger.sign(b"[]");
        async move {
            client
                .post(url)
                .header(leakguard::scanning::KEY_ID_HEADER, id)
                .header(leakguard::scanning::SIGNATURE_HEADER, sig)
                .body("[]")
                .send()
                .await
                .unwrap()
                .status()
        }
    });
    while app.keys.hits() == hits {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The fetch is in flight: alerts signed with a cached key do not wait.
    let (token, _) = app.mint(&ws, "during-the-hang", "member").await;
    assert_eq!(app.report(&[&token]).await[0]["label"], "true_positive");
    assert!(!hanging.is_finished(), "the hanging fetch ended early");
    assert_eq!(hanging.await.unwrap(), 401, "the fetch timed out");
    assert_eq!(readyz(&app, 200).await.0, 200);

    // The endpoint recovers: the rotation is picked up by the next alert.
    app.keys.set_delay(Duration::ZERO);
    let (token, _) = app.mint(&ws, "after-rotation", "member").await;
    let body = alert_body(&[&token], TOKEN_TYPE, "", "commit");
    let res = app
        .post_alert_raw(body.clone(), &stranger.identifier(), &stranger.sign(&body))
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(app.get("/", &token).await.status(), 401);
    assert_nothing_half_applied(&app).await;
}

// --------------------------------------------------------------- PostgreSQL

/// A PostgreSQL server of the test's own, so that stopping it disturbs
/// no one else. Stopped (immediately) on drop.
struct PrivatePostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
}

impl PrivatePostgres {
    fn start() -> PrivatePostgres {
        let bin = postgres_bin_dir();
        let dir = tempfile::tempdir().unwrap();
        run(
            "chown",
            &["postgres:postgres", dir.path().to_str().unwrap()],
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let pg = PrivatePostgres { dir, bin, port };
        let data = pg.data();
        pg.as_postgres(
            "initdb",
            &["-D", &data, "-A", "trust", "-U", "postgres", "--no-sync"],
        );
        pg.ctl("start", "");
        pg
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn as_postgres(&self, program: &str, args: &[&str]) {
        let program = self.bin.join(program);
        let mut all = vec!["-u", "postgres", "--", program.to_str().unwrap()];
        all.extend_from_slice(args);
        run("runuser", &all);
    }

    /// `start`, or `stop` with a shutdown mode: `fast` (connections are
    /// told "terminating connection due to administrator command") or
    /// `immediate` (as in a crash: connections just drop).
    fn ctl(&self, action: &str, mode: &str) {
        let data = self.data();
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("log").display().to_string();
        match action {
            "start" => self.as_postgres(
                "pg_ctl",
                &["-D", &data, "-o", &options, "-l", &log, "-w", "start"],
            ),
            _ => self.as_postgres("pg_ctl", &["-D", &data, "-m", mode, "-w", "stop"]),
        }
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let pg_ctl = self.bin.join("pg_ctl");
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(pg_ctl)
            .args(["-D", &self.data(), "-m", "immediate", "stop"])
            .output();
    }
}

fn postgres_bin_dir() -> PathBuf {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() {
            return dir;
        }
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server binaries (initdb, pg_ctl) are needed")
        .map(|e| e.unwrap().path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .collect();
    found.sort();
    found.pop().expect("no initdb under /usr/lib/postgresql")
}

/// What one request of the stream got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Ok,
    Unavailable,
}

/// 2xx or 503 with the database's message; anything else fails the test.
async fn classify(res: reqwest::Response, what: &str) -> Answer {
    let status = res.status().as_u16();
    match status {
        200 => Answer::Ok,
        503 => {
            assert!(
                res.headers().contains_key("retry-after"),
                "{what}: 503 without Retry-After"
            );
            let body = json(res).await;
            assert_eq!(
                body["errors"][0]["message"], "the database is unavailable; retry later",
                "{what}"
            );
            Answer::Unavailable
        }
        _ => panic!("{what}: {status} {}", res.text().await.unwrap_or_default()),
    }
}

/// Polls `check` every 20 ms; fails the test after 60 s.
async fn wait(check: impl Fn() -> bool, what: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !check() {
        assert!(
            std::time::Instant::now() < deadline,
            "waited 60 s for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_crashing_mid_stream_gives_503_then_recovers_without_restart() {
    postgres_outage_mid_stream("immediate").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_shut_down_mid_stream_gives_503_then_recovers_without_restart() {
    postgres_outage_mid_stream("fast").await;
}

/// A stream of alerts (one token each) and API reads from two senders,
/// while PostgreSQL stops (`mode`) and comes back. Each answer must be a
/// 2xx or a 503; at the end, every alert GitHub would retry is retried.
async fn postgres_outage_mid_stream(mode: &str) {
    const TOKENS: usize = 60;
    let pg = PrivatePostgres::start();
    let app = TestApp::spawn_with(&[
        ("DATABASE_URL", &pg.url()),
        ("RATE_LIMIT_BURST", "100000"),
        ("RATE_LIMIT_PER_SECOND", "100000"),
        // Every revoked token is tried once more at the end: 40 failed
        // authentications from one address.
        ("AUTH_FAILURE_BURST", "100000"),
    ])
    .await;
    let ws = app.workspace("Acme", "alice@example.com").await;
    let mut tokens = Vec::new();
    for i in 0..TOKENS {
        tokens.push(app.mint(&ws, &format!("t{i}"), "member").await.0);
    }

    let app = Arc::new(app);
    let tokens = Arc::new(tokens);
    let next = Arc::new(AtomicUsize::new(0));
    let alerts = Arc::new(Mutex::new(Vec::<(usize, Answer)>::new()));
    let reads = Arc::new(Mutex::new(Vec::<Answer>::new()));
    let owner = Arc::new(ws.owner_token.clone());
    let senders: Vec<_> = (0..2)
        .map(|_| {
            let (app, tokens, owner, next, alerts, reads) = (
                app.clone(),
                tokens.clone(),
                owner.clone(),
                next.clone(),
                alerts.clone(),
                reads.clone(),
            );
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= tokens.len() {
                        return;
                    }
                    let body = alert_body(&[&tokens[i]], TOKEN_TYPE, "", "commit");
                    let sig = app.key.sign(&body);
                    let res = app
                        .client
                        .post(app.url("/secret-scanning/github"))
                        .header(leakguard::scanning::KEY_ID_HEADER, app.key.identifier())
                        .header(leakguard::scanning::SIGNATURE_HEADER, sig)
                        .body(body)
                        .timeout(Duration::from_secs(30))
                        .send()
                        .await
                        .expect("an answer within 30 s");
                    let answer = classify(res, "alert").await;
                    alerts.lock().unwrap().push((i, answer));
                    // A refusal comes at once; pausing, as a client backs
                    // off, keeps tokens for after the restart.
                    if answer == Answer::Unavailable {
                        tokio::time::sleep(Duration::from_millis(250)).await;
                    }
                    let res = app
                        .client
                        .get(app.url("/sources"))
                        .bearer_auth(owner.as_str())
                        .timeout(Duration::from_secs(30))
                        .send()
                        .await
                        .expect("an answer within 30 s");
                    let answer = classify(res, "GET /sources").await;
                    reads.lock().unwrap().push(answer);
                }
            })
        })
        .collect();
    let count = |answer: Answer| {
        alerts
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, a)| *a == answer)
            .count()
    };
    wait(|| count(Answer::Ok) >= 5, "5 alerts before the crash").await;
    pg.ctl("stop", mode);
    wait(|| count(Answer::Unavailable) >= 3, "3 alerts refused").await;
    let (status, body) = readyz(&app, 503).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["database"], false);
    assert_eq!(
        body["databaseError"],
        "the database is unavailable; retry later"
    );
    let acknowledged_before = count(Answer::Ok);
    pg.ctl("start", "");
    // The same process, no restart: its pool reconnects.
    wait(
        || count(Answer::Ok) > acknowledged_before,
        "an alert after the restart",
    )
    .await;
    for sender in senders {
        sender.await.unwrap();
    }
    assert_eq!(readyz(&app, 200).await.0, 200);
    // After the restart, a revocation through the API is refused by the
    // very next request too.
    let (doomed, doomed_id) = app.mint(&ws, "doomed", "member").await;
    assert_eq!(app.get("/", &doomed).await.status(), 200);
    let res = app
        .delete(&format!("/tokens/{doomed_id}"), &ws.owner_token)
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(app.get("/", &doomed).await.status(), 401);

    let alerts = alerts.lock().unwrap().clone();
    let reads = reads.lock().unwrap().clone();
    assert_eq!(alerts.len(), TOKENS);
    assert!(reads.contains(&Answer::Unavailable) && reads.contains(&Answer::Ok));
    for (i, answer) in &alerts {
        if *answer == Answer::Ok {
            assert_eq!(app.get("/", &tokens[*i]).await.status(), 401, "token {i}");
        }
    }
    assert_nothing_half_applied(&app).await;

    // GitHub retries what got 503: every token ends revoked, each once.
    let refused: Vec<&str> = alerts
        .iter()
        .filter(|(_, a)| *a == Answer::Unavailable)
        .map(|(i, _)| tokens[*i].as_str())
        .collect();
    let feedback = app.report(&refused).await;
    assert!(feedback.iter().all(|f| f["label"] == "true_positive"));
    assert_eq!(
        app.count("SELECT COUNT(*) FROM audit_events WHERE type = 'Token Revoked'")
            .await,
        TOKENS as i64 + 1
    );
    assert_nothing_half_applied(&app).await;
    assert_eq!(
        app.wait_for_count("SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL", 0, 30)
            .await,
        0,
        "the outbox drains after the outage"
    );
    let mails = std::fs::read_dir(app.mail_dir()).unwrap().count() as i64;
    assert_eq!(
        mails,
        app.count("SELECT COUNT(*) FROM outbox").await,
        "one mail per queued message, none twice"
    );
    eprintln!(
        "PostgreSQL stopped ({mode}): {} alerts answered 200, {} answered 503 and retried; {} reads got 503",
        TOKENS - refused.len(),
        refused.len(),
        reads.iter().filter(|a| **a == Answer::Unavailable).count()
    );
}

// ---------------------------------------------------------------- SMTP

/// email.rs covers SMTP down then back (one delivery), 550 then dead then
/// requeued, 421/451 retried, a send that hangs during a stop, and a lease
/// left by a crashed worker. Here: a mail server slower than the timeout,
/// then one that is slow but within it.
#[tokio::test]
async fn a_slow_mail_server_is_retried_and_each_message_arrives_once() {
    let smtp = SmtpServer::start().await;
    let url = smtp.url();
    let app = TestApp::spawn_with(&[("SMTP_URL", &url), ("SMTP_TIMEOUT_SECS", "2")]).await;
    let ws = app.workspace("Acme", "alice@example.com").await;

    // Too slow to even greet within the timeout: attempts fail and the
    // message stays queued.
    smtp.set_greeting_delay(Duration::from_secs(5));
    let (first, _) = app.mint(&ws, "first", "member").await;
    app.report(&[&first]).await;
    assert_eq!(
        app.wait_for_count(
            "SELECT COUNT(*) FROM outbox WHERE attempts >= 2 AND sent_at IS NULL AND dead_at IS NULL",
            1,
            60
        )
        .await,
        1,
        "two timed-out attempts, the message still queued"
    );
    let error: String = app.test_db.scalar("SELECT last_error FROM outbox").await;
    assert!(error.contains("timeout"), "{error}");
    assert_eq!(smtp.count(), 0);

    // Back to normal speed: delivered once.
    smtp.set_greeting_delay(Duration::ZERO);
    smtp.wait_for(1, Duration::from_secs(30)).await;

    // Slow, but within the timeout: delivered on the first attempt.
    smtp.set_delay(Duration::from_millis(800));
    let (second, _) = app.mint(&ws, "second", "member").await;
    app.report(&[&second]).await;
    smtp.wait_for(2, Duration::from_secs(30)).await;
    assert_eq!(
        app.wait_for_count(
            "SELECT COUNT(*) FROM outbox WHERE sent_at IS NOT NULL",
            2,
            30
        )
        .await,
        2
    );
    let attempts: Vec<i64> = app
        .test_db
        .scalars("SELECT attempts FROM outbox ORDER BY created_at")
        .await;
    assert!(attempts[0] >= 3, "{attempts:?}");
    assert_eq!(attempts[1], 1, "{attempts:?}");
    // Several worker polls later, still one copy of each.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let ids: std::collections::BTreeSet<String> = smtp
        .messages()
        .iter()
        .map(|m| m.header("Message-ID").unwrap())
        .collect();
    assert_eq!((smtp.count(), ids.len()), (2, 2));
    assert_nothing_half_applied(&app).await;
}

// ------------------------------------------------------------ disk faults

/// A tmpfs of `size` mounted on a fresh directory; unmounted on drop, also
/// when the test fails.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        run(
            "mount",
            &[
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size}"),
                "tmpfs",
                dir.path().to_str().unwrap(),
            ],
        );
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn database_url(&self) -> String {
        format!("sqlite://{}", self.path().join("leakguard.db").display())
    }

    /// Remounts `ro` or `rw`. A stopped SQLite pool closes its file from a
    /// worker thread, a moment after `close` returns; until then the kernel
    /// refuses a read-only remount (EBUSY), so this retries for 10 s.
    fn remount(&self, mode: &str) {
        let option = format!("remount,{mode}");
        let args = ["-o", &option, self.path().to_str().unwrap()];
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            let out = Command::new("mount").args(args).output().unwrap();
            if out.status.success() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        run("mount", &args);
    }

    /// Writes a filler file until the file system says it is full.
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let path = self.path().join("filler");
        let mut file = std::fs::File::create(&path).unwrap();
        let block = vec![0u8; 64 * 1024];
        loop {
            if let Err(e) = file.write_all(&block).and_then(|()| file.sync_all()) {
                assert_eq!(e.raw_os_error(), Some(28), "ENOSPC expected: {e}");
                return path;
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazily, so that a file still open cannot keep it mounted.
        let _ = Command::new("umount")
            .args(["-l", self.path().to_str().unwrap()])
            .status();
    }
}

/// SQLite on a disk that fills up: writes get a 503 that says so, reads
/// still work, /readyz fails, and freeing space is enough to recover.
#[tokio::test]
async fn a_full_disk_gives_a_clear_503_and_a_failing_readyz_until_space_is_freed() {
    let disk = Tmpfs::mount("16m");
    let app = TestApp::spawn_with(&[("DATABASE_URL", &disk.database_url())]).await;
    let ws = app.workspace("Acme", "alice@example.com").await;
    let (leaked, _) = app.mint(&ws, "leaked", "member").await;
    let (unwanted, unwanted_id) = app.mint(&ws, "unwanted", "member").await;
    let source = |slug: &str| json!({ "slug": slug, "enabled": true, "metadataId": "kVr3mQ8cTn" });
    assert_eq!(
        app.post("/sources", &ws.owner_token, &source("before"))
            .await
            .status(),
        201
    );
    const ROWS: &str = "SELECT (SELECT COUNT(*) FROM sources) + (SELECT COUNT(*) FROM alerts)
        + (SELECT COUNT(*) FROM audit_events) + (SELECT COUNT(*) FROM outbox)";
    let before = app.count(ROWS).await;

    let filler = disk.fill();
    const FULL: &str = "the database's disk is full; retry later";
    let res = app
        .post("/sources", &ws.owner_token, &source("during"))
        .await;
    assert_eq!(res.status(), 503);
    assert_eq!(json(res).await["errors"][0]["message"], FULL);
    let body = alert_body(&[&leaked], TOKEN_TYPE, "", "commit");
    let res = app.post_alert(body.clone()).await;
    assert_eq!(res.status(), 503, "GitHub retries the alert later");
    assert_eq!(json(res).await["errors"][0]["message"], FULL);
    let (status, ready) = readyz(&app, 503).await;
    assert_eq!(status, 503, "{ready}");
    assert_eq!(ready["databaseError"], FULL);
    // Reads still work, and nothing was written.
    assert_eq!(app.get("/sources", &ws.owner_token).await.status(), 200);
    assert_eq!(app.count(ROWS).await, before);

    std::fs::remove_file(filler).unwrap();
    assert_eq!(readyz(&app, 200).await.0, 200);
    assert_eq!(
        app.post("/sources", &ws.owner_token, &source("after"))
            .await
            .status(),
        201
    );
    assert_eq!(app.post_alert(body).await.status(), 200);
    assert_eq!(app.get("/", &leaked).await.status(), 401);
    let res = app
        .delete(&format!("/tokens/{unwanted_id}"), &ws.owner_token)
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(app.get("/", &unwanted).await.status(), 401);
    // Committed, not only visible to the server's own writer: the tests'
    // connection, like another process, sees both revocations and the
    // source made after the space was freed.
    assert_eq!(
        app.count("SELECT COUNT(*) FROM tokens WHERE revoked_at IS NOT NULL")
            .await,
        2
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM sources WHERE slug = 'after'")
            .await,
        1
    );
    assert_nothing_half_applied(&app).await;
}

/// A SQLite file that became read-only. Linux refuses to remount a file
/// system read-only while a process holds a file open for writing (EBUSY),
/// so leakguard meets it when it starts: it must refuse to start with a
/// message that names the cause, not run half-working.
#[tokio::test]
async fn a_read_only_sqlite_file_stops_start_up_with_a_clear_error() {
    let disk = Tmpfs::mount("16m");
    let app = TestApp::spawn_with(&[("DATABASE_URL", &disk.database_url())]).await;
    app.workspace("Acme", "alice@example.com").await;
    let (key, keys, dir, settings) = app.stop().await;

    disk.remount("ro");
    let error = match Application::build(Settings::from_map(&settings).unwrap()).await {
        Ok(_) => panic!("leakguard started on a read-only database"),
        Err(e) => format!("{e:#}"),
    };
    assert!(error.contains("cannot open the database"), "{error}");
    assert!(error.contains("Read-only file system"), "{error}");

    // Writable again: it starts, and the data is all there.
    disk.remount("rw");
    let app = TestApp::start(settings, key, keys, dir).await;
    assert_eq!(app.count("SELECT COUNT(*) FROM workspaces").await, 1);
    assert_eq!(readyz(&app, 200).await.0, 200);
}

// ------------------------------------------------------------------ SIGKILL

/// binary/signals_and_exit_codes.rs covers SIGTERM during a stream.
/// SIGKILL gives no chance to drain: whatever got a 2xx must still be
/// applied after a restart, and every owner's mail must arrive. Mail is at least once: a message the
/// mail server accepted just before the kill, but that was not yet marked
/// sent, goes again with the same Message-ID, so the only duplicates
/// allowed are messages accepted before the kill, and at most twice.
#[test]
#[cfg(unix)]
fn sigkill_during_a_stream_of_alerts_loses_no_2xx_alert_and_no_mail() {
    use crate::binary::{Sandbox, Server, LOCATION};
    use leakguard::scanning::{KEY_ID_HEADER, SIGNATURE_HEADER};
    use std::collections::{BTreeMap, BTreeSet};
    use test_support::process::{runtime, wait_exit, wait_until};

    const TOKENS: usize = 60;
    const SENDERS: usize = 4;
    const KILL_AFTER: usize = 10;

    let smtp_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let smtp = smtp_runtime.block_on(SmtpServer::start());
    // A mail server that takes a moment per message, so that the kill can
    // land while the worker is in the middle of a send.
    smtp.set_delay(Duration::from_millis(20));

    let mut sb = Sandbox::new();
    let workspaces = [
        sb.workspace("Acme", "alice@example.com").0,
        sb.workspace("Globex", "hank@example.com").0,
    ];
    let keys = sb.keygen();
    let tokens: Vec<(String, String)> = (0..TOKENS)
        .map(|i| sb.token_and_id(&workspaces[i % 2], &format!("ci-{i}")))
        .collect();
    let key = DevKey::read_from(&keys).unwrap();
    let smtp_url = smtp.url();
    let env = [
        ("LEAKGUARD_SMTP_URL", smtp_url.as_str()),
        ("LEAKGUARD_OUTBOX_POLL_SECS", "0.2"),
        ("LEAKGUARD_OUTBOX_BACKOFF_BASE_SECS", "0.1"),
        // The killed worker's claims expire quickly for the restarted one
        // (and a send must fit in half the lease).
        ("LEAKGUARD_OUTBOX_LEASE_SECS", "2"),
        ("LEAKGUARD_SMTP_TIMEOUT_SECS", "1"),
    ];
    let mut server = Server::start(&sb, &env);
    server.wait_ready();

    let next = AtomicUsize::new(0);
    let acknowledged = Mutex::new(Vec::new());
    let url = server.url("/secret-scanning/github");
    std::thread::scope(|s| {
        for _ in 0..SENDERS {
            let (next, acknowledged, tokens, key, url) =
                (&next, &acknowledged, &tokens, &key, &url);
            s.spawn(move || {
                let client = reqwest::blocking::Client::new();
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= tokens.len() {
                        return;
                    }
                    let body = alert_body(&[&tokens[i].0], TOKEN_TYPE, LOCATION, "commit");
                    let sent = client
                        .post(url)
                        .header("Content-Type", "application/json")
                        .header(KEY_ID_HEADER, key.identifier())
                        .header(SIGNATURE_HEADER, key.sign(&body))
                        .body(body)
                        .timeout(Duration::from_secs(40))
                        .send();
                    if let Ok(res) = sent {
                        if res.status().is_success() {
                            // The whole answer arrived before we count it.
                            let feedback: Value = res.json().unwrap();
                            assert_eq!(feedback[0]["label"], "true_positive");
                            acknowledged.lock().unwrap().push(i);
                        }
                    }
                }
            });
        }
        let streaming = wait_until(Duration::from_secs(60), || {
            acknowledged.lock().unwrap().len() >= KILL_AFTER
        });
        assert!(
            streaming,
            "alerts were not being answered:\n{}",
            server.logs()
        );
        server.signal("KILL");
    });
    let status = wait_exit(&mut server.child, Duration::from_secs(10)).expect("dead after SIGKILL");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );
    let acknowledged = acknowledged.into_inner().unwrap();
    assert!(
        acknowledged.len() < TOKENS,
        "the kill came after the stream ended"
    );
    // What the killed process had transferred is accepted once its
    // conversations end.
    smtp_runtime.block_on(smtp.wait_idle(Duration::from_secs(10)));
    let before_kill: BTreeSet<String> = smtp
        .messages()
        .iter()
        .map(|m| m.header("Message-ID").unwrap())
        .collect();

    // Restarted on the same database, with nothing repaired by hand.
    let server = Server::start(&sb, &env);
    server.wait_ready();
    for i in &acknowledged {
        let (token, id) = &tokens[*i];
        assert!(
            sb.is_revoked(token),
            "alert {i} got 2xx but its token is live"
        );
        let events = sb.count(
            "SELECT COUNT(*) FROM audit_events WHERE resource_id = $1 AND type = 'Token Revoked'",
            &[id],
        );
        assert_eq!(events, 1, "alert {i}: audit events");
    }
    for (what, sql) in HALF_APPLIED {
        assert_eq!(sb.count(sql, &[]), 0, "{what}");
    }
    let drained = wait_until(Duration::from_secs(60), || {
        sb.count("SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL", &[]) == 0
    });
    assert!(drained, "the outbox did not drain:\n{}", server.logs());
    // Several polls later, nothing more arrives.
    std::thread::sleep(Duration::from_millis(1500));

    let expected: BTreeSet<String> = {
        let url = sb.database_url();
        runtime().block_on(async {
            let db = test_support::db::TestDb::connect(&url).await;
            let ids: Vec<String> = db.scalars("SELECT message_id FROM outbox").await;
            db.close().await;
            ids.into_iter().collect()
        })
    };
    let mut deliveries: BTreeMap<String, usize> = BTreeMap::new();
    for m in smtp.messages() {
        *deliveries
            .entry(m.header("Message-ID").unwrap())
            .or_default() += 1;
    }
    let delivered: BTreeSet<String> = deliveries.keys().cloned().collect();
    assert_eq!(
        delivered, expected,
        "every queued message arrives, no other"
    );
    let duplicates: Vec<(&String, &usize)> = deliveries.iter().filter(|(_, n)| **n > 1).collect();
    for (id, n) in &duplicates {
        assert!(
            **n == 2 && before_kill.contains(*id),
            "{id} delivered {n} times, not in the kill's window"
        );
    }
    sb.run(&["audit", "verify"]).expect_success("audit verify");
    eprintln!(
        "SIGKILL: {} of {TOKENS} alerts acknowledged before the kill; {} messages expected, \
         {} delivered ({} before the kill), {} delivered twice",
        acknowledged.len(),
        expected.len(),
        deliveries.values().sum::<usize>(),
        before_kill.len(),
        duplicates.len()
    );
}
