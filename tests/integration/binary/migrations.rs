//! Migrations run by several replicas at once.

use std::path::PathBuf;
use std::process::Child;
use std::time::Duration;

use test_support::process::wait_exit;

use super::Sandbox;

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
    let dir = if test_support::db::is_postgres() {
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
