//! # tokenwarden-sqlite
//!
//! The SQLite storage backend, tokenwarden's embedded default (`--database sqlite://tokenwarden.db`).
//! [`SqliteStore`] implements [`Store`](tokenwarden_core::store::Store),
//! [`AdminStore`](tokenwarden_core::store::AdminStore) and
//! [`AccountStore`](tokenwarden_core::store::AccountStore) with the semantics of the reference
//! [`MemoryStore`](tokenwarden_core::store::memory::MemoryStore); the `tokenwarden-conformance`
//! suite runs against both. It drives SQLite directly through `rusqlite` (the same bundled
//! `libsqlite3-sys` sqlx links); the schema is `migrations/sqlite`, embedded with
//! `sqlx::migrate!` and recorded in sqlx's `_sqlx_migrations` table, so databases move freely
//! between this store, earlier releases and sqlx's tooling.
//!
//! ## Connection settings, and why
//!
//! | setting | value | why |
//! |---|---|---|
//! | `journal_mode` | `WAL` | readers never block the writer nor the writer readers, so introspection keeps answering during a purge; a commit appends to the log instead of rewriting pages. The mode is persistent in the file. |
//! | `synchronous` | `FULL`, `NORMAL` for issuance-only batches | the WAL is fsynced at every commit, before the store returns `Ok`, except for a batch made only of token issuance (see "Durability" below). A `200` answered after a revocation, rotation or redemption must survive `kill -9` *and* power loss: with `NORMAL` (the usual WAL pairing) a process crash loses nothing, but a power cut can roll back the last commits — a rotated refresh token would come back as unused, or a revocation would be undone, after the client was told otherwise. Losing a revocation is a security failure, so we pay an fsync per such commit — and group commit (below) makes that one fsync per *batch* of writes, not per write. |
//! | `busy_timeout` | 5 s | another process (the admin CLI next to a running server) may hold the write lock; wait for it rather than fail at once. Past 5 s the caller gets `StoreError::Unavailable` (a `503`), not a hang. |
//! | `foreign_keys` | `ON` | tokens must belong to an existing grant; SQLite leaves enforcement off unless asked, per connection. |
//! | `query_only` | `ON` on read connections | a write sent to a read connection by mistake fails loudly instead of racing the writer. |
//! | `cache_size` | 64 MiB on the write connection | token digests are random, so every insert lands on a different B-tree page; with SQLite's 2 MiB default the writer re-reads those pages from the OS on every commit. The cache grows only as pages are used. |
//! | `wal_autocheckpoint` | 16384 pages on the write connection | checkpoints run on a thread of their own (below); this is only the backstop that lets the WAL start over under sustained writes. |
//!
//! Every statement is prepared once per connection and kept in the connection's statement cache
//! (`prepare_cached`), so a request costs a bind and a step, not a parse.
//!
//! ## Reads: on the calling task
//!
//! A read borrows one of a small pool of read connections and runs on the caller's own thread:
//! an indexed lookup in a warm page cache takes microseconds, cheaper than any hand-off to another
//! thread and back. A read that misses the cache blocks its runtime worker for the disk read — a
//! bounded cost, as every read is an index lookup or a short index range. Each read sees the last
//! committed state (WAL snapshot isolation) without waiting for the writer. See `readers.rs`.
//!
//! ## Clients: kept in memory
//!
//! Every token, revocation and introspection request looks its client up first. The store keeps
//! the clients it has read in memory and knows when any client changed from a counter that
//! triggers raise in the same transaction as every change to `clients` (migration 0004), whichever
//! process makes it. A change made through this store empties the cache when it commits; a change
//! made by another process (the admin CLI) is seen within [`CLIENT_CACHE_WINDOW`] (10 ms), the
//! longest the counter is trusted without reading it again. See `clients.rs`.
//!
//! ## Active access tokens: kept in memory too
//!
//! Introspection looks one access token up per request. The store keeps the tokens it found
//! active and trusts them while the revocation feed's head — raised in the same transaction by
//! every revocation, whichever process makes it — has not moved: a revocation made through this
//! store empties the cache before its caller hears back; one made by another process is seen
//! within the same 10 ms window as client changes
//! ([`SqliteStore::set_token_cache_window`]). See `tokens.rs`.
//!
//! ## Writes: one writer thread, group commit
//!
//! SQLite has one writer per database. Here one OS thread owns the write connection, and every
//! write is an operation handed to it through a queue. The thread takes the first operation and
//! everything queued behind it (up to 256), runs them in **one** `BEGIN IMMEDIATE` transaction
//! and commits once. Under load the operations that arrive while one batch is being fsynced form
//! the next batch, so N concurrent writes cost about one fsync instead of N, and no time is spent
//! waiting for a batch to fill.
//!
//! An operation that fails (a `Conflict`, say) is rolled back alone and reported to its caller
//! alone. A batch first runs without savepoints — nearly every batch is all successes, and a
//! savepoint makes SQLite copy each page before changing it (≈ 15 % of refresh-rotation
//! throughput) — and only when an operation fails is the transaction rolled back whole and the
//! batch run again with each operation in its own `SAVEPOINT`. An operation is a closure over
//! what it captured and the connection, so running it again after the rollback does the same
//! ([`WriteStats::reruns`] counts these batches).
//!
//! **Why an `Ok` (a `200`) is durable:** no caller hears back before the `COMMIT` of its batch
//! has returned, and with `synchronous=FULL` that return means the WAL is fsynced (for the
//! issuance-only batches below: written to the OS). If the
//! `COMMIT` fails, nothing of the batch is in the database and every caller in it gets
//! `StoreError::Unavailable`. A caller that gives up waiting (a cancelled request) may still have
//! its write committed, exactly as a client whose connection drops after the commit.
//!
//! **Durability: two classes.** A batch holding only token issuance (`insert_access_token`, a
//! `client_credentials` token) commits with `synchronous=NORMAL`: before its callers hear back,
//! its WAL frames have been written to the operating system, which a crash of the process —
//! `kill -9`, a panic, an OOM kill — does not lose (the end-to-end tests SIGKILL the server right
//! after such a `200` and find the token after restart). A power cut or kernel crash can lose
//! such a token until the next fsync (the next batch with any other write, or the next
//! checkpoint, a few milliseconds later under load): the client then holds a token that stops
//! working — it fails closed and the client asks for another (a resource server that had cached it
//! as active keeps it until that entry ends: revoking an unknown token announces nothing). Everything else — revocations,
//! rotations, code redemptions, grants, clients, users, consents — is fsynced, and a batch that
//! mixes both is fsynced whole (which also persists every frame before it). Halving the fsyncs
//! of token issuance is worth ≈ 35 % more `client_credentials` throughput on the benchmark
//! machine; [`SqliteStore::set_fsync_issuance`] (`serve --fsync-issuance`) fsyncs every commit.
//! [`WriteStats::fsynced`] counts the fsynced commits.
//!
//! **Why compare-and-set stays exact:** the writer thread is the only writer, and runs the
//! operations of a batch one after the other, in arrival order. A refresh rotation or a code
//! redemption reads and writes inside its own operation with nothing in between; a later
//! operation in the same batch sees the earlier ones' writes. Of twenty concurrent rotations of
//! one refresh token exactly one finds it unused.
//!
//! **Why the revocation feed is gapless and in commit order:** a revoking operation raises the
//! single counter row of `revocation_feed` by the number of events it appends and inserts them
//! under the numbers it got, as its last write, inside its own operation. Only one connection
//! writes at a time (this writer thread, or another process holding the write lock), so the
//! numbers are handed out in commit order, and an operation or batch that rolls back takes its
//! numbers back with it. A reader gets the events after its cursor together with the counter row
//! in one read transaction, so the `head` and `floor` it sees match the events it got.
//!
//! Copying the WAL back into the database file (a checkpoint) is left to a third thread, nudged
//! after each commit, so the writer thread stalls on it only for the rare backstop checkpoint
//! that lets the WAL start over; see `checkpoint.rs` for the measurements behind its schedule.
//!
//! `BEGIN IMMEDIATE` takes the write lock up front (waiting out `busy_timeout` if another
//! process holds it), so the transaction never has to upgrade a read lock, which fails without
//! waiting when another connection committed in between. A purge deletes in batches of its
//! policy's size, each its own operation, so it never holds the write lock for long and
//! request-path writes interleave with it.
//!
//! An in-memory database (`sqlite::memory:`) lives and dies with its connection, so it has one
//! connection, used by the writer thread and, between batches, by reads.
#![warn(missing_docs)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::Connection;
use tokenwarden_core::store::StoreError;
use tokio::sync::oneshot;

