//! The black-box harness: a real server on port 0 over a real database
//! (a fresh SQLite file, or a fresh PostgreSQL database when
//! LEAKGUARD_TEST_DATABASE_URL is set), a key set GitHub-style, and an HTTP
//! client.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use leakguard::config::Settings;
use leakguard::db::Db;
use leakguard::domain::Parse;
use leakguard::scanning::simulate::{alert_body, DevKey};
use leakguard::scanning::{KEY_ID_HEADER, SIGNATURE_HEADER};
use leakguard::startup::Application;
use leakguard::state::AppState;
use serde_json::Value;

pub const TEST_DB_ENV: &str = "LEAKGUARD_TEST_DATABASE_URL";

/// A database of its own for one test.
pub async fn fresh_database_url(dir: &std::path::Path) -> String {
    match std::env::var(TEST_DB_ENV) {
        Ok(base) if !base.is_empty() => {
            use sqlx::Connection;
            let name = format!("lg_test_{}", leakguard::id::new_id().to_ascii_lowercase());
            let mut conn = sqlx::PgConnection::connect(&base)
                .await
                .unwrap_or_else(|e| {
                    panic!("{TEST_DB_ENV} is set but PostgreSQL is unreachable: {e}")
                });
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut conn)
                .await
                .expect("create test database");
            let mut url = url::Url::parse(&base).expect("postgres URL");
            url.set_path(&format!("/{name}"));
            url.to_string()
        }
        _ => format!("sqlite://{}", dir.join("leakguard.db").display()),
    }
}

/// The tests' own connection to a test database, for ad-hoc SQL. Apart
/// from the server's: on SQLite it sees only what is committed, as another
/// process would.
pub async fn raw_pool(url: &str) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::any::AnyPoolOptions::new()
        .max_connections(2)
        .connect(url)
        .await
        .unwrap_or_else(|e| panic!("cannot open the test database: {e}"))
}

pub fn is_postgres() -> bool {
    std::env::var(TEST_DB_ENV).is_ok_and(|v| !v.is_empty())
}

/// Serves a GitHub-format key set over HTTP; can be switched off (503),
/// slowed down, and counts requests.
#[derive(Clone)]
pub struct KeyServer {
    pub url: String,
    body: Arc<Mutex<Option<String>>>,
    delay: Arc<Mutex<std::time::Duration>>,
    hits: Arc<AtomicUsize>,
}

