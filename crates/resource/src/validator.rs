//! [`Validator`]: bearer tokens validated by introspection (RFC 7662), cached while the revocation
//! feed is live, one introspection per token however many requests ask at once.
//!
//! The rules, and why:
//!
//! * **Cache reads** happen only while the feed is *live*: connected, or disconnected for less than
//!   the stale bound. A cached "active" is only as good as our knowledge that nothing revoked it
//!   since; beyond the bound every request is introspected.
//! * **Cache writes** happen only while the feed is *connected* (its `ready` arrived on the current
//!   connection) and only if no feed event arrived and no connection change happened while the
//!   introspection was in flight. Every event and every connect/disconnect bumps an epoch; a
//!   result is cached only if the epoch read before the request was sent is still current when
//!   it is inserted (checked under the cache's write lock, which evictions also take after
//!   bumping the epoch). Otherwise an answer computed before a revocation could be cached after
//!   the revocation's event was processed, and be served until it expired.
//! * **Single flight**: concurrent misses for one token share one introspection, run in its own
//!   task (a caller that goes away does not cancel it for the others). A request that arrives
//!   after a feed event does not join a flight that started before it.
//! * **Fail closed**: when introspection fails the request is refused (`503`), never accepted.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use tokenwarden_client::{AccessToken, EndpointUrl, OAuthClient, TokenTypeHint};
use tokio::sync::watch;
use tracing::{debug, warn};

use crate::builder::ValidatorBuilder;
use crate::cache::{Cache, Outcome};
use crate::claims::TokenClaims;
use crate::clock::Clock;
use crate::digest::TokenDigest;
use crate::layer::BearerLayer;
use crate::stats::{add, bump, read, Counters, Evictions, Stats};

/// Why a token was not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValidationError {
    /// Introspection answered `active: false`, or the token is not an access token
    /// (`token_type` other than `Bearer`): RFC 6750 `invalid_token`.
    #[error("the access token is invalid, expired or revoked")]
    InvalidToken,
    /// Introspection failed (network, timeout, non-200 answer, unreadable body). Fail closed.
    #[error("the access token could not be validated (introspection failed)")]
    Unavailable,
}

/// The tunable numbers, with their defaults in [`ValidatorBuilder`].
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub cache_max_ttl: Duration,
    pub negative_ttl: Duration,
    pub max_entries: usize,
    pub feed_stale_bound: Duration,
    pub introspection_timeout: Duration,
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    pub realm: String,
}

const NEVER: u64 = u64::MAX;

/// Feed state read on every request: plain atomics.
#[derive(Debug)]
pub(crate) struct FeedState {
    pub configured: bool,
    connected: AtomicBool,
    /// When the last connection was lost, as nanoseconds since `origin`; `NEVER` before the first
    /// connection.
    down_since: AtomicU64,
    /// The last event id processed; `NEVER` for none.
    cursor: AtomicU64,
    origin: Instant,
    watch: watch::Sender<bool>,
}

struct Flight {
    /// Identifies this flight in the map (epochs are not unique: a flight may follow another
    /// without an event in between).
    id: u64,
    epoch: u64,
    result: watch::Receiver<Option<Result<Outcome, ValidationError>>>,
}

/// Everything the validator, its layers and its feed task share.
pub(crate) struct Shared {
    pub settings: Settings,
    pub clock: Arc<dyn Clock>,
    pub client: OAuthClient,
    pub feed_endpoint: Option<EndpointUrl>,
    pub cache: Cache,
    pub stats: Counters,
    pub feed: FeedState,
    /// Bumped (SeqCst) by every feed event and connection change, before the cache is touched.
    epoch: AtomicU64,
    inflight: Mutex<HashMap<TokenDigest, Flight>>,
    next_flight: AtomicU64,
}

/// Validates bearer tokens; cheap to clone (all clones share one cache and one feed
/// subscription). The feed task stops when the last clone (including those inside layers) is
/// dropped.
#[derive(Clone)]
pub struct Validator {
    shared: Arc<Shared>,
    _feed: Option<Arc<FeedTask>>,
}

/// Aborts the feed task when dropped.
pub(crate) struct FeedTask(pub tokio::task::JoinHandle<()>);

impl Drop for FeedTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl fmt::Debug for Validator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shared = &self.shared;
        f.debug_struct("Validator")
            .field(
                "introspection_endpoint",
                &shared.client.endpoints().introspection,
            )
            .field("revocation_feed_endpoint", &shared.feed_endpoint)
            .field("client_id", shared.client.credentials().client_id())
            .field("settings", &shared.settings)
            .finish_non_exhaustive()
    }
}

impl Validator {
    /// Starts configuring a validator.
    pub fn builder() -> ValidatorBuilder {
        ValidatorBuilder::new()
    }

