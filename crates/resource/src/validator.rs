//! [`Validator`]: bearer tokens validated by introspection (RFC 7662), cached while the revocation
//! feed is live, one introspection per token however many requests ask at once.
//!
//! The rules, and why:
//!
//! * **Liveness** is measured from `last_heard`: when the feed last delivered bytes on a connection
//!   that had reached `ready` (recorded after the chunk's events were applied). The feed is
//!   *current* while it is connected and silent for at most 1.5 × the heartbeat its `ready`
//!   announced (clamped to 1–60 s): the server sends a keep-alive every heartbeat.
//! * **Cache reads** happen only while the feed is current, or its silence (connected or not) is
//!   below the stale bound. A cached "active" is only as good as our knowledge that nothing
//!   revoked it since: a revocation the feed fails to deliver is honoured for at most
//!   max(1.5 × heartbeat, stale bound) after the feed last said anything; beyond that every
//!   request is introspected. The "down since" of a lost feed is `last_heard`, not the moment
//!   the loss was noticed.
//! * **Cache writes** happen only while the feed is current, and only if no feed event arrived
//!   and no connection change happened while the introspection was in flight. Every event and
//!   every connect/disconnect bumps an epoch; a result is cached only if the epoch read before
//!   the request was sent is still current when it is inserted (checked under the cache's write lock, which evictions also take after
//!   bumping the epoch). Otherwise an answer computed before a revocation could be cached after
//!   the revocation's event was processed, and be served until it expired.
//! * **Single flight**: concurrent misses for one token share one introspection, run in its own
//!   task (a caller that goes away does not cancel it for the others). A request that arrives
//!   after a feed event does not join a flight that started before it.
//! * **What is cached**: inactive answers, and active ones that name a `client_id` and a `sub` (a
//!   `grant` or `client` event could not find one without them: those are accepted but
//!   introspected on every request). An active answer whose `exp` has passed, or whose
//!   `token_type` is present and not `Bearer`, is refused as inactive.
//! * **Fail closed**: when introspection fails the request is refused (`503`), never accepted;
//!   so is a miss when `max_concurrent_introspections` introspections are already in flight
//!   (no unbounded queue behind a slow authorization server).

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use tokenwarden_client::{AccessToken, EndpointUrl, OAuthClient, TokenTypeHint};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
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
    /// Introspection answered `active: false`, the token is not an access token (`token_type`
    /// present and other than `Bearer`), or its `exp` has passed: RFC 6750 `invalid_token`.
    #[error("the access token is invalid, expired or revoked")]
    InvalidToken,
    /// Introspection failed (network, timeout, non-200 answer, unreadable body), or too many
    /// introspections were in flight already. Fail closed.
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
    pub max_concurrent_introspections: usize,
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    pub realm: String,
}

const NEVER: u64 = u64::MAX;

/// The heartbeat assumed until a `ready` announces one (tokenwarden's default).
pub(crate) const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(10);

/// The silence a current feed may keep: 1.5 × `heartbeat`.
pub(crate) fn live_window(heartbeat: Duration) -> Duration {
    heartbeat.saturating_mul(3) / 2
}

/// Feed state read on every request: plain atomics.
#[derive(Debug)]
pub(crate) struct FeedState {
    pub configured: bool,
    /// `ready` received on the current connection.
    connected: AtomicBool,
    /// When the feed last delivered bytes on a connection past its `ready`, as nanoseconds since
    /// `origin`; `NEVER` before the first `ready`. Only moves forward.
    last_heard: AtomicU64,
    /// 1.5 × the heartbeat announced by the current connection's `ready`, in nanoseconds.
    live_window: AtomicU64,
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
    /// One permit per introspection in flight (`max_concurrent_introspections`).
    permits: Arc<Semaphore>,
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

