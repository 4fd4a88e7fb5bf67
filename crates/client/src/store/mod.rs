//! Where the [`TokenManager`](crate::TokenManager) keeps its tokens: [`MemoryStore`],
//! [`FileStore`], or your own [`TokenStore`].
//!
//! One method per atomic operation. `save` must be atomic (a reader sees the old pair or the new
//! pair, never half of each) and durable when it returns: the manager hands a refreshed pair to
//! callers only after `save` succeeded, because a rotated refresh token that is lost is a grant
//! that is lost.

mod file;
mod memory;

pub use file::FileStore;
pub use memory::MemoryStore;

use std::any::Any;

use crate::token::TokenSet;

/// A token store failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// I/O.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The stored data cannot be read.
    #[error("stored tokens are unreadable: {0}")]
    Corrupt(String),
    /// Anything else (custom stores).
    #[error("{0}")]
    Other(Box<dyn std::error::Error + Send + Sync>),
}

/// Held while a refresh runs; releases the store's cross-process lock on drop.
pub struct StoreLock {
    _guard: Option<Box<dyn Any + Send + Sync>>,
}

impl StoreLock {
    /// A lock that locks nothing (stores used by one process only).
    pub fn none() -> Self {
        Self { _guard: None }
    }

    /// A lock released when `guard` is dropped.
    pub fn new(guard: impl Any + Send + Sync) -> Self {
        Self {
            _guard: Some(Box::new(guard)),
        }
    }
}

impl std::fmt::Debug for StoreLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreLock")
    }
}

/// Token persistence.
#[async_trait::async_trait]
pub trait TokenStore: Send + Sync + std::fmt::Debug {
    /// The stored tokens, if any.
    async fn load(&self) -> Result<Option<TokenSet>, StoreError>;

    /// Replaces the stored tokens, atomically and durably.
    async fn save(&self, tokens: &TokenSet) -> Result<(), StoreError>;

    /// Removes the stored tokens (no error if there are none).
    async fn clear(&self) -> Result<(), StoreError>;

    /// An exclusive lock across every process sharing this store, held by the manager around
    /// "re-read, refresh if still needed, save". The default locks nothing, which is right for a
    /// store only one process uses (the manager already lets one refresh run at a time).
    async fn lock(&self) -> Result<StoreLock, StoreError> {
        Ok(StoreLock::none())
    }
}
