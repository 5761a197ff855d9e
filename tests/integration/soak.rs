//! The soak: 60 s of mixed alerts and Public API calls from this process
//! against the real binary on loopback, while a sampler reads the server's
//! memory (VmRSS) and open files (/proc/PID/fd) every second. It stops by
//! itself. Slow, so it is ignored by `cargo test`; `.ci/run` runs it once,
//! on PostgreSQL, the production backend:
//!
//! ```sh
//! LEAKGUARD_TEST_DATABASE_URL=postgres://… cargo test --test integration soak -- --ignored --nocapture
//! ```

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use leakguard::scanning::simulate::{alert_body, DevKey};
use leakguard::scanning::{KEY_ID_HEADER, SIGNATURE_HEADER};
use leakguard::token::TOKEN_TYPE;
use serde_json::{json, Value};

use crate::binary::{Sandbox, Server, LOCATION};
use test_support::process::wait_until;

const RUN: Duration = Duration::from_secs(60);
/// Connection pools, caches and the allocator settle in this time.
const WARM_UP: Duration = Duration::from_secs(15);
/// Memory and open files are compared between the first and the last
/// window of this length after the warm-up.
const WINDOW: Duration = Duration::from_secs(10);
/// Allowed growth of mean memory from the first to the last window.
const MEMORY_TOLERANCE: f64 = 0.10;
const SENDERS: usize = 4;

/// One request of the mix: what was sent and what it got, when that was
/// not what it should have got.
struct Failure(String);

struct Client<'a> {
    http: reqwest::blocking::Client,
    server: &'a Server,
    owner: &'a str,
    key: &'a DevKey,
}

