//! Fixtures: throwaway database files and records.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use tokenwarden_sqlite::SqliteStore;

/// A database file in the temp directory, removed (with its `-wal` and `-shm`) on drop.
pub struct TempDb {
    pub path: PathBuf,
}

impl TempDb {
    pub fn new(name: &str) -> Self {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "tokenwarden-sqlite-{name}-{}-{}.db",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let db = Self { path };
        db.remove();
        db
    }

    pub fn url(&self) -> String {
        format!("sqlite://{}", self.path.display())
    }

    pub async fn open(&self) -> SqliteStore {
        SqliteStore::open(&self.url()).await.unwrap()
    }

    pub fn sidecar(&self, suffix: &str) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(suffix);
        PathBuf::from(p)
    }

    fn remove(&self) {
        for p in [
            self.path.clone(),
            self.sidecar("-wal"),
            self.sidecar("-shm"),
        ] {
            let _ = std::fs::remove_file(&p);
        }
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        self.remove();
    }
}

/// Opens a second, raw connection to the file, for looking under the store.
pub async fn raw(path: &Path) -> sqlx::SqliteConnection {
    use sqlx::Connection as _;
    sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap()
}

pub use tokenwarden_conformance::fixtures::*;
