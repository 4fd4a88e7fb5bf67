//! An in-memory store: tokens last as long as the process.

use std::sync::{Mutex, PoisonError};

use super::{StoreError, TokenStore};
use crate::token::TokenSet;

/// Tokens in memory.
#[derive(Debug, Default)]
pub struct MemoryStore {
    tokens: Mutex<Option<TokenSet>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A store holding `tokens`.
    pub fn with_tokens(tokens: TokenSet) -> Self {
        Self {
            tokens: Mutex::new(Some(tokens)),
        }
    }

    /// What is stored now.
    pub fn snapshot(&self) -> Option<TokenSet> {
        self.tokens
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

#[async_trait::async_trait]
impl TokenStore for MemoryStore {
    async fn load(&self) -> Result<Option<TokenSet>, StoreError> {
        Ok(self.snapshot())
    }

    async fn save(&self, tokens: &TokenSet) -> Result<(), StoreError> {
        *self.tokens.lock().unwrap_or_else(PoisonError::into_inner) = Some(tokens.clone());
        Ok(())
    }

    async fn clear(&self) -> Result<(), StoreError> {
        *self.tokens.lock().unwrap_or_else(PoisonError::into_inner) = None;
        Ok(())
    }
}
