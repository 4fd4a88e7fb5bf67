//! Choosing the store from `--database URL`: `sqlite://PATH` (the embedded default) or
//! `postgres://…` (several nodes on one database). Commands are generic over [`Backend`] and
//! monomorphized for each store, so the request path pays no dynamic dispatch.

use std::future::Future;
use std::sync::Arc;

use anyhow::{bail, Context as _};
use tokenwarden_core::store::memory::MemoryStore;
use tokenwarden_core::store::AccountStore;
use tokenwarden_postgres::PostgresStore;
use tokenwarden_sqlite::SqliteStore;

/// What the binary needs of a store.
pub trait Backend: AccountStore + Health + Send + Sync + 'static {
    /// Flushes and closes (graceful shutdown, end of an admin command).
    fn shutdown(&self) -> impl Future<Output = ()> + Send;
    /// Calls `wake` when another process commits revocation events, if the database can say so;
    /// the revocation feed polls in any case.
    fn watch_revocations(&self, wake: Arc<dyn Fn() + Send + Sync>);
    /// `serve --fsync-issuance`: fsync commits of token issuance alone too.
    fn set_fsync_issuance(&self, fsync: bool);
}

impl Backend for SqliteStore {
    async fn shutdown(&self) {
        self.close().await;
    }
    fn watch_revocations(&self, _wake: Arc<dyn Fn() + Send + Sync>) {
        // SQLite has no cross-process notification: the feed's poll picks up the admin CLI's
        // revocations; this process's own wake the feed directly.
    }
    fn set_fsync_issuance(&self, fsync: bool) {
        SqliteStore::set_fsync_issuance(self, fsync);
    }
}

impl Backend for PostgresStore {
    async fn shutdown(&self) {
        self.close().await;
    }
    fn watch_revocations(&self, wake: Arc<dyn Fn() + Send + Sync>) {
        PostgresStore::watch_revocations(self, wake);
    }
    fn set_fsync_issuance(&self, _fsync: bool) {
        // Every PostgreSQL commit waits for its WAL flush (`synchronous_commit` as the server
        // is configured): there is no issuance-only class to switch.
    }
}

/// An opened store.
pub enum Opened {
    /// `sqlite://PATH`
    Sqlite(SqliteStore),
    /// `postgres://…`
    Postgres(PostgresStore),
}

/// Runs `$body` with `$store` bound to whichever store `$opened` holds.
#[macro_export]
macro_rules! with_backend {
    ($opened:expr, |$store:ident| $body:expr) => {
        match $opened {
            $crate::backend::Opened::Sqlite($store) => $body,
            $crate::backend::Opened::Postgres($store) => $body,
        }
    };
}

/// Opens the store named by `url`, creating the database schema and applying migrations when
/// needed.
pub async fn open(url: &str) -> anyhow::Result<Opened> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return PostgresStore::open(url)
            .await
            .map(Opened::Postgres)
            .context("cannot open the PostgreSQL database");
    }
    if !url.starts_with("sqlite:") {
        bail!("unsupported database URL scheme; expected sqlite://PATH or postgres://…");
    }
    SqliteStore::open(url)
        .await
        .map(Opened::Sqlite)
        .context("cannot open the SQLite database")
}

/// A liveness check of the store, for `GET /healthz`, and what it can tell `GET /metrics`.
pub trait Health: Send + Sync {
    /// `true` when the database answers.
    fn healthy(&self) -> impl Future<Output = bool> + Send;
    /// Prometheus lines about the store's writes, if it counts them.
    fn write_metrics(&self) -> Option<String> {
        None
    }
}

impl Health for SqliteStore {
    async fn healthy(&self) -> bool {
        self.ping().await.is_ok()
    }
    fn write_metrics(&self) -> Option<String> {
        let w = self.write_stats();
        let unsynced = w.transactions.saturating_sub(w.fsynced);
        Some(format!(
            "# HELP tokenwarden_sqlite_commits_total SQLite write transactions (group commits), by whether the commit was fsynced.\n\
             # TYPE tokenwarden_sqlite_commits_total counter\n\
             tokenwarden_sqlite_commits_total{{fsync=\"true\"}} {}\n\
             tokenwarden_sqlite_commits_total{{fsync=\"false\"}} {unsynced}\n\
             # HELP tokenwarden_sqlite_write_operations_total Store writes carried by those transactions.\n\
             # TYPE tokenwarden_sqlite_write_operations_total counter\n\
             tokenwarden_sqlite_write_operations_total {}\n\
             # HELP tokenwarden_sqlite_batch_reruns_total Group commits rolled back and run again with a savepoint per write, because one write failed.\n\
             # TYPE tokenwarden_sqlite_batch_reruns_total counter\n\
             tokenwarden_sqlite_batch_reruns_total {}\n",
            w.fsynced, w.operations, w.reruns
        ))
    }
}

impl Health for PostgresStore {
    async fn healthy(&self) -> bool {
        self.ping().await.is_ok()
    }
}

impl Health for MemoryStore {
    async fn healthy(&self) -> bool {
        true
    }
}
