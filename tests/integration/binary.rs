//! Through the real `leakguard` binary, as an operator runs it: a process of
//! its own per test, its own temporary directory, its own port and its own
//! database (PostgreSQL when LEAKGUARD_TEST_DATABASE_URL is set). Every wait
//! is bounded; nothing talks to anything but 127.0.0.1.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use leakguard::scanning::simulate::{alert_body, DevKey};
use leakguard::scanning::{KEY_ID_HEADER, SIGNATURE_HEADER};
use leakguard::token::{sha256_hex, TOKEN_TYPE};
use serde_json::Value;

use crate::support;

const BIN: &str = env!("CARGO_BIN_EXE_leakguard");
pub(crate) const LOCATION: &str = "https://github.com/octo/repo/blob/main/.env";

// ---------------------------------------------------------------- helpers

/// A port nobody listens on right now (the OS picks it; we let it go so
/// the child can bind it).
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Polls `check` every 10 ms until it holds or `limit` passes.
pub(crate) fn wait_until(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if check() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// What a finished command left behind.
pub(crate) struct Done {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Done {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout))
    }

    pub(crate) fn expect_success(self, what: &str) -> Done {
        assert_eq!(
            self.code,
            Some(0),
            "{what} failed\nstdout: {}\nstderr: {}",
            self.stdout,
            self.stderr
        );
        self
    }
}

/// One operator's machine: a directory (the working directory of every
/// command), a database and the settings every command gets. The child's
/// environment is emptied first so that nothing from the test runner's
/// environment (a stray LEAKGUARD_* or RUST_LOG) leaks in.
pub(crate) struct Sandbox {
    dir: tempfile::TempDir,
    /// None: the default `sqlite://leakguard.db` in the directory.
    db_url: Option<String>,
    vars: BTreeMap<String, String>,
    counter: AtomicUsize,
}

impl Sandbox {
    pub(crate) fn new() -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        let db_url = support::is_postgres()
            .then(|| runtime().block_on(support::fresh_database_url(dir.path())));
        let mut vars = BTreeMap::new();
        if let Some(url) = &db_url {
            vars.insert("LEAKGUARD_DATABASE_URL".to_string(), url.clone());
        }
        Sandbox {
            dir,
            db_url,
            vars,
            counter: AtomicUsize::new(0),
        }
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn set(&mut self, key: &str, value: &str) {
        self.vars.insert(key.to_string(), value.to_string());
    }

    /// The URL the test itself uses to look into the database.
    pub(crate) fn database_url(&self) -> String {
        self.db_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.path().join("leakguard.db").display()))
    }

    pub(crate) fn command(&self, args: &[&str], extra: &[(&str, &str)]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .current_dir(self.path())
            .env_clear()
            .envs(&self.vars)
            .envs(extra.iter().copied())
            .stdin(Stdio::null());
        cmd
    }

    /// Output files of one command, named uniquely.
    pub(crate) fn output_files(&self, label: &str) -> (PathBuf, PathBuf) {
        let n = self.counter.fetch_add(1, Ordering::SeqCst);
        let out = self.path().join(format!("{label}-{n}.stdout"));
        let err = self.path().join(format!("{label}-{n}.stderr"));
        (out, err)
    }

    /// Runs a command to completion (killed after 60 s).
    pub(crate) fn run_with(&self, args: &[&str], extra: &[(&str, &str)]) -> Done {
        let (out, err) = self.output_files("cmd");
        let mut child = self
            .command(args, extra)
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .expect("spawn leakguard");
        let status = wait_exit(&mut child, Duration::from_secs(60));
        if status.is_none() {
            let _ = child.kill();
            let _ = child.wait();
            panic!("leakguard {args:?} did not finish within 60 s");
        }
        Done {
            code: status.unwrap().code(),
            stdout: std::fs::read_to_string(&out).unwrap(),
            stderr: std::fs::read_to_string(&err).unwrap(),
        }
    }

    pub(crate) fn run(&self, args: &[&str]) -> Done {
        self.run_with(args, &[])
    }

    /// `leakguard dev keygen --out DIR`; returns DIR.
    pub(crate) fn keygen(&mut self) -> PathBuf {
        let keys = self.path().join("dev-keys");
        let done = self
            .run(&["dev", "keygen", "--out", keys.to_str().unwrap()])
            .expect_success("dev keygen");
        assert!(done.stdout.contains("LEAKGUARD_GITHUB_KEYS_URL=file://"));
        let set = std::fs::canonicalize(keys.join("keys.json")).unwrap();
        self.set(
            "LEAKGUARD_GITHUB_KEYS_URL",
            &format!("file://{}", set.display()),
        );
        keys
    }

    /// `leakguard workspace create`; returns (workspace id, owner token).
    pub(crate) fn workspace(&self, name: &str, owner_email: &str) -> (String, String) {
        let done = self
            .run(&[
                "workspace",
                "create",
                "--name",
                name,
                "--owner-email",
                owner_email,
            ])
            .expect_success("workspace create");
        let json = done.json();
        (
            json["workspace"]["id"].as_str().unwrap().to_string(),
            json["token"].as_str().unwrap().to_string(),
        )
    }

    /// `leakguard token create`; returns the token.
    pub(crate) fn token(&self, workspace: &str, name: &str) -> String {
        self.token_and_id(workspace, name).0
    }

    /// `leakguard token create`; returns the token and its id.
    pub(crate) fn token_and_id(&self, workspace: &str, name: &str) -> (String, String) {
        let done = self
            .run(&[
                "token",
                "create",
                "--workspace",
                workspace,
                "--name",
                name,
                "--role",
                "member",
            ])
            .expect_success("token create");
        let json = done.json();
        (
            json["token"].as_str().unwrap().to_string(),
            json["id"].as_str().unwrap().to_string(),
        )
    }

    /// A number from the database (the first column of the first row).
    pub(crate) fn count(&self, sql: &str, bind: &[&str]) -> i64 {
        let url = self.database_url();
        runtime().block_on(async {
            use sqlx::Row;
            let db = crate::support::raw_pool(&url).await;
            let mut query = sqlx::query(sql);
            for b in bind {
                query = query.bind(*b);
            }
            let n: i64 = query.fetch_one(&db).await.unwrap().get(0);
            db.close().await;
            n
        })
    }

    pub(crate) fn is_revoked(&self, token: &str) -> bool {
        self.count(
            "SELECT COUNT(*) FROM tokens WHERE token_hash = $1 AND revoked_at IS NOT NULL",
            &[&sha256_hex(token.as_bytes())],
        ) == 1
    }

    pub(crate) fn mail_files(&self, dir: &Path) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(self.path().join(dir)) else {
            return Vec::new();
        };
        entries
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect()
    }
}