mod checkpoint;
mod clients;
mod location;
mod migrate;
mod readers;
mod rows;
mod store;
mod tokens;
mod windowed;
mod writer;

use checkpoint::Checkpointer;
use clients::ClientCache;
pub use clients::WINDOW as CLIENT_CACHE_WINDOW;
use location::Location;
use readers::{Opener, Readers};
use tokens::TokenCache;
use writer::{Counters, Durability, Writer};

/// The most read connections a store keeps open (idle, between reads). It opens one per CPU at
/// first — as many as runtime workers can use at once — and more on demand up to this.
pub const READ_CONNECTIONS: u32 = 16;

/// How long a connection waits for another process's write lock before `SQLITE_BUSY`.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The write connection's page cache, in KiB (`PRAGMA cache_size = -N`); it only grows as pages
/// are used.
const WRITER_CACHE_KIB: i64 = 64 * 1024;

/// Prepared statements kept per connection: every fixed statement of the store, with room for
/// the few shapes of the filtered admin queries.
const STATEMENT_CACHE: usize = 64;

/// The SQLite-backed store. Cloning is cheap and shares the connections and the writer thread;
/// the writer stops when the last clone is dropped or the store is [closed](SqliteStore::close).
#[derive(Debug, Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// The file, for logs; `None` in memory.
    path: Option<PathBuf>,
    readers: Readers,
    writer: Writer,
    counters: Arc<Counters>,
    closed: AtomicBool,
    /// Clients read so far, checked against `client_changes` on every lookup (`clients.rs`).
    clients: ClientCache,
    /// Active access tokens read so far, trusted while `revocation_feed.head` stays (`tokens.rs`).
    tokens: Arc<TokenCache>,
}

