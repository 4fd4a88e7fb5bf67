//! The file store: 0600, atomic replace, lock file.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokenwarden_client::{FileStore, TokenStore};

use crate::mock::*;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A scratch directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "tokenwarden-client-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test]
async fn file_store_round_trips_with_mode_0600_and_leaves_no_temp_files() {
    let dir = TempDir::new();
    let path = dir.0.join("tokens.json");
    let store = FileStore::new(&path);
    assert_eq!(store.load().await.unwrap(), None);
    let tokens = token_set(&at0(), Some(&rt0()), at(9, 0, 0, 0), at(10, 0, 0, 0));
    store.save(&tokens).await.unwrap();
    assert_eq!(store.load().await.unwrap(), Some(tokens.clone()));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let mut replaced = tokens.clone();
    replaced.access_token = tokenwarden_client::AccessToken::new(at_n(1));
    replaced.expires_at += Duration::from_millis(1);
    store.save(&replaced).await.unwrap();
    assert_eq!(store.load().await.unwrap(), Some(replaced));
    let names: Vec<String> = std::fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["tokens.json".to_owned()], "no temp file left");

    let lock = store.lock().await.unwrap();
    drop(lock);
    store.clear().await.unwrap();
    assert_eq!(store.load().await.unwrap(), None);
    store.clear().await.unwrap();
}

#[tokio::test]
async fn a_corrupt_file_is_an_error_not_an_empty_store() {
    let dir = TempDir::new();
    let path = dir.0.join("tokens.json");
    std::fs::write(&path, format!("{{\"access_token\":\"{}\"", at0())).unwrap();
    let e = FileStore::new(&path).load().await.unwrap_err();
    assert!(!e.to_string().contains(&at0()));
}
