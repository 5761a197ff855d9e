//! The black-box harness: a real server on port 0 over a real database
//! (a fresh SQLite file, or a fresh PostgreSQL database when
//! LEAKGUARD_TEST_DATABASE_URL is set), a key set GitHub-style, and an HTTP
//! client.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;

use leakguard::config::Settings;
use leakguard::db::Db;
use leakguard::domain::Parse;
use leakguard::scanning::simulate::{alert_body, DevKey};
use leakguard::scanning::{KEY_ID_HEADER, SIGNATURE_HEADER};
use leakguard::startup::Application;
use leakguard::state::AppState;
use serde_json::Value;
use test_support::db::{fresh_database_url, TestDb};
use test_support::keys::KeyServer;

pub struct TestApp {
    pub address: String,
    pub db_url: String,
    /// The product's own handle, for calling product functions.
    pub db: Db,
    /// The test's handle, for looking into the database with SQL.
    pub test_db: TestDb,
    pub key: DevKey,
    pub keys: KeyServer,
    pub client: reqwest::Client,
    pub state: actix_web::web::Data<AppState>,
    pub settings: BTreeMap<String, String>,
    /// The port of `/metrics` when `METRICS_BIND` is set.
    pub metrics_port: Option<u16>,
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
        let metrics_port = app.metrics_port();
        let handle = app.handle();
        let state = app.state();
        let db = state.db.clone();
        let join = tokio::spawn(app.run_until_stopped());
        let test_db = TestDb::connect(&db_url).await;
        TestApp {
            address: format!("http://127.0.0.1:{port}"),
            db_url,
            db,
            test_db,
            key,
            keys,
            client: reqwest::Client::new(),
            state,
            settings,
            metrics_port,
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
        self.test_db.close().await;
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
        self.test_db.count(sql).await
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
        let tables = self.test_db.tables().await;
        assert!(tables.iter().any(|t| t == "audit_events"), "{tables:?}");
        let mut state = BTreeMap::new();
        for table in tables.into_iter().filter(|t| t != "token_usage") {
            let n = self.count(&format!("SELECT COUNT(*) FROM {table}")).await;
            state.insert(format!("rows in {table}"), n.to_string());
        }
        for row in sqlx::query("SELECT id, audit_seq, audit_head FROM workspaces")
            .fetch_all(self.test_db.pool())
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
