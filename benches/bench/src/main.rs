//! The benchmark: `cargo run --release --bin bench` (add `-- --postgres
//! postgres://…` for a second run on PostgreSQL). It starts the release
//! server as a child process on a fresh database, loads it from this
//! process over loopback, measures the machine's own bounds in the same run
//! (V: P-256 verifications per second on one core; H: `GET /healthz` per
//! second), prints one table and writes it into docs/BENCHMARKS.md between
//! the markers. See that file for what each row means.

mod load;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use leakguard::db::{Arg, Db, ToArg};
use leakguard::domain::{Email, Name, Parse, Role, WorkspaceId};
use leakguard::onboarding::create_workspace;
use leakguard::scanning::signature::{decode_signature, VerifyingKey};
use leakguard::scanning::simulate::{alert_body, DevKey};
use leakguard::scanning::{KEY_ID_HEADER, SIGNATURE_HEADER};
use leakguard::token::{PublicToken, TOKEN_TYPE};
use test_support::db::PostgresDatabase;
use test_support::http::{Conn, RawRequest};
use test_support::process::free_port;
use test_support::smtp::SmtpServer;

use load::closed_loop;

/// The first argument that makes this binary the server (`leakguard serve`
/// with the settings in the environment): the same release build as the
/// load generator, in a process of its own.
const SERVE_ARG: &str = "--as-server";
/// The first argument that makes this binary a bare actix-web server (one
/// handler, no middleware) on the address that follows: H₀, the bound that
/// leakguard's own middleware stack is measured against.
const BARE_SERVE_ARG: &str = "--as-bare-server";
const BEGIN: &str = "<!-- bench:begin -->";
const END: &str = "<!-- bench:end -->";
const LOCATION: &str = "https://github.com/octo/repo/blob/main/.env";

#[derive(Parser)]
#[command(about = "Benchmarks the release server against this machine's bounds")]
struct Args {
    /// Also run on PostgreSQL, in a fresh database created (and dropped) on
    /// this server, e.g. postgres://postgres@127.0.0.1:5432/test
    #[arg(long, env = "LEAKGUARD_BENCH_POSTGRES_URL")]
    postgres: Option<String>,
    /// Seconds of load per throughput measurement.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Concurrent keep-alive connections for the throughput measurements.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Tiny sizes: proves that the command works, measures nothing useful.
    #[arg(long)]
    quick: bool,
    /// The file whose table (between the bench markers) is replaced; created
    /// if missing. By default the repository's docs/BENCHMARKS.md, from
    /// whichever directory the command runs.
    #[arg(long, default_value_os_t = repository_benchmarks())]
    out: PathBuf,
}

/// docs/BENCHMARKS.md of the repository this crate (benches/bench) is in.
fn repository_benchmarks() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("benches/bench lies two levels below the repository root")
        .join("docs/BENCHMARKS.md")
}

/// How much of everything one run does.
struct Sizes {
    seconds: f64,
    warmup: f64,
    v_seconds: f64,
    small_batch: usize,
    big_batch: usize,
    batch_rounds: usize,
    revoke_batch: usize,
    revoke_rounds: usize,
    mail_alerts: usize,
}

impl Sizes {
    fn new(args: &Args) -> Sizes {
        if args.quick {
            Sizes {
                seconds: 0.3,
                warmup: 0.1,
                v_seconds: 0.1,
                small_batch: 10,
                big_batch: 20,
                batch_rounds: 3,
                revoke_batch: 5,
                revoke_rounds: 2,
                mail_alerts: 3,
            }
        } else {
            Sizes {
                seconds: args.seconds,
                warmup: 0.5,
                v_seconds: 2.0,
                small_batch: 1_000,
                big_batch: 10_000,
                batch_rounds: 50,
                revoke_batch: 1_000,
                revoke_rounds: 30,
                mail_alerts: 100,
            }
        }
    }
}

/// One backend's figures.
struct Results {
    backend: &'static str,
    verifications: f64,
    measured: Measured,
    peak_rss_kib: u64,
}

