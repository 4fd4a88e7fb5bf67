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
//! * **Cache.** Introspection results are cached under the token's digest (its time bytes and
//!   SHA-256, as the server stores it; the token itself is never stored): active answers until
//!   the earlier of the token's `exp` and [`ValidatorBuilder::cache_max_ttl`] (5 min), inactive
//!   ones for
//!   [`ValidatorBuilder::negative_ttl`] (5 s); at most [`ValidatorBuilder::max_entries`]. Concurrent
//!   requests with the same uncached token share one introspection; at most
//!   [`ValidatorBuilder::max_concurrent_introspections`] (64) introspections run at once, a miss
//!   beyond that is answered `503` at once. An active answer is cached only if it names a
//!   `client_id` and a `sub` (what `grant` and `client` events match on); without them it is
//!   accepted but introspected on every request.
//! * **Acceptance.** `active: true`, a `token_type` that is absent or `Bearer` (any case), and an
//!   `exp`, if present, still in the future. Anything else is `invalid_token`.
//! * **Feed.** The validator subscribes to the revocation feed and evicts on every event: `token`
//!   (by digest), `grant` (every entry of that `client_id` and `sub`), `client` (every entry of
//!   that `client_id`), `resync` (everything). A `revoked` event whose id does not follow the
//!   cursor (a gap), or an event of an unknown type that carries an id, flushes everything. It
//!   reconnects with `Last-Event-ID` and backoff, and drops a connection silent for two
//!   heartbeats (the heartbeat announced by the server, clamped to 1–60 s), or one that sends a
//!   line or an event over 64 KiB.
//! * **Fail safe.** The feed is *current* while connected and silent (no event, no keep-alive)
//!   for at most 1.5 × the heartbeat. The cache is *read* only while the feed is current or was
//!   last heard from less than [`ValidatorBuilder::feed_stale_bound`] (10 s) ago — counted from
//!   the last thing the feed said, not from when its loss was noticed — so a revocation the feed
//!   fails to deliver is honoured for at most max(1.5 × heartbeat, stale bound) after the feed
//!   went quiet (15 s with tokenwarden's 10 s heartbeat and the defaults); beyond that every
//!   request is introspected. Results are *written* only while the feed is current, and not when
//!   a feed event (or a connection change) happened while the introspection was in flight. When
//!   introspection fails the answer is `503`: a token is never accepted unvalidated. If the feed
//!   task ever ends (a panic included), the feed counts as lost.
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
