//! The active access tokens this process has looked up, kept in memory.
//!
//! Introspection, the bearer check of every protected request, looks one access token up per
//! request; the lookup is a whole SQLite read transaction (≈ a quarter of the server's CPU per
//! introspection in the profile of BENCHMARKS.md). A stored access token never changes except by
//! being revoked — itself, through its grant, or through its client — and every one of those
//! writes, in this process or any other, raises `revocation_feed.head` in the same transaction
//! (the revocation feed's counter, migration 0003). Purge deletes only tokens whose lifetime is
//! over. So the store keeps the tokens it found **active**, and trusts them for as long as the
//! head has not moved, exactly as `clients.rs` trusts clients for as long as their generation
//! has not:
//!
//! - a revocation made through **this** store empties the cache on the writer thread right after
//!   its commit, before its caller hears back (so before the `200` of `/oauth2/revoke`) and even
//!   if the caller has stopped waiting: every lookup that starts afterwards reads the database,
//!   and one that started before cannot put what it read back;
//! - a revocation made by **another process** (the admin CLI's `grant revoke` or `client delete`,
//!   or a second server on the same file) is seen by every lookup that starts more than the
//!   window ([`crate::CLIENT_CACHE_WINDOW`], 10 ms) after its commit, when the head is read again
//!   — and at once when this store's revocation feed reads a page past the cache's head: the
//!   cache is emptied before the events are returned, so no subscriber hears of a revocation the
//!   cache could still contradict (a resource server re-introspecting on the event would
//!   otherwise cache the stale answer).
//!
//! One difference is allowed to last longer than the window: a token that expired and was then
//! deleted by *another process's* purge (`tokenwarden purge`) may still be found here, expired,
//! until the next revocation anywhere or the next purge in this process — instead of unknown.
//! Both are inactive to introspection and to the bearer check.
//!
//! A token found revoked or unknown is not kept (unknown digests would let a caller fill memory),
//! and neither is its expiry checked here: the cached state carries `expires_at`, and the core
//! judges it against its own clock exactly as it judges a row just read. The cache holds at most
//! [`CAPACITY`] tokens; past that it starts over. Any move of the head empties it whole — a
//! revocation is rare next to introspections, and a partial eviction would have to read the
//! events to know what to drop.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokenwarden_core::crypto::TokenDigest;
use tokenwarden_core::model::AccessTokenState;
use tokenwarden_core::store::StoreError;

use crate::db_err;

/// The most tokens kept in memory (about 200 bytes each).
pub(crate) const CAPACITY: usize = 65_536;

/// The revocation feed's head: raised by every revocation, whichever process makes it.
const HEAD: &str = "SELECT head FROM revocation_feed WHERE id = 1";

/// What a lookup that missed carries from [`TokenCache::fresh`] to [`TokenCache::load`].
#[derive(Debug, Clone, Copy)]
struct Miss {
    /// The invalidation epoch when the lookup began.
    epoch: u64,
    /// The head, if it was read within the window (then it need not be read again).
    head: Option<i64>,
}

#[derive(Debug, Default)]
struct Cached {
    /// The head under which every entry of `tokens` was read.
    head: i64,
    /// When that head was last read (taken *before* the read, so the bound is conservative);
    /// `None` after an invalidation.
    checked_at: Option<Instant>,
    /// Raised by every invalidation: a lookup that began before one must not refill the cache
    /// with what it read.
    epoch: u64,
    tokens: HashMap<TokenDigest, AccessTokenState>,
}

/// The cache; one per store, shared by its clones.
#[derive(Debug)]
pub(crate) struct TokenCache {
    cached: Mutex<Cached>,
    /// How long a reading of the head is trusted, in nanoseconds.
    window_nanos: AtomicU64,
    /// The most tokens kept ([`CAPACITY`]).
    capacity: usize,
}

impl TokenCache {
    /// A cache that trusts a reading of the head for `window`.
    pub(crate) fn with_window(window: Duration) -> Self {
        Self::with_window_and_capacity(window, CAPACITY)
    }

    fn with_window_and_capacity(window: Duration, capacity: usize) -> Self {
        let cache = Self {
            cached: Mutex::new(Cached::default()),
            window_nanos: AtomicU64::new(0),
            capacity,
        };
        cache.set_window(window);
        cache
    }

    /// Trust a reading of the head for `window` from now on (zero: every lookup reads the head
    /// and sees every revocation committed before it).
    pub(crate) fn set_window(&self, window: Duration) {
        let nanos = u64::try_from(window.as_nanos()).unwrap_or(u64::MAX);
        self.window_nanos.store(nanos, Ordering::Relaxed);
    }

