//! [`TokenManager`]: the textbook token lifecycle, implemented whole.
//!
//! | rule | where |
//! |---|---|
//! | expiry is absolute, counted from when the request was *sent* | [`TokenSet::from_response`] |
//! | refresh when `now ≥ expiry − min(buffer, lifetime/2)`, buffer 5 min | [`TokenSet::freshness`] |
//! | no `expires_in`: assume [`TokenManagerBuilder::assumed_lifetime`] (1 h), refresh on 401 | [`TokenSet::from_response`] |
//! | one refresh at a time however many tasks ask; all get its result | `join_or_start` |
//! | a 401 refreshes only if the stored token is still the one that failed | [`TokenManager::refresh_after_unauthorized`] |
//! | adopt a rotated refresh token, keep the old one when none is returned | [`TokenSet::succeeding`] |
//! | persist before anyone sees the new pair; fail closed if the store fails | `renew` |
//! | several processes on one store: lock, re-read, refresh only if still needed | `run_refresh` |
//! | `invalid_grant` → wipe, [`Error::ReconnectRequired`], no network until new tokens | `renew`, `decide` |
//! | transient failures: bounded backoff honouring `Retry-After`, tokens kept | [`RetryPolicy`] |
//! | a failed early refresh does not fail callers while the token is valid | [`TokenManager::access_token`] |
//! | logout: revoke refresh then access token, always clear, await a refresh in flight | [`TokenManager::logout`] |
//!
//! The refresh itself runs in a spawned task, so a caller that gives up (a timeout, a dropped
//! future) cannot abandon a rotated refresh token between the server's answer and the store.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::future::{BoxFuture, FutureExt as _, Shared};
use http::header::{HeaderValue, AUTHORIZATION};
use tracing::{debug, error, info, trace, warn, Instrument as _};

use crate::client::OAuthClient;
use crate::clock::{Clock, SystemClock};
use crate::error::{Error, ErrorCode};
use crate::revocation::TokenTypeHint;
use crate::secret::{AccessToken, RefreshToken};
use crate::store::{MemoryStore, TokenStore};
use crate::token::{Freshness, TokenSet};

/// Backoff for transient token-endpoint failures (network errors, 5xx, 429). Used only while no
/// valid access token is left to fall back on; in the early-refresh window one attempt is made and
/// the next waits for the backoff delay. Delays double from `initial_delay`; a `Retry-After`
/// (delta-seconds) replaces the computed delay. A delay above `max_delay`, or `max_attempts`
/// attempts, ends the retrying: callers get the error and further attempts wait for the delay.
/// No jitter: delays are deterministic, and a fleet sharing one file store refreshes once anyway.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per refresh, the first included (default 4).
    pub max_attempts: u32,
    /// First delay (default 1 s).
    pub initial_delay: Duration,
    /// Longest delay waited inside one refresh (default 30 s).
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            initial_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The delay after the `failures`-th consecutive failure (1-based): `initial · 2^(n−1)`,
    /// capped at `max_delay`.
    pub fn delay(&self, failures: u32) -> Duration {
        let exponent = failures.saturating_sub(1).min(20);
        self.initial_delay
            .saturating_mul(1u32 << exponent)
            .min(self.max_delay)
    }
}

/// How new tokens are obtained when the current ones are due.
#[derive(Clone, Debug)]
enum Grant {
    /// With the stored refresh token (user tokens from the authorization code flow).
    RefreshToken,
    /// With the client's own credentials (RFC 6749 §4.4); nothing to reconnect.
    ClientCredentials { scope: Option<String> },
}

/// Configures a [`TokenManager`].
#[derive(Debug)]
pub struct TokenManagerBuilder {
    client: OAuthClient,
    store: Arc<dyn TokenStore>,
    clock: Arc<dyn Clock>,
    refresh_buffer: Duration,
    assumed_lifetime: Duration,
    retry: RetryPolicy,
    grant: Grant,
    refresh_scope: Option<String>,
}