pub(crate) fn wait_exit(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// A running `leakguard serve`. Killed on drop if still running.
pub(crate) struct Server {
    pub(crate) child: Child,
    port: u16,
    base: String,
    client: reqwest::blocking::Client,
    log: PathBuf,
}

impl Server {
    /// Starts `serve` on a free port and waits for /healthz.
    pub(crate) fn start(sb: &Sandbox, extra: &[(&str, &str)]) -> Server {
        Server::launch(sb, extra, "http", &|_| reqwest::blocking::Client::new())
    }

    /// `client` is built for the port (TLS clients resolve `localhost` to
    /// 127.0.0.1 on it).
    pub(crate) fn launch(
        sb: &Sandbox,
        extra: &[(&str, &str)],
        scheme: &str,
        client: &dyn Fn(u16) -> reqwest::blocking::Client,
    ) -> Server {
        let host = if scheme == "https" {
            "localhost"
        } else {
            "127.0.0.1"
        };
        // Another process may take the port between our probe and the
        // child's bind: try a few.
        for attempt in 0..3 {
            let port = free_port();
            let bind = format!("127.0.0.1:{port}");
            let mut env: Vec<(&str, &str)> = vec![("LEAKGUARD_BIND", &bind)];
            env.extend_from_slice(extra);
            let (out, log) = sb.output_files("serve");
            let child = sb
                .command(&["serve"], &env)
                .stdout(std::fs::File::create(&out).unwrap())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .expect("spawn leakguard serve");
            let mut server = Server {
                child,
                port,
                base: format!("{scheme}://{host}:{port}"),
                client: client(port),
                log,
            };
            let up = wait_until(Duration::from_secs(60), || {
                server.child.try_wait().unwrap().is_some()
                    || server
                        .client
                        .get(server.url("/healthz"))
                        .timeout(Duration::from_secs(2))
                        .send()
                        .is_ok_and(|r| r.status() == 200)
            });
            assert!(up, "serve did not come up:\n{}", server.logs());
            match server.child.try_wait().unwrap() {
                None => return server,
                Some(_) if attempt < 2 && server.logs().contains("cannot listen") => continue,
                Some(status) => panic!("serve exited with {status}:\n{}", server.logs()),
            }
        }
        unreachable!()
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    pub(crate) fn get(&self, path: &str, token: &str) -> reqwest::blocking::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .timeout(Duration::from_secs(20))
            .send()
            .unwrap()
    }

    pub(crate) fn wait_ready(&self) {
        let ready = wait_until(Duration::from_secs(30), || {
            self.client
                .get(self.url("/readyz"))
                .send()
                .is_ok_and(|r| r.status() == 200)
        });
        assert!(ready, "/readyz never said ready:\n{}", self.logs());
    }

    /// Posts an alert for `tokens`, signed with `key` as GitHub signs.
    pub(crate) fn alert(&self, key: &DevKey, tokens: &[&str]) -> reqwest::blocking::Response {
        let body = alert_body(tokens, TOKEN_TYPE, LOCATION, "commit");
        self.client
            .post(self.url("/secret-scanning/github"))
            .header("Content-Type", "application/json")
            .header(KEY_ID_HEADER, key.identifier())
            .header(SIGNATURE_HEADER, key.sign(&body))
            .body(body)
            .timeout(Duration::from_secs(20))
            .send()
            .unwrap()
    }

    pub(crate) fn metrics(&self) -> String {
        let res = self.client.get(self.url("/metrics")).send().unwrap();
        assert_eq!(res.status(), 200);
        let content_type = res.headers()["content-type"].to_str().unwrap().to_string();
        assert!(content_type.starts_with("text/plain"), "{content_type}");
        res.text().unwrap()
    }

    pub(crate) fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub(crate) fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([format!("-{name}"), self.child.id().to_string()])
            .status()
            .expect("kill(1)");
        assert!(status.success(), "kill -{name} failed");
    }

    /// SIGTERM, then waits up to `limit` for the exit status.
    pub(crate) fn terminate(&mut self, limit: Duration) -> ExitStatus {
        self.signal("TERM");
        let status = wait_exit(&mut self.child, limit);
        status.unwrap_or_else(|| panic!("no exit within {limit:?} of SIGTERM:\n{}", self.logs()))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A process's resident memory (VmRSS), in KiB.
pub(crate) fn vm_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// Reads one sample from Prometheus text: the metric `name` whose labels
/// include every pair in `labels`. None when absent.
pub(crate) fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, label_text) = match series.split_once('{') {
                Some((m, rest)) => (m, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            if metric != name {
                return None;
            }
            let found: BTreeMap<&str, &str> = label_text
                .split(',')
                .filter(|p| !p.is_empty())
                .filter_map(|p| p.split_once('='))
                .map(|(k, v)| (k, v.trim_matches('"')))
                .collect();
            labels
                .iter()
                .all(|(k, v)| found.get(k) == Some(v))
                .then(|| value.parse().unwrap())
        })
}

// ---------------------------------------------------------------- tests

/// The README's quick start, step by step, through the binary.
#[test]
fn quick_start_keygen_serve_simulate_revokes_and_mails() {
    let mut sb = Sandbox::new();
    let (workspace, token) = sb.workspace("Acme", "alice@example.com");
    let keys = sb.keygen();
    let server = Server::start(&sb, &[("LEAKGUARD_OUTBOX_POLL_SECS", "0.2")]);
    server.wait_ready();

    let res = server.get("/", &token);
    assert_eq!(res.status(), 200);
    let body: Value = res.json().unwrap();
    assert_eq!(body["data"]["workspace"]["id"], workspace.as_str());

    let done = sb
        .run(&[
            "alert",
            "simulate",
            "--url",
            &server.url("/secret-scanning/github"),
            "--key",
            keys.to_str().unwrap(),
            "--token",
            &token,
        ])
        .expect_success("alert simulate");
    let feedback = done.json();
    assert_eq!(feedback[0]["label"], "true_positive", "{feedback}");
    assert_eq!(feedback[0]["token_raw"], token.as_str());
    assert_eq!(feedback[0]["token_type"], TOKEN_TYPE);

    let res = server.get("/", &token);
    assert_eq!(res.status(), 401);
    let body: Value = res.json().unwrap();
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("revoked"),
        "{body}"
    );
    assert!(sb.is_revoked(&token));

    // The default mail directory is ./mail (no SMTP set).
    assert!(
        wait_until(Duration::from_secs(20), || !sb
            .mail_files(Path::new("mail"))
            .is_empty()),
        "no .eml in ./mail:\n{}",
        server.logs()
    );
    let mail = std::fs::read_to_string(&sb.mail_files(Path::new("mail"))[0]).unwrap();
    assert!(mail.contains("alice@example.com"), "{mail}");
    assert!(!mail.contains(&token), "the email must not quote the token");

    // The same alert again changes nothing and is still a true positive.
    let done = sb
        .run(&[
            "alert",
            "simulate",
            "--url",
            &server.url("/secret-scanning/github"),
            "--key",
            keys.to_str().unwrap(),
            "--token",
            &token,
        ])
        .expect_success("second alert simulate");
    assert_eq!(done.json()[0]["label"], "true_positive");

    sb.run(&["audit", "verify"]).expect_success("audit verify");
}

