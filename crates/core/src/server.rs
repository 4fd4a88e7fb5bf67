//! [`AuthorizationServer`]: the store, clock, randomness and configuration every endpoint uses.
//! The endpoints themselves live in their own modules ([`crate::token`], [`crate::revocation`],
//! [`crate::introspection`], [`crate::metadata`]) as `impl` blocks on this type.

use std::sync::Arc;

use bytes::Bytes;
use http::Response;

use crate::clock::{Clock, Timestamp};
use crate::config::Config;
use crate::random::Random;

/// What an endpoint did, attached to every response's extensions so an adapter can count it
/// (metrics) without parsing bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// A new grant or token was issued.
    TokenIssued,
    /// A refresh token was rotated.
    TokenRefreshed,
    /// The previous refresh token was re-presented within the grace window; the same response
    /// was returned.
    GraceReplay,
    /// A used refresh token was re-presented after the grace window; the grant was revoked.
    ReuseDetected,
    /// A token (and possibly its grant) was revoked.
    Revoked,
    /// Revocation of an unknown, expired or already revoked token (still `200`).
    NothingToRevoke,
    /// Introspection answered active.
    Active,
    /// Introspection answered inactive.
    Inactive,
    /// Metadata served.
    Metadata,
    /// The request was refused with an error.
    Rejected,
}

/// The framework-agnostic authorization server.
pub struct AuthorizationServer<S> {
    pub(crate) store: S,
    pub(crate) config: Config,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) random: Arc<dyn Random>,
}

impl<S> AuthorizationServer<S> {
    /// Assembles a server from its parts.
    pub fn new(store: S, config: Config, clock: Arc<dyn Clock>, random: Arc<dyn Random>) -> Self {
        Self {
            store,
            config,
            clock,
            random,
        }
    }
    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }
    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }
    /// The random source.
    pub fn random(&self) -> &dyn Random {
        self.random.as_ref()
    }
    /// The current time per the injected clock.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }
}

impl<S> std::fmt::Debug for AuthorizationServer<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthorizationServer")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

pub(crate) fn with_outcome(mut response: Response<Bytes>, outcome: Outcome) -> Response<Bytes> {
    response.extensions_mut().insert(outcome);
    response
}
