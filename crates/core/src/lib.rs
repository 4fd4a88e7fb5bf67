//! # tokenwarden-core
//!
//! The framework-agnostic OAuth 2.0 token-lifecycle core of tokenwarden: the role Python oauthlib's
//! endpoints play, in Rust. Every endpoint takes an [`http::Request<Bytes>`](http::Request) and returns
//! an [`http::Response<Bytes>`](http::Response); storage, the clock and randomness come in through
//! traits ([`store::Store`], [`clock::Clock`], [`random::Random`]). Nothing here does I/O of its own,
//! and nothing depends on an HTTP framework, a database driver or an async runtime.
//!
//! | endpoint | module | standard |
//! |---|---|---|
//! | `GET /oauth2/authorize` (validation, codes) | [`authorization`], [`pkce`] | RFC 6749 §4.1, RFC 7636 |
//! | `POST /oauth2/token` | [`token`] with one module per grant in [`grant`] | RFC 6749 §4.1.3, §4.4, §6 |
//! | `POST /oauth2/revoke` | [`revocation`] | RFC 7009 |
//! | `POST /oauth2/introspect` | [`introspection`] | RFC 7662 |
//! | `GET /.well-known/oauth-authorization-server` | [`metadata`] | RFC 8414 |
//!
//! ```no_run
//! use std::sync::Arc;
//! use tokenwarden_core::{AuthorizationServer, Config, clock::SystemClock, random::OsRandom,
//!     store::memory::MemoryStore};
//!
//! # async fn demo(request: http::Request<bytes::Bytes>) {
//! let server = AuthorizationServer::new(
//!     MemoryStore::default(),
//!     Config::new("https://auth.example.com"),
//!     Arc::new(SystemClock),
//!     Arc::new(OsRandom),
//! );
//! let response: http::Response<bytes::Bytes> = server.revoke(request).await;
//! # }
//! ```
#![warn(missing_docs)]

pub mod authorization;
pub mod client_auth;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod error;
pub mod feed;
pub mod grant;
pub mod introspection;
pub mod metadata;
pub mod model;
pub mod pkce;
pub mod random;
pub mod revocation;
pub mod secret;
pub mod server;
pub mod store;
pub mod token;
pub mod wire;

pub use config::Config;
pub use error::{ErrorCode, OAuthError};
pub use server::{AuthorizationServer, Outcome};