/// A simulated alert signed with a key GitHub never published is refused,
/// and the simulate command says so with exit 1.
#[test]
fn alert_simulate_with_a_foreign_key_is_refused() {
    let mut sb = Sandbox::new();
    let (_, token) = sb.workspace("Acme", "alice@example.com");
    sb.keygen();
    let foreign = sb.path().join("foreign-keys");
    DevKey::generate().write_to(&foreign).unwrap();
    let server = Server::start(&sb, &[("LEAKGUARD_GITHUB_KEYS_MIN_REFETCH_SECS", "0.1")]);
    server.wait_ready();
    let done = sb.run(&[
        "alert",
        "simulate",
        "--url",
        &server.url("/secret-scanning/github"),
        "--key",
        foreign.to_str().unwrap(),
        "--token",
        &token,
    ]);
    assert_eq!(done.code, Some(1), "{}", done.stderr);
    assert!(done.stderr.contains("401"), "{}", done.stderr);
    assert!(!sb.is_revoked(&token));
    assert_eq!(server.get("/", &token).status(), 200);
}

/// SIGTERM while alerts are streaming in: the server stops accepting,
/// finishes what is in flight and exits 0; every alert that was answered
/// 2xx has its token revoked in the database.
#[test]
#[cfg(unix)]
fn sigterm_during_a_stream_of_alerts_loses_none_that_got_2xx() {
    const TOKENS: usize = 60;
    const WORKERS: usize = 4;
    const SIGNAL_AFTER: usize = 6;

    let mut sb = Sandbox::new();
    let (workspace, _) = sb.workspace("Acme", "alice@example.com");
    let keys = sb.keygen();
    let tokens: Vec<String> = (0..TOKENS)
        .map(|i| sb.token(&workspace, &format!("ci-{i}")))
        .collect();
    let key = DevKey::read_from(&keys).unwrap();
    let mut server = Server::start(&sb, &[("LEAKGUARD_OUTBOX_POLL_SECS", "0.2")]);
    server.wait_ready();

    let next = AtomicUsize::new(0);
    let answered = AtomicUsize::new(0);
    let acknowledged = Mutex::new(Vec::new());
    let refused = AtomicUsize::new(0);
    let url = server.url("/secret-scanning/github");
    let mut answered_at_signal = 0;
    std::thread::scope(|s| {
        for w in 0..WORKERS {
            let (next, answered, acknowledged, refused) =
                (&next, &answered, &acknowledged, &refused);
            let (tokens, key, url) = (&tokens, &key, &url);
            s.spawn(move || {
                // Half the senders reuse connections, half open one per alert.
                let mut builder = reqwest::blocking::Client::builder();
                if w % 2 == 1 {
                    builder = builder.pool_max_idle_per_host(0);
                }
                let client = builder.build().unwrap();
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= tokens.len() {
                        return;
                    }
                    let body = alert_body(&[&tokens[i]], TOKEN_TYPE, LOCATION, "commit");
                    let sent = client
                        .post(url)
                        .header("Content-Type", "application/json")
                        .header(KEY_ID_HEADER, key.identifier())
                        .header(SIGNATURE_HEADER, key.sign(&body))
                        .body(body)
                        .timeout(Duration::from_secs(40))
                        .send();
                    match sent {
                        Ok(res) if res.status().is_success() => {
                            // The body arrives in full before we count it.
                            let feedback: Value = res.json().unwrap();
                            assert_eq!(feedback[0]["label"], "true_positive");
                            acknowledged.lock().unwrap().push(i);
                            answered.fetch_add(1, Ordering::SeqCst);
                        }
                        // Refused, reset or 503: GitHub would retry later.
                        Ok(_) | Err(_) => {
                            refused.fetch_add(1, Ordering::SeqCst);
                            // Give the process time to go away.
                            std::thread::sleep(Duration::from_millis(20));
                        }
                    }
                }
            });
        }
        let streaming = wait_until(Duration::from_secs(60), || {
            answered.load(Ordering::SeqCst) >= SIGNAL_AFTER
        });
        assert!(streaming, "alerts were not being answered");
        answered_at_signal = answered.load(Ordering::SeqCst);
        server.signal("TERM");
    });
    assert!(
        answered_at_signal < TOKENS,
        "the signal came after the stream ended"
    );
    let status = wait_exit(&mut server.child, Duration::from_secs(60))
        .unwrap_or_else(|| panic!("no exit within 60 s of SIGTERM:\n{}", server.logs()));
    assert_eq!(status.code(), Some(0), "exit status\n{}", server.logs());

    let acknowledged = acknowledged.into_inner().unwrap();
    assert!(acknowledged.len() >= SIGNAL_AFTER);
    for i in &acknowledged {
        assert!(
            sb.is_revoked(&tokens[*i]),
            "alert {i} was answered 2xx but its token is not revoked"
        );
    }
    // Nothing is left claimed by the stopped worker: the next start (or
    // another replica) sends the rest at once.
    assert_eq!(
        sb.count(
            "SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL AND locked_by IS NOT NULL",
            &[]
        ),
        0
    );
    let logs = server.logs();
    assert!(logs.contains("shutdown signal received"), "{logs}");
    assert!(logs.contains("stopped"), "{logs}");
    eprintln!(
        "acknowledged {} of {TOKENS} alerts ({} at the signal), {} refused",
        acknowledged.len(),
        answered_at_signal,
        refused.load(Ordering::SeqCst)
    );
}

/// SIGINT (Ctrl-C) is a graceful stop too.
#[test]
#[cfg(unix)]
fn sigint_stops_gracefully_with_exit_0() {
    let mut sb = Sandbox::new();
    sb.keygen();
    let mut server = Server::start(&sb, &[]);
    server.signal("INT");
    let status = wait_exit(&mut server.child, Duration::from_secs(30))
        .unwrap_or_else(|| panic!("no exit after SIGINT:\n{}", server.logs()));
    assert_eq!(status.code(), Some(0), "{}", server.logs());
}