impl Client<'_> {
    fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
        expected: u16,
    ) -> Result<Value, Failure> {
        let mut request = self
            .http
            .request(method.clone(), self.server.url(path))
            .bearer_auth(token)
            .timeout(Duration::from_secs(30));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let what = format!("{method} {path}");
        let res = request
            .send()
            .map_err(|e| Failure(format!("{what}: {e}")))?;
        let status = res.status().as_u16();
        let body: Value = res.json().unwrap_or(Value::Null);
        if status != expected {
            return Err(Failure(format!(
                "{what}: {status} (wanted {expected}) {body}"
            )));
        }
        Ok(body)
    }

    fn alert(&self, tokens: &[&str]) -> Result<Vec<Value>, Failure> {
        let body = alert_body(tokens, TOKEN_TYPE, LOCATION, "commit");
        let res = self
            .http
            .post(self.server.url("/secret-scanning/github"))
            .header("Content-Type", "application/json")
            .header(KEY_ID_HEADER, self.key.identifier())
            .header(SIGNATURE_HEADER, self.key.sign(&body))
            .body(body)
            .timeout(Duration::from_secs(30))
            .send()
            .map_err(|e| Failure(format!("alert: {e}")))?;
        if res.status() != 200 {
            return Err(Failure(format!("alert: {}", res.status())));
        }
        res.json()
            .map_err(|e| Failure(format!("alert feedback: {e}")))
    }

    /// Mint a token, use it, have GitHub report it, see it refused.
    fn leak_cycle(&self, n: usize) -> Result<(), Failure> {
        use reqwest::Method;
        let minted = self.call(
            Method::POST,
            "/tokens",
            self.owner,
            Some(json!({ "name": format!("soak-{n}"), "role": "member" })),
            201,
        )?;
        let secret = minted["data"]["secret"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        self.call(Method::GET, "/", &secret, None, 200)?;
        let feedback = self.alert(&[&secret, "sgp_not_ours"])?;
        if feedback[0]["label"] != "true_positive" || feedback[1]["label"] != "false_positive" {
            return Err(Failure(format!("alert feedback: {feedback:?}")));
        }
        self.call(Method::GET, "/", &secret, None, 401)?;
        Ok(())
    }

    /// A source's life: create, read, change, list, delete.
    fn source_cycle(&self, n: usize) -> Result<(), Failure> {
        use reqwest::Method;
        let created = self.call(
            Method::POST,
            "/sources",
            self.owner,
            Some(
                // Stripe: a catalog source whose one option, `apiKey`, is a
                // password, so every read masks it.
                json!({ "slug": format!("soak-{n}"), "enabled": true, "metadataId": "LQoZWzkVqA",
                         "settings": { "apiKey": "k".repeat(64) } }),
            ),
            201,
        )?;
        let id = created["data"]["source"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let path = format!("/sources/{id}");
        self.call(Method::GET, &path, self.owner, None, 200)?;
        self.call(
            Method::PATCH,
            &path,
            self.owner,
            Some(json!({ "name": "renamed" })),
            200,
        )?;
        self.call(
            Method::GET,
            "/sources?pagination%5Bcount%5D=20",
            self.owner,
            None,
            200,
        )?;
        self.call(
            Method::GET,
            "/audit-events?pagination%5Bcount%5D=20",
            self.owner,
            None,
            200,
        )?;
        self.call(Method::DELETE, &path, self.owner, None, 200)?;
        Ok(())
    }
}

/// (seconds since start, VmRSS in KiB, open file descriptors other than
/// database connections, database connections)
type Sample = (f64, u64, usize, usize);

/// The database pool opens connections on demand up to its maximum (16 on
/// PostgreSQL), which is growth with a bound, not a leak: those sockets
/// (remote port `db_port`) are counted apart from every other open file.
fn sample(pid: u32, started: Instant, db_port: Option<u16>) -> Sample {
    let rss = test_support::process::vm_rss_kib(pid);
    let fds: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("/proc fd")
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .map(|target| target.display().to_string())
        .collect();
    let db_sockets: std::collections::HashSet<String> = match db_port {
        None => Default::default(),
        Some(port) => ["tcp", "tcp6"]
            .iter()
            .filter_map(|t| std::fs::read_to_string(format!("/proc/{pid}/net/{t}")).ok())
            .flat_map(|table| {
                table
                    .lines()
                    .skip(1)
                    .filter_map(|line| {
                        let fields: Vec<&str> = line.split_whitespace().collect();
                        let remote_port = fields.get(2)?.rsplit(':').next()?;
                        let inode = fields.get(9)?;
                        (u16::from_str_radix(remote_port, 16).ok()? == port)
                            .then(|| format!("socket:[{inode}]"))
                    })
                    .collect::<Vec<_>>()
            })
            .collect(),
    };
    let db = fds.iter().filter(|f| db_sockets.contains(*f)).count();
    (started.elapsed().as_secs_f64(), rss, fds.len() - db, db)
}

fn window(samples: &[Sample], from: Duration) -> Vec<Sample> {
    let (from, to) = (from.as_secs_f64(), (from + WINDOW).as_secs_f64());
    samples
        .iter()
        .filter(|(t, ..)| *t >= from && *t < to)
        .copied()
        .collect()
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let values: Vec<f64> = values.collect();
    values.iter().sum::<f64>() / values.len().max(1) as f64
}

#[test]
#[cfg(target_os = "linux")]
#[ignore = "a 60 s soak; .ci/run runs it on PostgreSQL"]
fn soak_60s_of_mixed_alerts_and_api_calls() {
    let mut sb = Sandbox::new();
    let (_, owner) = sb.workspace("Soak", "owner@example.com");
    let keys = sb.keygen();
    let key = DevKey::read_from(&keys).unwrap();
    let server = Server::start(
        &sb,
        &[
            // The soak measures the service, not the limiters (each leak
            // cycle ends with a revoked token's 401, a failed
            // authentication).
            ("LEAKGUARD_RATE_LIMIT_BURST", "1000000"),
            ("LEAKGUARD_RATE_LIMIT_PER_SECOND", "1000000"),
            ("LEAKGUARD_AUTH_FAILURE_BURST", "1000000"),
            ("LEAKGUARD_AUTH_FAILURE_PER_SECOND", "1000000"),
            ("LEAKGUARD_OUTBOX_POLL_SECS", "1"),
        ],
    );
    server.wait_ready();
    let pid = server.child.id();
    let db_port = test_support::db::is_postgres()
        .then(|| {
            url::Url::parse(&sb.database_url())
                .ok()?
                .port_or_known_default()
        })
        .flatten();

    let started = Instant::now();
    let stop = AtomicBool::new(false);
    let requests = AtomicUsize::new(0);
    let alerts = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::<String>::new());
    let samples = Mutex::new(Vec::<Sample>::new());
    std::thread::scope(|s| {
        s.spawn(|| {
            while started.elapsed() < RUN {
                samples.lock().unwrap().push(sample(pid, started, db_port));
                std::thread::sleep(Duration::from_secs(1));
            }
            stop.store(true, Ordering::SeqCst);
        });
        for sender in 0..SENDERS {
            let (stop, requests, alerts, failures) = (&stop, &requests, &alerts, &failures);
            let client = Client {
                http: reqwest::blocking::Client::new(),
                server: &server,
                owner: &owner,
                key: &key,
            };
            s.spawn(move || {
                let mut n = sender;
                while !stop.load(Ordering::SeqCst) {
                    let (result, calls) = if n % 2 == 0 {
                        alerts.fetch_add(1, Ordering::SeqCst);
                        (client.leak_cycle(n), 4)
                    } else {
                        (client.source_cycle(n), 6)
                    };
                    requests.fetch_add(calls, Ordering::SeqCst);
                    if let Err(Failure(what)) = result {
                        failures.lock().unwrap().push(what);
                    }
                    n += SENDERS;
                }
            });
        }
    });
    let elapsed = started.elapsed();

    // The mail of every alert goes out (as .eml files here).
    let drained = wait_until(Duration::from_secs(60), || {
        sb.count("SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL", &[]) == 0
    });
    let samples = samples.into_inner().unwrap();
    let first = window(&samples, WARM_UP);
    let last = window(&samples, RUN - WINDOW);
    let rss_first = mean(first.iter().map(|s| s.1 as f64)) / 1024.0;
    let rss_last = mean(last.iter().map(|s| s.1 as f64)) / 1024.0;
    // The floor of each window: a leaked file raises every later sample,
    // while an .eml file open at the moment of one sample raises only it.
    let fds_first = first.iter().map(|s| s.2).min().unwrap_or(0);
    let fds_last = last.iter().map(|s| s.2).min().unwrap_or(0);
    let fds_peak = samples.iter().map(|s| s.2).max().unwrap_or(0);
    let db_connections = samples.iter().map(|s| s.3).max().unwrap_or(0);
    let requests = requests.load(Ordering::SeqCst);
    let failures = failures.into_inner().unwrap();
    let revoked = sb.count(
        "SELECT COUNT(*) FROM tokens WHERE revoked_reason = 'github_secret_scanning'",
        &[],
    );
    eprintln!(
        "soak on {}: {:.0} s, {requests} requests ({:.0}/s), {} alerts, {revoked} tokens revoked, \
         {} failed; VmRSS {:.1} MiB (first window) -> {:.1} MiB (last window), \
         peak {:.1} MiB; open files (fewest in a window) {fds_first} -> {fds_last}, \
         peak {fds_peak}, plus at most {db_connections} database connections",
        if test_support::db::is_postgres() {
            "PostgreSQL"
        } else {
            "SQLite"
        },
        elapsed.as_secs_f64(),
        requests as f64 / elapsed.as_secs_f64(),
        alerts.load(Ordering::SeqCst),
        failures.len(),
        rss_first,
        rss_last,
        samples.iter().map(|s| s.1).max().unwrap_or(0) as f64 / 1024.0,
    );
    eprintln!("samples (s, VmRSS KiB, other fds, db connections): {samples:?}");

    assert!(
        failures.is_empty(),
        "{} failed requests: {:?}",
        failures.len(),
        &failures[..failures.len().min(10)]
    );
    assert!(
        first.len() >= 8 && last.len() >= 8,
        "too few samples: {samples:?}"
    );
    assert!(
        rss_last <= rss_first * (1.0 + MEMORY_TOLERANCE),
        "memory grew from {rss_first:.1} MiB to {rss_last:.1} MiB"
    );
    assert!(
        fds_last <= fds_first,
        "open files grew from {fds_first} to {fds_last}"
    );
    assert!(drained, "the outbox did not drain");
    assert_eq!(revoked as usize, alerts.load(Ordering::SeqCst));
    sb.run(&["audit", "verify"]).expect_success("audit verify");
}
