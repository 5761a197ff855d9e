//! A harness for running the real binary as an operator would: a process
//! of its own per command, its own temporary directory and its own
//! database. Every wait is bounded.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::db::{fresh_database_url, is_postgres, TestDb};

/// A port nobody listens on right now (the OS picks it; we let it go so
/// the child can bind it).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// For the async helpers (databases, test servers) from a blocking test.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Polls `check` every 10 ms until it holds or `limit` passes.
pub fn wait_until(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
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

/// The child's exit status, or None if it is still running after `limit`.
pub fn wait_exit(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
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

/// What a finished command left behind.
pub struct Done {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Done {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout))
    }

    pub fn expect_success(self, what: &str) -> Done {
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

/// One operator's machine for `program`: a directory (the working
/// directory of every command), a database and the settings every command
/// gets. The child's environment is emptied first so that nothing from the
/// test runner's environment (a stray LEAKGUARD_* or RUST_LOG) leaks in.
pub struct Sandbox {
    program: PathBuf,
    dir: tempfile::TempDir,
    /// None: the default `sqlite://leakguard.db` in the directory.
    db_url: Option<String>,
    vars: BTreeMap<String, String>,
    counter: AtomicUsize,
}

impl Sandbox {
    pub fn new(program: impl Into<PathBuf>) -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        let db_url = is_postgres().then(|| runtime().block_on(fresh_database_url(dir.path())));
        let mut vars = BTreeMap::new();
        if let Some(url) = &db_url {
            vars.insert("LEAKGUARD_DATABASE_URL".to_string(), url.clone());
        }
        Sandbox {
            program: program.into(),
            dir,
            db_url,
            vars,
            counter: AtomicUsize::new(0),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn set(&mut self, key: &str, value: &str) {
        self.vars.insert(key.to_string(), value.to_string());
    }

    /// The URL the test itself uses to look into the database.
    pub fn database_url(&self) -> String {
        self.db_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.path().join("leakguard.db").display()))
    }

    pub fn command(&self, args: &[&str], extra: &[(&str, &str)]) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(args)
            .current_dir(self.path())
            .env_clear()
            .envs(&self.vars)
            .envs(extra.iter().copied())
            .stdin(Stdio::null());
        cmd
    }

    /// Output files of one command, named uniquely.
    pub fn output_files(&self, label: &str) -> (PathBuf, PathBuf) {
        let n = self.counter.fetch_add(1, Ordering::SeqCst);
        let out = self.path().join(format!("{label}-{n}.stdout"));
        let err = self.path().join(format!("{label}-{n}.stderr"));
        (out, err)
    }

    /// Runs a command to completion (killed after 60 s).
    pub fn run_with(&self, args: &[&str], extra: &[(&str, &str)]) -> Done {
        let (out, err) = self.output_files("cmd");
        let program = self.program.display();
        let mut child = self
            .command(args, extra)
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {program}: {e}"));
        let status = wait_exit(&mut child, Duration::from_secs(60));
        if status.is_none() {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{program} {args:?} did not finish within 60 s");
        }
        Done {
            code: status.unwrap().code(),
            stdout: std::fs::read_to_string(&out).unwrap(),
            stderr: std::fs::read_to_string(&err).unwrap(),
        }
    }

    pub fn run(&self, args: &[&str]) -> Done {
        self.run_with(args, &[])
    }

    /// A number from the database (the first column of the first row).
    pub fn count(&self, sql: &str, bind: &[&str]) -> i64 {
        let url = self.database_url();
        runtime().block_on(async {
            let db = TestDb::connect(&url).await;
            let n = db.count_with(sql, bind).await;
            db.close().await;
            n
        })
    }
}

/// A process's resident memory (VmRSS), in KiB.
pub fn vm_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}