/// Each bad value stops start-up with exit 2 and one line naming the
/// setting, before anything is created.
#[test]
fn a_bad_setting_gives_exit_2_and_one_line_naming_it() {
    let sb = Sandbox::new();
    let missing = sb.path().join("missing.pem");
    let missing = missing.to_str().unwrap();
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("LEAKGUARD_BIND", "nowhere")], "LEAKGUARD_BIND"),
        (&[("LEAKGUARD_BIND", "127.0.0.1:99999")], "LEAKGUARD_BIND"),
        (&[("LEAKGUARD_LOG_FORMAT", "xml")], "LEAKGUARD_LOG_FORMAT"),
        (
            &[("LEAKGUARD_DATABASE_URL", "mysql://db/leakguard")],
            "LEAKGUARD_DATABASE_URL",
        ),
        (
            &[("LEAKGUARD_PUBLIC_URL", "ftp://example.com")],
            "LEAKGUARD_PUBLIC_URL",
        ),
        (
            &[("LEAKGUARD_GITHUB_KEYS_URL", "not a url")],
            "LEAKGUARD_GITHUB_KEYS_URL",
        ),
        (
            &[("LEAKGUARD_OUTBOX_POLL_SECS", "-1")],
            "LEAKGUARD_OUTBOX_POLL_SECS",
        ),
        (
            &[("LEAKGUARD_OUTBOX_LEASE_SECS", "1e300")],
            "LEAKGUARD_OUTBOX_LEASE_SECS",
        ),
        (
            &[("LEAKGUARD_OUTBOX_MAX_ATTEMPTS", "0")],
            "LEAKGUARD_OUTBOX_MAX_ATTEMPTS",
        ),
        (
            &[("LEAKGUARD_RATE_LIMIT_PER_SECOND", "fast")],
            "LEAKGUARD_RATE_LIMIT_PER_SECOND",
        ),
        (
            &[("LEAKGUARD_SMTP_URL", "http://mail:1025")],
            "LEAKGUARD_SMTP_URL",
        ),
        (
            &[("LEAKGUARD_MAIL_FROM", "not a mailbox")],
            "LEAKGUARD_MAIL_FROM",
        ),
        (&[("LEAKGUARD_TLS_CERT", "cert.pem")], "LEAKGUARD_TLS_CERT"),
        (
            &[("LEAKGUARD_DATABSE_URL", "sqlite://x.db")],
            "LEAKGUARD_DATABSE_URL",
        ),
        (&[("LEAKGUARD_CONFIG", missing)], "LEAKGUARD_CONFIG"),
    ];
    for (env, name) in cases {
        // A clean sandbox: the database must not even be created.
        let mut vars: Vec<(&str, &str)> = env.to_vec();
        vars.push(("LEAKGUARD_DATABASE_URL", "sqlite://never-created.db"));
        if env.iter().any(|(k, _)| *k == "LEAKGUARD_DATABASE_URL") {
            vars.pop();
        }
        for command in [&["serve"][..], &["migrate"][..]] {
            let done = sb.run_with(command, &vars);
            assert_eq!(
                done.code,
                Some(2),
                "{command:?} with {env:?}: exit {:?}\n{}",
                done.code,
                done.stderr
            );
            let lines: Vec<&str> = done.stderr.lines().filter(|l| !l.is_empty()).collect();
            assert_eq!(lines.len(), 1, "{env:?}: one line, got {lines:?}");
            assert!(
                lines[0].starts_with(&format!("error: {name}")),
                "{env:?}: the line must name {name}: {:?}",
                lines[0]
            );
            assert!(done.stdout.is_empty(), "{}", done.stdout);
        }
        assert!(
            !sb.path().join("never-created.db").exists(),
            "{env:?}: the database was created before validation"
        );
    }

    // Certificate files are checked before serving (migrate needs none).
    let (cert, _, _) = self_signed(&sb);
    let garbage = sb.path().join("garbage.pem");
    std::fs::write(&garbage, "not a PEM file\n").unwrap();
    let (cert, garbage) = (cert.to_str().unwrap(), garbage.to_str().unwrap());
    for (tls_cert, tls_key, name) in [
        (missing, missing, "LEAKGUARD_TLS_CERT"),
        (garbage, garbage, "LEAKGUARD_TLS_CERT"),
        (cert, missing, "LEAKGUARD_TLS_KEY"),
        (cert, garbage, "LEAKGUARD_TLS_KEY"),
    ] {
        let done = sb.run_with(
            &["serve"],
            &[
                ("LEAKGUARD_TLS_CERT", tls_cert),
                ("LEAKGUARD_TLS_KEY", tls_key),
                ("LEAKGUARD_DATABASE_URL", "sqlite://never-created.db"),
            ],
        );
        assert_eq!(done.code, Some(2), "{tls_cert} {tls_key}: {}", done.stderr);
        let lines: Vec<&str> = done.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].starts_with(&format!("error: {name}")), "{lines:?}");
        assert!(!sb.path().join("never-created.db").exists());
    }

    // Every bad value is reported, one line each.
    let done = sb.run_with(
        &["serve"],
        &[
            ("LEAKGUARD_BIND", "nowhere"),
            ("LEAKGUARD_LOG_FORMAT", "xml"),
            ("LEAKGUARD_OUTBOX_POLL_SECS", "0"),
        ],
    );
    assert_eq!(done.code, Some(2));
    let lines: Vec<&str> = done.stderr.lines().collect();
    assert_eq!(lines.len(), 3, "{lines:?}");

    // The same check applies to a settings file.
    let file = sb.path().join("leakguard.toml");
    std::fs::write(&file, "bind = \"nowhere\"\n").unwrap();
    let done = sb.run_with(&["serve", "--config", file.to_str().unwrap()], &[]);
    assert_eq!(done.code, Some(2), "{}", done.stderr);
    assert!(
        done.stderr.starts_with("error: LEAKGUARD_BIND"),
        "{}",
        done.stderr
    );
}

/// A failure that is not a setting (here: the port is taken) is exit 1.
#[test]
fn a_runtime_failure_gives_exit_1() {
    let sb = Sandbox::new();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let bind = taken.local_addr().unwrap().to_string();
    let done = sb.run_with(&["serve"], &[("LEAKGUARD_BIND", &bind)]);
    assert_eq!(done.code, Some(1), "{}", done.stderr);
    assert!(done.stderr.contains("cannot listen"), "{}", done.stderr);

    // A database that does not answer: named, without its password.
    let closed = free_port();
    let url = format!("postgres://leakguard:hunter2@127.0.0.1:{closed}/leakguard");
    let done = sb.run_with(&["serve"], &[("LEAKGUARD_DATABASE_URL", &url)]);
    assert_eq!(done.code, Some(1), "{}", done.stderr);
    assert!(
        done.stderr.contains("cannot open the database")
            && done.stderr.contains(&format!("127.0.0.1:{closed}")),
        "{}",
        done.stderr
    );
    assert!(!done.stderr.contains("hunter2"), "{}", done.stderr);
}

