//! The mechanism shared by the client cache (`clients.rs`) and the access-token cache
//! (`tokens.rs`): rows kept in memory and trusted while a counter in the database — raised in the
//! same transaction as every change that matters, whichever process makes it — has not moved.
//!
//! - The counter (the *generation*) is read again only when the last reading is older than the
//!   window; within it a hit costs no statement, and a miss only the row's own read.
//! - A moved counter empties the cache.
//! - A change made through this store calls [`Windowed::invalidate`] once it has committed: the
//!   next lookup reads the database whatever the window says, and an *epoch* raised by every
//!   invalidation stops a lookup that began before it from putting back what it read.
//! - An entry is kept only if it was read under the generation the cache holds (so never a row
//!   older than the counter it is filed under), and the cache starts over when full.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokenwarden_core::store::StoreError;

use crate::db_err;

/// What one cache keeps, and how it reads it.
pub(crate) trait Source {
    /// The key entries are kept under.
    type Key: Borrow<Self::Query> + Eq + Hash;
    /// What a lookup is asked with (`str` for a `String` key, say: no allocation on a hit).
    type Query: ?Sized + Eq + Hash;
    /// What is kept.
    type Value;
    /// What a lookup answers.
    type Found;
    /// Reads the generation (one integer).
    const GENERATION: &'static str;
    /// The answer for a kept value.
    fn hit(value: &Self::Value) -> Self::Found;
    /// Reads `key` on `c`, the cache holding `generation`: the answer, and what to keep, if
    /// anything, with the generation it was read under (the same snapshot's, or `generation`
    /// when the row was read after that reading).
    fn read(c: &Connection, key: &Self::Query, generation: i64) -> Read<Self>;
}

/// What [`Source::read`] answers: the lookup's answer, and what to keep.
pub(crate) type Read<S> = Result<
    (
        <S as Source>::Found,
        Option<Keep<<S as Source>::Key, <S as Source>::Value>>,
    ),
    StoreError,
>;

/// A value to keep, with the generation it was read under.
pub(crate) struct Keep<K, V> {
    pub(crate) key: K,
    pub(crate) value: V,
    pub(crate) generation: i64,
}

/// What a lookup that missed carries from [`Windowed::fresh`] to [`Windowed::load`].
#[derive(Debug, Clone, Copy)]
struct Miss {
    /// The invalidation epoch when the lookup began.
    epoch: u64,
    /// The generation, if it was read within the window (then it need not be read again).
    generation: Option<i64>,
}

#[derive(Debug)]
struct State<K, V> {
    /// The generation under which every entry was read.
    generation: i64,
    /// When that generation was last read (taken *before* the read, so the bound is
    /// conservative); `None` after an invalidation.
    checked_at: Option<Instant>,
    /// Raised by every invalidation.
    epoch: u64,
    entries: HashMap<K, V>,
}

impl<K, V> State<K, V> {
    fn forget(&mut self) {
        self.entries.clear();
        self.checked_at = None;
        self.epoch = self.epoch.wrapping_add(1);
    }
}

/// A cache over `S`; one per store, shared by its clones.
pub(crate) struct Windowed<S: Source> {
    state: Mutex<State<S::Key, S::Value>>,
    /// How long a reading of the generation is trusted, in nanoseconds.
    window_nanos: AtomicU64,
    /// The most entries kept.
    capacity: usize,
}

