//! Through the real `leakguard` binary, as an operator runs it: a process of
//! its own per test, its own temporary directory, its own port and its own
//! database (PostgreSQL when LEAKGUARD_TEST_DATABASE_URL is set). Every wait
//! is bounded; nothing talks to anything but 127.0.0.1. The tests are in
//! one module per subject; this one holds the harness for the binary.

use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::time::Duration;

use leakguard::scanning::simulate::{alert_body, DevKey};
use leakguard::scanning::{KEY_ID_HEADER, SIGNATURE_HEADER};
use leakguard::token::{sha256_hex, TOKEN_TYPE};
use test_support::process::{self, free_port, wait_exit, wait_until};

const BIN: &str = env!("CARGO_BIN_EXE_leakguard");
pub(crate) const LOCATION: &str = "https://github.com/octo/repo/blob/main/.env";

mod audit_checkpoints;
mod metrics_and_logs;
mod migrations;
mod quick_start;
mod secrets;
mod signals_and_exit_codes;
mod tls;

/// test_support's sandbox for the `leakguard` binary, with the commands
/// that set an operator's machine up.
pub(crate) struct Sandbox(process::Sandbox);

impl Deref for Sandbox {
    type Target = process::Sandbox;

    fn deref(&self) -> &process::Sandbox {
        &self.0
    }
}

impl DerefMut for Sandbox {
    fn deref_mut(&mut self) -> &mut process::Sandbox {
        &mut self.0
    }
}

impl Sandbox {
    pub(crate) fn new() -> Sandbox {
        Sandbox(process::Sandbox::new(BIN))
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