/// A RUST_LOG that is not `level` / `target=level` directives is named in
/// a warning, and the command runs with the default levels.
#[test]
fn a_rust_log_that_does_not_parse_is_reported_not_ignored() {
    let sb = Sandbox::new();
    let done = sb.run_with(
        &[
            "workspace",
            "create",
            "--name",
            "Acme",
            "--owner-email",
            "a@example.com",
        ],
        &[("RUST_LOG", "info,leakguard=loud")],
    );
    assert_eq!(done.code, Some(0), "{}", done.stderr);
    assert!(
        done.stderr
            .contains("RUST_LOG=\"info,leakguard=loud\" is not")
            && done
                .stderr
                .contains("using info,sqlx=warn,actix_server=warn"),
        "{}",
        done.stderr
    );
    let done = sb.run_with(
        &[
            "workspace",
            "create",
            "--name",
            "Beta",
            "--owner-email",
            "b@example.com",
        ],
        &[("RUST_LOG", "warn,leakguard=info")],
    );
    assert_eq!(done.code, Some(0), "{}", done.stderr);
    assert!(!done.stderr.contains("RUST_LOG"), "{}", done.stderr);
}

/// `/metrics` counts what happened: a processed alert, a forged one, the
/// revocation, the email, and the HTTP requests by route.
#[test]
fn metrics_count_alerts_revocations_emails_and_requests() {
    let mut sb = Sandbox::new();
    let (_, token) = sb.workspace("Acme", "alice@example.com");
    let keys = sb.keygen();
    let server = Server::start(&sb, &[("LEAKGUARD_OUTBOX_POLL_SECS", "0.2")]);
    server.wait_ready();

    let before = server.metrics();
    assert_eq!(
        sample(&before, "leakguard_tokens_revoked_total", &[]),
        Some(0.0)
    );
    assert_eq!(
        sample(
            &before,
            "leakguard_github_key_fetches_total",
            &[("result", "success")]
        ),
        Some(1.0)
    );
    assert!(sample(&before, "leakguard_github_key_set_age_seconds", &[]).is_some());
    assert!(sample(&before, "leakguard_db_connections_in_use", &[]).is_some());

    sb.run(&[
        "alert",
        "simulate",
        "--url",
        &server.url("/secret-scanning/github"),
        "--key",
        keys.to_str().unwrap(),
        "--token",
        &token,
        "--token",
        "sgp_not_ours",
    ])
    .expect_success("alert simulate");
    // A forged alert: signed by the right key over other bytes.
    let key = DevKey::read_from(&keys).unwrap();
    let res = server
        .client
        .post(server.url("/secret-scanning/github"))
        .header(KEY_ID_HEADER, key.identifier())
        .header(SIGNATURE_HEADER, key.sign(b"[]"))
        .body(alert_body(&[&token], TOKEN_TYPE, LOCATION, "commit"))
        .send()
        .unwrap();
    assert_eq!(res.status(), 401);

    // The worker refreshes the outbox gauges after each batch.
    let sent = wait_until(Duration::from_secs(20), || {
        let m = server.metrics();
        sample(&m, "leakguard_outbox_sent_total", &[]) == Some(1.0)
            && sample(&m, "leakguard_outbox_due_messages", &[]) == Some(0.0)
    });
    assert!(
        sent,
        "outbox_sent_total never reached 1:\n{}",
        server.logs()
    );
    let m = server.metrics();
    let expect = |name: &str, labels: &[(&str, &str)], value: f64| {
        assert_eq!(
            sample(&m, name, labels),
            Some(value),
            "{name}{labels:?} in\n{m}"
        );
    };
    expect("leakguard_alerts_total", &[("outcome", "processed")], 1.0);
    expect(
        "leakguard_alerts_total",
        &[("outcome", "bad_signature")],
        1.0,
    );
    expect(
        "leakguard_tokens_reported_total",
        &[("label", "true_positive")],
        1.0,
    );
    expect(
        "leakguard_tokens_reported_total",
        &[("label", "false_positive")],
        1.0,
    );
    expect("leakguard_tokens_revoked_total", &[], 1.0);
    expect("leakguard_outbox_queued_total", &[], 1.0);
    expect("leakguard_outbox_sent_total", &[], 1.0);
    expect("leakguard_outbox_due_messages", &[], 0.0);
    expect(
        "leakguard_http_requests_total",
        &[
            ("route", "/secret-scanning/github"),
            ("method", "POST"),
            ("status", "200"),
        ],
        1.0,
    );
    expect(
        "leakguard_http_requests_total",
        &[
            ("route", "/secret-scanning/github"),
            ("method", "POST"),
            ("status", "401"),
        ],
        1.0,
    );
    expect(
        "leakguard_http_request_duration_seconds_count",
        &[("route", "/secret-scanning/github"), ("status", "200")],
        1.0,
    );
    expect("leakguard_alert_duration_seconds_count", &[], 2.0);
    assert!(
        sample(
            &m,
            "leakguard_http_requests_total",
            &[("route", "/metrics"), ("status", "200")]
        )
        .is_some_and(|n| n >= 2.0),
        "{m}"
    );
}

/// JSON logs: every line is a JSON object; the lines of a request carry its
/// id, which is the `X-Request-Id` the client got; no line holds a token, a
/// token-hash prefix or an owner's full email address.
#[test]
fn json_logs_carry_request_ids_and_no_secrets() {
    let mut sb = Sandbox::new();
    sb.set("LEAKGUARD_LOG_FORMAT", "json");
    let owner = "alice.owner@example.com";
    let (workspace, owner_token) = sb.workspace("Acme", owner);
    let (leaked, leaked_id) = sb.token_and_id(&workspace, "ci");
    let keys = sb.keygen();
    let key = DevKey::read_from(&keys).unwrap();
    let mut server = Server::start(&sb, &[("LEAKGUARD_OUTBOX_POLL_SECS", "0.2")]);
    server.wait_ready();

    let mut ids = BTreeSet::new();
    let mut remember = |res: &reqwest::blocking::Response| {
        let id = res.headers()["x-request-id"].to_str().unwrap().to_string();
        assert!(!id.is_empty());
        ids.insert(id);
    };
    let res = server.get("/", &leaked);
    assert_eq!(res.status(), 200);
    remember(&res);
    let res = server.alert(&key, &[&leaked, "sgp_unknown"]);
    assert_eq!(res.status(), 200);
    remember(&res);
    let res = server.get("/", &leaked);
    assert_eq!(res.status(), 401);
    remember(&res);
    let res = server.get("/tokens", &owner_token);
    assert_eq!(res.status(), 200);
    remember(&res);
    // A token with a bad checksum, and a forged alert.
    let mut bad = leaked.clone();
    bad.replace_range(10..11, if &leaked[10..11] == "A" { "B" } else { "A" });
    remember(&server.get("/", &bad));
    let res = server
        .client
        .post(server.url("/secret-scanning/github"))
        .header(KEY_ID_HEADER, key.identifier())
        .header(SIGNATURE_HEADER, key.sign(b"other bytes"))
        .body(alert_body(&[&leaked], TOKEN_TYPE, LOCATION, "commit"))
        .send()
        .unwrap();
    assert_eq!(res.status(), 401);
    remember(&res);
    assert!(
        wait_until(Duration::from_secs(20), || !sb
            .mail_files(Path::new("mail"))
            .is_empty()),
        "no email sent:\n{}",
        server.logs()
    );
    assert!(server.terminate(Duration::from_secs(30)).success());
    let logs = server.logs();

    let forbidden: Vec<String> = [&leaked, &owner_token, &bad]
        .iter()
        .flat_map(|t| {
            [
                t.to_string(),
                // The secret part alone, and any 8+ prefix of the hash.
                t[4..].to_string(),
                sha256_hex(t.as_bytes())[..8].to_string(),
            ]
        })
        .chain([owner.to_string()])
        .collect();
    let mut seen = BTreeSet::new();
    let mut lines = 0;
    for line in logs.lines().filter(|l| !l.trim().is_empty()) {
        lines += 1;
        let value: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        assert!(value.is_object(), "{line}");
        assert!(
            value["level"].is_string() && value["timestamp"].is_string(),
            "{line}"
        );
        for secret in &forbidden {
            assert!(
                !line.contains(secret.as_str()),
                "{secret:?} leaked into: {line}"
            );
        }
        if value["span"]["name"] == "HTTP request" {
            let id = value["span"]["request_id"]
                .as_str()
                .unwrap_or_else(|| panic!("a request line without request_id: {line}"));
            seen.insert(id.to_string());
        }
    }
    assert!(lines > 5, "too few log lines:\n{logs}");
    for id in &ids {
        assert!(
            seen.contains(id),
            "no log line carries request id {id}:\n{logs}"
        );
    }
    // The alert line says what happened, by token id, without the token.
    let alert_line: Value = logs
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|v| v["message"] == "alert processed")
        .unwrap_or_else(|| panic!("no 'alert processed' line:\n{logs}"));
    assert_eq!(alert_line["token_ids"], leaked_id.as_str(), "{alert_line}");
    assert_eq!(alert_line["revoked"], 1, "{alert_line}");
    assert!(logs.contains("a***@example.com"), "{logs}");
}