    #[cfg(test)]
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
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
        let receiver = 'flight: {
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
                    Some(flight.result.clone())
                }
                _ => {
                    let Ok(permit) = Arc::clone(&self.shared.permits).try_acquire_owned() else {
                        // Refuse now rather than queue: a slow authorization server must not
                        // pile up requests (and memory) without bound.
                        bump(&self.shared.stats.overloaded);
                        debug!("too many introspections in flight; refusing the request (503)");
                        break 'flight None;
                    };
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
                        _permit: permit,
                    };
                    let token = AccessToken::new(token);
                    tokio::spawn(async move {
                        run_flight(guard, token, epoch, sender).await;
                    });
                    Some(receiver)
                }
            }
        };
        let Some(mut receiver) = receiver else {
            return Err(ValidationError::Unavailable);
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
            overloaded: read(&c.overloaded),
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
            feed_silence: shared.feed.silence(shared.clock.now()),
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

/// Removes its flight from the in-flight map, and gives its permit back, when the flight ends,
/// however it ends.
struct FlightGuard {
    shared: Arc<Shared>,
    digest: TokenDigest,
    id: u64,
    _permit: OwnedSemaphorePermit,
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
        let permits = settings
            .max_concurrent_introspections
            .clamp(1, Semaphore::MAX_PERMITS);
        Self {
            cache: Cache::new(settings.max_entries),
            settings,
            clock,
            client,
            feed: FeedState {
                configured: feed_endpoint.is_some(),
                connected: AtomicBool::new(false),
                last_heard: AtomicU64::new(NEVER),
                live_window: AtomicU64::new(nanos(live_window(DEFAULT_HEARTBEAT))),
                cursor: AtomicU64::new(NEVER),
                origin,
                watch: watch::Sender::new(false),
            },
            feed_endpoint,
            stats: Counters::default(),
            epoch: AtomicU64::new(0),
            inflight: Mutex::new(HashMap::new()),
            next_flight: AtomicU64::new(0),
            permits: Arc::new(Semaphore::new(permits)),
        }
    }

    /// The cache may be read: the feed is current (connected, silent for at most 1.5 ×
    /// heartbeat), or has been silent — connected or not — for less than the stale bound.
    pub(crate) fn cache_usable(&self, now: Instant) -> bool {
        let Some(silence) = self.feed.silence(now) else {
            return false;
        };
        self.feed.current(silence) || silence < self.settings.feed_stale_bound
    }

    /// The cache may be written: the feed is current.
    pub(crate) fn cache_writable(&self, now: Instant) -> bool {
        self.feed
            .silence(now)
            .is_some_and(|silence| self.feed.current(silence))
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
        // RFC 7662 §2.2: `exp` is when the token expires. An "active" token past it (the server's
        // clock behind ours, or a bug) is not accepted, let alone cached.
        if let Some(exp) = response.exp {
            if remaining_until(exp, self.clock.wall()).is_none() {
                debug!(exp, "active answer for a token past its exp refused");
                return Ok(Outcome::Inactive);
            }
        }
        // An introspection endpoint answers for refresh tokens too (tokenwarden says
        // `token_type: "refresh_token"`); only access tokens open a resource (RFC 6750 §1.2).
        // `token_type` is optional (RFC 7662 §2.2): absent is accepted, any other value refused.
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

    /// Caches an outcome if the rules allow (module docs): feed current, epoch unchanged, and an
    /// active answer that feed events can find (`client_id` and `sub`).
    fn store(&self, digest: TokenDigest, outcome: &Outcome, epoch: u64) {
        let now = self.clock.now();
        let ttl = match outcome {
            Outcome::Active(claims) => {
                if claims.client_id.is_none() || claims.subject.is_none() {
                    // A `grant` event names client_id and sub, a `client` event client_id: an
                    // entry without them could outlive its revocation. Validate per request.
                    debug!("active answer without client_id or sub: not cached");
                    return;
                }
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
                self.cache_writable(now) && self.epoch.load(Ordering::SeqCst) == epoch
            });
        add(&self.stats.evicted_capacity, inserted.evicted_for_capacity);
    }

    fn bump_epoch(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
    }

    /// `ready` received on a new connection, announcing `heartbeat` (already clamped).
    pub(crate) fn feed_ready(&self, cursor: u64, heartbeat: Duration) {
        self.bump_epoch();
        let now = self.clock.now();
        let previous = self.feed.cursor();
        let silence = self.feed.silence(now);
        // Events may have been missed: the server started elsewhere than where we left off
        // (it sends `resync` for that too), or we heard nothing for long enough that the cache
        // was already out of use. Start over rather than trust entries from before.
        let cursor_moved = previous.is_some_and(|p| p != cursor);
        let long_outage = silence.is_some_and(|down| down >= self.settings.feed_stale_bound);
        if cursor_moved || long_outage {
            debug!(cursor_moved, long_outage, "flushing the cache on reconnect");
            add(&self.stats.evicted_resync, self.cache.clear());
        }
        self.feed.cursor.store(cursor, Ordering::SeqCst);
        self.feed
            .live_window
            .store(nanos(live_window(heartbeat)), Ordering::SeqCst);
        self.feed_heard(now);
        self.feed.connected.store(true, Ordering::SeqCst);
        bump(&self.stats.feed_connections);
        self.feed.watch.send_replace(true);
    }

    /// The feed delivered bytes at `at` (read when they arrived; recorded once their events are
    /// applied, so a reader that sees the feed current again also sees their evictions).
    pub(crate) fn feed_heard(&self, at: Instant) {
        let heard = nanos(at.saturating_duration_since(self.feed.origin)).min(NEVER - 1);
        // Forward only (`NEVER` is "not yet", not "latest").
        let _ = self
            .feed
            .last_heard
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| {
                (last == NEVER || heard > last).then_some(heard)
            });
    }

    /// The connection ended (or failed before `ready`), or the feed task ended. The feed counts
    /// as down since it was last heard from, not since now.
    pub(crate) fn feed_lost(&self) {
        if self.feed.connected.swap(false, Ordering::SeqCst) {
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

    /// How long since the feed was last heard from; `None` before the first `ready`.
    pub(crate) fn silence(&self, now: Instant) -> Option<Duration> {
        match self.last_heard.load(Ordering::SeqCst) {
            NEVER => None,
            heard => {
                let since = now.saturating_duration_since(self.origin);
                Some(since.saturating_sub(Duration::from_nanos(heard)))
            }
        }
    }

    /// Connected, and `silence` within 1.5 × the announced heartbeat.
    fn current(&self, silence: Duration) -> bool {
        self.connected.load(Ordering::SeqCst)
            && silence <= Duration::from_nanos(self.live_window.load(Ordering::SeqCst))
    }
}

/// Nanoseconds, saturating at `u64::MAX`.
fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
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
