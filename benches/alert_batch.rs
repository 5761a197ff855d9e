//! How long one GitHub alert takes end to end through HTTP, by batch size
//! and kind of token. Run: `cargo bench --bench alert_batch`
//! (PostgreSQL too: LEAKGUARD_BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test).
//!
//! The baseline, measured in the same run, is a one-token alert; the other
//! rows are quoted as ratios to it because absolute times drift on shared
//! machines.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use leakguard::api::auth::Role;
use leakguard::config::Settings;
use leakguard::scanning::simulate::{alert_body, DevKey};
use leakguard::scanning::{KEY_ID_HEADER, SIGNATURE_HEADER};
use leakguard::startup::Application;
use leakguard::token::PublicToken;

const BATCH: usize = 10_000;
const ROUNDS: usize = 3;

struct Bench {
    base: String,
    key: DevKey,
    client: reqwest::Client,
}

impl Bench {
    async fn post(&self, tokens: &[&str]) -> Duration {
        let body = alert_body(
            tokens,
            "leakguard_public_api_token",
            "https://github.com/o/r",
            "commit",
        );
        let sig = self.key.sign(&body);
        let started = Instant::now();
        let res = self
            .client
            .post(format!("{}/secret-scanning/github", self.base))
            .header(KEY_ID_HEADER, self.key.identifier())
            .header(SIGNATURE_HEADER, sig)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        res.bytes().await.unwrap();
        started.elapsed()
    }
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn mint_many(db: &leakguard::db::Db, workspace: &str, n: usize) -> Vec<String> {
    let mut out = Vec::with_capacity(n);
    let mut tx = db.begin().await.unwrap();
    for i in 0..n {
        let m = leakguard::api::tokens::mint(
            &mut tx,
            workspace,
            &format!("bench {i}"),
            Role::Member,
            "cli",
        )
        .await
        .unwrap();
        out.push(m.secret.expose().to_string());
    }
    tx.commit().await.unwrap();
    out
}

async fn run(label: &str, database_url: String, dir: &std::path::Path) {
    let key = DevKey::generate();
    key.write_to(dir).unwrap();
    let mut raw = BTreeMap::new();
    raw.insert("DATABASE_URL".to_string(), database_url);
    raw.insert("BIND".to_string(), "127.0.0.1:0".to_string());
    raw.insert(
        "GITHUB_KEYS_URL".to_string(),
        format!("file://{}/keys.json", dir.display()),
    );
    raw.insert(
        "MAIL_DIR".to_string(),
        dir.join("mail").display().to_string(),
    );
    raw.insert(
        "MAX_ALERT_BYTES".to_string(),
        (16 * 1024 * 1024).to_string(),
    );
    let app = Application::build(Settings::from_map(&raw).unwrap())
        .await
        .unwrap();
    let state = app.state();
    let bench = Bench {
        base: format!("http://127.0.0.1:{}", app.port()),
        key,
        client: reqwest::Client::new(),
    };
    let handle = app.handle();
    let server = tokio::spawn(app.run_until_stopped());
    let ws = leakguard::api::workspace::create(&state.db, "bench", "owner@example.com")
        .await
        .unwrap();

    // Baseline: a one-token alert revoking one token.
    let singles = mint_many(&state.db, &ws.workspace.id, 20).await;
    let mut base = Vec::new();
    for t in &singles {
        base.push(bench.post(&[t.as_str()]).await);
    }
    let baseline = median(base);

    let noise: Vec<String> = (0..BATCH)
        .map(|i| format!("not_ours_{i:08}_{}", "x".repeat(40)))
        .collect();
    let unknown: Vec<String> = (0..BATCH)
        .map(|_| PublicToken::generate().expose().to_string())
        .collect();
    let mut rows: Vec<(String, Duration)> = Vec::new();

    let mut t = Vec::new();
    for _ in 0..ROUNDS {
        t.push(bench.post(&refs(&noise)).await);
    }
    rows.push((
        format!("{BATCH} look-alikes (bad prefix/checksum)"),
        median(t),
    ));
    let mut t = Vec::new();
    for _ in 0..ROUNDS {
        t.push(bench.post(&refs(&unknown)).await);
    }
    rows.push((format!("{BATCH} well-formed, unknown tokens"), median(t)));
    let mut revoke = Vec::new();
    let mut replay = Vec::new();
    for _ in 0..ROUNDS {
        let ours = mint_many(&state.db, &ws.workspace.id, BATCH).await;
        revoke.push(bench.post(&refs(&ours)).await);
        replay.push(bench.post(&refs(&ours)).await);
    }
    rows.push((format!("{BATCH} live tokens, all revoked"), median(revoke)));
    rows.push((
        format!("{BATCH} already-revoked tokens (replay)"),
        median(replay),
    ));

    println!(
        "\n{label}: baseline (1-token alert, median of 20) {:.1} ms",
        baseline.as_secs_f64() * 1e3
    );
    println!("| batch | median of {ROUNDS} | ratio to baseline |");
    println!("|---|---|---|");
    for (name, d) in rows {
        println!(
            "| {name} | {:.0} ms | {:.0}x |",
            d.as_secs_f64() * 1e3,
            d.as_secs_f64() / baseline.as_secs_f64()
        );
    }
    handle.stop(true).await;
    let _ = server.await;
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    run(
        "SQLite",
        format!("sqlite://{}/bench.db", dir.path().display()),
        dir.path(),
    )
    .await;
    if let Ok(base) = std::env::var("LEAKGUARD_BENCH_POSTGRES_URL") {
        use sqlx::Connection;
        let name = format!("lg_bench_{}", leakguard::id::new_id().to_ascii_lowercase());
        let mut conn = sqlx::PgConnection::connect(&base).await.unwrap();
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .unwrap();
        let mut url = url::Url::parse(&base).unwrap();
        url.set_path(&format!("/{name}"));
        let pg_dir = tempfile::tempdir().unwrap();
        run("PostgreSQL", url.to_string(), pg_dir.path()).await;
        sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
            .execute(&mut conn)
            .await
            .unwrap();
    }
}
