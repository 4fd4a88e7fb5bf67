//! The introspection cache: outcomes keyed by [`TokenDigest`], each with a deadline on the
//! injected monotonic clock, bounded in size. It holds no token; the rules for *when* it may be
//! read or written (the feed must be live / connected, the epoch unchanged) live in the
//! validator, which passes them in as a check run under the write lock.
//!
//! Besides the map, an index ordered by deadline makes room in a full cache in O(log n): expired
//! entries are dropped from its front (each entry once), then, if the cache is still full, the
//! entry closest to expiry. No insertion scans the whole map.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Instant;

use crate::claims::TokenClaims;
use crate::digest::TokenDigest;

/// What introspection said about a token.
#[derive(Clone, Debug)]
pub(crate) enum Outcome {
    /// `active: true` (and a bearer token): its claims.
    Active(Arc<TokenClaims>),
    /// Not active, or not an access token.
    Inactive,
}

#[derive(Debug)]
struct Entry {
    outcome: Outcome,
    expires: Instant,
}

/// What an insertion did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Inserted {
    pub inserted: bool,
    /// Live entries dropped to make room.
    pub evicted_for_capacity: u64,
}

/// The map and its deadline index; both always hold the same entries.
#[derive(Debug, Default)]
struct Entries {
    map: HashMap<TokenDigest, Entry>,
    by_expiry: BTreeSet<(Instant, TokenDigest)>,
}

impl Entries {
    fn remove(&mut self, digest: &TokenDigest) -> bool {
        match self.map.remove(digest) {
            Some(entry) => {
                self.by_expiry.remove(&(entry.expires, *digest));
                true
            }
            None => false,
        }
    }

    /// Removes the entry closest to expiry if it expires at or before `limit` (any when `None`).
    fn pop_soonest(&mut self, limit: Option<Instant>) -> bool {
        let Some(&(expires, digest)) = self.by_expiry.first() else {
            return false;
        };
        if limit.is_some_and(|limit| expires > limit) {
            return false;
        }
        self.by_expiry.pop_first();
        self.map.remove(&digest);
        true
    }
}

#[derive(Debug)]
pub(crate) struct Cache {
    entries: RwLock<Entries>,
    max_entries: usize,
}

impl Cache {
    pub fn new(max_entries: usize) -> Self {
        Self {
            entries: RwLock::new(Entries::default()),
            max_entries,
        }
    }

    /// The outcome cached for `digest`, if it has not expired at `now`.
    pub fn get(&self, digest: &TokenDigest, now: Instant) -> Option<Outcome> {
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        entries
            .map
            .get(digest)
            .filter(|entry| entry.expires > now)
            .map(|entry| entry.outcome.clone())
    }

    /// Stores `outcome` until `expires` if `allowed()` holds. `allowed` runs under the write
    /// lock, so an eviction that takes the lock after a concurrent check cannot be overtaken by
    /// the insertion it raced with.
    pub fn insert_if(
        &self,
        digest: TokenDigest,
        outcome: Outcome,
        expires: Instant,
        now: Instant,
        allowed: impl FnOnce() -> bool,
    ) -> Inserted {
        let mut result = Inserted::default();
        if self.max_entries == 0 || expires <= now {
            return result;
        }
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        if !allowed() {
            return result;
        }
        if !entries.remove(&digest) && entries.map.len() >= self.max_entries {
            // Make room: expired entries first (not counted: they were dead already), then the
            // entry that would expire soonest. O(log n) per entry removed.
            while entries.pop_soonest(Some(now)) {}
            while entries.map.len() >= self.max_entries && entries.pop_soonest(None) {
                result.evicted_for_capacity += 1;
            }
        }
        entries.by_expiry.insert((expires, digest));
        entries.map.insert(digest, Entry { outcome, expires });
        result.inserted = true;
        result
    }

    /// Removes one entry; returns how many were removed (0 or 1).
    pub fn remove(&self, digest: &TokenDigest) -> u64 {
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        u64::from(entries.remove(digest))
    }

    /// Removes every active entry whose claims match; returns how many.
    pub fn remove_matching(&self, matches: impl Fn(&TokenClaims) -> bool) -> u64 {
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        let Entries { map, by_expiry } = &mut *entries;
        let before = map.len();
        map.retain(|digest, entry| {
            let keep = match &entry.outcome {
                Outcome::Active(claims) => !matches(claims),
                Outcome::Inactive => true,
            };
            if !keep {
                by_expiry.remove(&(entry.expires, *digest));
            }
            keep
        });
        count(before - map.len())
    }

    /// Drops everything; returns how many entries there were.
    pub fn clear(&self) -> u64 {
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        let n = entries.map.len();
        entries.map.clear();
        entries.by_expiry.clear();
        count(n)
    }

    /// Entries held (expired ones included until they are overwritten or pushed out).
    pub fn len(&self) -> usize {
        self.entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .map
            .len()
    }
}

fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::clock::{Clock as _, SystemClock};

    fn active(client: &str, sub: &str) -> Outcome {
        let response: tokenwarden_client::IntrospectionResponse = serde_json::from_value(
            serde_json::json!({"active": true, "client_id": client, "sub": sub}),
        )
        .unwrap();
        Outcome::Active(Arc::new(TokenClaims::from_introspection(&response)))
    }

    #[test]
    fn a_full_cache_drops_expired_entries_then_the_soonest_to_expire() {
        let cache = Cache::new(2);
        let t0 = SystemClock.now();
        let s = Duration::from_secs;
        let d = |n: &str| TokenDigest::of(n);
        assert!(
            cache
                .insert_if(d("a"), Outcome::Inactive, t0 + s(10), t0, || true)
                .inserted
        );
        assert!(
            cache
                .insert_if(d("b"), Outcome::Inactive, t0 + s(5), t0, || true)
                .inserted
        );
        let r = cache.insert_if(d("c"), Outcome::Inactive, t0 + s(20), t0, || true);
        assert_eq!(r.evicted_for_capacity, 1);
        assert!(cache.get(&d("b"), t0).is_none());
        assert!(cache.get(&d("a"), t0).is_some());
        // At t0+11 "a" has expired: it makes room without counting as a capacity eviction.
        let r = cache.insert_if(d("e"), Outcome::Inactive, t0 + s(30), t0 + s(11), || true);
        assert_eq!(r.evicted_for_capacity, 0);
        assert_eq!(cache.len(), 2);
        assert!(cache.get(&d("c"), t0 + s(19)).is_some());
        assert!(cache.get(&d("c"), t0 + s(20)).is_none());
    }

    #[test]
    fn a_refused_check_or_zero_capacity_inserts_nothing() {
        let t0 = SystemClock.now();
        let later = t0 + Duration::from_secs(1);
        let cache = Cache::new(10);
        let d = TokenDigest::of("x");
        assert!(
            !cache
                .insert_if(d, Outcome::Inactive, later, t0, || false)
                .inserted
        );
        assert!(
            !Cache::new(0)
                .insert_if(d, Outcome::Inactive, later, t0, || true)
                .inserted
        );
        assert!(
            !cache
                .insert_if(d, Outcome::Inactive, t0, t0, || true)
                .inserted
        );
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn matching_removal_keeps_other_clients_subjects_and_negative_entries() {
        let t0 = SystemClock.now();
        let later = t0 + Duration::from_secs(60);
        let cache = Cache::new(10);
        for (name, outcome) in [
            ("1", active("app", "alice")),
            ("2", active("app", "bob")),
            ("3", active("other", "alice")),
            ("4", Outcome::Inactive),
        ] {
            cache.insert_if(TokenDigest::of(name), outcome, later, t0, || true);
        }
        let removed = cache.remove_matching(|c| {
            c.client_id.as_deref() == Some("app") && c.subject.as_deref() == Some("alice")
        });
        assert_eq!(removed, 1);
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.remove(&TokenDigest::of("2")), 1);
        assert_eq!(cache.remove(&TokenDigest::of("2")), 0);
        assert_eq!(cache.clear(), 2);
        assert_eq!(cache.entries.read().unwrap().by_expiry.len(), 0);
    }

    #[test]
    fn the_expiry_index_follows_overwrites_and_removals() {
        let t0 = SystemClock.now();
        let s = Duration::from_secs;
        let d = |n: u64| TokenDigest::of(&n.to_string());
        let cache = Cache::new(3);
        for n in 1..=3 {
            cache.insert_if(d(n), active("app", "alice"), t0 + s(10 * n), t0, || true);
        }
        // Overwriting "1" moves its deadline to the end: "2" is now the soonest.
        cache.insert_if(d(1), Outcome::Inactive, t0 + s(100), t0, || true);
        assert_eq!(cache.len(), 3);
        let r = cache.insert_if(d(4), Outcome::Inactive, t0 + s(50), t0, || true);
        assert_eq!(r.evicted_for_capacity, 1);
        assert!(cache.get(&d(2), t0).is_none());
        assert!(cache.get(&d(1), t0).is_some());
        // Removed entries leave the index too: room is made from what is really there.
        assert_eq!(cache.remove(&d(3)), 1);
        assert_eq!(
            cache.remove_matching(|_| true),
            0,
            "1 and 4 are inactive now"
        );
        let r = cache.insert_if(d(5), active("app", "bob"), t0 + s(60), t0, || true);
        assert_eq!(r.evicted_for_capacity, 0);
        assert_eq!(
            cache.remove_matching(|c| c.subject.as_deref() == Some("bob")),
            1
        );
        {
            let entries = cache.entries.read().unwrap();
            assert_eq!(entries.map.len(), entries.by_expiry.len());
            assert_eq!(entries.map.len(), 2);
        }
        // Many expired entries make room at once, without counting as capacity evictions.
        let big = Cache::new(1_000);
        for n in 0..1_000 {
            big.insert_if(d(n), Outcome::Inactive, t0 + s(1 + n % 5), t0, || true);
        }
        let r = big.insert_if(d(5_000), Outcome::Inactive, t0 + s(60), t0 + s(3), || true);
        assert_eq!(r.evicted_for_capacity, 0);
        assert_eq!(big.len(), 401);
        let entries = big.entries.read().unwrap();
        assert_eq!(entries.map.len(), entries.by_expiry.len());
    }
}
