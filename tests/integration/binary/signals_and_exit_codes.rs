//! How the binary stops: SIGTERM and SIGINT drain and exit 0; a bad
//! setting is exit 2 with one line naming it; any other failure is exit 1.

use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use leakguard::scanning::simulate::{alert_body, DevKey};
use leakguard::scanning::{KEY_ID_HEADER, SIGNATURE_HEADER};
use leakguard::token::TOKEN_TYPE;
use serde_json::Value;
use test_support::process::{free_port, wait_exit, wait_until};

use super::tls::self_signed;
use super::{Sandbox, Server, LOCATION};

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
