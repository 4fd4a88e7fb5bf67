//! A JSON file store shared safely by several processes.
//!
//! * The file is created with mode 0600 (owner only): it holds bearer credentials.
//! * `save` writes a temporary file in the same directory, fsyncs it, renames it over the store
//!   and fsyncs the directory: a crash leaves the old pair or the new pair, never a torn file.
//! * [`TokenStore::lock`] takes an exclusive `flock` on `<file>.lock`, so when several processes
//!   find the token due at once, one refreshes and the others, after waiting for the lock,
//!   re-read the store and find fresh tokens (the manager's "lock, re-read, refresh only if still
//!   needed").

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::{StoreError, StoreLock, TokenStore};
use crate::clock::{from_unix_millis, to_unix_millis};
use crate::secret::{AccessToken, RefreshToken};
use crate::token::TokenSet;

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Tokens in a JSON file.
#[derive(Clone, Debug)]
pub struct FileStore {
    path: PathBuf,
    lock_path: PathBuf,
}

/// The file's format (version 1). Secrets in clear — hence 0600 — and zeroized after use.
#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
struct FileFormat {
    version: u32,
    access_token: String,
    token_type: String,
    refresh_token: Option<String>,
    scope: Option<String>,
    obtained_at_ms: u64,
    expires_at_ms: u64,
    expiry_assumed: bool,
}

impl FileStore {
    /// A store at `path` (created on first save; its directory must exist). The lock file is
    /// `path` with `.lock` appended.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        let mut lock_name = path.file_name().unwrap_or_default().to_os_string();
        lock_name.push(".lock");
        let lock_path = path.with_file_name(lock_name);
        Self { path, lock_path }
    }

    /// The token file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn read(&self) -> Result<Option<TokenSet>, StoreError> {
        let bytes = match fs::read(&self.path) {
            Ok(bytes) => Zeroizing::new(bytes),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let file: FileFormat = serde_json::from_slice(&bytes).map_err(|e| {
            StoreError::Corrupt(format!("{:?} error at line {}", e.classify(), e.line()))
        })?;
        if file.version != 1 {
            return Err(StoreError::Corrupt(format!(
                "unknown format version {}",
                file.version
            )));
        }
        Ok(Some(TokenSet {
            access_token: AccessToken::new(file.access_token.clone()),
            token_type: file.token_type.clone(),
            refresh_token: file.refresh_token.clone().map(RefreshToken::new),
            scope: file.scope.clone(),
            obtained_at: from_unix_millis(file.obtained_at_ms),
            expires_at: from_unix_millis(file.expires_at_ms),
            expiry_assumed: file.expiry_assumed,
        }))
    }

    fn write(&self, tokens: &TokenSet) -> Result<(), StoreError> {
        let file = FileFormat {
            version: 1,
            access_token: tokens.access_token.secret().to_owned(),
            token_type: tokens.token_type.clone(),
            refresh_token: tokens.refresh_token.as_ref().map(|t| t.secret().to_owned()),
            scope: tokens.scope.clone(),
            obtained_at_ms: to_unix_millis(tokens.obtained_at),
            expires_at_ms: to_unix_millis(tokens.expires_at),
            expiry_assumed: tokens.expiry_assumed,
        };
        let bytes =
            Zeroizing::new(serde_json::to_vec(&file).map_err(|e| StoreError::Other(Box::new(e)))?);
        write_atomically(&self.path, &bytes)?;
        Ok(())
    }

    fn remove(&self) -> Result<(), StoreError> {
        match fs::remove_file(&self.path) {
            Ok(()) => sync_parent(&self.path).map_err(StoreError::from),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    fn acquire(&self) -> Result<FileLock, StoreError> {
        let file = owner_only(OpenOptions::new().create(true).truncate(false).write(true))
            .open(&self.lock_path)?;
        fs4::fs_std::FileExt::lock_exclusive(&file)?;
        Ok(FileLock { file })
    }
}

/// Releases the `flock` when dropped (closing the descriptor would too; this makes it explicit).
struct FileLock {
    file: File,
}

impl Drop for FileLock {
    fn drop(&mut self) {
        let _ = fs4::fs_std::FileExt::unlock(&self.file);
    }
}

fn owner_only(options: &mut OpenOptions) -> &mut OpenOptions {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    options
}

/// temp file (0600) → write → fsync → rename → fsync the directory.
fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, "store path has no file name")
    })?;
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(name);
    temp_name.push(format!(
        ".{}.{}.tmp",
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let temp = path.with_file_name(temp_name);
    let result = (|| {
        let mut file = owner_only(OpenOptions::new().write(true).create_new(true)).open(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&temp, path)?;
        sync_parent(path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

/// Makes a rename or removal durable.
fn sync_parent(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        File::open(parent)?.sync_all()?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Other(Box::new(e)))?
}

#[async_trait::async_trait]
impl TokenStore for FileStore {
    async fn load(&self) -> Result<Option<TokenSet>, StoreError> {
        let store = self.clone();
        blocking(move || store.read()).await
    }

    async fn save(&self, tokens: &TokenSet) -> Result<(), StoreError> {
        let store = self.clone();
        let tokens = tokens.clone();
        blocking(move || store.write(&tokens)).await
    }

    async fn clear(&self) -> Result<(), StoreError> {
        let store = self.clone();
        blocking(move || store.remove()).await
    }

    async fn lock(&self) -> Result<StoreLock, StoreError> {
        let store = self.clone();
        let lock = blocking(move || store.acquire()).await?;
        Ok(StoreLock::new(lock))
    }
}