impl TokenManagerBuilder {
    /// Where tokens are kept (default: [`MemoryStore`]).
    pub fn store(mut self, store: Arc<dyn TokenStore>) -> Self {
        self.store = store;
        self
    }

    /// The clock (default: [`SystemClock`]; tests pass [`crate::TokioClock`]).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// How long before expiry to refresh, at most half the token's lifetime (default 5 min).
    pub fn refresh_buffer(mut self, buffer: Duration) -> Self {
        self.refresh_buffer = buffer;
        self
    }

    /// The lifetime assumed for a token response without `expires_in` (default 1 h). RFC 6749
    /// §5.1 leaves it to "other means"; a shorter real lifetime costs one 401 and a refresh.
    pub fn assumed_lifetime(mut self, lifetime: Duration) -> Self {
        self.assumed_lifetime = lifetime;
        self
    }

    /// Backoff for transient failures.
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// `scope` sent with refresh requests (default none: the originally granted scope).
    pub fn refresh_scope(mut self, scope: impl Into<String>) -> Self {
        self.refresh_scope = Some(scope.into());
        self
    }

    /// Obtain tokens with the client credentials grant instead of a refresh token: an empty
    /// store is filled on first use and expiry means a new request, never "reconnect".
    pub fn client_credentials(mut self, scope: Option<&str>) -> Self {
        self.grant = Grant::ClientCredentials {
            scope: scope.map(str::to_owned),
        };
        self
    }

    /// The manager.
    pub fn build(self) -> TokenManager {
        TokenManager {
            inner: Arc::new(Inner {
                client: self.client,
                store: self.store,
                clock: self.clock,
                refresh_buffer: self.refresh_buffer,
                assumed_lifetime: self.assumed_lifetime,
                retry: self.retry,
                grant: self.grant,
                refresh_scope: self.refresh_scope,
                state: Mutex::new(State::default()),
            }),
        }
    }
}

/// Keeps an access token valid for any number of concurrent tasks. Cheap to clone (shared state).
#[derive(Clone, Debug)]
pub struct TokenManager {
    inner: Arc<Inner>,
}

type SharedRefresh = Shared<BoxFuture<'static, Result<TokenSet, Error>>>;

#[derive(Debug)]
struct Inner {
    client: OAuthClient,
    store: Arc<dyn TokenStore>,
    clock: Arc<dyn Clock>,
    refresh_buffer: Duration,
    assumed_lifetime: Duration,
    retry: RetryPolicy,
    grant: Grant,
    refresh_scope: Option<String>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The store has been read once.
    loaded: bool,
    /// What the manager hands out (always already persisted).
    tokens: Option<TokenSet>,
    /// No usable grant: answer `ReconnectRequired` without network.
    reconnect_required: bool,
    /// The refresh token that got `invalid_grant` (or was revoked at logout): if wiping the store
    /// failed, a re-read must not bring it back.
    dead_refresh_token: Option<RefreshToken>,
    /// A renewed pair the store refused: never handed out until persisted.
    unpersisted: Option<TokenSet>,
    /// The refresh in flight.
    inflight: Option<SharedRefresh>,
    /// No refresh attempt before this (Retry-After, backoff).
    not_before: Option<SystemTime>,
    /// Consecutive transient failures.
    failures: u32,
    /// A logout is running: start nothing new.
    logging_out: bool,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("loaded", &self.loaded)
            .field("has_tokens", &self.tokens.is_some())
            .field("reconnect_required", &self.reconnect_required)
            .field("refreshing", &self.inflight.is_some())
            .finish_non_exhaustive()
    }
}

/// Why a refresh is wanted; decides, after re-reading the store, whether it still is.
#[derive(Clone, Debug)]
enum Reason {
    /// The token is in its refresh window or expired (or, client credentials, absent).
    Due,
    /// A resource server answered 401 to this access token.
    Rejected(AccessToken),
}

enum Decision {
    Ready(AccessToken),
    Refresh { fallback: Option<TokenSet> },
}

