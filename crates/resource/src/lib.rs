//! # tokenwarden-resource
//!
//! Middleware for APIs (OAuth 2.0 resource servers): a [`tower::Layer`] that accepts a request only
//! with a valid bearer token (RFC 6750 §2.1, `Authorization` header), validated by introspection
//! (RFC 7662) against the authorization server, cached, and evicted from the cache the moment
//! tokenwarden's revocation feed (`GET /oauth2/revocations`) reports the token revoked. Handlers
//! get the token's [`TokenClaims`] as an `Arc<TokenClaims>` request extension, or with the
//! [`Claims`] extractor (feature `axum`, on by default).
//!
//! ```no_run
//! use axum::{routing::get, Router};
//! use tokenwarden_resource::{Claims, ClientSecret, Validator};
//!
//! async fn list(claims: Claims) -> String {
//!     format!("notes of {}", claims.subject.as_deref().unwrap_or("?"))
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let validator = Validator::builder()
//!     .issuer("http://127.0.0.1:8080") // RFC 8414 discovery of both endpoints
//!     .client_credentials("notes-api", ClientSecret::new(std::env::var("TOKENWARDEN_CLIENT_SECRET")?))
//!     .build()
//!     .await?;
//! let app: Router = Router::new()
//!     .route("/notes", get(list))
//!     .route_layer(validator.layer().require_scope("read"));
//! # let _ = app; Ok(()) }
//! ```
//!
//! ## Semantics
//!
//! * **Cache.** Introspection results are cached under the SHA-256 of the token (the token itself
//!   is never stored): active answers until the earlier of the token's `exp` and
//!   [`ValidatorBuilder::cache_max_ttl`] (5 min), inactive ones for
//!   [`ValidatorBuilder::negative_ttl`] (5 s); at most [`ValidatorBuilder::max_entries`]. Concurrent
//!   requests with the same uncached token share one introspection.
//! * **Feed.** The validator subscribes to the revocation feed and evicts on every event: `token`
//!   (by digest), `grant` (every entry of that `client_id` and `sub`), `client` (every entry of
//!   that `client_id`), `resync` (everything). It reconnects with `Last-Event-ID` and backoff, and
//!   treats three silent heartbeats as a dead connection.
//! * **Fail safe.** The cache is *read* only while the feed is connected or was lost less than
//!   [`ValidatorBuilder::feed_stale_bound`] (10 s) ago; beyond that every request is introspected.
//!   Results are *written* only while the feed is connected, and not when a feed event (or a
//!   connection change) happened while the introspection was in flight. When introspection fails
//!   the answer is `503`: a token is never accepted unvalidated.
//!
//! See [`BearerLayer`] for the HTTP answers. Plain `http://` endpoints are accepted only on
//! loopback hosts, as in `tokenwarden-client`; https needs the `rustls-tls` feature or a
//! TLS-enabled `reqwest::Client` ([`ValidatorBuilder::http_client`]). Nothing here logs a token or
//! a secret.
#![warn(missing_docs)]

mod bearer;
mod builder;
mod cache;
pub mod claims;
pub mod clock;
pub mod digest;
#[cfg(feature = "axum")]
mod extract;
mod feed;
mod layer;
pub mod sse;
mod stats;
mod validator;

pub use crate::builder::{BuildError, ValidatorBuilder};
pub use crate::claims::TokenClaims;
pub use crate::clock::{Clock, ManualClock, SystemClock, TokioClock};
pub use crate::digest::TokenDigest;
#[cfg(feature = "axum")]
pub use crate::extract::{Claims, MissingClaims};
pub use crate::layer::{BearerLayer, BearerService};
pub use crate::stats::{Evictions, Stats};
pub use crate::validator::{ValidationError, Validator};
pub use tokenwarden_client::ClientSecret;
