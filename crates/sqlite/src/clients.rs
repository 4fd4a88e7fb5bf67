//! The clients this process has authenticated, kept in memory.
//!
//! Every token, revocation and introspection request looks its client up before anything else,
//! and a client row changes only when an administrator registers, rotates or deletes one —
//! possibly from another process (the admin CLI next to a running server). Reading the row costs a
//! whole SQLite statement (a read transaction, a B-tree descent, three JSON arrays to parse), as
//! much as the token lookup that follows. So the store keeps the clients it has read, and knows
//! when they changed from `client_changes.generation` (migration 0004): triggers raise it in the
//! same transaction as every insert, update or delete of a `clients` row, whichever connection or
//! process makes it.
//!
//! Reading even that one integer is a statement of its own, and the profile showed that a
//! statement's fixed cost (beginning and ending the read transaction) is most of a lookup's. So
//! the generation is read again only when the last reading is older than [`WINDOW`]:
//!
//! - a change made through **this** store (`create_client`, `set_client_secret`,
//!   `delete_client`) empties the cache when it commits: every lookup that starts afterwards
//!   reads the database;
//! - a change made by **another process** (the admin CLI, or `sqlite3` by hand) is seen by every
//!   lookup that starts more than [`WINDOW`] after its commit. A deleted client or a rotated secret
//!   stops authenticating within that bound.
//!
//! Unknown client ids are not cached (a caller could otherwise fill memory with made-up ids), and
//! the cache holds at most [`CAPACITY`] clients; past that it starts over.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension as _};
use tokenwarden_core::model::Client;
use tokenwarden_core::store::StoreError;

use crate::db_err;
use crate::rows::{ClientRow, CLIENT_SELECT_WITH_GENERATION};

/// The most clients kept in memory.
pub(crate) const CAPACITY: usize = 1024;

/// How long a reading of the generation is trusted: the most time after another process's commit
/// during which this process may still authenticate a client as it was before.
pub const WINDOW: Duration = Duration::from_millis(10);

/// The current generation of `clients` (see the module docs).
const GENERATION: &str = "SELECT generation FROM client_changes WHERE id = 1";

#[derive(Debug, Default)]
struct Cached {
    /// The generation under which every entry of `clients` was read.
    generation: i64,
    /// When that generation was last read (taken *before* the read, so the bound is
    /// conservative); `None` after an invalidation.
    checked_at: Option<Instant>,
    /// Raised by every invalidation: a lookup that began before one must not refill the cache
    /// with what it read.
    epoch: u64,
    clients: HashMap<String, Arc<Client>>,
}

/// The cache; one per store, shared by its clones.
#[derive(Debug)]
pub(crate) struct ClientCache {
    cached: Mutex<Cached>,
    /// How long a reading of the generation is trusted, in nanoseconds.
    window_nanos: AtomicU64,
}

impl Default for ClientCache {
    fn default() -> Self {
        Self::with_window(WINDOW)
    }
}

impl ClientCache {
    /// A cache that trusts a reading of the generation for `window`.
    pub(crate) fn with_window(window: Duration) -> Self {
        let cache = Self {
            cached: Mutex::new(Cached::default()),
            window_nanos: AtomicU64::new(0),
        };
        cache.set_window(window);
        cache
    }

    /// Trust a reading of the generation for `window` from now on (zero: never, so every lookup
    /// reads the generation and sees every commit before it).
    pub(crate) fn set_window(&self, window: Duration) {
        let nanos = u64::try_from(window.as_nanos()).unwrap_or(u64::MAX);
        self.window_nanos.store(nanos, Ordering::Relaxed);
    }

    /// Looks `client_id` up: from memory when the cached copy is fresh, else on a read
    /// connection borrowed through `read` (see the module docs). A hit borrows no connection.
    pub(crate) fn find(
        &self,
        client_id: &str,
        read: impl FnOnce(
            &dyn Fn(&Connection) -> Result<Option<Client>, StoreError>,
        ) -> Result<Option<Client>, StoreError>,
    ) -> Result<Option<Client>, StoreError> {
        // A monotonic clock bounding the cache's staleness; no wall-clock time is read.
        #[allow(clippy::disallowed_methods)]
        let now = Instant::now();
        match self.fresh(client_id, now)? {
            Ok(client) => Ok(Some(client)),
            Err(epoch) => read(&|c| self.load(c, client_id, epoch, now)),
        }
    }

    /// The cached copy of `client_id` when the generation was read less than the window before
    /// `now`; otherwise the epoch to hand to [`Self::load`].
    fn fresh(&self, client_id: &str, now: Instant) -> Result<Result<Client, u64>, StoreError> {
        let window = Duration::from_nanos(self.window_nanos.load(Ordering::Relaxed));
        let cached = self.cached.lock().map_err(|_| poisoned())?;
        let fresh = cached
            .checked_at
            .is_some_and(|at| now.saturating_duration_since(at) < window);
        if fresh {
            if let Some(client) = cached.clients.get(client_id).map(Arc::clone) {
                drop(cached);
                return Ok(Ok(Client::clone(&client)));
            }
        }
        Ok(Err(cached.epoch))
    }

    #[cfg(test)]
    fn find_at(
        &self,
        c: &Connection,
        client_id: &str,
        now: Instant,
    ) -> Result<Option<Client>, StoreError> {
        match self.fresh(client_id, now)? {
            Ok(client) => Ok(Some(client)),
            Err(epoch) => self.load(c, client_id, epoch, now),
        }
    }

