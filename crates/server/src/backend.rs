//! Choosing the store from `--database URL`.

use std::future::Future;

use anyhow::{bail, Context as _};
use tokenwarden_core::store::memory::MemoryStore;
use tokenwarden_sqlite::SqliteStore;

/// The store the binary runs on. SQLite is the embedded default; PostgreSQL (for several nodes)
/// will be a second variant behind the same traits.
pub type Backend = SqliteStore;

/// Opens the store named by `url`, creating the database and applying migrations when needed.
pub async fn open(url: &str) -> anyhow::Result<Backend> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        bail!("PostgreSQL storage is not part of this build yet; use a sqlite:// URL");
    }
    if !url.starts_with("sqlite:") {
        bail!("unsupported database URL scheme; expected sqlite://PATH");
    }
    SqliteStore::open(url)
        .await
        .with_context(|| "cannot open the database".to_string())
}

/// A liveness check of the store, for `GET /healthz`.
pub trait Health: Send + Sync {
    /// `true` when the database answers.
    fn healthy(&self) -> impl Future<Output = bool> + Send;
}

impl Health for SqliteStore {
    async fn healthy(&self) -> bool {
        self.ping().await.is_ok()
    }
}

impl Health for MemoryStore {
    async fn healthy(&self) -> bool {
        true
    }
}
