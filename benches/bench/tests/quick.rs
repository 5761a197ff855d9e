//! The benchmark command at tiny sizes: it starts the server as a process
//! of its own, loads it and writes its table between the markers of the
//! file it is given. Nothing here asserts a timing.

use std::process::Command;

const BENCH: &str = env!("CARGO_BIN_EXE_bench");

fn bench(out: &std::path::Path) -> Command {
    let mut command = Command::new(BENCH);
    command
        .args(["--quick", "--connections", "4", "--out"])
        .arg(out);
    for (name, _) in std::env::vars() {
        if name.starts_with("LEAKGUARD_") {
            command.env_remove(name);
        }
    }
    command
}

#[test]
fn quick_run_measures_every_row_and_replaces_only_its_section() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("BENCHMARKS.md");
    let before = "# Benchmarks\n\nThe note.\n\n<!-- bench:begin -->\nthe old table\n<!-- bench:end -->\n\nMore note.\n";
    std::fs::write(&out, before).unwrap();
    let mut command = bench(&out);
    let backends = if test_support::db::is_postgres() {
        command
            .arg("--postgres")
            .arg(std::env::var(test_support::db::TEST_DB_ENV).unwrap());
        2
    } else {
        1
    };
    let run = command.output().unwrap();
    assert!(
        run.status.success(),
        "bench failed:\n{}",
        String::from_utf8_lossy(&run.stderr)
    );

    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.starts_with("# Benchmarks\n\nThe note.\n\n<!-- bench:begin -->\n"));
    assert!(text.ends_with("<!-- bench:end -->\n\nMore note.\n"));
    assert!(!text.contains("the old table"));
    assert!(text.contains("Command: `cargo run --release --bin bench -- --quick"));
    assert!(text.contains("Machine: nproc "));
    let rows: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| |"))
        .collect();
    let expected = [
        "**V**: ring P-256 verifications/s",
        "single-token alerts/s, 4 connections",
        "alert of 10 unknown tokens",
        "alert of 20 unknown tokens",
        "alert revoking 5 tokens of one workspace",
        "**H₀**: a bare actix-web handler, requests/s",
        "**H**: `GET /healthz` requests/s",
        "authenticated `GET /sources/{id}` requests/s",
        "alert to SMTP",
        "peak RSS of the server",
    ];
    assert_eq!(rows.len(), expected.len(), "{text}");
    for (row, name) in rows.iter().zip(expected) {
        let cells: Vec<&str> = row.split(" | ").collect();
        assert!(cells[0].contains(name), "{row}");
        // One measured value per backend, each starting with a number.
        for cell in &cells[1..=backends] {
            let number: String = cell
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .collect();
            assert!(number.parse::<f64>().is_ok_and(|n| n > 0.0), "{row}");
        }
    }
}

#[test]
fn a_file_without_markers_is_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("notes.md");
    std::fs::write(&out, "hand-written notes\n").unwrap();
    let run = bench(&out).output().unwrap();
    assert_eq!(run.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("has no <!-- bench:begin --> … <!-- bench:end --> markers"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "hand-written notes\n"
    );
}

#[test]
fn bad_arguments_are_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("BENCHMARKS.md");
    for (args, message) in [
        ("--connections=0", "--connections must be at least 1"),
        ("--seconds=0", "--seconds must be a positive number"),
        ("--seconds=-1", "--seconds must be a positive number"),
        ("--seconds=inf", "--seconds must be a positive number"),
    ] {
        let run = Command::new(BENCH)
            .args(["--quick", "--out"])
            .arg(&out)
            .arg(args)
            .output()
            .unwrap();
        assert_eq!(run.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(stderr.contains(message), "{args:?}: {stderr}");
        assert!(!out.exists(), "{args:?} wrote the file");
    }
}
