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

use std::time::Duration;

use rusqlite::Connection;
use tokenwarden_core::crypto::TokenDigest;
use tokenwarden_core::model::AccessTokenState;

use crate::windowed::{Keep, Read, Source, Windowed};

/// The most tokens kept in memory (about 200 bytes each).
pub(crate) const CAPACITY: usize = 65_536;

/// Active access tokens under the revocation feed's head (`windowed.rs` holds the mechanism).
pub(crate) type TokenCache = Windowed<Tokens>;

/// A [`TokenCache`] trusting a reading of the head for `window`.
pub(crate) fn cache(window: Duration) -> TokenCache {
    Windowed::new(window, CAPACITY)
}

/// What the token cache keeps: active access-token states by digest.
#[derive(Debug)]
pub(crate) struct Tokens;

impl Source for Tokens {
    type Key = TokenDigest;
    type Query = TokenDigest;
    type Value = AccessTokenState;
    type Found = Option<AccessTokenState>;
    /// The revocation feed's head: raised by every revocation, whichever process makes it.
    const GENERATION: &'static str = "SELECT head FROM revocation_feed WHERE id = 1";

    fn hit(value: &AccessTokenState) -> Option<AccessTokenState> {
        Some(value.clone())
    }

    fn read(c: &Connection, digest: &TokenDigest, head: i64) -> Read<Self> {
        // The row is read after the head, in a later (or the same) snapshot: what it shows is at
        // least as new as the head it is filed under, so a revocation after that head — which
        // moves the head — can only make the cache drop it, never keep an older state.
        let state = crate::store::access_state(c, digest)?;
        let keep = state.as_ref().filter(|s| !s.revoked).map(|s| Keep {
            key: *digest,
            value: s.clone(),
            generation: head,
        });
        Ok((state, keep))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

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
        cache
            .find_at(&TokenDigest::of(name), at, |load| load(c))
            .unwrap()
            .map(|s| s.revoked)
    }

    #[test]
    fn a_revocation_by_another_connection_is_seen_once_the_window_has_passed() {
        let c = database();
        let cache = cache(crate::CLIENT_CACHE_WINDOW);
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
        let cache = cache(crate::CLIENT_CACHE_WINDOW);
        let t0 = start();
        assert_eq!(find_at(&cache, &c, "t1", t0), Some(false));
        c.execute_batch(REVOKE).unwrap();
        cache.invalidate();
        assert_eq!(find_at(&cache, &c, "t1", t0), Some(true));
    }

    #[test]
    fn a_lookup_that_began_before_an_invalidation_does_not_refill_the_cache() {
        let c = database();
        let cache = cache(crate::CLIENT_CACHE_WINDOW);
        let t0 = start();
        let state = cache
            .find_at(&TokenDigest::of("t1"), t0, |load| {
                // A revocation commits and invalidates while this lookup is between its steps.
                cache.invalidate();
                load(&c)
            })
            .unwrap()
            .unwrap();
        assert!(!state.revoked);
        assert_eq!(cache.len(), 0, "read before the invalidation: not kept");
    }

    #[test]
    fn a_newer_head_seen_by_the_feed_empties_the_cache_at_once() {
        let c = database();
        let cache = cache(crate::CLIENT_CACHE_WINDOW);
        let t0 = start();
        assert_eq!(find_at(&cache, &c, "t1", t0), Some(false));
        c.execute_batch(REVOKE).unwrap();
        // Within the window, but the feed has read head 1: the revocation is seen.
        cache.observe_generation(1);
        assert_eq!(find_at(&cache, &c, "t1", t0), Some(true));
        // An older or equal reading changes nothing.
        cache.observe_generation(0);
        cache.observe_generation(1);
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn unknown_tokens_are_not_remembered_and_the_cache_is_bounded() {
        let c = database();
        let cache = TokenCache::new(crate::CLIENT_CACHE_WINDOW, 16);
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
