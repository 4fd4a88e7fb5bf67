//! Applying the schema migrations of `migrations/sqlite` over a rusqlite connection.
//!
//! The migrations are embedded with `sqlx::migrate!` (CONVENTIONS "Storage"), which also gives
//! each its version, description and checksum, and they are recorded in sqlx's own bookkeeping
//! table, `_sqlx_migrations`, row for row as sqlx's migrator writes it. So a database created by
//! an earlier tokenwarden (which ran sqlx's migrator) opens here, and one created here opens in
//! an earlier release or in `sqlx migrate info`. The checks are sqlx's too: a migration that
//! failed half-way (`success = false`), an applied migration this build does not know, or one
//! whose file changed since (an applied migration is never edited) all refuse to open.
//!
//! One difference, deliberate: every pending migration and its bookkeeping row are applied in
//! one `BEGIN IMMEDIATE` transaction, and what is pending is read again once the write lock is
//! held. Two processes opening a new database at once (the server and the admin CLI) therefore
//! apply each migration once instead of racing to `CREATE TABLE`.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension as _};
use sqlx::migrate::{Migration, Migrator};
use tokenwarden_core::store::StoreError;

use crate::db_err;

/// The schema, embedded at build time from `migrations/sqlite`.
static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/sqlite");

/// sqlx's bookkeeping table, exactly as its SQLite migrator creates it.
const CREATE_TABLE: &str = "\
CREATE TABLE IF NOT EXISTS _sqlx_migrations (
    version BIGINT PRIMARY KEY,
    description TEXT NOT NULL,
    installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    success BOOLEAN NOT NULL,
    checksum BLOB NOT NULL,
    execution_time BIGINT NOT NULL
);";

fn failed(msg: String) -> StoreError {
    StoreError::Unavailable(format!("migration failed: {msg}"))
}

/// Brings the schema up to date. Reads first and takes the write lock only when something is
/// pending, so opening an up-to-date database (the admin CLI next to a busy server) writes
/// nothing.
pub(crate) fn run(conn: &mut Connection) -> Result<(), StoreError> {
    let wanted: Vec<&Migration> = MIGRATOR
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .collect();
    if pending(conn, &wanted)?.is_empty() {
        return Ok(());
    }
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(db_err)?;
    tx.execute_batch(CREATE_TABLE).map_err(db_err)?;
    // Another process may have applied some while we waited for the lock.
    for m in pending(&tx, &wanted)? {
        tx.execute_batch(&m.sql)
            .map_err(|e| failed(format!("{} ({}): {e}", m.version, m.description)))?;
        // `execution_time` is for lineage only; sqlx writes -1 first too, then the elapsed time
        // once committed. This store reads no clock of its own (CONVENTIONS §4), so -1 stays.
        tx.execute(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, \
             execution_time) VALUES (?1, ?2, TRUE, ?3, -1)",
            rusqlite::params![m.version, &*m.description, &*m.checksum],
        )
        .map_err(db_err)?;
    }
    tx.commit().map_err(db_err)
}

/// The migrations of `wanted` not applied yet, after sqlx's checks on those that are.
fn pending<'m>(
    conn: &Connection,
    wanted: &[&'m Migration],
) -> Result<Vec<&'m Migration>, StoreError> {
    let exists: Option<i64> = conn
        .query_row(
            "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = '_sqlx_migrations'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(db_err)?;
    if exists.is_none() {
        return Ok(wanted.to_vec());
    }
    let mut stmt = conn
        .prepare("SELECT version, checksum, success FROM _sqlx_migrations ORDER BY version")
        .map_err(db_err)?;
    let applied = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                (r.get::<_, Vec<u8>>(1)?, r.get::<_, bool>(2)?),
            ))
        })
        .and_then(|rows| rows.collect::<Result<HashMap<_, _>, _>>())
        .map_err(db_err)?;
    let mut dirty: Vec<i64> = applied
        .iter()
        .filter(|(_, (_, success))| !success)
        .map(|(v, _)| *v)
        .collect();
    dirty.sort_unstable();
    if let Some(v) = dirty.first() {
        return Err(failed(format!(
            "migration {v} is partially applied; fix and remove it from _sqlx_migrations"
        )));
    }
    let mut unknown: Vec<i64> = applied
        .keys()
        .filter(|v| !wanted.iter().any(|m| m.version == **v))
        .copied()
        .collect();
    unknown.sort_unstable();
    if let Some(v) = unknown.first() {
        return Err(failed(format!(
            "migration {v} was applied but is unknown to this build (a newer release?)"
        )));
    }
    let mut todo = Vec::new();
    for m in wanted {
        match applied.get(&m.version) {
            Some((checksum, _)) if checksum.as_slice() != &*m.checksum => {
                return Err(failed(format!(
                    "migration {} was applied but has been modified since",
                    m.version
                )))
            }
            Some(_) => {}
            None => todo.push(*m),
        }
    }
    Ok(todo)
}