    /// Reads the generation on `c` and answers from memory if nothing changed, else reads the
    /// client (and caches it, unless an invalidation came since `epoch`).
    fn load(
        &self,
        c: &Connection,
        client_id: &str,
        epoch: u64,
        now: Instant,
    ) -> Result<Option<Client>, StoreError> {
        let generation: i64 = c
            .prepare_cached(GENERATION)
            .and_then(|mut s| s.query_row([], |r| r.get(0)))
            .map_err(db_err)?;
        {
            let mut cached = self.cached.lock().map_err(|_| poisoned())?;
            if cached.epoch == epoch {
                if cached.generation != generation {
                    cached.clients.clear();
                    cached.generation = generation;
                }
                cached.checked_at = Some(now);
                if let Some(client) = cached.clients.get(client_id).map(Arc::clone) {
                    drop(cached);
                    return Ok(Some(Client::clone(&client)));
                }
            }
        }
        // The row and the generation in one statement, hence one snapshot: the row is the one
        // stored under that generation.
        let found = c
            .prepare_cached(CLIENT_SELECT_WITH_GENERATION)
            .and_then(|mut s| {
                s.query_row([client_id], |r| {
                    let generation: i64 = r.get(0)?;
                    let present: Option<String> = r.get(1)?;
                    let row = match present {
                        Some(_) => Some(ClientRow::from_row_at(r, 1)?),
                        None => None,
                    };
                    Ok((generation, row))
                })
                .optional()
            })
            .map_err(db_err)?;
        let Some((generation, Some(row))) = found else {
            return Ok(None);
        };
        let client = Client::try_from(row)?;
        let mut cached = self.cached.lock().map_err(|_| poisoned())?;
        // Cache only what was read under the generation the cache holds, with no invalidation
        // since this lookup began.
        if cached.epoch == epoch && cached.generation == generation {
            if cached.clients.len() >= CAPACITY {
                cached.clients.clear();
            }
            cached
                .clients
                .insert(client.client_id.clone(), Arc::new(client.clone()));
        }
        Ok(Some(client))
    }

    /// Forgets every client: called once a change to `clients` made through this store has
    /// committed, so the next lookup reads the database whatever [`WINDOW`] says.
    pub(crate) fn invalidate(&self) {
        if let Ok(mut cached) = self.cached.lock() {
            cached.clients.clear();
            cached.checked_at = None;
            cached.epoch = cached.epoch.wrapping_add(1);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.cached.lock().map_or(0, |c| c.clients.len())
    }
}

fn poisoned() -> StoreError {
    StoreError::Unavailable("the client cache lock is poisoned".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    const INSERT: &str = "INSERT INTO clients (client_id, name, secret_digest, grant_types, \
                              redirect_uris, scope, introspect, cors_origins, created_at) \
                          VALUES (?1, 'one', NULL, '[]', '[]', 'read', 0, '[]', 1)";

    fn database() -> Connection {
        let mut c = Connection::open_in_memory().unwrap();
        crate::migrate::run(&mut c).unwrap();
        c.execute(INSERT, ["c1"]).unwrap();
        c
    }

    /// A starting instant; the tests move time forward by adding to it, never by waiting.
    #[allow(clippy::disallowed_methods)]
    fn start() -> Instant {
        Instant::now()
    }

    fn name(cache: &ClientCache, c: &Connection, at: Instant) -> Option<String> {
        cache
            .find_at(c, "c1", at)
            .unwrap()
            .map(|client| client.name)
    }

    #[test]
    fn a_change_by_another_connection_is_seen_once_the_window_has_passed() {
        let c = database();
        let cache = ClientCache::default();
        let t0 = start();
        assert_eq!(name(&cache, &c, t0).as_deref(), Some("one"));
        assert_eq!(cache.len(), 1);
        // Another process renames it: within the window the cached copy may still answer …
        c.execute_batch("UPDATE clients SET name = 'renamed'")
            .unwrap();
        let within = t0 + WINDOW - Duration::from_millis(1);
        assert_eq!(name(&cache, &c, within).as_deref(), Some("one"));
        // … and from the end of the window on, the change is seen.
        assert_eq!(name(&cache, &c, t0 + WINDOW).as_deref(), Some("renamed"));
        // A deletion likewise.
        let t1 = t0 + WINDOW;
        c.execute_batch("DELETE FROM clients").unwrap();
        assert_eq!(name(&cache, &c, t1 + WINDOW), None);
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn an_invalidation_is_seen_at_once() {
        let c = database();
        let cache = ClientCache::default();
        let t0 = start();
        assert_eq!(name(&cache, &c, t0).as_deref(), Some("one"));
        c.execute_batch("UPDATE clients SET name = 'renamed'")
            .unwrap();
        cache.invalidate();
        assert_eq!(name(&cache, &c, t0).as_deref(), Some("renamed"));
    }

    #[test]
    fn a_zero_window_reads_the_generation_every_time() {
        let c = database();
        let cache = ClientCache::with_window(Duration::ZERO);
        let t0 = start();
        assert_eq!(name(&cache, &c, t0).as_deref(), Some("one"));
        c.execute_batch("UPDATE clients SET name = 'renamed'")
            .unwrap();
        assert_eq!(name(&cache, &c, t0).as_deref(), Some("renamed"));
    }

    #[test]
    fn unknown_ids_are_not_remembered_and_the_cache_is_bounded() {
        let c = database();
        let cache = ClientCache::default();
        let t0 = start();
        assert!(cache.find_at(&c, "nobody", t0).unwrap().is_none());
        assert_eq!(cache.len(), 0);
        for i in 0..CAPACITY + 10 {
            c.execute(INSERT, [format!("x{i}")]).unwrap();
        }
        for i in 0..CAPACITY + 10 {
            let id = format!("x{i}");
            assert_eq!(cache.find_at(&c, &id, t0).unwrap().unwrap().client_id, id);
            assert!(cache.len() <= CAPACITY);
        }
    }
}
