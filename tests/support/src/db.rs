//! A database of its own for each test: a SQLite file in the test's
//! directory, or, when LEAKGUARD_TEST_DATABASE_URL names a PostgreSQL
//! server, a fresh database on that server.

use std::path::Path;

use sqlx::Connection;

/// Names the PostgreSQL server to run the suite on; unset or empty: SQLite.
pub const TEST_DB_ENV: &str = "LEAKGUARD_TEST_DATABASE_URL";

pub fn is_postgres() -> bool {
    std::env::var(TEST_DB_ENV).is_ok_and(|v| !v.is_empty())
}

/// The URL of a database for one test. On PostgreSQL the database stays
/// behind when the test ends (CI drops every `lg_test_*` before a run), so
/// that a failed test's data can still be looked at.
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