/// After a full run (tokens issued by the CLI and the API, used, listed,
/// revoked by an owner and by a GitHub alert, emails sent), no issued token
/// appears in the database files, the server's logs at debug level, the
/// emails, or any HTTP answer but the one that created it. One exception,
/// by GitHub's protocol: the answer to a signed alert labels the tokens that
/// alert itself sent (`token_raw`), after revoking them.
#[test]
fn no_issued_token_appears_anywhere_but_in_its_creating_answer() {
    let mut sb = Sandbox::new();
    sb.set("LEAKGUARD_LOG_FORMAT", "json");
    sb.set("RUST_LOG", "debug");
    let (workspace, owner_token) = sb.workspace("Acme", "alice@example.com");
    let (cli_token, _) = sb.token_and_id(&workspace, "ci");
    let key = DevKey::read_from(&sb.keygen()).unwrap();
    let mut server = Server::start(&sb, &[("LEAKGUARD_OUTBOX_POLL_SECS", "0.2")]);
    server.wait_ready();

    // Every answer but the creating ones, as status, headers and body.
    let mut answers: Vec<String> = Vec::new();
    let mut keep = |what: &str, res: reqwest::blocking::Response| -> Value {
        let head = format!("{what} {} {:?}", res.status(), res.headers());
        let body = res.text().unwrap();
        answers.push(format!("{head}\n{body}"));
        serde_json::from_str(&body).unwrap_or(Value::Null)
    };
    let send = |method: &str, path: &str, token: &str, body: Option<Value>| {
        let mut request = server
            .client
            .request(method.parse().unwrap(), server.url(path))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().unwrap()
    };
    let mint = |name: &str, role: &str| {
        let res = send(
            "POST",
            "/tokens",
            &owner_token,
            Some(serde_json::json!({ "name": name, "role": role })),
        );
        assert_eq!(res.status(), 201);
        let body: Value = res.json().unwrap();
        (
            body["data"]["secret"].as_str().unwrap().to_string(),
            body["data"]["token"]["id"].as_str().unwrap().to_string(),
        )
    };
    let (member, member_id) = mint("member", "member");
    let (doomed, doomed_id) = mint("doomed", "read_only");
    let issued = [&owner_token, &cli_token, &member, &doomed];

    for token in issued {
        keep("GET /", send("GET", "/", token, None));
    }
    let source = keep(
        "POST /sources",
        send(
            "POST",
            "/sources",
            &member,
            Some(serde_json::json!({
                "slug": "web", "enabled": true,
                "metadataId": leakguard::api::catalog::SOURCES[0].id,
                "settings": { "apiKey": "not-a-token" }
            })),
        ),
    );
    assert!(source["data"]["source"]["id"].is_string(), "{source}");
    keep("GET /tokens", send("GET", "/tokens", &owner_token, None));
    keep(
        "GET /tokens/{id}",
        send("GET", &format!("/tokens/{member_id}"), &owner_token, None),
    );
    keep(
        "DELETE /tokens/{id}",
        send(
            "DELETE",
            &format!("/tokens/{doomed_id}"),
            &owner_token,
            None,
        ),
    );
    keep("GET / revoked", send("GET", "/", &doomed, None));
    let mut bad = member.clone();
    bad.replace_range(10..11, if &member[10..11] == "A" { "B" } else { "A" });
    keep("GET / bad checksum", send("GET", "/", &bad, None));

    // GitHub reports the CLI token (and something that is not ours).
    let res = server.alert(&key, &[&cli_token, "sgp_not_ours"]);
    assert_eq!(res.status(), 200);
    let feedback: Vec<Value> = res.json().unwrap();
    for entry in &feedback {
        if entry["token_raw"].is_string() {
            assert_eq!(
                entry["token_raw"],
                cli_token.as_str(),
                "only what the alert sent"
            );
        }
    }
    keep("GET / after the leak", send("GET", "/", &cli_token, None));
    keep(
        "GET /audit-events",
        send("GET", "/audit-events", &owner_token, None),
    );
    keep(
        "GET /metrics",
        server.client.get(server.url("/metrics")).send().unwrap(),
    );
    assert!(
        wait_until(Duration::from_secs(20), || !sb
            .mail_files(Path::new("mail"))
            .is_empty()),
        "no email sent:\n{}",
        server.logs()
    );
    assert!(server.terminate(Duration::from_secs(30)).success());
    assert!(sb.is_revoked(&cli_token) && sb.is_revoked(&doomed));

    // Where a token must not be: every database file or, on PostgreSQL,
    // every row as text; the server's output; the emails; the answers.
    let mut places: Vec<(String, Vec<u8>)> = Vec::new();
    for entry in std::fs::read_dir(sb.path()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name.starts_with("leakguard.db") || name.starts_with("serve-") {
            places.push((name, std::fs::read(&path).unwrap()));
        }
    }
    if support::is_postgres() {
        places.push((
            "PostgreSQL rows".into(),
            postgres_rows_as_text(&sb.database_url()),
        ));
    } else {
        assert!(
            places.iter().any(|(n, _)| n == "leakguard.db"),
            "no database file"
        );
    }
    assert!(
        places.iter().any(|(n, _)| n.starts_with("serve-")),
        "no server output"
    );
    for mail in sb.mail_files(Path::new("mail")) {
        places.push((mail.display().to_string(), std::fs::read(&mail).unwrap()));
    }
    for (i, answer) in answers.iter().enumerate() {
        places.push((format!("answer {i}"), answer.clone().into_bytes()));
    }
    let logs = server.logs();
    assert!(logs.lines().count() > 20, "debug logs expected:\n{logs}");
    for token in issued {
        // The whole token, and its secret part alone.
        for needle in [token.as_str(), &token[4..]] {
            for (place, bytes) in &places {
                assert!(
                    !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                    "a token (…{}) is in {place}",
                    &token[token.len() - 4..]
                );
            }
        }
    }
}