/// What the load measured.
struct Measured {
    /// A bare actix-web handler, the same workers and machine.
    bare: Rate,
    healthz: Rate,
    authenticated: Rate,
    alerts: Rate,
    small: Latency,
    big: Latency,
    revoke: Latency,
    mail: Latency,
}

/// Requests per second, and the server's CPU time (all threads, user and
/// system) per request: the cost of a request even when other processes
/// take CPU from the run.
struct Rate {
    per_second: f64,
    server_cpu: Duration,
}

impl Rate {
    fn show(&self, bound: f64, bound_name: &str) -> String {
        format!(
            "{:.0} ({:.2} {bound_name}; server CPU {:.0} µs each)",
            self.per_second,
            self.per_second / bound,
            self.server_cpu.as_secs_f64() * 1e6
        )
    }
}

struct Latency {
    p50: Duration,
    p99: Duration,
    samples: usize,
    /// The server's CPU time per request, where nothing else ran meanwhile.
    server_cpu: Option<Duration>,
}

impl Latency {
    fn of(mut samples: Vec<Duration>) -> Latency {
        samples.sort();
        // Nearest rank.
        let rank =
            |p: f64| samples[((p / 100.0 * samples.len() as f64).ceil() as usize).max(1) - 1];
        Latency {
            p50: rank(50.0),
            p99: rank(99.0),
            samples: samples.len(),
            server_cpu: None,
        }
    }
}

fn main() -> anyhow::Result<()> {
    if std::env::args().nth(1).as_deref() == Some(SERVE_ARG) {
        let runtime = tokio::runtime::Runtime::new()?;
        let cli = leakguard::cli::Cli::parse_from(["leakguard", "serve"]);
        std::process::exit(runtime.block_on(leakguard::cli::run(cli)));
    }
    if std::env::args().nth(1).as_deref() == Some(BARE_SERVE_ARG) {
        let addr = std::env::args().nth(2).unwrap_or_default();
        return bare_server(&addr);
    }
    let args = Args::parse();
    // Bad arguments are found before minutes of measuring, not after.
    let invalid = if !(args.seconds.is_finite() && args.seconds > 0.0) {
        Some(anyhow::anyhow!("--seconds must be a positive number"))
    } else if args.connections == 0 {
        Some(anyhow::anyhow!("--connections must be at least 1"))
    } else {
        existing_text(&args.out).err()
    };
    if let Some(e) = invalid {
        eprintln!("error: {e:#}");
        std::process::exit(2);
    }
    let sizes = Sizes::new(&args);
    let runtime = tokio::runtime::Runtime::new()?;
    let mut results = Vec::new();
    let dir = scratch_dir("sqlite")?;
    let sqlite = format!("sqlite://{}", dir.path().join("bench.db").display());
    results.push(runtime.block_on(run("SQLite", &sqlite, &args, &sizes))?);
    if let Some(base) = &args.postgres {
        let pg = runtime.block_on(PostgresDatabase::create(base, "lg_bench"))?;
        let result = runtime.block_on(run("PostgreSQL", &pg.url, &args, &sizes));
        runtime.block_on(pg.drop_database())?;
        results.push(result?);
    }
    let section = report(&args, &results);
    println!("{section}");
    write_section(&args.out, &section)?;
    eprintln!("bench: wrote the table into {}", args.out.display());
    Ok(())
}

/// P-256 / SHA-256 verifications per second on one thread, over a
/// single-token alert signed like the ones the endpoint checks.
fn verifications_per_second(seconds: f64) -> f64 {
    let key = DevKey::generate();
    let body = alert_body(
        &[PublicToken::generate().expose()],
        TOKEN_TYPE,
        LOCATION,
        "commit",
    );
    let signature = decode_signature(&key.sign(&body)).expect("our own signature");
    let verifying = VerifyingKey::from_spki_pem(&key.public_pem()).expect("our own key");
    std::thread::spawn(move || {
        let started = Instant::now();
        let limit = Duration::from_secs_f64(seconds);
        let mut count = 0u64;
        while started.elapsed() < limit {
            for _ in 0..64 {
                assert!(verifying.verify(&body, &signature));
            }
            count += 64;
        }
        count as f64 / started.elapsed().as_secs_f64()
    })
    .join()
    .expect("the verification loop")
}

