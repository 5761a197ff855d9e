//! The README's quick start through the binary, and its simulated alert
//! refused when signed with a key GitHub never published.

use std::path::Path;
use std::time::Duration;

use leakguard::scanning::simulate::DevKey;
use leakguard::token::TOKEN_TYPE;
use serde_json::Value;
use test_support::process::wait_until;

use super::{Sandbox, Server};

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

/// `leakguard user login-link` prints a one-time link that the server
/// takes, and refuses an address no workspace has.
#[test]
fn login_link_prints_a_link_the_server_accepts() {
    let mut sb = Sandbox::new();
    sb.workspace("Acme", "alice@example.com");
    sb.keygen();
    let server = Server::start(&sb, &[]);
    server.wait_ready();
    let done = sb
        .run(&["user", "login-link", "--email", "Alice@Example.com"])
        .expect_success("user login-link");
    let link = done.stdout.trim();
    let (base, secret) = link.split_once("/app/sign-in/link?token=").unwrap();
    assert!(base.starts_with("http"), "{link}");
    assert_eq!(secret.len(), 43, "{link}");
    assert!(done.stderr.contains("valid once"), "{}", done.stderr);
    let page =
        reqwest::blocking::get(server.url(&format!("/app/sign-in/link?token={secret}"))).unwrap();
    assert_eq!(page.status(), 200);
    assert!(page
        .text()
        .unwrap()
        .contains("Sign in as alice@example.com"));

    let done = sb.run(&["user", "login-link", "--email", "nobody@example.com"]);
    assert_eq!(done.code, Some(1), "{}", done.stderr);
    assert!(
        done.stderr.contains("no workspace has a user"),
        "{}",
        done.stderr
    );
    let done = sb.run(&["user", "login-link", "--email", "not-an-address"]);
    assert_eq!(done.code, Some(2), "{}", done.stderr);
}
