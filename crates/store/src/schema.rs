//! Connection setup: the PRAGMAs every connection needs and the embedded migrations.
//!
//! Durability settings, and why:
//!
//! - `journal_mode = WAL` lets the read pool run queries while the writer commits.
//! - `synchronous = FULL` makes SQLite fsync the write-ahead log at every commit. With
//!   WAL, the default `NORMAL` survives a process crash but may lose the last commits on
//!   power loss, and epro acknowledges a submission only after its commit. The writer's
//!   group commit puts many submissions into one transaction, so one fsync covers the
//!   whole batch.
//! - `foreign_keys = ON` makes SQLite check that every outbox row, data query and
//!   derived record names a stored submission. SQLite leaves this off unless each connection turns it on.
//! - `busy_timeout` makes a connection wait for a lock held by another process (a
//!   backup, an operator's `sqlite3` shell) instead of failing at once.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, ensure};
use rusqlite::{Connection, OpenFlags};
use rusqlite_migration::{M, Migrations};

/// How long a connection waits for a lock held elsewhere before it fails with
/// "database is locked".
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Migration scripts in order. Each one runs once, and `PRAGMA user_version` records
/// how many have run. Append new files here and never edit an applied one.
const MIGRATION_SCRIPTS: &[&str] = &[
    include_str!("../migrations/sqlite/0001_initial.sql"),
    include_str!("../migrations/sqlite/0002_rules.sql"),
    include_str!("../migrations/sqlite/0003_outbox_claims.sql"),
    include_str!("../migrations/sqlite/0004_audit_reason.sql"),
    include_str!("../migrations/sqlite/0005_audit_chain.sql"),
    include_str!("../migrations/sqlite/0006_export_sequence.sql"),
    include_str!("../migrations/sqlite/0007_alerts.sql"),
    include_str!("../migrations/sqlite/0008_access.sql"),
    include_str!("../migrations/sqlite/0009_corrections.sql"),
    include_str!("../migrations/sqlite/0010_trials.sql"),
];

/// Number of migrations embedded in this build. A database opened by this build has
/// this `user_version`.
pub const SCHEMA_VERSION: u32 = MIGRATION_SCRIPTS.len() as u32;

fn migrations() -> Migrations<'static> {
    Migrations::new(MIGRATION_SCRIPTS.iter().map(|script| M::up(script)).collect())
}

/// Opens (creating it if needed) the database file for writing, applies the PRAGMAs and
/// runs pending migrations, then chains any audit rows written before the hash chain.
///
/// # Errors
///
/// Fails when the file cannot be opened or created, when WAL mode cannot be enabled (for
/// example on a network file system without shared memory), or when a migration fails.
/// The database is then left at the last successful migration.
pub(crate) fn open_writer(path: &Path) -> anyhow::Result<Connection> {
    let mut connection =
        Connection::open(path).with_context(|| format!("failed to open database {}", path.display()))?;
    connection.busy_timeout(BUSY_TIMEOUT).context("failed to set busy_timeout")?;

    let journal_mode: String = connection
        .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
        .context("failed to set journal_mode")?;
    ensure!(
        journal_mode.eq_ignore_ascii_case("wal"),
        "failed to enable WAL mode on {}: SQLite kept journal_mode {journal_mode:?}",
        path.display()
    );
    connection.pragma_update(None, "synchronous", "FULL").context("failed to set synchronous")?;
    connection.pragma_update(None, "foreign_keys", true).context("failed to enable foreign keys")?;

    migrations()
        .to_latest(&mut connection)
        .with_context(|| format!("failed to migrate database {}", path.display()))?;

    let sealed = crate::reader::seal_unhashed(&mut connection)
        .with_context(|| format!("failed to hash the audit trail of {}", path.display()))?;
    if sealed > 0 {
        tracing::info!(rows = sealed, "Audit rows written before the hash chain are now chained");
    }

    Ok(connection)
}

/// Flags for read connections: an existing file only, never created, since the writer
/// creates it first.
pub(crate) fn reader_flags() -> OpenFlags {
    OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI
}

/// Prepares a pooled read connection. `query_only` makes SQLite reject any write on it,
/// so the writer thread stays the only writer.
///
/// # Errors
///
/// Fails when a PRAGMA cannot be set.
pub(crate) fn init_reader(connection: &mut Connection) -> rusqlite::Result<()> {
    connection.busy_timeout(BUSY_TIMEOUT)?;
    connection.pragma_update(None, "query_only", true)?;
    connection.pragma_update(None, "foreign_keys", true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_validate() {
        migrations().validate().expect("migrations must apply to an empty database");
    }

    #[test]
    fn schema_version_counts_migrations() {
        let mut connection = Connection::open_in_memory().expect("in-memory database");
        migrations().to_latest(&mut connection).expect("migrate");

        let version: u32 =
            connection.query_row("PRAGMA user_version", [], |row| row.get(0)).expect("read user_version");

        assert_eq!(version, SCHEMA_VERSION);
    }

    #[test]
    fn reader_rejects_writes() {
        let mut connection = Connection::open_in_memory().expect("in-memory database");
        migrations().to_latest(&mut connection).expect("migrate");
        init_reader(&mut connection).expect("prepare as reader");

        let insert = connection.execute(
            "INSERT INTO audit_events (occurred_at, actor, action, entity, entity_id)
             VALUES ('2025-01-01T00:00:00Z', 'operator', 'test', 'none', '0')",
            [],
        );

        let error = insert.expect_err("a query_only connection must reject INSERT");
        assert!(error.to_string().contains("readonly"), "{error}");
    }
}