impl<S: Source> std::fmt::Debug for Windowed<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Windowed")
            .field("window_nanos", &self.window_nanos)
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl<S: Source> Windowed<S> {
    /// A cache that trusts a reading of the generation for `window` and keeps at most
    /// `capacity` entries.
    pub(crate) fn new(window: Duration, capacity: usize) -> Self {
        let cache = Self {
            state: Mutex::new(State {
                generation: 0,
                checked_at: None,
                epoch: 0,
                entries: HashMap::new(),
            }),
            window_nanos: AtomicU64::new(0),
            capacity,
        };
        cache.set_window(window);
        cache
    }

    /// Trust a reading of the generation for `window` from now on (zero: every lookup reads it
    /// and sees every change committed before it).
    pub(crate) fn set_window(&self, window: Duration) {
        let nanos = u64::try_from(window.as_nanos()).unwrap_or(u64::MAX);
        self.window_nanos.store(nanos, Ordering::Relaxed);
    }

    /// Looks `key` up: from memory when the cached copy is fresh, else on a read connection
    /// borrowed through `read`. A hit borrows no connection.
    pub(crate) fn find(
        &self,
        key: &S::Query,
        read: impl FnOnce(
            &dyn Fn(&Connection) -> Result<S::Found, StoreError>,
        ) -> Result<S::Found, StoreError>,
    ) -> Result<S::Found, StoreError> {
        // A monotonic clock bounding the cache's staleness; no wall-clock time is read.
        #[allow(clippy::disallowed_methods)]
        let now = Instant::now();
        self.find_at(key, now, read)
    }

    /// [`Self::find`] at `now` (tests move time by adding to an `Instant`, never by waiting).
    pub(crate) fn find_at(
        &self,
        key: &S::Query,
        now: Instant,
        read: impl FnOnce(
            &dyn Fn(&Connection) -> Result<S::Found, StoreError>,
        ) -> Result<S::Found, StoreError>,
    ) -> Result<S::Found, StoreError> {
        match self.fresh(key, now)? {
            Ok(found) => Ok(found),
            Err(miss) => read(&|c| self.load(c, key, miss, now)),
        }
    }

    /// The cached answer when the generation was read less than the window before `now`;
    /// otherwise what [`Self::load`] needs to know.
    fn fresh(&self, key: &S::Query, now: Instant) -> Result<Result<S::Found, Miss>, StoreError> {
        let window = Duration::from_nanos(self.window_nanos.load(Ordering::Relaxed));
        let state = self.state.lock().map_err(|_| poisoned())?;
        let fresh = state
            .checked_at
            .is_some_and(|at| now.saturating_duration_since(at) < window);
        if fresh {
            if let Some(value) = state.entries.get(key) {
                return Ok(Ok(S::hit(value)));
            }
        }
        Ok(Err(Miss {
            epoch: state.epoch,
            generation: fresh.then_some(state.generation),
        }))
    }

    /// Reads the generation on `c` (unless read within the window) and answers from memory if
    /// nothing changed, else reads the row and keeps what the source says, unless an
    /// invalidation came since the lookup began or the generation moved.
    fn load(
        &self,
        c: &Connection,
        key: &S::Query,
        miss: Miss,
        now: Instant,
    ) -> Result<S::Found, StoreError> {
        let Miss { epoch, generation } = miss;
        let generation = match generation {
            Some(generation) => generation,
            None => {
                let generation: i64 = c
                    .prepare_cached(S::GENERATION)
                    .and_then(|mut s| s.query_row([], |r| r.get(0)))
                    .map_err(db_err)?;
                let mut state = self.state.lock().map_err(|_| poisoned())?;
                if state.epoch == epoch {
                    if state.generation != generation {
                        state.entries.clear();
                        state.generation = generation;
                    }
                    state.checked_at = Some(now);
                    if let Some(value) = state.entries.get(key) {
                        return Ok(S::hit(value));
                    }
                }
                generation
            }
        };
        let (found, keep) = S::read(c, key, generation)?;
        if let Some(keep) = keep {
            let mut state = self.state.lock().map_err(|_| poisoned())?;
            if state.epoch == epoch && state.generation == keep.generation {
                if state.entries.len() >= self.capacity {
                    state.entries.clear();
                }
                state.entries.insert(keep.key, keep.value);
            }
        }
        Ok(found)
    }

    /// Forgets everything: called once a change made through this store has committed.
    pub(crate) fn invalidate(&self) {
        if let Ok(mut state) = self.state.lock() {
            state.forget();
        }
    }

    /// A reading of the generation taken elsewhere: if it is newer than the cache's, the cache
    /// forgets everything as by [`Self::invalidate`].
    pub(crate) fn observe_generation(&self, generation: i64) {
        if let Ok(mut state) = self.state.lock() {
            if generation > state.generation {
                state.forget();
                state.generation = generation;
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.state.lock().map_or(0, |s| s.entries.len())
    }
}

fn poisoned() -> StoreError {
    StoreError::Unavailable("a cache lock is poisoned".into())
}