    /// Looks the token up: from memory when the cached copy is fresh, else on a read connection
    /// borrowed through `read`. A hit borrows no connection.
    pub(crate) fn find(
        &self,
        digest: &TokenDigest,
        read: impl FnOnce(
            &dyn Fn(&Connection) -> Result<Option<AccessTokenState>, StoreError>,
        ) -> Result<Option<AccessTokenState>, StoreError>,
    ) -> Result<Option<AccessTokenState>, StoreError> {
        // A monotonic clock bounding the cache's staleness; no wall-clock time is read.
        #[allow(clippy::disallowed_methods)]
        let now = Instant::now();
        match self.fresh(digest, now)? {
            Ok(state) => Ok(Some(state)),
            Err(miss) => read(&|c| self.load(c, digest, miss, now)),
        }
    }

    /// The cached state when the head was read less than the window before `now`; otherwise
    /// what [`Self::load`] needs to know.
    fn fresh(
        &self,
        digest: &TokenDigest,
        now: Instant,
    ) -> Result<Result<AccessTokenState, Miss>, StoreError> {
        let window = Duration::from_nanos(self.window_nanos.load(Ordering::Relaxed));
        let cached = self.cached.lock().map_err(|_| poisoned())?;
        let fresh = cached
            .checked_at
            .is_some_and(|at| now.saturating_duration_since(at) < window);
        if fresh {
            if let Some(state) = cached.tokens.get(digest) {
                return Ok(Ok(state.clone()));
            }
        }
        Ok(Err(Miss {
            epoch: cached.epoch,
            head: fresh.then_some(cached.head),
        }))
    }

    /// Reads the head on `c` and answers from memory if no revocation came since, else reads
    /// the token (and keeps it if active, unless an invalidation came since `epoch`).
    fn load(
        &self,
        c: &Connection,
        digest: &TokenDigest,
        miss: Miss,
        now: Instant,
    ) -> Result<Option<AccessTokenState>, StoreError> {
        let Miss { epoch, head } = miss;
        let head = match head {
            // Read within the window: the row read below is at least as new, and is filed under it.
            Some(head) => head,
            None => {
                let head: i64 = c
                    .prepare_cached(HEAD)
                    .and_then(|mut s| s.query_row([], |r| r.get(0)))
                    .map_err(db_err)?;
                self.refresh_head(head, epoch, now)?;
                head
            }
        };
        if let Some(state) = self.cached_under(digest, epoch, head)? {
            return Ok(Some(state));
        }
        self.read_row(c, digest, epoch, head)
    }

    /// Files a new reading of the head: a moved head empties the cache.
    fn refresh_head(&self, head: i64, epoch: u64, now: Instant) -> Result<(), StoreError> {
        let mut cached = self.cached.lock().map_err(|_| poisoned())?;
        if cached.epoch == epoch {
            if cached.head != head {
                cached.tokens.clear();
                cached.head = head;
            }
            cached.checked_at = Some(now);
        }
        Ok(())
    }

    /// The cached state, if the cache still holds what was read under `head` and `epoch`.
    fn cached_under(
        &self,
        digest: &TokenDigest,
        epoch: u64,
        head: i64,
    ) -> Result<Option<AccessTokenState>, StoreError> {
        let cached = self.cached.lock().map_err(|_| poisoned())?;
        Ok((cached.epoch == epoch && cached.head == head)
            .then(|| cached.tokens.get(digest).cloned())
            .flatten())
    }

    /// Reads the row and keeps it if active and nothing moved since `epoch` and `head`.
    fn read_row(
        &self,
        c: &Connection,
        digest: &TokenDigest,
        epoch: u64,
        head: i64,
    ) -> Result<Option<AccessTokenState>, StoreError> {
        // The row is read after the head, in a later (or the same) snapshot: what it shows is at
        // least as new as the head it is filed under, so a revocation after that head — which
        // moves the head — can only make the cache drop it, never keep an older state.
        let state = crate::store::access_state(c, digest)?;
        if let Some(state) = state.as_ref().filter(|s| !s.revoked) {
            let mut cached = self.cached.lock().map_err(|_| poisoned())?;
            if cached.epoch == epoch && cached.head == head {
                if cached.tokens.len() >= self.capacity {
                    cached.tokens.clear();
                }
                cached.tokens.insert(*digest, state.clone());
            }
        }
        Ok(state)
    }

    /// Forgets every token: called once a revocation (or purge) made through this store has
    /// committed, so the next lookup reads the database whatever the window says.
    pub(crate) fn invalidate(&self) {
        if let Ok(mut cached) = self.cached.lock() {
            cached.tokens.clear();
            cached.checked_at = None;
            cached.epoch = cached.epoch.wrapping_add(1);
        }
    }