impl TokenManager {
    /// A builder with the defaults: memory store, system clock, 5 min buffer, 1 h assumed
    /// lifetime, refresh-token grant.
    pub fn builder(client: OAuthClient) -> TokenManagerBuilder {
        TokenManagerBuilder {
            client,
            store: Arc::new(MemoryStore::new()),
            clock: Arc::new(SystemClock),
            refresh_buffer: Duration::from_secs(300),
            assumed_lifetime: Duration::from_secs(3600),
            retry: RetryPolicy::default(),
            grant: Grant::RefreshToken,
            refresh_scope: None,
        }
    }

    /// The OAuth client.
    pub fn client(&self) -> &OAuthClient {
        &self.inner.client
    }

    /// The tokens currently handed out (loading the store on first use).
    pub async fn tokens(&self) -> Result<Option<TokenSet>, Error> {
        self.inner.ensure_loaded().await?;
        Ok(self.inner.state().tokens.clone())
    }

    /// Stores new tokens (after the user authorized again): persisted first, then used. Ends a
    /// [`Error::ReconnectRequired`] state.
    pub async fn set_tokens(&self, tokens: TokenSet) -> Result<(), Error> {
        self.inner.store.save(&tokens).await?;
        let mut st = self.inner.state();
        st.tokens = Some(tokens);
        st.loaded = true;
        st.reconnect_required = false;
        st.dead_refresh_token = None;
        st.unpersisted = None;
        st.not_before = None;
        st.failures = 0;
        info!("new tokens stored");
        Ok(())
    }

    /// Exchanges an authorization code (RFC 6749 §4.1.3) and stores the tokens.
    pub async fn exchange_code(
        &self,
        code: &str,
        redirect_uri: Option<&str>,
        code_verifier: Option<&str>,
    ) -> Result<AccessToken, Error> {
        let sent_at = self.inner.clock.now();
        let response = self
            .inner
            .client
            .exchange_code(code, redirect_uri, code_verifier)
            .await?;
        let tokens = TokenSet::from_response(response, sent_at, self.inner.assumed_lifetime);
        let access_token = hand_out(&tokens)?;
        self.set_tokens(tokens).await?;
        Ok(access_token)
    }

    /// A valid access token: the current one, or a refreshed one when it is due. Concurrent
    /// callers share one refresh. In the early-refresh window a transient refresh failure returns
    /// the current, still valid token.
    pub async fn access_token(&self) -> Result<AccessToken, Error> {
        self.inner.ensure_loaded().await?;
        let now = self.inner.clock.now();
        let (refresh, fallback) = {
            let mut st = self.inner.state();
            match self.inner.decide(&st, now)? {
                Decision::Ready(token) => return Ok(token),
                Decision::Refresh { fallback } => {
                    (self.inner.join_or_start(&mut st, Reason::Due), fallback)
                }
            }
        };
        match refresh.await {
            Ok(tokens) => hand_out(&tokens),
            Err(e) if e.is_transient() => match fallback {
                Some(current) if !current.is_expired(self.inner.clock.now()) => {
                    debug!(error = %e, "early refresh failed; the current access token is still valid");
                    hand_out(&current)
                }
                _ => Err(e),
            },
            Err(e) => Err(e),
        }
    }

    /// After a resource server answered 401 to `rejected`: refresh, unless the stored token has
    /// already been replaced (then that one is returned without network). Callers retry their
    /// request once with the result, and return a second 401 as it is.
    pub async fn refresh_after_unauthorized(
        &self,
        rejected: &AccessToken,
    ) -> Result<AccessToken, Error> {
        self.inner.ensure_loaded().await?;
        let now = self.inner.clock.now();
        let refresh = {
            let mut st = self.inner.state();
            if st.logging_out || st.reconnect_required {
                return Err(Error::ReconnectRequired);
            }
            let replaced = st.unpersisted.is_none()
                && st
                    .tokens
                    .as_ref()
                    .is_some_and(|current| current.access_token != *rejected);
            if replaced {
                None
            } else {
                if st.inflight.is_none() {
                    if let Some(not_before) = st.not_before.filter(|t| now < *t) {
                        return Err(Error::Backoff {
                            retry_after: not_before.duration_since(now).unwrap_or_default(),
                        });
                    }
                }
                Some(
                    self.inner
                        .join_or_start(&mut st, Reason::Rejected(rejected.clone())),
                )
            }
        };
        match refresh {
            None => {
                debug!("the rejected access token was already replaced; not refreshing");
                self.access_token().await
            }
            Some(refresh) => hand_out(&refresh.await?),
        }
    }

