//! Audit checkpoints as an operator uses them: `audit keygen`, `serve` with
//! the key and JSON logs, and `audit verify --checkpoints` reading the log.

use std::time::Duration;

use test_support::db::TestDb;
use test_support::process::{runtime, wait_until};

use super::{Sandbox, Server};

/// The checkpoints a server logs are enough to verify the trail with (no
/// checkpoint file needed), with the public key alone; and the same log
/// catches a chain cut short afterwards. Issue 17, finding 2.
#[test]
fn the_json_log_alone_verifies_the_trail_and_catches_a_cut() {
    let mut sb = Sandbox::new();
    sb.set("LEAKGUARD_LOG_FORMAT", "json");
    let keys = sb.path().join("checkpoint-keys");
    let done = sb
        .run(&["audit", "keygen", "--out", keys.to_str().unwrap()])
        .expect_success("audit keygen");
    assert!(
        done.stdout.contains("LEAKGUARD_AUDIT_CHECKPOINT_KEY="),
        "{}",
        done.stdout
    );
    let key = keys.join("checkpoint.key");
    let public = keys.join("checkpoint.pub");
    let (workspace, _) = sb.workspace("Acme", "alice@example.com");
    for name in ["a", "b", "c"] {
        sb.token(&workspace, name);
    }
    sb.keygen();
    let mut server = Server::start(
        &sb,
        &[
            ("LEAKGUARD_AUDIT_CHECKPOINT_KEY", key.to_str().unwrap()),
            ("LEAKGUARD_AUDIT_CHECKPOINT_SECS", "0.2"),
        ],
    );
    let events = sb.count("SELECT audit_seq FROM workspaces", &[]);
    assert!(events >= 4, "{events} events");
    assert!(
        wait_until(Duration::from_secs(20), || server
            .logs()
            .contains(&format!("\"seq\":{events}"))),
        "no checkpoint of {events} events logged:\n{}",
        server.logs()
    );
    assert!(server.terminate(Duration::from_secs(30)).success());
    let log = sb.path().join("serve.log");
    std::fs::write(&log, server.logs()).unwrap();
    let verify = |sb: &Sandbox| {
        sb.run(&[
            "audit",
            "verify",
            "--checkpoints",
            log.to_str().unwrap(),
            "--public-key",
            public.to_str().unwrap(),
        ])
    };
    let done = verify(&sb).expect_success("audit verify --checkpoints");
    assert!(done.stdout.contains("checkpoint(s)"), "{}", done.stdout);

    // Someone with the database cuts the last event off, head and all.
    let url = sb.database_url();
    runtime().block_on(async {
        let db = TestDb::connect(&url).await;
        let postgres = url.starts_with("postgres");
        let bypass: &[&str] = if postgres {
            &[
                "ALTER TABLE audit_events DISABLE TRIGGER USER",
                "ALTER TABLE workspaces DISABLE TRIGGER USER",
            ]
        } else {
            &[
                "DROP TRIGGER audit_events_no_delete",
                "DROP TRIGGER workspaces_audit_head_only_advances",
            ]
        };
        for sql in bypass {
            db.execute(sql).await.unwrap();
        }
        let previous: String = db
            .scalar(&format!(
                "SELECT hash FROM audit_events WHERE seq = {}",
                events - 1
            ))
            .await;
        db.execute(&format!("DELETE FROM audit_events WHERE seq = {events}"))
            .await
            .unwrap();
        db.execute(&format!(
            "UPDATE workspaces SET audit_seq = {}, audit_head = '{previous}'",
            events - 1
        ))
        .await
        .unwrap();
        db.close().await;
    });
    sb.run(&["audit", "verify"])
        .expect_success("the chain alone looks intact");
    let done = verify(&sb);
    assert_eq!(done.code, Some(1), "{}{}", done.stdout, done.stderr);
    assert!(done.stderr.contains("cut short"), "{}", done.stderr);
    assert!(done.stderr.contains(&workspace), "{}", done.stderr);
}