/// Every row of every table, as PostgreSQL prints it.
fn postgres_rows_as_text(url: &str) -> Vec<u8> {
    runtime().block_on(async {
        use sqlx::Row;
        let db = crate::support::raw_pool(url).await;
        let tables: Vec<String> =
            sqlx::query("SELECT tablename::text FROM pg_tables WHERE schemaname = 'public'")
                .fetch_all(&db)
                .await
                .unwrap()
                .iter()
                .map(|r| r.get(0))
                .collect();
        let mut out = Vec::new();
        for table in tables {
            for row in sqlx::query(&format!("SELECT t::text FROM {table} t"))
                .fetch_all(&db)
                .await
                .unwrap()
            {
                out.extend(row.get::<String, _>(0).into_bytes());
                out.push(b'\n');
            }
        }
        db.close().await;
        out
    })
}

/// Migrations started by several replicas at once apply once and all
/// succeed (PostgreSQL: sqlx's advisory lock).
#[test]
fn concurrent_migrations_from_several_replicas_succeed() {
    let sb = Sandbox::new();
    let children: Vec<(Child, PathBuf)> = (0..4)
        .map(|_| {
            let (out, err) = sb.output_files("migrate");
            let child = sb
                .command(&["migrate"], &[])
                .stdout(std::fs::File::create(out).unwrap())
                .stderr(std::fs::File::create(&err).unwrap())
                .spawn()
                .unwrap();
            (child, err)
        })
        .collect();
    for (mut child, err) in children {
        let status = wait_exit(&mut child, Duration::from_secs(60)).expect("migrate finishes");
        assert_eq!(
            status.code(),
            Some(0),
            "{}",
            std::fs::read_to_string(err).unwrap()
        );
    }
    let dir = if support::is_postgres() {
        "postgres"
    } else {
        "sqlite"
    };
    let files = std::fs::read_dir(format!("{}/migrations/{dir}", env!("CARGO_MANIFEST_DIR")))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "sql")
        })
        .count() as i64;
    assert_eq!(
        sb.count("SELECT COUNT(*) FROM _sqlx_migrations WHERE success", &[]),
        files
    );
}

// ---------------------------------------------------------------- TLS

/// A self-signed certificate for `localhost` in the sandbox; returns
/// (cert path, key path, cert PEM).
fn self_signed(sb: &Sandbox) -> (PathBuf, PathBuf, String) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert_pem = certified.cert.pem();
    let cert = sb.path().join("cert.pem");
    let key = sb.path().join("key.pem");
    std::fs::write(&cert, &cert_pem).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    (cert, key, cert_pem)
}

/// A rustls client trusting `cert_pem`, resolving `localhost` to
/// 127.0.0.1 itself (never through the system resolver).
fn tls_client(cert_pem: &str, port: u16) -> reqwest::blocking::ClientBuilder {
    reqwest::blocking::Client::builder()
        .use_rustls_tls()
        .https_only(true)
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap())
        .resolve("localhost", ([127, 0, 0, 1], port).into())
}

/// A minimal ClientHello offering exactly `version` (no supported_versions
/// extension, so TLS 1.3 is not on the table).
fn client_hello(version: [u8; 2], suites: &[u16]) -> Vec<u8> {
    fn extension(out: &mut Vec<u8>, kind: u16, data: &[u8]) {
        out.extend_from_slice(&kind.to_be_bytes());
        out.extend_from_slice(&(data.len() as u16).to_be_bytes());
        out.extend_from_slice(data);
    }
    let mut hello = Vec::new();
    hello.extend_from_slice(&version);
    hello.extend_from_slice(&[0x42; 32]); // random
    hello.push(0); // no session id
    hello.extend_from_slice(&((suites.len() * 2) as u16).to_be_bytes());
    for suite in suites {
        hello.extend_from_slice(&suite.to_be_bytes());
    }
    hello.extend_from_slice(&[1, 0]); // compression: null only
    let mut ext = Vec::new();
    let name = b"localhost";
    let mut sni = Vec::new();
    sni.extend_from_slice(&((name.len() + 3) as u16).to_be_bytes());
    sni.push(0);
    sni.extend_from_slice(&(name.len() as u16).to_be_bytes());
    sni.extend_from_slice(name);
    extension(&mut ext, 0x0000, &sni); // server_name
    extension(&mut ext, 0x000a, &[0, 4, 0x00, 0x1d, 0x00, 0x17]); // x25519, P-256
    extension(&mut ext, 0x000b, &[1, 0]); // uncompressed points
    extension(
        &mut ext,
        0x000d,
        &[0, 6, 0x04, 0x03, 0x08, 0x04, 0x04, 0x01],
    ); // sigalgs
    extension(&mut ext, 0x0017, &[]); // extended master secret
    extension(&mut ext, 0xff01, &[0]); // renegotiation_info
    hello.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    hello.extend_from_slice(&ext);

    let mut handshake = vec![0x01]; // ClientHello
    handshake.extend_from_slice(&(hello.len() as u32).to_be_bytes()[1..]);
    handshake.extend_from_slice(&hello);
    let mut record = vec![0x16, 0x03, 0x01]; // handshake record, TLS 1.0 framing
    record.extend_from_slice(&(handshake.len() as u16).to_be_bytes());
    record.extend_from_slice(&handshake);
    record
}

/// Sends a hand-made ClientHello; returns what the server answered first
/// (up to 16 bytes; empty when it just closed).
fn first_answer(port: u16, hello: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(hello).unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 16];
    while answer.len() < 6 {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("no answer to the ClientHello: {e}"),
        }
    }
    answer
}