async fn run(
    backend: &'static str,
    database_url: &str,
    args: &Args,
    sizes: &Sizes,
) -> anyhow::Result<Results> {
    eprintln!("bench: {backend}: measuring V (ring P-256 verifications on one core)");
    let verifications = verifications_per_second(sizes.v_seconds);
    let dir = scratch_dir(backend)?;
    let key = DevKey::generate();
    key.write_to(dir.path())?;

    eprintln!("bench: {backend}: preparing workspaces and tokens");
    let db = Db::connect(database_url).await?;
    db.migrate().await?;
    let workspace = |name: &str, email: &str| {
        let name = Name::parse(name).map_err(anyhow::Error::msg);
        let email = Email::parse(email).map_err(anyhow::Error::msg);
        async { create_workspace(&db, name?, email?).await }
    };
    let revoking = workspace("Revoked", "owner@revoked.invalid").await?;
    let mailed = workspace("Mailed", "owner@mailed.invalid").await?;
    let to_revoke = mint(
        &db,
        &revoking.workspace.id,
        sizes.revoke_batch * sizes.revoke_rounds,
    )
    .await?;
    let to_mail = mint(&db, &mailed.workspace.id, sizes.mail_alerts).await?;
    db.close().await;

    let smtp = SmtpServer::start().await;
    let mut server = Server::start(database_url, dir.path(), &smtp.url()).await?;
    let outcome = measure(
        &server,
        &key,
        &revoking.token,
        &to_revoke,
        &to_mail,
        &smtp,
        args,
        sizes,
    )
    .await;
    let peak_rss_kib = server.peak_rss_kib();
    server.stop();
    Ok(Results {
        backend,
        verifications,
        measured: outcome?,
        peak_rss_kib: peak_rss_kib?,
    })
}

