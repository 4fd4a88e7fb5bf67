//! The introspection cache: outcomes keyed by [`TokenDigest`], each with a deadline on the
//! injected monotonic clock, bounded in size. It holds no token; the rules for *when* it may be
//! read or written (the feed must be live / connected, the epoch unchanged) live in the
//! validator, which passes them in as a check run under the write lock.

use std::collections::HashMap;
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

#[derive(Debug)]
pub(crate) struct Cache {
    map: RwLock<HashMap<TokenDigest, Entry>>,
    max_entries: usize,
}

impl Cache {
    pub fn new(max_entries: usize) -> Self {
        Self {
            map: RwLock::new(HashMap::new()),
            max_entries,
        }
    }

    /// The outcome cached for `digest`, if it has not expired at `now`.
    pub fn get(&self, digest: &TokenDigest, now: Instant) -> Option<Outcome> {
        let map = self.map.read().unwrap_or_else(PoisonError::into_inner);
        map.get(digest)
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
        let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
        if !allowed() {
            return result;
        }
        if map.len() >= self.max_entries && !map.contains_key(&digest) {
            // Make room: expired entries first, then the entry that would expire soonest
            // (O(n), but only on an insertion into a full cache, which follows a network call).
            map.retain(|_, entry| entry.expires > now);
            while map.len() >= self.max_entries {
                let soonest = map
                    .iter()
                    .min_by_key(|(_, entry)| entry.expires)
                    .map(|(key, _)| *key);
                match soonest {
                    Some(key) => {
                        map.remove(&key);
                        result.evicted_for_capacity += 1;
                    }
                    None => break,
                }
            }
        }
        map.insert(digest, Entry { outcome, expires });
        result.inserted = true;
        result
    }

    /// Removes one entry; returns how many were removed (0 or 1).
    pub fn remove(&self, digest: &TokenDigest) -> u64 {
        let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
        u64::from(map.remove(digest).is_some())
    }

    /// Removes every active entry whose claims match; returns how many.
    pub fn remove_matching(&self, matches: impl Fn(&TokenClaims) -> bool) -> u64 {
        let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
        let before = map.len();
        map.retain(|_, entry| match &entry.outcome {
            Outcome::Active(claims) => !matches(claims),
            Outcome::Inactive => true,
        });
        count(before - map.len())
    }

    /// Drops everything; returns how many entries there were.
    pub fn clear(&self) -> u64 {
        let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
        let n = map.len();
        map.clear();
        count(n)
    }

    /// Entries held (expired ones included until they are overwritten or pushed out).
    pub fn len(&self) -> usize {
        self.map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
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
    }
}