/// The settings in effect on one connection, as SQLite reports them (`PRAGMA name`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionPragmas {
    /// `PRAGMA journal_mode`, lower case (`wal`; `memory` for an in-memory database).
    pub journal_mode: String,
    /// `PRAGMA synchronous`: 0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA.
    pub synchronous: i64,
    /// `PRAGMA foreign_keys`.
    pub foreign_keys: bool,
    /// `PRAGMA busy_timeout`, in milliseconds.
    pub busy_timeout_ms: i64,
    /// `PRAGMA query_only`.
    pub query_only: bool,
}

/// The settings in effect on a writer and on a reader connection of a [`SqliteStore`], so an
/// operator (or a test) can check the durability settings instead of trusting them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectivePragmas {
    /// The write connection.
    pub writer: ConnectionPragmas,
    /// A read connection.
    pub reader: ConnectionPragmas,
}

/// What the writer thread has committed since the store was opened: how well group commit is
/// batching (`operations / transactions` is the mean batch size, each transaction one fsync).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteStats {
    /// Write transactions committed.
    pub transactions: u64,
    /// Write operations (store method calls) in those transactions, failed ones included.
    pub operations: u64,
    /// Those transactions that were fsynced at commit (all but the batches of token issuance
    /// alone, unless [`SqliteStore::set_fsync_issuance`]).
    pub fsynced: u64,
    /// Batches rolled back and run again, each operation in its own savepoint, because one of
    /// their operations failed (a batch runs without savepoints first; see the crate docs).
    pub reruns: u64,
}