    /// A reading of the head taken elsewhere (the revocation feed's page): if it is newer than
    /// the cache's, the cache is emptied as by [`Self::invalidate`] — before the caller goes on to
    /// publish the events behind that head.
    pub(crate) fn observe_head(&self, head: i64) {
        if let Ok(mut cached) = self.cached.lock() {
            if head > cached.head {
                cached.tokens.clear();
                cached.checked_at = None;
                cached.epoch = cached.epoch.wrapping_add(1);
                cached.head = head;
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.cached.lock().map_or(0, |c| c.tokens.len())
    }
}

fn poisoned() -> StoreError {
    StoreError::Unavailable("the token cache lock is poisoned".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    const INSERT: &str =
        "INSERT INTO access_tokens (digest, grant_id, client_id, username, scope, \
                              issued_at, expires_at, revoked_at) \
                          VALUES (?1, NULL, 'c1', NULL, 'read', 1, 4000000000, NULL)";
    /// What another process's revocation does: the row and the head, in one transaction.
    const REVOKE: &str = "UPDATE access_tokens SET revoked_at = 2; \
                          UPDATE revocation_feed SET head = head + 1 WHERE id = 1";

    fn database() -> Connection {
        let mut c = Connection::open_in_memory().unwrap();
        crate::migrate::run(&mut c).unwrap();
        c.execute(INSERT, [TokenDigest::of("t1").as_bytes()])
            .unwrap();
        c
    }

    /// A starting instant; the tests move time forward by adding to it, never by waiting.
    #[allow(clippy::disallowed_methods)]
    fn start() -> Instant {
        Instant::now()
    }

    fn find_at(cache: &TokenCache, c: &Connection, name: &str, at: Instant) -> Option<bool> {
        let digest = TokenDigest::of(name);
        let state = match cache.fresh(&digest, at).unwrap() {
            Ok(state) => Some(state),
            Err(miss) => cache.load(c, &digest, miss, at).unwrap(),
        };
        state.map(|s| s.revoked)
    }

    #[test]
    fn a_revocation_by_another_connection_is_seen_once_the_window_has_passed() {
        let c = database();
        let cache = TokenCache::with_window(crate::CLIENT_CACHE_WINDOW);
        let t0 = start();
        assert_eq!(find_at(&cache, &c, "t1", t0), Some(false));
        assert_eq!(cache.len(), 1);
        c.execute_batch(REVOKE).unwrap();
        let window = crate::CLIENT_CACHE_WINDOW;
        // Within the window the cached copy may still answer …
        let within = t0 + window - Duration::from_millis(1);
        assert_eq!(find_at(&cache, &c, "t1", within), Some(false));
        // … from its end on the revocation is seen, and nothing revoked is kept.
        assert_eq!(find_at(&cache, &c, "t1", t0 + window), Some(true));
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn an_invalidation_is_seen_at_once() {
        let c = database();
        let cache = TokenCache::with_window(crate::CLIENT_CACHE_WINDOW);
        let t0 = start();
        assert_eq!(find_at(&cache, &c, "t1", t0), Some(false));
        c.execute_batch(REVOKE).unwrap();
        cache.invalidate();
        assert_eq!(find_at(&cache, &c, "t1", t0), Some(true));
    }

    #[test]
    fn a_lookup_that_began_before_an_invalidation_does_not_refill_the_cache() {
        let c = database();
        let cache = TokenCache::with_window(crate::CLIENT_CACHE_WINDOW);
        let t0 = start();
        let digest = TokenDigest::of("t1");
        let Err(miss) = cache.fresh(&digest, t0).unwrap() else {
            panic!("nothing cached yet");
        };
        // A revocation commits and invalidates while this lookup is between its steps.
        cache.invalidate();
        assert!(!cache.load(&c, &digest, miss, t0).unwrap().unwrap().revoked);
        assert_eq!(cache.len(), 0, "read before the invalidation: not kept");
    }

    #[test]
    fn a_newer_head_seen_by_the_feed_empties_the_cache_at_once() {
        let c = database();
        let cache = TokenCache::with_window(crate::CLIENT_CACHE_WINDOW);
        let t0 = start();
        assert_eq!(find_at(&cache, &c, "t1", t0), Some(false));
        c.execute_batch(REVOKE).unwrap();
        // Within the window, but the feed has read head 1: the revocation is seen.
        cache.observe_head(1);
        assert_eq!(find_at(&cache, &c, "t1", t0), Some(true));
        // An older or equal reading changes nothing.
        cache.observe_head(0);
        cache.observe_head(1);
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn unknown_tokens_are_not_remembered_and_the_cache_is_bounded() {
        let c = database();
        let cache = TokenCache::with_window_and_capacity(crate::CLIENT_CACHE_WINDOW, 16);
        let t0 = start();
        assert_eq!(find_at(&cache, &c, "nobody", t0), None);
        assert_eq!(cache.len(), 0);
        for i in 0..40 {
            let name = format!("x{i}");
            c.execute(INSERT, [TokenDigest::of(&name).as_bytes()])
                .unwrap();
            assert_eq!(find_at(&cache, &c, &name, t0), Some(false));
            assert!((1..=16).contains(&cache.len()));
        }
    }
}
