//! The PostgreSQL migrations, embedded from `migrations/postgres/`, and the runner that
//! applies them when the store opens.
//!
//! The runner is written here rather than taken from a crate: sqlx's migrator would
//! bring sqlx, whose SQLite driver links a second copy of SQLite beside rusqlite's, and
//! refinery would add a second migration system beside rusqlite_migration. It needs
//! little: each migration runs in its own transaction, which also inserts its row
//! into `epro_schema_migrations`, under a transaction-level advisory lock. So several
//! instances starting at once apply each migration exactly once: the first takes the
//! lock and applies it, and the others wait, then find it applied.

use anyhow::{Context as _, bail, ensure};
use deadpool_postgres::{GenericClient, Object};

/// One embedded migration script.
pub(super) struct Migration {
    /// Position in the list, starting at 1. Recorded in `epro_schema_migrations`.
    pub(super) version: i32,
    /// File name without the number and extension, recorded beside the version, so
    /// that a database migrated by a build with other scripts is detected.
    pub(super) name: &'static str,
    pub(super) sql: &'static str,
}

/// Migration scripts in order. Append new files here and never edit an applied one.
/// The versions follow the SQLite scripts, so that
/// [`SCHEMA_VERSION`](crate::SCHEMA_VERSION) means the same tables on both backends.
pub(super) const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, name: "initial", sql: include_str!("../../migrations/postgres/0001_initial.sql") },
    Migration { version: 2, name: "rules", sql: include_str!("../../migrations/postgres/0002_rules.sql") },
    Migration {
        version: 3,
        name: "outbox_claims",
        sql: include_str!("../../migrations/postgres/0003_outbox_claims.sql"),
    },
    Migration {
        version: 4,
        name: "audit_reason",
        sql: include_str!("../../migrations/postgres/0004_audit_reason.sql"),
    },
    Migration { version: 5, name: "audit_chain", sql: include_str!("../../migrations/postgres/0005_audit_chain.sql") },
    Migration {
        version: 6,
        name: "export_sequence",
        sql: include_str!("../../migrations/postgres/0006_export_sequence.sql"),
    },
    Migration { version: 7, name: "alerts", sql: include_str!("../../migrations/postgres/0007_alerts.sql") },
    Migration { version: 8, name: "access", sql: include_str!("../../migrations/postgres/0008_access.sql") },
    Migration { version: 9, name: "corrections", sql: include_str!("../../migrations/postgres/0009_corrections.sql") },
    Migration { version: 10, name: "trials", sql: include_str!("../../migrations/postgres/0010_trials.sql") },
];

/// Key of the advisory lock that serializes migrations across instances: "epro_mig" in
/// ASCII. Other applications on the same database must not use it.
const MIGRATION_LOCK_KEY: i64 = 0x6570_726f_5f6d_6967;

const CREATE_MIGRATIONS_TABLE: &str = "
    CREATE TABLE IF NOT EXISTS epro_schema_migrations (
        version integer NOT NULL PRIMARY KEY,
        name text NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now()
    )";

/// Applies every pending migration, each in its own transaction, and returns the
/// number applied by this call.
///
/// # Errors
///
/// Fails when the database does not use UTF-8, when it records a migration this build
/// does not have (a newer schema) or one under another name, or when a migration
/// fails. The database is then left at the last migration that committed.
pub(super) async fn migrate(client: &mut Object) -> anyhow::Result<usize> {
    check_encoding(client).await?;

    let mut applied = 0;
    loop {
        let transaction = client.transaction().await.context("failed to begin migration transaction")?;
        transaction
            .execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK_KEY])
            .await
            .context("failed to take the migration lock")?;
        // Keeps the "already exists, skipping" notice of the next statement out of the log.
        transaction
            .batch_execute("SET LOCAL client_min_messages = warning")
            .await
            .context("failed to set client_min_messages")?;
        transaction.batch_execute(CREATE_MIGRATIONS_TABLE).await.context("failed to create epro_schema_migrations")?;

        let recorded = recorded_migrations(&transaction).await?;
        check_recorded(&recorded)?;

        let Some(next) = MIGRATIONS.get(recorded.len()) else {
            transaction.commit().await.context("failed to end migration transaction")?;
            return Ok(applied);
        };
        transaction
            .batch_execute(next.sql)
            .await
            .with_context(|| format!("failed to apply migration {:04}_{}", next.version, next.name))?;
        transaction
            .execute("INSERT INTO epro_schema_migrations (version, name) VALUES ($1, $2)", &[&next.version, &next.name])
            .await
            .with_context(|| format!("failed to record migration {:04}_{}", next.version, next.name))?;
        transaction
            .commit()
            .await
            .with_context(|| format!("failed to commit migration {:04}_{}", next.version, next.name))?;
        tracing::info!(version = next.version, name = next.name, "Database migration applied");
        applied += 1;
    }
}