#[allow(clippy::too_many_arguments)]
async fn measure(
    server: &Server,
    key: &DevKey,
    owner_token: &str,
    to_revoke: &[String],
    to_mail: &[String],
    smtp: &SmtpServer,
    args: &Args,
    sizes: &Sizes,
) -> anyhow::Result<Measured> {
    let addr = server.addr;
    let throughput = |requests: Vec<Vec<u8>>| rate(server, requests, args, sizes);

    eprintln!("bench: H0: a bare actix-web handler");
    let mut bare_server = Server::start_bare().await?;
    let bare = rate(
        &bare_server,
        vec![RawRequest::new("GET", "/").to_bytes()],
        args,
        sizes,
    )
    .await;
    bare_server.stop();
    let bare = bare?;

    eprintln!("bench: H: GET /healthz");
    let healthz = throughput(vec![RawRequest::new("GET", "/healthz").to_bytes()]).await?;

    eprintln!("bench: authenticated GET /sources/{{id}}");
    let source_id = create_source(addr, owner_token).await?;
    let reader = mint_through_api(addr, owner_token, "read_only").await?;
    let read_source = RawRequest::new("GET", &format!("/sources/{source_id}"))
        .header("Authorization", format!("Bearer {reader}"));
    let authenticated = throughput(vec![read_source.to_bytes()]).await?;

    eprintln!("bench: single-token alerts (unknown, well-formed tokens)");
    let singles = (0..256)
        .map(|_| alert_request(key, &[PublicToken::generate().expose()]))
        .collect();
    let alerts = throughput(singles).await?;

    let mut conn = Conn::connect(addr).await?;
    let batch = |size: usize| {
        let tokens: Vec<String> = (0..size)
            .map(|_| PublicToken::generate().expose().to_string())
            .collect();
        alert_request(key, &tokens.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let (small_request, big_request) = (batch(sizes.small_batch), batch(sizes.big_batch));
    eprintln!("bench: alerts of {} unknown tokens", sizes.small_batch);
    let cpu_before = server.cpu_time()?;
    let mut small = Latency::of(timed(&mut conn, &small_request, sizes.batch_rounds, 0).await?);
    small.server_cpu = Some((server.cpu_time()? - cpu_before) / small.samples as u32);
    eprintln!("bench: alerts of {} unknown tokens", sizes.big_batch);
    let cpu_before = server.cpu_time()?;
    let mut big = Latency::of(timed(&mut conn, &big_request, sizes.batch_rounds, 0).await?);
    big.server_cpu = Some((server.cpu_time()? - cpu_before) / big.samples as u32);

    eprintln!("bench: alerts revoking {} tokens each", sizes.revoke_batch);
    let cpu_before = server.cpu_time()?;
    let mut revoke = Vec::new();
    for chunk in to_revoke.chunks(sizes.revoke_batch) {
        let tokens: Vec<&str> = chunk.iter().map(String::as_str).collect();
        revoke.extend(timed(&mut conn, &alert_request(key, &tokens), 1, chunk.len()).await?);
    }
    let mut revoke = Latency::of(revoke);
    // Includes the outbox worker's rendering and sending of their mail.
    revoke.server_cpu = Some((server.cpu_time()? - cpu_before) / revoke.samples as u32);

    eprintln!(
        "bench: alert to SMTP, {} alerts one after another",
        to_mail.len()
    );
    // The revoking alerts' mail (one owner each) comes first.
    let before = sizes.revoke_rounds;
    wait_for_mail(smtp, before).await?;
    let mut mail = Vec::new();
    for (i, token) in to_mail.iter().enumerate() {
        let request = alert_request(key, &[token]);
        let posted = Instant::now();
        let (status, _) = conn.exchange(&request).await?;
        anyhow::ensure!(status == 200, "alert answered {status}");
        wait_for_mail(smtp, before + i + 1).await?;
        mail.push(smtp.arrivals()[before + i] - posted);
    }
    let mail = Latency::of(mail);
    Ok(Measured {
        bare,
        healthz,
        authenticated,
        alerts,
        small,
        big,
        revoke,
        mail,
    })
}

/// `requests` in turn over `args.connections` keep-alive connections for
/// `sizes.seconds` after a warm-up; every answer must be a 200.
async fn rate(
    server: &Server,
    requests: Vec<Vec<u8>>,
    args: &Args,
    sizes: &Sizes,
) -> anyhow::Result<Rate> {
    let requests = Arc::new(requests);
    closed_loop(
        server.addr,
        requests.clone(),
        args.connections,
        Duration::from_secs_f64(sizes.warmup),
        200,
    )
    .await?;
    let cpu_before = server.cpu_time()?;
    let load = closed_loop(
        server.addr,
        requests,
        args.connections,
        Duration::from_secs_f64(sizes.seconds),
        200,
    )
    .await?;
    let cpu = server.cpu_time()?.saturating_sub(cpu_before);
    Ok(Rate {
        per_second: load.per_second(),
        server_cpu: cpu / load.requests.max(1) as u32,
    })
}

/// Sends `request` `rounds` times, one after another; each answer must be a
/// 200 that labels exactly `true_positives` tokens as ours.
async fn timed(
    conn: &mut Conn,
    request: &[u8],
    rounds: usize,
    true_positives: usize,
) -> anyhow::Result<Vec<Duration>> {
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let started = Instant::now();
        let (status, body) = conn.exchange(request).await?;
        times.push(started.elapsed());
        anyhow::ensure!(status == 200, "alert answered {status}");
        let found = count(body, b"\"true_positive\"");
        anyhow::ensure!(
            found == true_positives,
            "{found} tokens were ours, {true_positives} expected"
        );
    }
    Ok(times)
}

fn count(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .filter(|w| *w == needle)
        .count()
}

async fn wait_for_mail(smtp: &SmtpServer, n: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while smtp.count() < n {
        anyhow::ensure!(
            Instant::now() < deadline,
            "{n} messages expected at the SMTP sink, {} arrived",
            smtp.count()
        );
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    Ok(())
}

fn alert_request(key: &DevKey, tokens: &[&str]) -> Vec<u8> {
    let body = alert_body(tokens, TOKEN_TYPE, LOCATION, "commit");
    let signature = key.sign(&body);
    RawRequest::new("POST", "/secret-scanning/github")
        .header("Content-Type", "application/json")
        .header(KEY_ID_HEADER, key.identifier())
        .header(SIGNATURE_HEADER, signature)
        .body(body)
        .to_bytes()
}

/// `n` member tokens, inserted in bulk; their plaintexts. Without the
/// "Token Created" audit events that the API and the CLI write: the
/// measured paths never read them, and one event and statement per token
/// made this the longest step of the run.
async fn mint(db: &Db, workspace_id: &WorkspaceId, n: usize) -> anyhow::Result<Vec<String>> {
    const COLUMNS: usize = 8;
    let secrets: Vec<PublicToken> = (0..n).map(|_| PublicToken::generate()).collect();
    let now = leakguard::time::now_micros();
    let per_statement = leakguard::db::rows_per_statement(COLUMNS);
    let mut tx = db.begin().await?;
    for (chunk_index, chunk) in secrets.chunks(per_statement).enumerate() {
        let sql = format!(
            "INSERT INTO tokens (id, workspace_id, name, role, token_hash, hint, created_at, created_by)
             VALUES {}",
            leakguard::db::values_rows(chunk.len(), COLUMNS)
        );
        let rows: Vec<[String; 6]> = chunk
            .iter()
            .enumerate()
            .map(|(i, secret)| {
                [
                    leakguard::id::new_id(),
                    format!("bench {}", chunk_index * per_statement + i),
                    secret.hash().to_string(),
                    secret.hint().to_string(),
                    Role::Member.as_str().to_string(),
                    leakguard::audit::CLI_ACTOR.to_string(),
                ]
            })
            .collect();
        let mut args: Vec<Arg<'_>> = Vec::with_capacity(rows.len() * COLUMNS);
        for [id, name, hash, hint, role, actor] in &rows {
            args.extend([
                id.to_arg(),
                workspace_id.to_arg(),
                name.to_arg(),
                role.to_arg(),
                hash.to_arg(),
                hint.to_arg(),
                Arg::Int(now),
                actor.to_arg(),
            ]);
        }
        tx.execute(&sql, &args).await?;
    }
    tx.commit().await?;
    Ok(secrets.iter().map(|s| s.expose().to_string()).collect())
}

/// One Public API call over the raw HTTP client; its JSON answer.
async fn api(
    addr: SocketAddr,
    method: &'static str,
    path: &str,
    token: &str,
    body: Option<serde_json::Value>,
) -> anyhow::Result<serde_json::Value> {
    let mut request =
        RawRequest::new(method, path).header("Authorization", format!("Bearer {token}"));
    if let Some(body) = body {
        request = request
            .header("Content-Type", "application/json")
            .body(body.to_string());
    }
    let mut conn = Conn::connect(addr).await?;
    let (status, answer) = conn.exchange(&request.to_bytes()).await?;
    let json: serde_json::Value = serde_json::from_slice(answer)?;
    anyhow::ensure!(
        (200..300).contains(&status),
        "{path} answered {status}: {json}"
    );
    Ok(json)
}

async fn create_source(addr: SocketAddr, owner_token: &str) -> anyhow::Result<String> {
    let catalog = api(addr, "GET", "/catalog/sources", owner_token, None).await?;
    let metadata_id = catalog["data"]["sourcesCatalog"][0]["id"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("an empty source catalog: {catalog}"))?;
    let body = serde_json::json!({ "slug": "web", "enabled": true, "metadataId": metadata_id });
    let created = api(addr, "POST", "/sources", owner_token, Some(body)).await?;
    created["data"]["source"]["id"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow::anyhow!("no source id in {created}"))
}

async fn mint_through_api(
    addr: SocketAddr,
    owner_token: &str,
    role: &str,
) -> anyhow::Result<String> {
    let body = serde_json::json!({ "name": "bench reader", "role": role });
    let created = api(addr, "POST", "/tokens", owner_token, Some(body)).await?;
    created["data"]["secret"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow::anyhow!("no secret in {created}"))
}

/// The server under test, in a child process.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    async fn start(database_url: &str, dir: &Path, smtp_url: &str) -> anyhow::Result<Server> {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let log = std::fs::File::create(dir.join("server.log"))?;
        let mut command = Command::new(std::env::current_exe()?);
        // Only the settings below: none from the environment of whoever runs the bench.
        for (name, _) in std::env::vars() {
            if name.starts_with("LEAKGUARD_") || name == "RUST_LOG" {
                command.env_remove(name);
            }
        }
        let child = command
            .arg(SERVE_ARG)
            .env("LEAKGUARD_DATABASE_URL", database_url)
            .env("LEAKGUARD_BIND", addr.to_string())
            .env(
                "LEAKGUARD_GITHUB_KEYS_URL",
                format!("file://{}/keys.json", dir.display()),
            )
            .env("LEAKGUARD_SMTP_URL", smtp_url)
            .env("LEAKGUARD_MAIL_DIR", dir.join("mail"))
            .env("LEAKGUARD_LOG_FORMAT", "json")
            // The benchmark measures throughput, not the per-token limit.
            .env("LEAKGUARD_RATE_LIMIT_BURST", "1000000000")
            .env("LEAKGUARD_RATE_LIMIT_PER_SECOND", "1000000000")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        let mut server = Server { child, addr };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = server.child.try_wait()? {
                let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
                anyhow::bail!("the server exited ({status}) before it was ready:\n{log}");
            }
            if let Ok(mut conn) = Conn::connect(addr).await {
                let readyz = RawRequest::new("GET", "/readyz").to_bytes();
                if let Ok((200, _)) = conn.exchange(&readyz).await {
                    return Ok(server);
                }
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the server was not ready within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// User and system CPU time of all its threads so far.
    /// This binary as a bare actix-web server (`BARE_SERVE_ARG`).
    async fn start_bare() -> anyhow::Result<Server> {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let child = Command::new(std::env::current_exe()?)
            .arg(BARE_SERVE_ARG)
            .arg(addr.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()?;
        let mut server = Server { child, addr };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = server.child.try_wait()? {
                anyhow::bail!("the bare server exited ({status}) before it was ready");
            }
            if let Ok(mut conn) = Conn::connect(addr).await {
                if let Ok((200, _)) = conn.exchange(&RawRequest::new("GET", "/").to_bytes()).await {
                    return Ok(server);
                }
            }
            if Instant::now() > deadline {
                server.stop();
                anyhow::bail!("the bare server was not ready within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn cpu_time(&self) -> anyhow::Result<Duration> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))?;
        // After the command name in parentheses: utime and stime are the
        // 12th and 13th fields, in clock ticks (USER_HZ, 100 on Linux).
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        let ticks = |i: usize| -> anyhow::Result<u64> {
            Ok(fields
                .get(i)
                .ok_or_else(|| anyhow::anyhow!("short /proc/{}/stat", self.child.id()))?
                .parse()?)
        };
        Ok(Duration::from_millis((ticks(11)? + ticks(12)?) * 10))
    }

    /// VmHWM: the most resident memory the process has had.
    fn peak_rss_kib(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| anyhow::anyhow!("no VmHWM in /proc/{}/status", self.child.id()))
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A directory of its own under the system's temporary directory, removed
/// when dropped.
/// One handler, no middleware, actix-web's default workers: what a request
/// costs the framework alone on this machine.
fn bare_server(addr: &str) -> anyhow::Result<()> {
    let addr: SocketAddr = addr.parse()?;
    actix_web::rt::System::new().block_on(async move {
        actix_web::HttpServer::new(|| {
            actix_web::App::new().route(
                "/",
                actix_web::web::get().to(|| async { actix_web::HttpResponse::Ok().body("ok") }),
            )
        })
        .bind(addr)?
        .run()
        .await
    })?;
    Ok(())
}

fn scratch_dir(label: &str) -> std::io::Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix(&format!("leakguard-bench-{}-", label.to_ascii_lowercase()))
        .tempdir()
}

// ---------------------------------------------------------------- report

fn report(args: &Args, results: &[Results]) -> String {
    let mut out = String::new();
    let mut command = String::from("cargo run --release --bin bench");
    let passed: Vec<String> = std::env::args().skip(1).collect();
    if !passed.is_empty() {
        command.push_str(" -- ");
        command.push_str(&passed.join(" "));
    }
    if args.postgres.is_some() && !passed.iter().any(|a| a.starts_with("--postgres")) {
        command = format!("LEAKGUARD_BENCH_POSTGRES_URL=… {command}");
    }
    out.push_str(&format!("Command: `{command}`\n\n"));
    out.push_str(&format!("Machine: {}\n\n", machine()));
    if args.quick {
        out.push_str("**--quick: tiny sizes, not a measurement.**\n\n");
    }
    let header: Vec<&str> = results.iter().map(|r| r.backend).collect();
    out.push_str(&format!(
        "| | {} | target ({}) | met |\n",
        header.join(" | "),
        header.join(" / ")
    ));
    out.push_str(&format!("|---|{}---|---|\n", "---|".repeat(results.len())));
    let first = &results[0];
    // A row's target: its text on SQLite and on PostgreSQL ("" for none),
    // and whether a run meets it.
    type Target<'a> = Option<(&'a str, &'a str, &'a dyn Fn(&Results) -> bool)>;
    let row =
        |out: &mut String, name: String, cell: &dyn Fn(&Results) -> String, target: Target<'_>| {
            let cells: Vec<String> = results.iter().map(cell).collect();
            let (mut texts, mut met) = (Vec::new(), Vec::new());
            if let Some((sqlite, postgres, check)) = target {
                for r in results {
                    let text = if r.backend == first.backend {
                        sqlite
                    } else {
                        postgres
                    };
                    texts.push(if text.is_empty() { "–" } else { text });
                    met.push(match (text.is_empty(), check(r)) {
                        (true, _) => "–",
                        (false, true) => "met",
                        (false, false) => "**not met**",
                    });
                }
            }
            out.push_str(&format!(
                "| {name} | {} | {} | {} |\n",
                cells.join(" | "),
                texts.join(" / "),
                met.join(" / ")
            ));
        };
    let ms = |d: Duration| format!("{:.1}", d.as_secs_f64() * 1e3);
    let latency = |l: &Latency| match l.server_cpu {
        Some(cpu) => format!(
            "{} / {} ms (server CPU {} ms each)",
            ms(l.p50),
            ms(l.p99),
            ms(cpu)
        ),
        None => format!("{} / {} ms", ms(l.p50), ms(l.p99)),
    };
    let h = |r: &Results| r.measured.healthz.per_second;
    row(
        &mut out,
        "**V**: ring P-256 verifications/s, one core".into(),
        &|r| format!("{:.0}", r.verifications),
        None,
    );
    row(
        &mut out,
        format!(
            "single-token alerts/s, {} connections (ratio to V)",
            args.connections
        ),
        &|r| r.measured.alerts.show(r.verifications, "V"),
        Some(("≥ 0.8 V", "≥ 0.6 V", &|r| {
            let bound = if r.backend == first.backend { 0.8 } else { 0.6 };
            r.measured.alerts.per_second >= bound * r.verifications
        })),
    );
    row(
        &mut out,
        format!(
            "alert of {} unknown tokens, p50 / p99 ({} runs)",
            first_size(args, true),
            first.measured.small.samples
        ),
        &|r| latency(&r.measured.small),
        None,
    );
    row(
        &mut out,
        format!(
            "alert of {} unknown tokens, p50 / p99 ({} runs)",
            first_size(args, false),
            first.measured.big.samples
        ),
        &|r| latency(&r.measured.big),
        Some(("p99 < 40 ms", "", &|r| {
            r.measured.big.p99 < Duration::from_millis(40)
        })),
    );
    row(
        &mut out,
        format!(
            "alert revoking {} tokens of one workspace, p50 / p99 ({} runs)",
            thousands(Sizes::new(args).revoke_batch),
            first.measured.revoke.samples
        ),
        &|r| latency(&r.measured.revoke),
        Some(("p99 < 500 ms", "p99 < 500 ms", &|r| {
            r.measured.revoke.p99 < Duration::from_millis(500)
        })),
    );
    row(
        &mut out,
        "**H₀**: a bare actix-web handler, requests/s".into(),
        &|r| {
            format!(
                "{:.0} (server CPU {:.0} µs each)",
                r.measured.bare.per_second,
                r.measured.bare.server_cpu.as_secs_f64() * 1e6
            )
        },
        None,
    );
    row(
        &mut out,
        "**H**: `GET /healthz` requests/s (ratio to H₀: the middleware's cost)".into(),
        &|r| r.measured.healthz.show(r.measured.bare.per_second, "H₀"),
        None,
    );
    row(
        &mut out,
        "authenticated `GET /sources/{id}` requests/s (ratio to H)".into(),
        &|r| r.measured.authenticated.show(h(r), "H"),
        Some(("≥ 0.5 H", "≥ 0.25 H", &|r| {
            let bound = if r.backend == first.backend {
                0.5
            } else {
                0.25
            };
            r.measured.authenticated.per_second >= bound * h(r)
        })),
    );
    row(
        &mut out,
        format!(
            "alert to SMTP, p50 / p99 ({} alerts)",
            first.measured.mail.samples
        ),
        &|r| latency(&r.measured.mail),
        Some(("p99 < 1 s", "p99 < 1 s", &|r| {
            r.measured.mail.p99 < Duration::from_secs(1)
        })),
    );
    row(
        &mut out,
        "peak RSS of the server".into(),
        &|r| format!("{:.1} MiB", r.peak_rss_kib as f64 / 1024.0),
        Some(("< 100 MiB", "< 100 MiB", &|r| r.peak_rss_kib < 100 * 1024)),
    );
    out
}

fn first_size(args: &Args, small: bool) -> String {
    let sizes = Sizes::new(args);
    let n = if small {
        sizes.small_batch
    } else {
        sizes.big_batch
    };
    thousands(n)
}

fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// nproc, CPU model, memory, kernel, rustc and the date, as the run saw them.
fn machine() -> String {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or("?".into(), |kib| {
            format!("{:.0} GiB", kib / 1024.0 / 1024.0)
        });
    let kernel = read("/proc/sys/kernel/osrelease").trim().to_string();
    let rustc = Command::new("rustc")
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "rustc not found".into());
    let load = read("/proc/loadavg");
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    format!(
        "nproc {cores}, {cpu}, {memory}; Linux {kernel}; {rustc}; load average at the end {}; {}",
        load.join(" "),
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC")
    )
}

/// The text of `path`, which must hold both markers; `None` if it does
/// not exist yet.
fn existing_text(path: &Path) -> anyhow::Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => match (text.find(BEGIN), text.find(END)) {
            (Some(begin), Some(end)) if begin < end => Ok(Some(text)),
            _ => anyhow::bail!("{} has no {BEGIN} … {END} markers", path.display()),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
    }
}

/// Replaces what lies between the markers in `path`, or creates it with
/// just the markers and the section.
fn write_section(path: &Path, section: &str) -> anyhow::Result<()> {
    let block = format!("{BEGIN}\n{section}{END}");
    let text = match existing_text(path)? {
        Some(text) => {
            let start = text.find(BEGIN).expect("checked");
            let end = text.find(END).expect("checked") + END.len();
            format!("{}{block}{}", &text[..start], &text[end..])
        }
        None => format!("{block}\n"),
    };
    std::fs::write(path, text)?;
    Ok(())
}
