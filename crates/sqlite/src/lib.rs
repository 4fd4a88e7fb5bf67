//! # tokenwarden-sqlite
//!
//! The SQLite storage backend, tokenwarden's embedded default (`--database sqlite://tokenwarden.db`).
//! [`SqliteStore`] implements [`Store`](tokenwarden_core::store::Store),
//! [`AdminStore`](tokenwarden_core::store::AdminStore) and
//! [`AccountStore`](tokenwarden_core::store::AccountStore) with the semantics of the reference
//! [`MemoryStore`](tokenwarden_core::store::memory::MemoryStore); the `tokenwarden-conformance`
//! suite runs against both.
//!
//! ## Connection settings, and why
//!
//! | setting | value | why |
//! |---|---|---|
//! | `journal_mode` | `WAL` | readers never block the writer nor the writer readers, so introspection keeps answering during a purge; a commit appends to the log instead of rewriting pages. The mode is persistent in the file. |
//! | `synchronous` | `FULL` | the WAL is fsynced at every commit, before the store returns `Ok`. A `200` answered after a commit must survive `kill -9` *and* power loss: with `NORMAL` (the usual WAL pairing) a process crash loses nothing, but a power cut can roll back the last commits — a rotated refresh token would come back as unused, or a revocation would be undone, after the client was told otherwise. Losing a revocation is a security failure, so we pay one fsync per write. |
//! | `busy_timeout` | 5 s | another process (the admin CLI next to a running server) may hold the write lock; wait for it rather than fail at once. Past 5 s the caller gets `StoreError::Unavailable` (a `503`), not a hang. |
//! | `foreign_keys` | `ON` | tokens must belong to an existing grant; SQLite leaves enforcement off unless asked, per connection. |
//! | `query_only` | `ON` on read connections | a write sent to the read pool by mistake fails loudly instead of racing the writer. |
//!
//! ## Two pools
//!
//! SQLite has a single writer per database. Writes go through a pool of **one** connection, so
//! in-process writers queue on the pool (a fair async queue) instead of spinning on `SQLITE_BUSY`
//! inside `busy_timeout`; reads go through a separate pool of [`READ_CONNECTIONS`] connections that
//! see the last committed state (WAL snapshot isolation) without waiting for the writer.
//!
//! Every write of more than one statement is one transaction opened with `BEGIN IMMEDIATE`, which
//! takes the write lock up front (waiting out `busy_timeout` if another process holds it); its first
//! statement is a write as well. A deferred `BEGIN` that read first would hold a read snapshot and
//! then have to upgrade it, which fails with `SQLITE_BUSY` without waiting if another connection
//! committed in between. Single-statement writes run in autocommit mode.
//!
//! An in-memory database (`sqlite::memory:`) lives and dies with its connection, so it uses one
//! connection for reads and writes, kept open for the life of the store.
#![warn(missing_docs)]

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use tokenwarden_core::store::StoreError;

mod rows;
mod store;

/// Connections in the read pool. Reads are short point lookups; a few connections let
/// introspection and revocation lookups proceed in parallel without hoarding file descriptors on a
/// small machine.
pub const READ_CONNECTIONS: u32 = 4;

/// How long a connection waits for another process's write lock before `SQLITE_BUSY`.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The schema, embedded at build time from `migrations/sqlite` (CONVENTIONS "Storage").
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/sqlite");

/// The SQLite-backed store. Cloning is cheap and shares the pools.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// One connection: every write, and every read that must see the transaction it is part of.
    write: SqlitePool,
    /// Reads of committed state. The same pool as `write` for an in-memory database.
    read: SqlitePool,
}

/// The settings in effect on one connection, as SQLite reports them (`PRAGMA name`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionPragmas {
    /// `PRAGMA journal_mode`, lower case (`wal`; `memory` for an in-memory database).
    pub journal_mode: String,
    /// `PRAGMA synchronous`: 0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA.
    pub synchronous: i64,
    /// `PRAGMA foreign_keys`.
    pub foreign_keys: bool,
    /// `PRAGMA busy_timeout`, in milliseconds.
    pub busy_timeout_ms: i64,
    /// `PRAGMA query_only`.
    pub query_only: bool,
}

/// The settings in effect on a writer and on a reader connection of a [`SqliteStore`], so an
/// operator (or a test) can check the durability settings instead of trusting them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectivePragmas {
    /// The write connection.
    pub writer: ConnectionPragmas,
    /// A read connection.
    pub reader: ConnectionPragmas,
}