/// Checks, without changing anything, that every migration of this build has been
/// applied, for a store that does not run migrations itself.
///
/// # Errors
///
/// Fails when the database is not UTF-8, has no `epro_schema_migrations` table,
/// lacks a migration (run `epro migrate` as the tables' owner) or has one this
/// build does not know.
pub(super) async fn check_current(client: &Object) -> anyhow::Result<()> {
    check_encoding(client).await?;
    let recorded = recorded_migrations(client)
        .await
        .context("run `epro migrate` as the owner of the database first, then start epro again")?;
    check_recorded(&recorded)?;
    ensure!(
        recorded.len() == MIGRATIONS.len(),
        "the database schema is at migration {} of {}, and database.run_migrations is false: run `epro migrate` \
         as the owner of the database, then start epro again",
        recorded.len(),
        MIGRATIONS.len()
    );
    Ok(())
}

/// Reads the version and name of every applied migration, in order.
async fn recorded_migrations(client: &impl GenericClient) -> anyhow::Result<Vec<(i32, String)>> {
    let rows = client
        .query("SELECT version, name FROM epro_schema_migrations ORDER BY version", &[])
        .await
        .context("failed to read epro_schema_migrations")?;
    rows.iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect::<Result<_, tokio_postgres::Error>>()
        .context("failed to read epro_schema_migrations")
}

/// Rejects a database whose text encoding is not UTF-8, because answers in Chinese or
/// with emoji would then fail to store.
async fn check_encoding(client: &Object) -> anyhow::Result<()> {
    let row = client.query_one("SHOW server_encoding", &[]).await.context("failed to read server_encoding")?;
    let encoding: String = row.try_get(0).context("failed to read server_encoding")?;
    ensure!(
        encoding.eq_ignore_ascii_case("UTF8"),
        "database encoding is {encoding}, but epro needs UTF8; create the database with ENCODING 'UTF8'"
    );
    Ok(())
}

/// Checks that the recorded migrations are a prefix of [`MIGRATIONS`].
fn check_recorded(recorded: &[(i32, String)]) -> anyhow::Result<()> {
    if let Some((version, name)) = recorded.get(MIGRATIONS.len()) {
        bail!(
            "database schema is newer than this build: it has migration {version:04}_{name}, \
             but this build knows migrations up to {:04}; run a newer epro",
            MIGRATIONS.len()
        );
    }
    for (position, (version, name)) in recorded.iter().enumerate() {
        let expected = &MIGRATIONS[position];
        ensure!(
            *version == expected.version && name == expected.name,
            "database records migration {version:04}_{name} where this build has {:04}_{}; \
             it was migrated by another build",
            expected.version,
            expected.name
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_count_from_one() {
        for (position, migration) in MIGRATIONS.iter().enumerate() {
            assert_eq!(migration.version as usize, position + 1, "{}", migration.name);
        }
    }

    #[test]
    fn versions_match_sqlite() {
        assert_eq!(MIGRATIONS.len() as u32, crate::SCHEMA_VERSION);
    }

    #[test]
    fn recorded_newer_version_is_rejected() {
        let mut recorded: Vec<_> = MIGRATIONS.iter().map(|m| (m.version, m.name.to_owned())).collect();
        recorded.push((MIGRATIONS.len() as i32 + 1, "from_the_future".to_owned()));

        let error = check_recorded(&recorded).expect_err("a newer schema must be rejected");

        assert!(error.to_string().contains("newer than this build"), "{error}");
    }

    #[test]
    fn recorded_other_name_is_rejected() {
        let recorded = vec![(1, "something_else".to_owned())];

        let error = check_recorded(&recorded).expect_err("another migration 1 must be rejected");

        assert!(error.to_string().contains("another build"), "{error}");
    }

    #[test]
    fn recorded_prefix_is_accepted() {
        let recorded = vec![(1, "initial".to_owned())];

        assert!(check_recorded(&recorded).is_ok());
    }
}