impl SqliteStore {
    /// Opens (creating it and its schema if missing) the database at `url`: `sqlite://path`,
    /// `sqlite:path` or `sqlite::memory:`; SQLite URI parameters such as `?mode=ro` are honoured.
    /// Pending migrations are applied before this returns.
    pub async fn open(url: &str) -> Result<SqliteStore, StoreError> {
        let location = location::parse(url)?;
        let path = match &location {
            Location::File { path, .. } => Some(path.clone()),
            Location::Memory => None,
        };
        // Opening, switching to WAL and migrating are blocking file I/O: they run on a thread of
        // their own, so `open` blocks no async executor (and needs none in particular).
        let (reply, setup) = oneshot::channel();
        std::thread::Builder::new()
            .name("tokenwarden-sqlite-open".into())
            .spawn(move || {
                let _ = reply.send(connect(location));
            })
            .map_err(|e| StoreError::Unavailable(format!("cannot start a thread: {e}")))?;
        let (write, readers, checkpointer) = setup
            .await
            .map_err(|_| StoreError::Unavailable("opening the SQLite store failed".into()))??;
        let counters = Arc::new(Counters::default());
        let checkpointer = checkpointer.map(Checkpointer::spawn).transpose()?;
        let writer = Writer::spawn(write, checkpointer, Arc::clone(&counters))?;
        tracing::debug!(path = ?path, "opened SQLite store");
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                path,
                readers,
                writer,
                counters,
                closed: AtomicBool::new(false),
                clients: clients::cache(CLIENT_CACHE_WINDOW),
                tokens: Arc::new(tokens::cache(CLIENT_CACHE_WINDOW)),
            }),
        })
    }

    /// Checks that the database answers (for `GET /healthz`): reads the schema page on a read
    /// connection. The writer is not pinged, so a health check never queues behind writes; a
    /// wedged writer shows up as `503`s on the writes themselves.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.read(|c| {
            c.prepare_cached("SELECT count(*) FROM sqlite_schema")
                .and_then(|mut s| s.query_row([], |r| r.get::<_, i64>(0)))
                .map_err(db_err)
        })
        .map(|_| ())
    }

    /// Closes the store: lets the writes already queued finish, closes the read connections,
    /// copies the WAL into the database file (`wal_checkpoint(TRUNCATE)`) — so a cleanly shut
    /// down database is one self-contained file that can be copied or backed up alone — and
    /// stops the writer thread, all before returning. Further operations fail with
    /// `StoreError::Unavailable`. Safe to call more than once.
    pub async fn close(&self) {
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        // Readers first: an idle read connection does not block the checkpoint, but closing
        // them leaves the writer's connection the last one, as a clean shutdown should.
        self.inner.readers.close();
        self.inner.writer.close(self.inner.path.is_some()).await;
        tracing::debug!(path = ?self.inner.path, "closed SQLite store");
    }

    /// The settings actually in effect on a write and a read connection.
    pub async fn effective_pragmas(&self) -> Result<EffectivePragmas, StoreError> {
        self.check_open()?;
        let writer = self.inner.writer.call(connection_pragmas).await?;
        let reader = self.read(connection_pragmas)?;
        Ok(EffectivePragmas { writer, reader })
    }

    /// How long a reading of the clients' change counter is trusted (default
    /// [`CLIENT_CACHE_WINDOW`]): a client deleted, or a secret rotated, by *another process* stops
    /// authenticating here within this bound; changes made through this store are seen at once.
    /// `Duration::ZERO` reads the counter on every lookup (exact across processes, at the cost of
    /// one more statement per request).
    pub fn set_client_cache_window(&self, window: Duration) {
        self.inner.clients.set_window(window);
    }

    /// How long a reading of the revocation feed's head is trusted by the access-token cache
    /// (default [`CLIENT_CACHE_WINDOW`], 10 ms): a token revoked by *another process* (the admin
    /// CLI) stops introspecting as active here within this bound; revocations made through this
    /// store are seen at once. `Duration::ZERO` reads the head on every lookup.
    pub fn set_token_cache_window(&self, window: Duration) {
        self.inner.tokens.set_window(window);
    }

    /// Whether a batch made only of token issuance (a `client_credentials` token) is fsynced too
    /// (default: no — see "Durability" in the crate docs). With `true` every commit is fsynced:
    /// every `Ok` survives power loss.
    pub fn set_fsync_issuance(&self, fsync: bool) {
        self.inner
            .counters
            .fsync_issuance
            .store(fsync, Ordering::Relaxed);
    }

    /// Transactions and operations committed by the writer so far.
    pub fn write_stats(&self) -> WriteStats {
        WriteStats {
            transactions: self.inner.counters.transactions.load(Ordering::Relaxed),
            operations: self.inner.counters.operations.load(Ordering::Relaxed),
            fsynced: self.inner.counters.fsynced.load(Ordering::Relaxed),
            reruns: self.inner.counters.reruns.load(Ordering::Relaxed),
        }
    }

    fn check_open(&self) -> Result<(), StoreError> {
        if self.inner.closed.load(Ordering::Acquire) {
            Err(closed())
        } else {
            Ok(())
        }
    }

    /// Runs a read on a read connection, on the calling thread (see "Reads" in the crate docs).
    pub(crate) fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.check_open()?;
        self.inner.readers.with(f)
    }

    /// Runs a write in the writer's next group-commit batch; `Ok` once it survives power loss.
    pub(crate) async fn write<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        F: Fn(&Connection) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        self.check_open()?;
        self.inner
            .writer
            .write(Durability::PowerLoss, None, op)
            .await
    }

    /// Runs a revocation in the writer's next group-commit batch, like [`Self::write`]; the
    /// access-token cache is emptied on the writer thread as soon as the batch has committed,
    /// before the caller hears back — and even if the caller has stopped waiting.
    pub(crate) async fn write_revoking<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        F: Fn(&Connection) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        self.check_open()?;
        let cache = Some(Arc::clone(&self.inner.tokens));
        self.inner
            .writer
            .write(Durability::PowerLoss, cache, op)
            .await
    }

    /// Runs a token issuance in the writer's next group-commit batch; `Ok` once it survives a
    /// crash of the process (power loss too when [`Self::set_fsync_issuance`] says so, or when
    /// the batch holds any other write). Only for writes whose loss fails closed, and only for a
    /// single statement: it runs without a savepoint (see `writer::Durability::Crash`).
    pub(crate) async fn write_issuance<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        F: Fn(&Connection) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        self.check_open()?;
        self.inner.writer.write(Durability::Crash, None, op).await
    }
}

