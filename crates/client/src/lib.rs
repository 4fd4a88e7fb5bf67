//! # tokenwarden-client
//!
//! An OAuth 2.0 client that gets the token lifecycle right, for any RFC-compliant authorization
//! server (it does not depend on tokenwarden's server crates).
//!
//! * **Protocol pieces**, one module per RFC operation, each building an `http::Request<Bytes>` and
//!   parsing an `http::Response<Bytes>`: [`grant`] (authorization code, client credentials,
//!   refresh — RFC 6749), [`revocation`] (RFC 7009), [`introspection`] (RFC 7662), [`discovery`]
//!   (RFC 8414); errors as an open [`ErrorCode`] enum; client authentication
//!   `client_secret_basic` (with RFC 6749 §2.3.1's form-encoding), `client_secret_post` or `none`
//!   ([`ClientCredentials`]); secrets in redacted, zeroizing newtypes ([`AccessToken`],
//!   [`RefreshToken`], [`ClientSecret`]).
//! * **[`OAuthClient`]**: those requests over a pluggable [`HttpClient`] ([`ReqwestClient`] by
//!   default).
//! * **[`TokenManager`]**: keeps a valid access token for any number of concurrent tasks — refresh
//!   before expiry, one refresh at a time, rotation persisted before use, one retry after a 401,
//!   reconnect on `invalid_grant`, backoff on transient failures, logout that revokes. Stores:
//!   [`MemoryStore`], [`FileStore`] (0600, atomic, shared safely by several processes), or your
//!   own [`TokenStore`].
//! * **[`AuthMiddleware`]** for `reqwest-middleware` (feature `middleware`, on by default).
//!
//! Plain `http://` is accepted only for loopback hosts (127.0.0.0/8, `::1`, `localhost`).
//! The default [`ReqwestClient`] has no TLS backend unless the `rustls-tls` feature is on; pass a
//! TLS-enabled `reqwest::Client` to [`ReqwestClient::from_client`] otherwise.
//!
//! Nothing in this crate logs a token or a secret, at any `tracing` level.
//!
//! ## The textbook token-manager pattern
//!
//! Store the expiry; refresh five minutes early; retry once on 401; on `invalid_grant` clear the
//! tokens and ask the user to reconnect; log out by revoking. In full:
//!
//! ```no_run
//! use std::sync::Arc;
//! use tokenwarden_client::{
//!     ClientCredentials, ClientSecret, Error, FileStore, IssuerUrl, OAuthClient, ReqwestClient,
//!     TokenManager,
//! };
//!
//! # async fn sign_in_again() {}
//! # async fn run() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! // Endpoints from the server's RFC 8414 metadata; the secret from the environment, not a flag.
//! let http = Arc::new(ReqwestClient::new()?);
//! let issuer = IssuerUrl::parse("http://127.0.0.1:8080")?;
//! let secret = ClientSecret::new(std::env::var("TOKENWARDEN_CLIENT_SECRET")?);
//! let credentials = ClientCredentials::basic("my-app", secret);
//! let client = OAuthClient::discover(http, &issuer, credentials).await?;
//!
//! // Tokens live in a 0600 file that several processes may share; refresh 5 minutes early.
//! let manager = TokenManager::builder(client)
//!     .store(Arc::new(FileStore::new("tokens.json")))
//!     .refresh_buffer(std::time::Duration::from_secs(300))
//!     .build();
//!
//! // First run: the user authorized in a browser; exchange the code (PKCE verifier included).
//! if manager.tokens().await?.is_none() {
//!     manager
//!         .exchange_code("CODE", Some("http://127.0.0.1:9000/callback"), Some("VERIFIER"))
//!         .await?;
//! }
//!
//! // Every API call: a valid token, refreshed transparently, one retry after a 401.
//! let api = manager.authorized_client(reqwest::Client::new());
//! match api.get("http://127.0.0.1:9000/api/me").send().await {
//!     Ok(response) => println!("{}", response.status()),
//!     Err(reqwest_middleware::Error::Middleware(e)) => match e.downcast_ref::<Error>() {
//!         // The grant is gone (revoked, expired, reused): the store is already wiped.
//!         Some(Error::ReconnectRequired) => sign_in_again().await,
//!         _ => return Err(e.into()),
//!     },
//!     Err(e) => return Err(e.into()),
//! }
//!
//! // Or just the token, for any other HTTP stack.
//! let token = manager.access_token().await?;
//! let _header = format!("Bearer {}", token.secret());
//!
//! // Sign out: revoke the refresh token, then the access token; the store is cleared regardless.
//! manager.logout().await?;
//! # Ok(())
//! # }
//! ```
//!
//! Service-to-service code uses the client credentials grant instead:
//! `TokenManager::builder(client).client_credentials(Some("read")).build()` fetches a token on
//! first use and a new one whenever it is due.
#![warn(missing_docs)]

pub mod client;
pub mod client_auth;
pub mod clock;
pub mod discovery;
pub mod endpoint;
pub mod error;
pub mod grant;
pub mod http;
pub mod introspection;
pub mod manager;
#[cfg(feature = "middleware")]
pub mod middleware;
pub mod revocation;
pub mod secret;
pub mod store;
pub mod token;

pub use crate::client::{Endpoints, OAuthClient};
pub use crate::client_auth::{AuthMethod, ClientCredentials, ClientId};
pub use crate::clock::{Clock, SystemClock, TokioClock};
pub use crate::endpoint::{EndpointUrl, IssuerUrl, UrlError};
pub use crate::error::{Error, ErrorCode, ErrorResponse};
#[cfg(feature = "reqwest")]
pub use crate::http::ReqwestClient;
pub use crate::http::{HttpClient, HttpError};
pub use crate::introspection::IntrospectionResponse;
pub use crate::manager::{RetryPolicy, TokenManager, TokenManagerBuilder};
#[cfg(feature = "middleware")]
pub use crate::middleware::AuthMiddleware;
pub use crate::revocation::TokenTypeHint;
pub use crate::secret::{AccessToken, ClientSecret, RefreshToken};
pub use crate::store::{FileStore, MemoryStore, StoreError, TokenStore};
pub use crate::token::{Freshness, TokenResponse, TokenSet};
