//! A database of its own for each test: a SQLite file in the test's
//! directory, or, when LEAKGUARD_TEST_DATABASE_URL names a PostgreSQL
//! server, a fresh database on that server. `TestDb` is how tests look
//! into it.

use std::path::Path;

use sqlx::any::AnyPoolOptions;
use sqlx::{Any, AnyPool, Connection};

/// Names the PostgreSQL server to run the suite on; unset or empty: SQLite.
pub const TEST_DB_ENV: &str = "LEAKGUARD_TEST_DATABASE_URL";

pub fn is_postgres() -> bool {
    std::env::var(TEST_DB_ENV).is_ok_and(|v| !v.is_empty())
}

/// The URL of a database for one test. On PostgreSQL nothing drops it when
/// the test ends; CI drops every `lg_test_*` before a run.
pub async fn fresh_database_url(dir: &Path) -> String {
    match std::env::var(TEST_DB_ENV) {
        Ok(base) if !base.is_empty() => {
            PostgresDatabase::create(&base, "lg_test")
                .await
                .unwrap_or_else(|e| {
                    panic!("{TEST_DB_ENV} is set but no database was created: {e:#}")
                })
                .url
        }
        _ => format!("sqlite://{}", dir.join("leakguard.db").display()),
    }
}

/// A new, empty database on a PostgreSQL server.
pub struct PostgresDatabase {
    pub url: String,
    name: String,
    server_url: String,
}

impl PostgresDatabase {
    /// Creates `PREFIX_<random>` on the server that `server_url` reaches.
    pub async fn create(server_url: &str, prefix: &str) -> anyhow::Result<PostgresDatabase> {
        let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
        let mut url = url::Url::parse(server_url)?;
        url.set_path(&format!("/{name}"));
        let mut conn = sqlx::PgConnection::connect(server_url).await?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await?;
        Ok(PostgresDatabase {
            url: url.to_string(),
            name,
            server_url: server_url.to_string(),
        })
    }

    /// Drops it, closing whatever sessions are still connected to it.
    pub async fn drop_database(&self) -> anyhow::Result<()> {
        let mut conn = sqlx::PgConnection::connect(&self.server_url).await?;
        sqlx::query(&format!("DROP DATABASE {} WITH (FORCE)", self.name))
            .execute(&mut conn)
            .await?;
        Ok(())
    }
}

/// The tests' own handle on a database that the product created: plain
/// SQL, to read what the product stored and, for tamper tests, to change
/// it behind the product's back. It shares nothing with the product's
/// data layer, so tests see the database as an operator would and do not
/// change when that layer does.
#[derive(Clone)]
pub struct TestDb {
    pool: AnyPool,
    postgres: bool,
}

impl TestDb {
    /// Opens a database that exists already (a missing SQLite file is an
    /// error, not created).
    pub async fn connect(url: &str) -> TestDb {
        sqlx::any::install_default_drivers();
        // One connection: a test's queries run one after another, and on
        // SQLite fewer open handles mean fewer surprises for the tests that
        // remount the file system under the database.
        let pool = AnyPoolOptions::new()
            .max_connections(1)
            .connect(url)
            .await
            .unwrap_or_else(|e| panic!("cannot open the test database {url}: {e}"));
        TestDb {
            pool,
            postgres: url.starts_with("postgres"),
        }
    }

    /// For queries the helpers below do not cover (several columns,
    /// parameters that are not text).
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The first column of the first row, as a number (`SELECT COUNT(*) …`).
    pub async fn count(&self, sql: &str) -> i64 {
        self.count_with(sql, &[]).await
    }

    /// `count` with text parameters bound to `$1`, `$2`, …
    pub async fn count_with(&self, sql: &str, binds: &[&str]) -> i64 {
        let mut query = sqlx::query_scalar(sql);
        for value in binds {
            query = query.bind(*value);
        }
        query
            .fetch_one(&self.pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// The first column of the first row.
    pub async fn scalar<T>(&self, sql: &str) -> T
    where
        T: for<'r> sqlx::Decode<'r, Any> + sqlx::Type<Any> + Send + Unpin,
    {
        sqlx::query_scalar(sql)
            .fetch_one(&self.pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// The first column of every row.
    pub async fn scalars<T>(&self, sql: &str) -> Vec<T>
    where
        T: for<'r> sqlx::Decode<'r, Any> + sqlx::Type<Any> + Send + Unpin,
    {
        sqlx::query_scalar(sql)
            .fetch_all(&self.pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Runs a statement; the rows it changed, or the database's refusal.
    pub async fn execute(&self, sql: &str) -> Result<u64, sqlx::Error> {
        sqlx::query(sql)
            .execute(&self.pool)
            .await
            .map(|done| done.rows_affected())
    }

    /// Every table, as the database lists them (so a new one is included).
    pub async fn tables(&self) -> Vec<String> {
        self.scalars(if self.postgres {
            "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public'"
        } else {
            "SELECT name FROM sqlite_master WHERE type = 'table'"
        })
        .await
    }

    pub async fn close(&self) {
        self.pool.close().await
    }
}