/// What [`connect`] opens: the write connection, the readers and, for a file, the
/// checkpointer's connection.
type Connections = (Arc<Mutex<Connection>>, Readers, Option<Connection>);

/// Opens the write connection (switching a file to WAL), applies migrations, then opens the
/// read connections and the checkpointer's.
fn connect(location: Location) -> Result<Connections, StoreError> {
    match location {
        Location::Memory => {
            let mut conn = Connection::open_in_memory().map_err(db_err)?;
            configure(&conn).map_err(db_err)?;
            migrate::run(&mut conn)?;
            let conn = Arc::new(Mutex::new(conn));
            Ok((Arc::clone(&conn), Readers::Shared(conn), None))
        }
        Location::File { uri, flags, .. } => {
            // The writer connects first: switching a new file to WAL needs an exclusive lock that
            // `busy_timeout` does not wait for, so no reader may be connected yet.
            let mut conn = Connection::open_with_flags(&uri, flags).map_err(db_err)?;
            configure(&conn).map_err(db_err)?;
            let mode: String = conn
                .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
                .map_err(db_err)?;
            if !mode.eq_ignore_ascii_case("wal") {
                // A file system without shared memory (some network mounts) keeps the rollback
                // journal: still correct and durable, but readers and the writer block each other.
                tracing::warn!(journal_mode = %mode, "SQLite could not switch to WAL");
            }
            migrate::run(&mut conn)?;
            // The writer's page cache holds the B-tree pages that token inserts keep touching
            // (the keys are random digests); SQLite's default of 2 MiB re-reads them from the OS.
            conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)
                .map_err(db_err)?;
            conn.pragma_update(
                None,
                "wal_autocheckpoint",
                checkpoint::WRITER_AUTOCHECKPOINT,
            )
            .map_err(db_err)?;
            let checkpointer = Connection::open_with_flags(&uri, flags).map_err(db_err)?;
            configure(&checkpointer).map_err(db_err)?;
            let cpus = std::thread::available_parallelism().map_or(1, usize::from);
            let cap = usize::try_from(READ_CONNECTIONS).unwrap_or(usize::MAX);
            let readers = Readers::pool(Opener { uri, flags }, cpus, cap)?;
            Ok((Arc::new(Mutex::new(conn)), readers, Some(checkpointer)))
        }
    }
}

/// The per-connection settings every connection gets (see the table in the crate docs).
pub(crate) fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "foreign_keys", true)?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(())
}

/// Reads the pragmas of one connection (`synchronous`, `foreign_keys`, `busy_timeout` and
/// `query_only` are per connection).
fn connection_pragmas(conn: &Connection) -> Result<ConnectionPragmas, StoreError> {
    let get = |name: &str| -> Result<rusqlite::types::Value, StoreError> {
        conn.pragma_query_value(None, name, |r| r.get(0))
            .map_err(db_err)
    };
    let int = |name: &str| -> Result<i64, StoreError> {
        match get(name)? {
            rusqlite::types::Value::Integer(n) => Ok(n),
            other => Err(StoreError::Unavailable(format!(
                "PRAGMA {name} answered {other:?}"
            ))),
        }
    };
    let journal_mode = match get("journal_mode")? {
        rusqlite::types::Value::Text(mode) => mode.to_ascii_lowercase(),
        other => {
            return Err(StoreError::Unavailable(format!(
                "PRAGMA journal_mode answered {other:?}"
            )))
        }
    };
    Ok(ConnectionPragmas {
        journal_mode,
        synchronous: int("synchronous")?,
        foreign_keys: int("foreign_keys")? != 0,
        busy_timeout_ms: int("busy_timeout")?,
        query_only: int("query_only")? != 0,
    })
}

fn closed() -> StoreError {
    StoreError::Unavailable("the SQLite store is closed".into())
}

/// Maps a driver error: a uniqueness violation is the caller's `Conflict` (id, name or digest
/// taken); anything else means the store could not do its job. SQLite's messages name tables and
/// columns, never bound values, so no token or secret reaches the logs.
pub(crate) fn db_err(e: rusqlite::Error) -> StoreError {
    match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
        {
            StoreError::Conflict
        }
        _ => StoreError::Unavailable(e.to_string()),
    }
}