impl KeyServer {
    pub async fn start(body: String) -> KeyServer {
        let body = Arc::new(Mutex::new(Some(body)));
        let hits = Arc::new(AtomicUsize::new(0));
        let delay = Arc::new(Mutex::new(std::time::Duration::ZERO));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (b, d, h) = (body.clone(), delay.clone(), hits.clone());
        let server = actix_web::HttpServer::new(move || {
            let (b, d, h) = (b.clone(), d.clone(), h.clone());
            actix_web::App::new().default_service(actix_web::web::to(move || {
                let (b, d, h) = (b.clone(), d.clone(), h.clone());
                async move {
                    h.fetch_add(1, Ordering::SeqCst);
                    let pause = *d.lock().unwrap();
                    tokio::time::sleep(pause).await;
                    match b.lock().unwrap().clone() {
                        Some(body) => actix_web::HttpResponse::Ok()
                            .content_type("application/json")
                            .body(body),
                        None => actix_web::HttpResponse::ServiceUnavailable().finish(),
                    }
                }
            }))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        tokio::spawn(server);
        KeyServer {
            url: format!("http://127.0.0.1:{port}/meta/public_keys/secret_scanning"),
            body,
            delay,
            hits,
        }
    }

    pub fn set(&self, body: Option<String>) {
        *self.body.lock().unwrap() = body;
    }

    /// A pause before every answer (a key endpoint that is slow).
    pub fn set_delay(&self, delay: std::time::Duration) {
        *self.delay.lock().unwrap() = delay;
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

pub struct TestApp {
    pub address: String,
    pub db_url: String,
    pub db: Db,
    /// For ad-hoc SQL in tests (`count`, `db_state`).
    pub raw: sqlx::AnyPool,
    pub key: DevKey,
    pub keys: KeyServer,
    pub client: reqwest::Client,
    pub state: actix_web::web::Data<AppState>,
    pub settings: BTreeMap<String, String>,
    handle: actix_web::dev::ServerHandle,
    join: tokio::task::JoinHandle<anyhow::Result<()>>,
    pub dir: Arc<tempfile::TempDir>,
}

pub struct Workspace {
    pub id: String,
    pub owner_token: String,
    pub owner_token_id: String,
    pub owner_email: String,
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        TestApp::spawn_with(&[]).await
    }

    /// Extra settings as (KEY without prefix, value).
    pub async fn spawn_with(overrides: &[(&str, &str)]) -> TestApp {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let db_url = fresh_database_url(dir.path()).await;
        let key = DevKey::generate();
        let keys = KeyServer::start(DevKey::key_set(&[&key])).await;
        let mut settings = BTreeMap::new();
        settings.insert("DATABASE_URL".into(), db_url.clone());
        settings.insert("BIND".into(), "127.0.0.1:0".into());
        settings.insert("GITHUB_KEYS_URL".into(), keys.url.clone());
        settings.insert(
            "MAIL_DIR".into(),
            dir.path().join("mail").display().to_string(),
        );
        settings.insert("OUTBOX_POLL_SECS".into(), "0.2".into());
        settings.insert("OUTBOX_BACKOFF_BASE_SECS".into(), "0.1".into());
        for (k, v) in overrides {
            settings.insert(k.to_string(), v.to_string());
        }
        TestApp::start(settings, key, keys, dir).await
    }

    pub async fn start(
        settings: BTreeMap<String, String>,
        key: DevKey,
        keys: KeyServer,
        dir: Arc<tempfile::TempDir>,
    ) -> TestApp {
        let parsed = Settings::from_map(&settings).expect("test settings are valid");
        let db_url = parsed.database_url.clone();
        let app = Application::build(parsed)
            .await
            .expect("application builds");
        let port = app.port();
        let handle = app.handle();
        let state = app.state();
        let db = state.db.clone();
        let join = tokio::spawn(app.run_until_stopped());
        let raw = raw_pool(&db_url).await;
        TestApp {
            address: format!("http://127.0.0.1:{port}"),
            db_url,
            db,
            raw,
            key,
            keys,
            client: reqwest::Client::new(),
            state,
            settings,
            handle,
            join,
            dir,
        }
    }

    /// Stops gracefully (the outbox worker releases what it holds).
    pub async fn stop(
        self,
    ) -> (
        DevKey,
        KeyServer,
        Arc<tempfile::TempDir>,
        BTreeMap<String, String>,
    ) {
        self.handle.stop(true).await;
        let _ = self.join.await;
        (self.key, self.keys, self.dir, self.settings)
    }

    /// Stops and starts again on the same database and keys.
    pub async fn restart(self) -> TestApp {
        let (key, keys, dir, settings) = self.stop().await;
        TestApp::start(settings, key, keys, dir).await
    }

    pub fn mail_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("mail")
    }

    pub async fn workspace(&self, name: &str, owner_email: &str) -> Workspace {
        let created = leakguard::onboarding::create_workspace(
            &self.db,
            Parse::parse(name).expect("a valid workspace name"),
            Parse::parse(owner_email).expect("a valid email address"),
        )
        .await
        .expect("workspace");
        Workspace {
            id: created.workspace.id.to_string(),
            owner_token: created.token,
            owner_token_id: created.token_id,
            owner_email: owner_email.to_string(),
        }
    }

    /// A token minted through the API with the workspace's owner token.
    /// Returns (plaintext, id).
    pub async fn mint(&self, ws: &Workspace, name: &str, role: &str) -> (String, String) {
        let res = self
            .post(
                "/tokens",
                &ws.owner_token,
                &serde_json::json!({ "name": name, "role": role }),
            )
            .await;
        assert_eq!(res.status(), 201, "minting a token");
        let body: Value = res.json().await.unwrap();
        (
            body["data"]["secret"].as_str().unwrap().to_string(),
            body["data"]["token"]["id"].as_str().unwrap().to_string(),
        )
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn get(&self, path: &str, token: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    pub async fn post(&self, path: &str, token: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn patch(&self, path: &str, token: &str, body: &Value) -> reqwest::Response {
        self.client
            .patch(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn delete(&self, path: &str, token: &str) -> reqwest::Response {
        self.client
            .delete(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// Posts raw bytes to the partner endpoint with the given headers.
    pub async fn post_alert_raw(
        &self,
        body: Vec<u8>,
        key_id: &str,
        signature: &str,
    ) -> reqwest::Response {
        self.client
            .post(self.url("/secret-scanning/github"))
            .header("Content-Type", "application/json")
            .header(KEY_ID_HEADER, key_id)
            .header(SIGNATURE_HEADER, signature)
            .body(body)
            .send()
            .await
            .unwrap()
    }

    /// Signs `body` with the app's current GitHub key and posts it.
    pub async fn post_alert(&self, body: Vec<u8>) -> reqwest::Response {
        let sig = self.key.sign(&body);
        self.post_alert_raw(body, &self.key.identifier(), &sig)
            .await
    }

    /// An alert for these tokens, as GitHub would send it; returns the
    /// feedback array.
    pub async fn report(&self, tokens: &[&str]) -> Vec<Value> {
        let body = alert_body(
            tokens,
            "leakguard_public_api_token",
            "https://github.com/octo/repo/blob/main/.env",
            "commit",
        );
        let res = self.post_alert(body).await;
        assert_eq!(res.status(), 200, "alert accepted");
        res.json().await.unwrap()
    }

    pub async fn count(&self, sql: &str) -> i64 {
        use sqlx::Row;
        sqlx::query(sql).fetch_one(&self.raw).await.unwrap().get(0)
    }

    /// Waits until `sql` counts `n` (the outbox works asynchronously).
    pub async fn wait_for_count(&self, sql: &str, n: i64, seconds: u64) -> i64 {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
        loop {
            let c = self.count(sql).await;
            if c == n || std::time::Instant::now() > deadline {
                return c;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

impl TestApp {
    /// What a refused request must leave as it was: the row count of every
    /// table (as the database lists them, so a new table is included), each
    /// workspace's audit-chain head, and the chain's verification.
    /// `token_usage` is left out: like `last_used_at`, it counts uses
    /// (refused ones included) and is written by a periodic flush.
    pub async fn db_state(&self) -> BTreeMap<String, String> {
        use sqlx::Row;
        let tables_sql = if is_postgres() {
            "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public'"
        } else {
            "SELECT name FROM sqlite_master WHERE type = 'table'"
        };
        let tables: Vec<String> = sqlx::query(tables_sql)
            .fetch_all(&self.raw)
            .await
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect();
        assert!(tables.iter().any(|t| t == "audit_events"), "{tables:?}");
        let mut state = BTreeMap::new();
        for table in tables.into_iter().filter(|t| t != "token_usage") {
            let n = self.count(&format!("SELECT COUNT(*) FROM {table}")).await;
            state.insert(format!("rows in {table}"), n.to_string());
        }
        for row in sqlx::query("SELECT id, audit_seq, audit_head FROM workspaces")
            .fetch_all(&self.raw)
            .await
            .unwrap()
        {
            let (id, seq, head): (String, i64, String) = (row.get(0), row.get(1), row.get(2));
            state.insert(format!("audit head of {id}"), format!("{seq} {head}"));
        }
        let (_, breaks) = leakguard::audit::verify(&self.db).await.unwrap();
        state.insert("audit chain breaks".into(), format!("{breaks:?}"));
        state
    }
}

pub async fn json(res: reqwest::Response) -> Value {
    res.json().await.expect("a JSON body")
}
