//! Counters for operators and tests ([`crate::Validator::stats`]). Monotonic since the validator
//! was built, except the gauges (`cache_entries`, `feed_connected`, `feed_silence`, `cursor`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A snapshot of a validator's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Introspection requests sent (RFC 7662 §2.1), whatever their outcome.
    pub introspections: u64,
    /// Introspection requests that got no usable answer (network, timeout, non-200, bad JSON):
    /// the requests waiting on them were answered `503`.
    pub introspection_failures: u64,
    /// Requests answered from the cache (active or inactive).
    pub cache_hits: u64,
    /// Requests not answered from the cache (absent, expired, or the cache was not in use).
    pub cache_misses: u64,
    /// Misses that joined an introspection already in flight for the same token instead of
    /// sending their own.
    pub coalesced: u64,
    /// Misses answered `503` at once, without an introspection, because
    /// `max_concurrent_introspections` introspections were already in flight.
    pub overloaded: u64,
    /// Entries currently held.
    pub cache_entries: u64,
    /// Entries removed, by cause.
    pub evictions: Evictions,
    /// `revoked` and `resync` events processed.
    pub feed_events: u64,
    /// Whether the feed is connected (its `ready` received on the current connection).
    pub feed_connected: bool,
    /// How long since the feed last delivered anything (an event or a keep-alive) on a connection
    /// past its `ready`, on the validator's clock; `None` before the first `ready`. The cache is
    /// written only while this is at most 1.5 × the announced heartbeat (and the feed is
    /// connected), and read only while that holds or this is below `feed_stale_bound`.
    pub feed_silence: Option<Duration>,
    /// Connections that reached `ready`.
    pub feed_connections: u64,
    /// Connection attempts after the first.
    pub feed_reconnects: u64,
    /// The id of the last feed event processed (`Last-Event-ID` on reconnect).
    pub cursor: Option<u64>,
}

/// Entries removed from the cache, by cause.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Evictions {
    /// By `revoked` events of kind `token`.
    pub token: u64,
    /// By `revoked` events of kind `grant`.
    pub grant: u64,
    /// By `revoked` events of kind `client`.
    pub client: u64,
    /// By whole-cache flushes: `resync` events, a `ready` whose cursor is not ours, a feed outage
    /// longer than the stale bound, an event that could not be read, a `revoked` event whose id
    /// does not follow the cursor (a gap), an unknown event type carrying an id.
    pub resync: u64,
    /// To make room in a full cache.
    pub capacity: u64,
}

/// The live counters.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub introspections: AtomicU64,
    pub introspection_failures: AtomicU64,
    pub cache_hits: AtomicU64,
    pub cache_misses: AtomicU64,
    pub coalesced: AtomicU64,
    pub overloaded: AtomicU64,
    pub evicted_token: AtomicU64,
    pub evicted_grant: AtomicU64,
    pub evicted_client: AtomicU64,
    pub evicted_resync: AtomicU64,
    pub evicted_capacity: AtomicU64,
    pub feed_events: AtomicU64,
    pub feed_connections: AtomicU64,
    pub feed_reconnects: AtomicU64,
}

/// Adds one (counters are statistics: no ordering with other memory is needed).
pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Adds `n`.
pub(crate) fn add(counter: &AtomicU64, n: u64) {
    if n > 0 {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

pub(crate) fn read(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}
