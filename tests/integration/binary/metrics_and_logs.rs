//! What the running binary reports: `/metrics`, JSON logs with request ids,
//! and a RUST_LOG that does not parse.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use leakguard::scanning::simulate::{alert_body, DevKey};
use leakguard::scanning::{KEY_ID_HEADER, SIGNATURE_HEADER};
use leakguard::token::{sha256_hex, TOKEN_TYPE};
use serde_json::Value;
use test_support::process::wait_until;

use super::{Sandbox, Server, LOCATION};

/// Reads one sample from Prometheus text: the metric `name` whose labels
/// include every pair in `labels`. None when absent.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
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