    pub(crate) fn from_parts(shared: Arc<Shared>, feed: Option<FeedTask>) -> Self {
        Self {
            shared,
            _feed: feed.map(Arc::new),
        }
    }

    /// A layer that lets through only requests with a valid bearer token (add required scopes
    /// with [`BearerLayer::require_scope`]).
    pub fn layer(&self) -> BearerLayer {
        BearerLayer::new(self.clone())
    }

    /// The realm of this validator's challenges.
    pub fn realm(&self) -> &str {
        &self.shared.settings.realm
    }

    /// Validates `token` (the bearer token string, without the `Bearer ` prefix): the cached
    /// answer when the cache may be used and has one, otherwise an introspection (shared with
    /// concurrent requests for the same token).
    pub async fn validate(&self, token: &str) -> Result<Arc<TokenClaims>, ValidationError> {
        let digest = TokenDigest::of(token);
        if let Some(outcome) = self.cached(&digest) {
            return outcome_result(outcome);
        }
        bump(&self.shared.stats.cache_misses);
        self.introspect_shared(token, digest).await
    }

    /// The answer from the cache alone, without waiting: `None` when the token must be
    /// introspected (not cached, or the cache may not be used now). The layer's fast path.
    pub(crate) fn validate_cached(
        &self,
        token: &str,
    ) -> Option<Result<Arc<TokenClaims>, ValidationError>> {
        self.cached(&TokenDigest::of(token)).map(outcome_result)
    }

    /// The cached outcome, if the cache may be used now and holds a live entry.
    fn cached(&self, digest: &TokenDigest) -> Option<Outcome> {
        let shared = &self.shared;
        let now = shared.clock.now();
        if !shared.cache_usable(now) {
            return None;
        }
        let outcome = shared.cache.get(digest, now)?;
        bump(&shared.stats.cache_hits);
        Some(outcome)
    }

    async fn introspect_shared(
        &self,
        token: &str,
        digest: TokenDigest,
    ) -> Result<Arc<TokenClaims>, ValidationError> {
        let mut receiver = {
            let mut inflight = self
                .shared
                .inflight
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let epoch = self.shared.epoch.load(Ordering::SeqCst);
            match inflight.get(&digest) {
                // Join only a flight that started after the last feed event: one that started
                // before may carry an answer the event has since made stale.
                Some(flight) if flight.epoch == epoch => {
                    bump(&self.shared.stats.coalesced);
                    flight.result.clone()
                }
                _ => {
                    let (sender, receiver) = watch::channel(None);
                    let id = self.shared.next_flight.fetch_add(1, Ordering::Relaxed);
                    inflight.insert(
                        digest,
                        Flight {
                            id,
                            epoch,
                            result: receiver.clone(),
                        },
                    );
                    let guard = FlightGuard {
                        shared: Arc::clone(&self.shared),
                        digest,
                        id,
                    };
                    let token = AccessToken::new(token);
                    tokio::spawn(async move {
                        run_flight(guard, token, epoch, sender).await;
                    });
                    receiver
                }
            }
        };
        let result = match receiver.wait_for(Option::is_some).await {
            Ok(done) => done.clone(),
            // The flight task ended without an answer (it panicked): fail closed.
            Err(_) => None,
        };
        match result {
            Some(outcome) => outcome.and_then(outcome_result),
            None => Err(ValidationError::Unavailable),
        }
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        let shared = &self.shared;
        let c = &shared.stats;
        Stats {
            introspections: read(&c.introspections),
            introspection_failures: read(&c.introspection_failures),
            cache_hits: read(&c.cache_hits),
            cache_misses: read(&c.cache_misses),
            coalesced: read(&c.coalesced),
            cache_entries: u64::try_from(shared.cache.len()).unwrap_or(u64::MAX),
            evictions: Evictions {
                token: read(&c.evicted_token),
                grant: read(&c.evicted_grant),
                client: read(&c.evicted_client),
                resync: read(&c.evicted_resync),
                capacity: read(&c.evicted_capacity),
            },
            feed_events: read(&c.feed_events),
            feed_connected: shared.feed.connected.load(Ordering::SeqCst),
            feed_connections: read(&c.feed_connections),
            feed_reconnects: read(&c.feed_reconnects),
            cursor: shared.feed.cursor(),
        }
    }

    /// Waits until the revocation feed is connected (its `ready` received); returns `false` at
    /// once when no feed is configured. Until then every request is introspected. Put a timeout
    /// around it: the feed may never come up.
    pub async fn feed_connected(&self) -> bool {
        if !self.shared.feed.configured {
            return false;
        }
        let mut receiver = self.shared.feed.watch.subscribe();
        let connected = receiver.wait_for(|connected| *connected).await.is_ok();
        connected
    }
}