impl SqliteStore {
    /// Opens (creating it and its schema if missing) the database at `url`: `sqlite://path`,
    /// `sqlite:path` or `sqlite::memory:`; SQLite URI parameters such as `?mode=ro` are honoured.
    /// Pending migrations are applied before this returns.
    pub async fn open(url: &str) -> Result<SqliteStore, StoreError> {
        if !url.starts_with("sqlite:") {
            return Err(StoreError::Unavailable(format!(
                "not a SQLite database URL (expected sqlite://path or sqlite::memory:): {url}"
            )));
        }
        let base = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Unavailable(format!("invalid SQLite URL: {e}")))?
            .create_if_missing(true)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true)
            .synchronous(SqliteSynchronous::Full);

        let store = if is_in_memory(url) {
            // One connection, never recycled: closing the last connection would drop the data.
            let pool = SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .test_before_acquire(false)
                .connect_with(base)
                .await
                .map_err(db_err)?;
            migrate(&pool).await?;
            SqliteStore {
                write: pool.clone(),
                read: pool,
            }
        } else {
            // The writer connects first: switching a new file to WAL needs an exclusive lock that
            // `busy_timeout` does not wait for, so no reader may be connected yet.
            let write = SqlitePoolOptions::new()
                .max_connections(1)
                // An in-process connection cannot be dropped by a network; skip the ping.
                .test_before_acquire(false)
                .connect_with(base.clone().journal_mode(SqliteJournalMode::Wal))
                .await
                .map_err(db_err)?;
            migrate(&write).await?;
            let read = SqlitePoolOptions::new()
                .max_connections(READ_CONNECTIONS)
                .test_before_acquire(false)
                .connect_with(base.pragma("query_only", "ON"))
                .await
                .map_err(db_err)?;
            SqliteStore { write, read }
        };
        tracing::debug!(
            filename = %store.write.connect_options().get_filename().display(),
            "opened SQLite store"
        );
        Ok(store)
    }

    /// Checks that the database answers (for `GET /healthz`): reads the schema page through the
    /// read pool. The writer is not pinged, so a health check never queues behind writes; a
    /// wedged writer shows up as `503`s on the writes themselves.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT count(*) FROM sqlite_schema")
            .fetch_one(&self.read)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    /// Closes both pools, waiting for connections in use to be returned, after copying the WAL
    /// into the database file (`wal_checkpoint(TRUNCATE)`), so a cleanly shut down database is one
    /// self-contained file that can be copied or backed up alone. SQLite also checkpoints when the
    /// last connection closes, but the pool finishes closing connections in the background, so
    /// that cannot be relied on to have happened when this returns. Further operations fail with
    /// `StoreError::Unavailable`. Safe to call more than once.
    pub async fn close(&self) {
        self.read.close().await;
        // Closed already when it is the same pool (in-memory) or on a second call.
        if !self.write.is_closed() {
            if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&self.write)
                .await
            {
                // Nothing is lost: the next open replays the WAL.
                tracing::warn!(error = %e, "WAL checkpoint on close failed");
            }
        }
        self.write.close().await;
    }

    /// The settings actually in effect on a write and a read connection.
    pub async fn effective_pragmas(&self) -> Result<EffectivePragmas, StoreError> {
        Ok(EffectivePragmas {
            writer: connection_pragmas(&self.write).await?,
            reader: connection_pragmas(&self.read).await?,
        })
    }
}

/// Applies pending migrations through the writer (each in its own transaction).
async fn migrate(write: &SqlitePool) -> Result<(), StoreError> {
    MIGRATOR
        .run(write)
        .await
        .map_err(|e| StoreError::Unavailable(format!("migration failed: {e}")))
}

/// Reads the pragmas from one connection of `pool` (all statements on the same connection:
/// `synchronous`, `foreign_keys`, `busy_timeout` and `query_only` are per connection).
async fn connection_pragmas(pool: &SqlitePool) -> Result<ConnectionPragmas, StoreError> {
    let mut conn = pool.acquire().await.map_err(db_err)?;
    let journal_mode: String = pragma(&mut conn, "PRAGMA journal_mode").await?;
    let synchronous: i64 = pragma(&mut conn, "PRAGMA synchronous").await?;
    let foreign_keys: i64 = pragma(&mut conn, "PRAGMA foreign_keys").await?;
    let busy_timeout_ms: i64 = pragma(&mut conn, "PRAGMA busy_timeout").await?;
    let query_only: i64 = pragma(&mut conn, "PRAGMA query_only").await?;
    Ok(ConnectionPragmas {
        journal_mode: journal_mode.to_ascii_lowercase(),
        synchronous,
        foreign_keys: foreign_keys != 0,
        busy_timeout_ms,
        query_only: query_only != 0,
    })
}

async fn pragma<T>(conn: &mut sqlx::SqliteConnection, sql: &'static str) -> Result<T, StoreError>
where
    T: for<'r> sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>,
{
    sqlx::query(sql)
        .fetch_one(&mut *conn)
        .await
        .and_then(|row| row.try_get(0))
        .map_err(db_err)
}

/// `sqlite::memory:`, `sqlite://:memory:` and `?mode=memory` all name a private in-memory database.
fn is_in_memory(url: &str) -> bool {
    let rest = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let (database, params) = rest.split_once('?').unwrap_or((rest, ""));
    database == ":memory:" || params.split('&').any(|p| p == "mode=memory")
}

/// Maps a driver error: a uniqueness violation is the caller's `Conflict` (id or name taken);
/// anything else means the store could not do its job. The message carries no bound values, so
/// no token or secret reaches the logs.
pub(crate) fn db_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict,
        _ => StoreError::Unavailable(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_urls_are_recognized() {
        assert!(is_in_memory("sqlite::memory:"));
        assert!(is_in_memory("sqlite://:memory:"));
        assert!(is_in_memory("sqlite://?mode=memory"));
        assert!(!is_in_memory("sqlite://tokenwarden.db"));
        assert!(!is_in_memory("sqlite:data/memory.db"));
    }
}
