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

use std::sync::Arc;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension as _};
use tokenwarden_core::model::Client;

use crate::db_err;
use crate::rows::{ClientRow, CLIENT_SELECT_WITH_GENERATION};
use crate::windowed::{Keep, Read, Source, Windowed};

/// The most clients kept in memory.
pub(crate) const CAPACITY: usize = 1024;

/// How long a reading of the generation is trusted: the most time after another process's commit
/// during which this process may still authenticate a client as it was before.
pub const WINDOW: Duration = Duration::from_millis(10);

/// Clients under `client_changes.generation` (`windowed.rs` holds the mechanism).
pub(crate) type ClientCache = Windowed<Clients>;

/// A [`ClientCache`] trusting a reading of the generation for `window`.
pub(crate) fn cache(window: Duration) -> ClientCache {
    Windowed::new(window, CAPACITY)
}

/// What the client cache keeps: clients by id.
#[derive(Debug)]
pub(crate) struct Clients;

impl Source for Clients {
    type Key = String;
    type Query = str;
    type Value = Arc<Client>;
    type Found = Option<Client>;
    /// The current generation of `clients` (see the module docs).
    const GENERATION: &'static str = "SELECT generation FROM client_changes WHERE id = 1";

    fn hit(value: &Arc<Client>) -> Option<Client> {
        Some(Client::clone(value))
    }

    fn read(c: &Connection, client_id: &str, _generation: i64) -> Read<Self> {
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
        // Unknown ids are not kept.
        let Some((generation, Some(row))) = found else {
            return Ok((None, None));
        };
        let client = Client::try_from(row)?;
        let keep = Keep {
            key: client.client_id.clone(),
            value: Arc::new(client.clone()),
            generation,
        };
        Ok((Some(client), Some(keep)))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

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

    fn find_at(cache: &ClientCache, c: &Connection, id: &str, at: Instant) -> Option<Client> {
        cache.find_at(id, at, |load| load(c)).unwrap()
    }

    fn name(cache: &ClientCache, c: &Connection, at: Instant) -> Option<String> {
        find_at(cache, c, "c1", at).map(|client| client.name)
    }

    #[test]
    fn a_change_by_another_connection_is_seen_once_the_window_has_passed() {
        let c = database();
        let cache = cache(WINDOW);
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
        let cache = cache(WINDOW);
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
        let cache = cache(Duration::ZERO);
        let t0 = start();
        assert_eq!(name(&cache, &c, t0).as_deref(), Some("one"));
        c.execute_batch("UPDATE clients SET name = 'renamed'")
            .unwrap();
        assert_eq!(name(&cache, &c, t0).as_deref(), Some("renamed"));
    }

    #[test]
    fn unknown_ids_are_not_remembered_and_the_cache_is_bounded() {
        let c = database();
        let cache = cache(WINDOW);
        let t0 = start();
        assert!(find_at(&cache, &c, "nobody", t0).is_none());
        assert_eq!(cache.len(), 0);
        for i in 0..CAPACITY + 10 {
            c.execute(INSERT, [format!("x{i}")]).unwrap();
        }
        for i in 0..CAPACITY + 10 {
            let id = format!("x{i}");
            assert_eq!(find_at(&cache, &c, &id, t0).unwrap().client_id, id);
            assert!(cache.len() <= CAPACITY);
        }
    }
}
