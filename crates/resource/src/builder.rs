//! [`ValidatorBuilder`]: endpoints (explicit, or discovered from the issuer's RFC 8414 metadata),
//! the resource server's client credentials, and the cache and feed settings.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokenwarden_client::discovery::{metadata_request, parse_metadata_response};
use tokenwarden_client::{
    ClientCredentials, ClientSecret, EndpointUrl, Endpoints, HttpClient, IssuerUrl, OAuthClient,
    ReqwestClient, UrlError,
};
use tracing::warn;

use crate::bearer::clean_realm;
use crate::clock::{Clock, SystemClock};
use crate::feed;
use crate::validator::{FeedTask, Settings, Shared, Validator};

/// Why a validator could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// No client id and secret: introspection and the feed require client authentication.
    #[error("no client credentials (client_credentials(id, secret))")]
    MissingCredentials,
    /// An endpoint was neither given nor found in the issuer's metadata.
    #[error("no {0}: set it, or give an issuer whose metadata lists it")]
    MissingEndpoint(&'static str),
    /// A URL was refused (https is required except for loopback hosts).
    #[error(transparent)]
    Url(#[from] UrlError),
    /// The issuer's metadata could not be fetched or used (RFC 8414 §3).
    #[error("discovery: {0}")]
    Discovery(#[source] tokenwarden_client::Error),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Http(String),
}

/// Configures a [`Validator`]. Defaults: cache entries live at most 5 minutes (and never past the
/// token's `exp`), inactive answers 5 seconds, 10 000 entries, the cache stays in use until 10
/// seconds after the feed was last heard from (or 1.5 heartbeats, if longer, while connected),
/// introspection times out after 5 seconds, at most 64 introspections in flight, reconnects back
/// off from 100 ms doubling to 5 s, realm `api`.
///
/// ```no_run
/// # async fn run() -> Result<(), tokenwarden_resource::BuildError> {
/// use tokenwarden_resource::{ClientSecret, Validator};
/// let validator = Validator::builder()
///     .issuer("https://auth.example.com")
///     .client_credentials("notes-api", ClientSecret::new("…"))
///     .build()
///     .await?;
/// # Ok(()) }
/// ```
#[must_use]
pub struct ValidatorBuilder {
    issuer: Option<String>,
    introspection_endpoint: Option<String>,
    revocation_feed_endpoint: Option<String>,
    feed_enabled: bool,
    client_id: Option<String>,
    client_secret: Option<ClientSecret>,
    settings: Settings,
    clock: Arc<dyn Clock>,
    http: Option<reqwest::Client>,
}

impl fmt::Debug for ValidatorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ValidatorBuilder")
            .field("issuer", &self.issuer)
            .field("introspection_endpoint", &self.introspection_endpoint)
            .field("revocation_feed_endpoint", &self.revocation_feed_endpoint)
            .field("feed_enabled", &self.feed_enabled)
            .field("client_id", &self.client_id)
            // ClientSecret's Debug is redacted; spelled out so a refactor cannot change that.
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("settings", &self.settings)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

impl Default for ValidatorBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ValidatorBuilder {
    /// A builder with the defaults.
    pub fn new() -> Self {
        Self {
            issuer: None,
            introspection_endpoint: None,
            revocation_feed_endpoint: None,
            feed_enabled: true,
            client_id: None,
            client_secret: None,
            settings: Settings {
                cache_max_ttl: Duration::from_secs(300),
                negative_ttl: Duration::from_secs(5),
                max_entries: 10_000,
                feed_stale_bound: Duration::from_secs(10),
                introspection_timeout: Duration::from_secs(5),
                max_concurrent_introspections: 64,
                reconnect_min: Duration::from_millis(100),
                reconnect_max: Duration::from_secs(5),
                realm: "api".to_owned(),
            },
            clock: Arc::new(SystemClock),
            http: None,
        }
    }

    /// The authorization server's issuer identifier: `introspection_endpoint` and
    /// `revocation_feed_endpoint` are read from its RFC 8414 metadata when [`Self::build`] runs
    /// (endpoints set explicitly take precedence).
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// The introspection endpoint (RFC 7662 §2).
    pub fn introspection_endpoint(mut self, url: impl Into<String>) -> Self {
        self.introspection_endpoint = Some(url.into());
        self
    }

    /// The revocation feed (`GET /oauth2/revocations` on tokenwarden).
    pub fn revocation_feed_endpoint(mut self, url: impl Into<String>) -> Self {
        self.revocation_feed_endpoint = Some(url.into());
        self
    }

    /// Runs without the feed, even if the metadata lists one: nothing is cached, every request
    /// is introspected.
    pub fn without_feed(mut self) -> Self {
        self.feed_enabled = false;
        self
    }

    /// The resource server's client credentials, sent as `client_secret_basic` (RFC 6749
    /// §2.3.1) to the introspection endpoint and the feed.
    pub fn client_credentials(
        mut self,
        client_id: impl Into<String>,
        secret: ClientSecret,
    ) -> Self {
        self.client_id = Some(client_id.into());
        self.client_secret = Some(secret);
        self
    }

    /// The longest an active answer is cached (default 5 minutes). It is never cached past the
    /// token's `exp`.
    pub fn cache_max_ttl(mut self, ttl: Duration) -> Self {
        self.settings.cache_max_ttl = ttl;
        self
    }

    /// How long an inactive answer is cached (default 5 seconds; zero disables).
    pub fn negative_ttl(mut self, ttl: Duration) -> Self {
        self.settings.negative_ttl = ttl;
        self
    }

    /// The most entries the cache holds (default 10 000; zero disables the cache). A full cache
    /// drops expired entries, then those closest to expiry.
    pub fn max_entries(mut self, max: usize) -> Self {
        self.settings.max_entries = max;
        self
    }

    /// How long the cache stays in use after the feed was last heard from (default 10 seconds):
    /// an event or a keep-alive, on a connection past its `ready`. The cache is also read while
    /// the feed is connected and silent for at most 1.5 × its heartbeat (announced by the server,
    /// clamped to 1–60 s; tokenwarden's default is 10 s), so a revocation the feed fails to
    /// deliver is honoured for at most max(1.5 × heartbeat, this bound) after the feed went
    /// quiet or was lost. Past it every request is introspected until the feed is back. Zero:
    /// only while the feed is current.
    pub fn feed_stale_bound(mut self, bound: Duration) -> Self {
        self.settings.feed_stale_bound = bound;
        self
    }

    /// How long to wait for the introspection endpoint before answering `503` (default 5 s).
    pub fn introspection_timeout(mut self, timeout: Duration) -> Self {
        self.settings.introspection_timeout = timeout;
        self
    }

    /// The most introspections in flight at once (default 64; at least 1). A cache miss beyond
    /// it is answered `503` ([`crate::ValidationError::Unavailable`]) at once rather than queued,
    /// so a slow or unreachable authorization server cannot pile up requests without bound.
    /// Requests for a token already being introspected join that introspection and need no
    /// slot of their own.
    pub fn max_concurrent_introspections(mut self, max: usize) -> Self {
        self.settings.max_concurrent_introspections = max;
        self
    }

    /// Feed reconnect backoff: first delay and cap (default 100 ms doubling to 5 s).
    pub fn reconnect_backoff(mut self, first: Duration, max: Duration) -> Self {
        self.settings.reconnect_min = first;
        self.settings.reconnect_max = max.max(first);
        self
    }

    /// The `realm` of the `WWW-Authenticate` challenges (default `api`). Characters that cannot
    /// appear in a quoted attribute (`"`, `\`, controls, non-ASCII) are dropped.
    pub fn realm(mut self, realm: impl AsRef<str>) -> Self {
        self.settings.realm = clean_realm(realm.as_ref());
        self
    }

    /// The clock of the cache, the feed's silence and its stale bound (default [`SystemClock`]).
    /// The feed's own timers (reconnect backoff, dropping a silent connection) run on tokio's.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The HTTP client for discovery, introspection and the feed. The default never follows
    /// redirects and has no TLS unless the `rustls-tls` feature is on; a client given here should
    /// not follow redirects either (credentials must not be replayed to a `Location`) and must
    /// have no overall request timeout (the feed is one long response).
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http = Some(client);
        self
    }

    /// Fetches the metadata if an issuer was given, checks the endpoints (https, or http on a
    /// loopback host) and starts the feed subscription. Must run inside a tokio runtime.
    pub async fn build(self) -> Result<Validator, BuildError> {
        let (Some(client_id), Some(secret)) = (self.client_id, self.client_secret) else {
            return Err(BuildError::MissingCredentials);
        };
        let http = match self.http {
            Some(http) => http,
            None => reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .connect_timeout(Duration::from_secs(10))
                .build()
                .map_err(|e| BuildError::Http(e.to_string()))?,
        };
        let requests: Arc<dyn HttpClient> = Arc::new(ReqwestClient::from_client(http.clone()));

        let mut introspection = self
            .introspection_endpoint
            .as_deref()
            .map(EndpointUrl::parse)
            .transpose()?;
        let mut feed_endpoint = self
            .revocation_feed_endpoint
            .as_deref()
            .map(EndpointUrl::parse)
            .transpose()?;
        if let Some(issuer) = &self.issuer {
            let issuer = IssuerUrl::parse(issuer)?;
            let request = metadata_request(&issuer).map_err(BuildError::Discovery)?;
            let response = requests
                .execute(request)
                .await
                .map_err(|e| BuildError::Discovery(e.into()))?;
            // Checks the status and that `issuer` is ours (RFC 8414 §3.3).
            let metadata =
                parse_metadata_response(&issuer, &response).map_err(BuildError::Discovery)?;
            if introspection.is_none() {
                introspection = metadata
                    .introspection_endpoint()
                    .map_err(BuildError::Discovery)?;
            }
            if feed_endpoint.is_none() {
                // A tokenwarden extension, not in the client's typed metadata.
                #[derive(serde::Deserialize)]
                struct Extension {
                    #[serde(default)]
                    revocation_feed_endpoint: Option<String>,
                }
                let extension: Extension =
                    serde_json::from_slice(response.body()).map_err(|e| {
                        BuildError::Discovery(tokenwarden_client::Error::Discovery(e.to_string()))
                    })?;
                feed_endpoint = extension
                    .revocation_feed_endpoint
                    .as_deref()
                    .map(EndpointUrl::parse)
                    .transpose()?;
            }
        }
        let introspection =
            introspection.ok_or(BuildError::MissingEndpoint("introspection_endpoint"))?;
        if !self.feed_enabled {
            feed_endpoint = None;
        } else if feed_endpoint.is_none() {
            warn!("no revocation feed endpoint: nothing is cached, every request is introspected");
        }

        let auth_header = tokenwarden_client::client_auth::basic_authorization(&client_id, &secret)
            .ok_or_else(|| BuildError::Http("client credentials do not fit in a header".into()))?;
        let credentials = ClientCredentials::basic(client_id, secret);
        let endpoints = Endpoints {
            introspection: Some(introspection),
            ..Endpoints::default()
        };
        let client = OAuthClient::new(requests, credentials, endpoints);
        let shared = Arc::new(Shared::new(
            self.settings,
            self.clock,
            client,
            feed_endpoint.clone(),
        ));
        let task = feed_endpoint.map(|endpoint| {
            FeedTask(tokio::spawn(feed::run(
                Arc::clone(&shared),
                endpoint,
                http,
                auth_header,
            )))
        });
        Ok(Validator::from_parts(shared, task))
    }
}