fn outcome_result(outcome: Outcome) -> Result<Arc<TokenClaims>, ValidationError> {
    match outcome {
        Outcome::Active(claims) => Ok(claims),
        Outcome::Inactive => Err(ValidationError::InvalidToken),
    }
}

/// Removes its flight from the in-flight map when the flight ends, however it ends.
struct FlightGuard {
    shared: Arc<Shared>,
    digest: TokenDigest,
    id: u64,
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        let mut inflight = self
            .shared
            .inflight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if inflight.get(&self.digest).map(|f| f.id) == Some(self.id) {
            inflight.remove(&self.digest);
        }
    }
}

async fn run_flight(
    guard: FlightGuard,
    token: AccessToken,
    epoch: u64,
    sender: watch::Sender<Option<Result<Outcome, ValidationError>>>,
) {
    let shared = Arc::clone(&guard.shared);
    let digest = guard.digest;
    let result = shared.introspect(&token).await;
    drop(token);
    if let Ok(outcome) = &result {
        shared.store(digest, outcome, epoch);
    }
    // Leave the map before answering: a request that arrives from now on starts its own
    // introspection (or finds the cache), rather than reusing an answer that was not cached —
    // when caching is off (feed down), every request is introspected.
    drop(guard);
    sender.send_replace(Some(result));
}

impl Shared {
    pub(crate) fn new(
        settings: Settings,
        clock: Arc<dyn Clock>,
        client: OAuthClient,
        feed_endpoint: Option<EndpointUrl>,
    ) -> Self {
        let origin = clock.now();
        Self {
            cache: Cache::new(settings.max_entries),
            settings,
            clock,
            client,
            feed: FeedState {
                configured: feed_endpoint.is_some(),
                connected: AtomicBool::new(false),
                down_since: AtomicU64::new(NEVER),
                cursor: AtomicU64::new(NEVER),
                origin,
                watch: watch::Sender::new(false),
            },
            feed_endpoint,
            stats: Counters::default(),
            epoch: AtomicU64::new(0),
            inflight: Mutex::new(HashMap::new()),
            next_flight: AtomicU64::new(0),
        }
    }

    /// The cache may be read: the feed is connected, or was lost less than the stale bound ago.
    fn cache_usable(&self, now: Instant) -> bool {
        if self.feed.connected.load(Ordering::SeqCst) {
            return true;
        }
        match self.feed.down_for(now) {
            Some(down) => down < self.settings.feed_stale_bound,
            None => false,
        }
    }

    /// One introspection request (RFC 7662 §2.1, `token_type_hint=access_token`).
    async fn introspect(&self, token: &AccessToken) -> Result<Outcome, ValidationError> {
        bump(&self.stats.introspections);
        let call = self
            .client
            .introspect(token.secret(), Some(TokenTypeHint::AccessToken));
        let response = match tokio::time::timeout(self.settings.introspection_timeout, call).await {
            Ok(Ok(response)) => response,
            Ok(Err(error)) => {
                bump(&self.stats.introspection_failures);
                warn!(%error, "introspection failed; refusing the request (503)");
                return Err(ValidationError::Unavailable);
            }
            Err(_) => {
                bump(&self.stats.introspection_failures);
                warn!(
                    timeout = ?self.settings.introspection_timeout,
                    "introspection timed out; refusing the request (503)"
                );
                return Err(ValidationError::Unavailable);
            }
        };
        if !response.active {
            return Ok(Outcome::Inactive);
        }
        // An introspection endpoint answers for refresh tokens too (tokenwarden says
        // `token_type: "refresh_token"`); only access tokens open a resource (RFC 6750 §1.2).
        if let Some(token_type) = &response.token_type {
            if !token_type.eq_ignore_ascii_case("bearer") {
                debug!(token_type, "active token of another type refused");
                return Ok(Outcome::Inactive);
            }
        }
        Ok(Outcome::Active(Arc::new(TokenClaims::from_introspection(
            &response,
        ))))
    }

    /// Caches an outcome if the rules allow (module docs): feed connected, epoch unchanged.
    fn store(&self, digest: TokenDigest, outcome: &Outcome, epoch: u64) {
        let now = self.clock.now();
        let ttl = match outcome {
            Outcome::Active(claims) => {
                let max = self.settings.cache_max_ttl;
                match claims.exp {
                    Some(exp) => match remaining_until(exp, self.clock.wall()) {
                        Some(left) => left.min(max),
                        None => return,
                    },
                    None => max,
                }
            }
            Outcome::Inactive => self.settings.negative_ttl,
        };
        let Some(expires) = now.checked_add(ttl) else {
            return;
        };
        let inserted = self
            .cache
            .insert_if(digest, outcome.clone(), expires, now, || {
                self.feed.connected.load(Ordering::SeqCst)
                    && self.epoch.load(Ordering::SeqCst) == epoch
            });
        add(&self.stats.evicted_capacity, inserted.evicted_for_capacity);
    }