/// Built-in TLS: rustls clients complete TLS 1.2 and 1.3 handshakes on a
/// generated certificate; a TLS 1.1 ClientHello is refused with an alert
/// and never gets a ServerHello; plain HTTP gets nothing useful.
#[test]
fn tls_serves_1_2_and_1_3_and_refuses_1_1() {
    let mut sb = Sandbox::new();
    sb.keygen();
    let (cert, key, cert_pem) = self_signed(&sb);
    let client = |port: u16, version: Option<reqwest::tls::Version>| {
        let mut b = tls_client(&cert_pem, port);
        if let Some(v) = version {
            b = b.min_tls_version(v).max_tls_version(v);
        }
        b.build().unwrap()
    };
    let server = Server::launch(
        &sb,
        &[
            ("LEAKGUARD_TLS_CERT", cert.to_str().unwrap()),
            ("LEAKGUARD_TLS_KEY", key.to_str().unwrap()),
        ],
        "https",
        &|port| client(port, None),
    );
    assert!(server.logs().contains("https://"), "{}", server.logs());
    for version in [
        reqwest::tls::Version::TLS_1_2,
        reqwest::tls::Version::TLS_1_3,
    ] {
        let client = client(server.port, Some(version));
        let res = client.get(server.url("/healthz")).send().unwrap();
        assert_eq!(res.status(), 200, "{version:?}");
        let body: Value = res.json().unwrap();
        assert_eq!(body["status"], "ok");
    }
    // A client that does not trust the certificate fails the handshake.
    let untrusting = reqwest::blocking::Client::builder()
        .use_rustls_tls()
        .resolve("localhost", ([127, 0, 0, 1], server.port).into())
        .build()
        .unwrap();
    assert!(untrusting.get(server.url("/healthz")).send().is_err());

    // The hand-made hello works at all: TLS 1.2 gets a ServerHello.
    let tls12 = client_hello([3, 3], &[0xc02b, 0xc02f, 0xc009, 0xc013, 0x002f]);
    let answer = first_answer(server.port, &tls12);
    assert!(
        answer.len() >= 6 && answer[0] == 0x16 && answer[5] == 0x02,
        "TLS 1.2 ClientHello: expected a ServerHello, got {answer:02x?}"
    );
    // TLS 1.1: an alert (protocol_version) or a close, never a ServerHello.
    let tls11 = client_hello([3, 2], &[0xc009, 0xc013, 0x002f, 0x0035]);
    let answer = first_answer(server.port, &tls11);
    assert!(
        answer.is_empty() || answer[0] == 0x15,
        "TLS 1.1 ClientHello: expected an alert or a close, got {answer:02x?}"
    );
    if answer.len() >= 7 {
        assert_eq!(answer[6], 70, "alert description: protocol_version");
    }
    // A real client too, where openssl is installed and can still offer
    // TLS 1.1: refused with an alert, while its TLS 1.2 handshake works.
    let s_client = |version: &str| {
        Command::new("openssl")
            .args(["s_client", "-connect"])
            .arg(format!("127.0.0.1:{}", server.port))
            .args([version, "-servername", "localhost"])
            .args(["-cipher", "DEFAULT@SECLEVEL=0"])
            .stdin(Stdio::null())
            .output()
            .ok()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr)
            })
    };
    if let (Some(old), Some(current)) = (s_client("-tls1_1"), s_client("-tls1_2")) {
        if !old.contains("no protocols available") && !old.contains("unknown option") {
            assert!(
                current.contains("Protocol  : TLSv1.2") && !current.contains("Cipher is (NONE)"),
                "openssl TLS 1.2:\n{current}"
            );
            assert!(old.contains("Cipher is (NONE)"), "openssl TLS 1.1:\n{old}");
            assert!(old.contains("alert"), "openssl TLS 1.1:\n{old}");
        }
    }
    // Plain HTTP on the TLS port gets no HTTP answer.
    let plain = reqwest::blocking::Client::new()
        .get(format!("http://127.0.0.1:{}/healthz", server.port))
        .timeout(Duration::from_secs(10))
        .send();
    assert!(plain.is_err() || plain.unwrap().status() != 200);
}

/// Issue 17, finding 5. `DELETE /sources/{id}/writekey/{writeKey}` puts a
/// live write key in the request target, which the request's log span
/// recorded (`http.target`) on every line of the request. Every log line
/// now has `[redacted]` in its place; and a token sent in a query string,
/// where it never belongs, is redacted as well. Checked over the JSON logs
/// of a whole run at debug level, actix's own lines included.
#[test]
fn write_keys_and_misplaced_tokens_never_reach_the_logs() {
    let mut sb = Sandbox::new();
    sb.set("LEAKGUARD_LOG_FORMAT", "json");
    sb.set("RUST_LOG", "debug");
    let (_, owner) = sb.workspace("Acme", "alice@example.com");
    sb.keygen();
    let mut server = Server::start(&sb, &[]);
    server.wait_ready();
    let send = |method: reqwest::Method, path: &str, body: Option<Value>| {
        let mut request = server
            .client
            .request(method, server.url(path))
            .bearer_auth(&owner)
            .timeout(Duration::from_secs(20));
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().unwrap()
    };
    let res = send(
        reqwest::Method::POST,
        "/sources",
        Some(serde_json::json!({ "slug": "web", "enabled": true, "metadataId": "kVr3mQ8cTn" })),
    );
    assert_eq!(res.status(), 201);
    let source: Value = res.json().unwrap();
    let id = source["data"]["source"]["id"].as_str().unwrap().to_string();
    let res = send(
        reqwest::Method::POST,
        &format!("/sources/{id}/writekey"),
        None,
    );
    assert_eq!(res.status(), 201);
    let keys: Vec<String> = res.json::<Value>().unwrap()["data"]["source"]["writeKeys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    assert_eq!(keys.len(), 2);
    let res = send(
        reqwest::Method::DELETE,
        &format!("/sources/{id}/writekey/{}", keys[1]),
        None,
    );
    assert_eq!(res.status(), 200);
    // One the source does not have (a 404, logged at info), and one that
    // was just removed.
    let unknown = format!("{}Zz", &keys[0][..keys[0].len() - 2]);
    for key in [&unknown, &keys[1]] {
        let res = send(
            reqwest::Method::DELETE,
            &format!("/sources/{id}/writekey/{key}"),
            None,
        );
        assert_eq!(res.status(), 404);
    }
    let res = send(
        reqwest::Method::GET,
        &format!("/?access_token={owner}"),
        None,
    );
    assert_eq!(res.status(), 200);
    assert!(server.terminate(Duration::from_secs(30)).success());
    let logs = server.logs();

    for secret in [
        &keys[0],
        &keys[1],
        &unknown,
        &owner,
        &owner[4..].to_string(),
    ] {
        for line in logs.lines() {
            assert!(
                !line.contains(secret.as_str()),
                "{secret:?} leaked into: {line}"
            );
        }
    }
    let targets: BTreeSet<String> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["span"]["http.target"].as_str().map(str::to_string))
        .collect();
    assert!(
        targets.contains(&format!("/sources/{id}/writekey/[redacted]")),
        "{targets:?}"
    );
    assert!(targets.contains("/?access_token=[redacted]"), "{targets:?}");
    assert!(
        targets.contains(&format!("/sources/{id}/writekey")),
        "{targets:?}"
    );
}
