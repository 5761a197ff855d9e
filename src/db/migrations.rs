//! The migrations of both backends, compiled in.

use super::Backend;

/// The migrations, compiled in. Listed by hand rather than by sqlx's
/// `migrate!` macro: the macro needs a second, host-side build of sqlx and
/// SQLite, which was a sixth of a fresh release build. A unit test checks
/// that this list and the `migrations/` folders agree.
const MIGRATIONS: &[EmbeddedMigration] = &[
    EmbeddedMigration {
        version: 1,
        description: "initial",
        sqlite: include_str!("../../migrations/sqlite/0001_initial.sql"),
        postgres: include_str!("../../migrations/postgres/0001_initial.sql"),
    },
    EmbeddedMigration {
        version: 2,
        description: "source write keys",
        sqlite: include_str!("../../migrations/sqlite/0002_source_write_keys.sql"),
        postgres: include_str!("../../migrations/postgres/0002_source_write_keys.sql"),
    },
    EmbeddedMigration {
        version: 3,
        description: "readiness probe",
        sqlite: include_str!("../../migrations/sqlite/0003_readiness_probe.sql"),
        postgres: include_str!("../../migrations/postgres/0003_readiness_probe.sql"),
    },
    EmbeddedMigration {
        version: 10,
        description: "leak response",
        sqlite: include_str!("../../migrations/sqlite/0010_leak_response.sql"),
        postgres: include_str!("../../migrations/postgres/0010_leak_response.sql"),
    },
    EmbeddedMigration {
        version: 20,
        description: "github key fetches",
        sqlite: include_str!("../../migrations/sqlite/0020_github_key_fetches.sql"),
        postgres: include_str!("../../migrations/postgres/0020_github_key_fetches.sql"),
    },
    EmbeddedMigration {
        version: 21,
        description: "audit chain guards",
        sqlite: include_str!("../../migrations/sqlite/0021_audit_chain_guards.sql"),
        postgres: include_str!("../../migrations/postgres/0021_audit_chain_guards.sql"),
    },
    EmbeddedMigration {
        version: 30,
        description: "warehouses tracking plans labels",
        sqlite: include_str!("../../migrations/sqlite/0030_warehouses_tracking_plans_labels.sql"),
        postgres: include_str!(
            "../../migrations/postgres/0030_warehouses_tracking_plans_labels.sql"
        ),
    },
    EmbeddedMigration {
        version: 40,
        description: "oauth",
        sqlite: include_str!("../../migrations/sqlite/0040_oauth.sql"),
        postgres: include_str!("../../migrations/postgres/0040_oauth.sql"),
    },
];

struct EmbeddedMigration {
    version: i64,
    /// As sqlx derives it from the file name, so that databases migrated
    /// by the macro's build record the same row.
    description: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
}

/// Each migration of `backend` as (version, hex of sqlx's checksum): what
/// `_sqlx_migrations` records once it is applied.
pub(super) fn expected(backend: Backend) -> Vec<(i64, String)> {
    MIGRATIONS
        .iter()
        .map(|m| {
            let sql = match backend {
                Backend::Sqlite => m.sqlite,
                Backend::Postgres => m.postgres,
            };
            let migration = sqlx::migrate::Migration::new(
                m.version,
                m.description.into(),
                sqlx::migrate::MigrationType::Simple,
                sql.into(),
                false,
            );
            (m.version, hex::encode(&migration.checksum))
        })
        .collect()
}

/// One backend's migrations, in the form sqlx's `Migrator` takes.
#[derive(Debug)]
pub(super) struct Migrations(pub(super) Backend);

impl<'s> sqlx::migrate::MigrationSource<'s> for Migrations {
    fn resolve(
        self,
    ) -> futures_util::future::BoxFuture<
        's,
        Result<Vec<sqlx::migrate::Migration>, sqlx::error::BoxDynError>,
    > {
        let migrations = MIGRATIONS
            .iter()
            .map(|m| {
                let sql = match self.0 {
                    Backend::Sqlite => m.sqlite,
                    Backend::Postgres => m.postgres,
                };
                // The checksum is sqlx's own (SHA-384 of the text), so it
                // matches what the macro recorded.
                sqlx::migrate::Migration::new(
                    m.version,
                    m.description.into(),
                    sqlx::migrate::MigrationType::Simple,
                    sql.into(),
                    false,
                )
            })
            .collect();
        Box::pin(std::future::ready(Ok(migrations)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Adding a file to `migrations/` without listing it would leave it
    /// unapplied; this fails instead. Names are read as sqlx reads them:
    /// `<version>_<description>.sql`, underscores meaning spaces.
    #[test]
    fn the_compiled_in_list_is_the_migrations_folders() {
        for (folder, pick) in [
            (
                "sqlite",
                (|m| m.sqlite) as fn(&EmbeddedMigration) -> &'static str,
            ),
            ("postgres", |m| m.postgres),
        ] {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("migrations")
                .join(folder);
            let mut on_disk: Vec<(i64, String, String)> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|entry| {
                    let path = entry.unwrap().path();
                    let name = path.file_stem().unwrap().to_str().unwrap().to_string();
                    let (version, description) = name.split_once('_').unwrap();
                    (
                        version.parse().unwrap(),
                        description.replace('_', " "),
                        std::fs::read_to_string(&path).unwrap(),
                    )
                })
                .collect();
            on_disk.sort();
            let listed: Vec<(i64, String, String)> = MIGRATIONS
                .iter()
                .map(|m| (m.version, m.description.to_string(), pick(m).to_string()))
                .collect();
            assert_eq!(listed, on_disk, "migrations/{folder}");
        }
    }
}