    /// Refreshes now, whatever the expiry says (unless another holder of the store already did).
    pub async fn refresh_now(&self) -> Result<AccessToken, Error> {
        let current = self.tokens().await?;
        match current {
            Some(tokens) => self.refresh_after_unauthorized(&tokens.access_token).await,
            None => self.access_token().await,
        }
    }

    /// Sends `request` with `Authorization: Bearer`, through the client's [`crate::HttpClient`]:
    /// on a 401 the token is refreshed (if still the one that failed) and the request is sent
    /// exactly once more; a second 401 is returned as it is.
    pub async fn execute(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, Error> {
        let (parts, body) = request.into_parts();
        let build = |token: &AccessToken| -> Result<http::Request<Bytes>, Error> {
            let mut request = http::Request::new(body.clone());
            *request.method_mut() = parts.method.clone();
            *request.uri_mut() = parts.uri.clone();
            *request.version_mut() = parts.version;
            *request.headers_mut() = parts.headers.clone();
            request
                .headers_mut()
                .insert(AUTHORIZATION, bearer_header(token)?);
            Ok(request)
        };
        let http = self.inner.client.http();
        let token = self.access_token().await?;
        let response = http.execute(build(&token)?).await?;
        if response.status() != http::StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        debug!("the resource server answered 401; refreshing and retrying once");
        let renewed = self.refresh_after_unauthorized(&token).await?;
        Ok(http.execute(build(&renewed)?).await?)
    }

    /// Ends the session: awaits a refresh in flight, revokes the refresh token and then the access
    /// token(s) (RFC 7009, each with its `token_type_hint`), and clears the store whatever the
    /// revocation endpoint answered. Afterwards calls fail with [`Error::ReconnectRequired`]
    /// until [`TokenManager::set_tokens`].
    ///
    /// When a refresh was in flight, its result is revoked too: the new refresh token, the new
    /// access token, and the previous access token (possibly still valid on servers that do not
    /// cascade). The previous refresh token was consumed by the rotation.
    ///
    /// Returns the first revocation error, if any; the local state is gone either way.
    pub async fn logout(&self) -> Result<(), Error> {
        if let Err(e) = self.inner.ensure_loaded().await {
            warn!(error = %e, "logout: the token store could not be read");
        }
        let (before, inflight) = {
            let mut st = self.inner.state();
            st.logging_out = true;
            (st.tokens.clone(), st.inflight.clone())
        };
        if let Some(refresh) = inflight {
            debug!("logout: waiting for the refresh in flight");
            let _ = refresh.await;
        }
        let lock = match self.inner.store.lock().await {
            Ok(lock) => Some(lock),
            Err(e) => {
                warn!(error = %e, "logout: the store lock failed; continuing");
                None
            }
        };
        let stored = self.inner.store.load().await.ok().flatten();
        let (after, unpersisted) = {
            let st = self.inner.state();
            (st.tokens.clone(), st.unpersisted.clone())
        };
        let newest = unpersisted.or(stored).or(after).or_else(|| before.clone());

        let mut outcome = Ok(());
        let mut revoked_refresh = None;
        if let Some(newest) = &newest {
            let mut access_tokens = vec![&newest.access_token];
            if let Some(previous) = &before {
                if previous.access_token != newest.access_token {
                    access_tokens.push(&previous.access_token);
                }
            }
            // The refresh token first: revoking it ends the grant, so a leaked access token
            // cannot be renewed while the access tokens are being revoked.
            let refresh = newest
                .refresh_token
                .as_ref()
                .map(|t| (t.secret(), TokenTypeHint::RefreshToken));
            let access = access_tokens
                .into_iter()
                .map(|t| (t.secret(), TokenTypeHint::AccessToken));
            for (token, hint) in refresh.into_iter().chain(access) {
                if let Err(e) = self.inner.client.revoke(token, Some(hint)).await {
                    warn!(error = %e, hint = hint.as_str(), "logout: revocation failed");
                    if outcome.is_ok() {
                        outcome = Err(e);
                    }
                }
            }
            revoked_refresh = newest.refresh_token.clone();
        }
        let cleared = self.inner.store.clear().await;
        {
            let mut st = self.inner.state();
            st.tokens = None;
            st.unpersisted = None;
            st.loaded = true;
            st.reconnect_required = true;
            st.dead_refresh_token = revoked_refresh;
            st.not_before = None;
            st.failures = 0;
            st.logging_out = false;
        }
        drop(lock);
        match &cleared {
            Ok(()) => info!("logged out: tokens revoked and the store cleared"),
            Err(e) => error!(error = %e, "logout: the token store could not be cleared"),
        }
        cleared?;
        outcome
    }
}

/// `Authorization: Bearer <token>` (RFC 6750 §2.1), marked sensitive.
pub fn bearer_header(token: &AccessToken) -> Result<HeaderValue, Error> {
    let mut value = HeaderValue::try_from(format!("Bearer {}", token.secret())).map_err(|_| {
        Error::UnexpectedResponse {
            status: 200,
            reason: "the access token is not a valid header value".into(),
            retry_after: None,
        }
    })?;
    value.set_sensitive(true);
    Ok(value)
}

/// RFC 6749 §7.1: "The client MUST NOT use an access token if it does not understand the token
/// type."
fn hand_out(tokens: &TokenSet) -> Result<AccessToken, Error> {
    if tokens.is_bearer() {
        Ok(tokens.access_token.clone())
    } else {
        Err(Error::UnsupportedTokenType(tokens.token_type.clone()))
    }
}

impl Inner {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reads the store the first time, and again while reconnecting (someone may have stored new
    /// tokens: another process sharing a file store, say). Store reads are local, not network.
    async fn ensure_loaded(&self) -> Result<(), Error> {
        let reload = {
            let st = self.state();
            !st.logging_out && (!st.loaded || (st.reconnect_required && st.inflight.is_none()))
        };
        if !reload {
            return Ok(());
        }
        let stored = self.store.load().await?;
        let mut st = self.state();
        if st.logging_out || st.inflight.is_some() {
            return Ok(());
        }
        if !st.loaded {
            st.loaded = true;
            match stored {
                Some(tokens) => st.tokens = Some(tokens),
                None => st.reconnect_required = matches!(self.grant, Grant::RefreshToken),
            }
        } else if st.reconnect_required {
            if let Some(tokens) = stored {
                let dead = st.dead_refresh_token.is_some()
                    && tokens.refresh_token == st.dead_refresh_token;
                if !dead {
                    info!("found new tokens in the store");
                    st.tokens = Some(tokens);
                    st.reconnect_required = false;
                    st.dead_refresh_token = None;
                }
            }
        }
        Ok(())
    }

    fn decide(&self, st: &State, now: SystemTime) -> Result<Decision, Error> {
        if st.logging_out || st.reconnect_required {
            return Err(Error::ReconnectRequired);
        }
        if st.unpersisted.is_some() {
            return Ok(Decision::Refresh { fallback: None });
        }
        let backing_off = st
            .not_before
            .filter(|t| now < *t)
            .map(|t| t.duration_since(now).unwrap_or_default());
        let Some(tokens) = &st.tokens else {
            return match (&self.grant, backing_off) {
                (Grant::RefreshToken, _) => Err(Error::ReconnectRequired),
                (Grant::ClientCredentials { .. }, Some(retry_after)) => {
                    Err(Error::Backoff { retry_after })
                }
                (Grant::ClientCredentials { .. }, None) => Ok(Decision::Refresh { fallback: None }),
            };
        };
        let freshness = tokens.freshness(now, self.refresh_buffer);
        trace!(?freshness, "access token requested");
        let renewable =
            matches!(self.grant, Grant::ClientCredentials { .. }) || tokens.refresh_token.is_some();
        match (freshness, renewable, backing_off) {
            (Freshness::Fresh, _, _) | (Freshness::RefreshDue, false, _) => {
                hand_out(tokens).map(Decision::Ready)
            }
            (Freshness::RefreshDue, true, Some(_)) => hand_out(tokens).map(Decision::Ready),
            (Freshness::RefreshDue, true, None) => Ok(Decision::Refresh {
                fallback: Some(tokens.clone()),
            }),
            (Freshness::Expired, false, _) => Err(Error::ReconnectRequired),
            (Freshness::Expired, true, Some(retry_after)) => Err(Error::Backoff { retry_after }),
            (Freshness::Expired, true, None) => Ok(Decision::Refresh { fallback: None }),
        }
    }

    /// Joins the refresh in flight, or starts one. Called with the state lock held, so exactly one
    /// task starts it.
    fn join_or_start(self: &Arc<Self>, st: &mut State, reason: Reason) -> SharedRefresh {
        if let Some(running) = &st.inflight {
            trace!("joining the refresh in flight");
            return running.clone();
        }
        let inner = Arc::clone(self);
        let span =
            tracing::debug_span!("refresh", client_id = %self.client.credentials().client_id());
        let task = tokio::spawn(
            async move {
                let result = inner.run_refresh(reason).await;
                inner.publish(&result);
                result
            }
            .instrument(span),
        );
        let shared = async move {
            task.await
                .unwrap_or_else(|e| Err(Error::Internal(format!("refresh task failed: {e}"))))
        }
        .boxed()
        .shared();
        st.inflight = Some(shared.clone());
        shared
    }

    /// Makes the outcome visible, atomically with ending the in-flight marker.
    fn publish(&self, result: &Result<TokenSet, Error>) {
        let mut st = self.state();
        st.inflight = None;
        match result {
            Ok(tokens) => {
                st.tokens = Some(tokens.clone());
                st.loaded = true;
                st.unpersisted = None;
                st.reconnect_required = false;
                st.not_before = None;
                st.failures = 0;
            }
            Err(Error::ReconnectRequired) => {
                st.tokens = None;
                st.reconnect_required = true;
            }
            Err(_) => {}
        }
    }

    async fn run_refresh(&self, reason: Reason) -> Result<TokenSet, Error> {
        // A pair the store refused earlier goes first: the server has rotated already, so its
        // refresh token is the only live one.
        let unpersisted = self.state().unpersisted.clone();
        if let Some(pending) = unpersisted {
            return match self.store.save(&pending).await {
                Ok(()) => {
                    info!("previously unpersisted tokens are now stored");
                    Ok(pending)
                }
                Err(e) => {
                    error!(error = %e, "the token store still fails; failing closed");
                    Err(Error::store(e))
                }
            };
        }
        // Lock, re-read, refresh only if still needed: another process sharing the store may
        // have refreshed while this one waited for the lock.
        let _lock = self.store.lock().await?;
        let stored = self.store.load().await?;
        let now = self.clock.now();
        let current = match (stored, &self.grant) {
            (Some(stored), _) => {
                let still_needed = match &reason {
                    Reason::Rejected(rejected) => stored.access_token == *rejected,
                    Reason::Due => stored.freshness(now, self.refresh_buffer) != Freshness::Fresh,
                };
                if !still_needed {
                    debug!("the store already holds renewed tokens; not refreshing");
                    return Ok(stored);
                }
                Some(stored)
            }
            (None, Grant::ClientCredentials { .. }) => None,
            (None, Grant::RefreshToken) => {
                info!("the token store is empty; reconnect required");
                return Err(Error::ReconnectRequired);
            }
        };
        self.renew(current.as_ref(), &reason).await
    }

    /// Asks the token endpoint for new tokens, with backoff; persists them before returning.
    async fn renew(&self, current: Option<&TokenSet>, reason: &Reason) -> Result<TokenSet, Error> {
        let refresh_token = match (&self.grant, current) {
            (Grant::ClientCredentials { .. }, _) => None,
            (
                Grant::RefreshToken,
                Some(TokenSet {
                    refresh_token: Some(token),
                    ..
                }),
            ) => Some(token.clone()),
            (Grant::RefreshToken, _) => {
                info!("no refresh token to renew with; reconnect required");
                if let Err(e) = self.store.clear().await {
                    error!(error = %e, "could not clear the token store");
                }
                return Err(Error::ReconnectRequired);
            }
        };
        let rejected = matches!(reason, Reason::Rejected(_));
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let sent_at = self.clock.now();
            let result = match (&self.grant, &refresh_token) {
                (Grant::ClientCredentials { scope }, _) => {
                    self.client
                        .exchange_client_credentials(scope.as_deref())
                        .await
                }
                (Grant::RefreshToken, Some(token)) => {
                    self.client
                        .exchange_refresh_token(token, self.refresh_scope.as_deref())
                        .await
                }
                (Grant::RefreshToken, None) => return Err(Error::ReconnectRequired),
            };
            match result {
                Ok(response) => {
                    let mut tokens =
                        TokenSet::from_response(response, sent_at, self.assumed_lifetime);
                    let rotated = tokens.refresh_token.is_some() && refresh_token.is_some();
                    if let Some(previous) = current {
                        tokens = tokens.succeeding(previous);
                    }
                    // Persist before anyone sees the pair; on failure keep it aside, unpublished.
                    if let Err(e) = self.store.save(&tokens).await {
                        error!(error = %e, "could not persist the renewed tokens; failing closed");
                        self.state().unpersisted = Some(tokens);
                        return Err(Error::store(e));
                    }
                    info!(
                        rotated,
                        lifetime_s = tokens.lifetime().as_secs(),
                        expiry_assumed = tokens.expiry_assumed,
                        "tokens renewed"
                    );
                    return Ok(tokens);
                }
                Err(e) if refresh_token.is_some() && e.code() == Some(&ErrorCode::InvalidGrant) => {
                    warn!("the refresh token was rejected (invalid_grant); wiping the store");
                    self.state().dead_refresh_token = refresh_token.clone();
                    if let Err(e) = self.store.clear().await {
                        error!(error = %e, "could not wipe the token store");
                    }
                    return Err(Error::ReconnectRequired);
                }
                Err(e) if e.is_transient() => {
                    let now = self.clock.now();
                    let failures = {
                        let mut st = self.state();
                        st.failures = st.failures.saturating_add(1);
                        st.failures
                    };
                    let delay = e
                        .retry_after()
                        .unwrap_or_else(|| self.retry.delay(failures));
                    let fallback_valid = !rejected && current.is_some_and(|c| !c.is_expired(now));
                    if fallback_valid
                        || attempts >= self.retry.max_attempts
                        || delay > self.retry.max_delay
                    {
                        warn!(error = %e, failures, retry_in_ms = delay.as_millis() as u64,
                            "token endpoint unavailable; tokens kept");
                        self.state().not_before = now.checked_add(delay);
                        return Err(e);
                    }
                    warn!(error = %e, attempts, retry_in_ms = delay.as_millis() as u64,
                        "token endpoint unavailable; backing off");
                    tokio::time::sleep(delay).await;
                }
                Err(e) => {
                    warn!(error = %e, "token renewal failed");
                    return Err(e);
                }
            }
        }
    }
}