    fn bump_epoch(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
    }

    /// `ready` received on a new connection.
    pub(crate) fn feed_ready(&self, cursor: u64) {
        self.bump_epoch();
        let now = self.clock.now();
        let previous = self.feed.cursor();
        let outage = self.feed.down_for(now);
        // Events may have been missed: the server started elsewhere than where we left off
        // (it sends `resync` for that too), or we were down long enough that the cache was
        // already out of use. Start over rather than trust entries from before.
        let cursor_moved = previous.is_some_and(|p| p != cursor);
        let long_outage = outage.is_some_and(|down| down >= self.settings.feed_stale_bound);
        if cursor_moved || long_outage {
            debug!(cursor_moved, long_outage, "flushing the cache on reconnect");
            add(&self.stats.evicted_resync, self.cache.clear());
        }
        self.feed.cursor.store(cursor, Ordering::SeqCst);
        self.feed.connected.store(true, Ordering::SeqCst);
        bump(&self.stats.feed_connections);
        self.feed.watch.send_replace(true);
    }

    /// The connection ended (or failed before `ready`).
    pub(crate) fn feed_lost(&self) {
        if self.feed.connected.load(Ordering::SeqCst) {
            let since = self.clock.now().saturating_duration_since(self.feed.origin);
            let nanos = u64::try_from(since.as_nanos()).unwrap_or(NEVER - 1);
            // `down_since` before `connected = false`: a reader that sees "not connected" also
            // sees when it stopped.
            self.feed.down_since.store(nanos, Ordering::SeqCst);
            self.feed.connected.store(false, Ordering::SeqCst);
            self.feed.watch.send_replace(false);
        }
        self.bump_epoch();
    }

    /// A `revoked` event of kind `token`.
    pub(crate) fn revoke_token(&self, digest: &TokenDigest) {
        self.bump_epoch();
        add(&self.stats.evicted_token, self.cache.remove(digest));
    }

    /// A `revoked` event of kind `grant`: every token of `client_id` for `sub`.
    pub(crate) fn revoke_grant(&self, client_id: &str, sub: Option<&str>) {
        self.bump_epoch();
        let removed = self.cache.remove_matching(|claims| {
            claims.client_id.as_deref() == Some(client_id)
                && match sub {
                    Some(sub) => claims.subject.as_deref() == Some(sub),
                    // No `sub` to match: every token of the client, rather than too few.
                    None => true,
                }
        });
        add(&self.stats.evicted_grant, removed);
    }

    /// A `revoked` event of kind `client`.
    pub(crate) fn revoke_client(&self, client_id: &str) {
        self.bump_epoch();
        let removed = self
            .cache
            .remove_matching(|claims| claims.client_id.as_deref() == Some(client_id));
        add(&self.stats.evicted_client, removed);
    }

    /// `resync`, or an event we cannot act on precisely: drop everything.
    pub(crate) fn flush(&self) {
        self.bump_epoch();
        add(&self.stats.evicted_resync, self.cache.clear());
    }

    /// Records the id of a processed event.
    pub(crate) fn set_cursor(&self, cursor: u64) {
        self.feed.cursor.store(cursor, Ordering::SeqCst);
    }
}

impl FeedState {
    pub(crate) fn cursor(&self) -> Option<u64> {
        match self.cursor.load(Ordering::SeqCst) {
            NEVER => None,
            c => Some(c),
        }
    }

    /// How long the feed has been down, `None` if it never connected or is connected.
    fn down_for(&self, now: Instant) -> Option<Duration> {
        if self.connected.load(Ordering::SeqCst) {
            return None;
        }
        match self.down_since.load(Ordering::SeqCst) {
            NEVER => None,
            nanos => {
                let since = self.origin.checked_add(Duration::from_nanos(nanos))?;
                Some(now.saturating_duration_since(since))
            }
        }
    }
}

/// Time left until `exp` (seconds since the epoch); `None` if it has passed.
fn remaining_until(exp: i64, now: SystemTime) -> Option<Duration> {
    let exp = SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(u64::try_from(exp).ok()?))?;
    exp.duration_since(now).ok().filter(|left| !left.is_zero())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remaining_lifetime_counts_from_the_wall_clock_to_exp() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_millis(1_000_500);
        assert_eq!(
            remaining_until(1_030, now),
            Some(Duration::from_millis(29_500))
        );
        assert_eq!(remaining_until(1_000, now), None);
        assert_eq!(remaining_until(-5, now), None);
    }
}
