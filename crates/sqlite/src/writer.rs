//! The writer thread and its group commit (see the crate docs for the why).
//!
//! One OS thread owns the write connection. A caller hands it an operation — a closure over the
//! connection — with a `tokio::sync::oneshot` for the answer, and awaits. The thread blocks for
//! the first operation, takes whatever else is already queued (at most [`MAX_BATCH`]), and runs
//! them all in one `BEGIN IMMEDIATE` transaction. An operation that fails has its writes rolled
//! back and its error goes to its caller alone, while the others go on: the batch runs bare
//! first, and only if an operation fails is it rolled back whole and run again with each
//! operation inside its own `SAVEPOINT` (see [`commit_batch`]). Then one `COMMIT` — one WAL
//! fsync for the whole batch — and only after it has returned does any caller hear back. An `Ok`
//! therefore still means "on disk".
//!
//! Except for a batch made only of [`Durability::Crash`] operations (token issuance, unless
//! [`Counters::fsync_issuance`] is set): that batch commits with `synchronous=NORMAL`, its WAL
//! frames written (`pwrite`) but not fsynced before the callers hear back. Written means in the
//! kernel's page cache, which a crash of the process — `kill -9` included — does not lose; a
//! power cut can, until the next fsynced commit or checkpoint, which persists every frame before
//! it. Any batch containing one other operation is fsynced as a whole.
//!
//! Operations run one after the other in arrival order, on the only connection that writes, so a
//! compare-and-set inside one (refresh rotation, code redemption) sees every earlier operation of
//! its batch and nothing can slip in between its read and its write.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::Connection;
use tokenwarden_core::store::StoreError;
use tokio::sync::oneshot;

use crate::checkpoint::Checkpointer;
use crate::tokens::TokenCache;

/// The most operations one transaction carries. Bounds the time the write lock is held and the
/// latency of the last operation in a batch; under load a batch is usually as large as the
/// number of requests in flight, far below this.
pub(crate) const MAX_BATCH: usize = 256;

/// What an operation's `Ok` promises once its batch has committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Durability {
    /// Survives power loss: the batch's WAL is fsynced before anyone hears back. Every write
    /// whose loss would hand back access that was taken away (a revocation, a rotation, a code
    /// redemption) or undo an administrative change.
    PowerLoss,
    /// Survives a crash of the process (`kill -9`): the WAL frames are written to the operating
    /// system before anyone hears back, and fsynced by the next `PowerLoss` batch or checkpoint.
    /// Only for writes whose loss in a power cut fails closed — a freshly issued token that
    /// vanishes is a token that stops working, never one that starts working again. Such an
    /// operation is also a **single statement**, and runs without a savepoint of its own: SQLite
    /// backs out a failing statement by itself and keeps the transaction (its default `ABORT`
    /// conflict resolution), which is all a savepoint would add — and a savepoint makes SQLite
    /// copy every page the statement touches into a sub-journal first.
    Crash,
}

/// What the writer thread is asked to do.
pub(crate) enum Msg {
    /// A write, run in the next group-commit batch.
    Write(Box<dyn Job>),
    /// Something to run on the write connection outside any transaction (reading its pragmas).
    Call(Box<dyn FnOnce(&Connection) + Send>),
    /// Checkpoint the WAL (when `true`), close the connection and stop; then answer.
    Close {
        checkpoint: bool,
        done: oneshot::Sender<()>,
    },
}

/// A type-erased write operation: its closure, its result once run, and its caller's reply.
pub(crate) trait Job: Send {
    /// Runs the operation on the connection (inside the batch's transaction) and keeps the
    /// result, replacing the one of an earlier run; `false` when it failed and its writes must
    /// be rolled back. May be called again after the transaction was rolled back: an operation
    /// depends only on what it captured and on the database, so it does the same again.
    fn run(&mut self, conn: &Connection) -> bool;
    /// Answers the caller once the batch is over: with the kept result if the batch committed,
    /// or with `Unavailable(why)` if it did not.
    fn finish(self: Box<Self>, batch: Result<(), &str>);
    /// What its `Ok` promises.
    fn durability(&self) -> Durability;
}

struct Op<F, T> {
    durability: Durability,
    /// Emptied on the writer thread once the batch has committed, before anyone hears back — so
    /// also when the caller has stopped waiting (a cancelled request): for revocations.
    on_commit: Option<Arc<TokenCache>>,
    op: F,
    result: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<F, T> Job for Op<F, T>
where
    F: Fn(&Connection) -> Result<T, StoreError> + Send,
    T: Send,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let result = (self.op)(conn);
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn finish(self: Box<Self>, batch: Result<(), &str>) {
        if batch.is_ok() {
            if let Some(cache) = &self.on_commit {
                cache.invalidate();
            }
        }
        let answer = match batch {
            Ok(()) => self
                .result
                .unwrap_or_else(|| Err(StoreError::Unavailable("write operation not run".into()))),
            Err(why) => Err(StoreError::Unavailable(why.to_owned())),
        };
        // The caller may have stopped waiting (its request was cancelled): nothing to do then.
        let _ = self.reply.send(answer);
    }

    fn durability(&self) -> Durability {
        self.durability
    }
}

/// Commits and operations counted by the writer, for [`crate::WriteStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) transactions: AtomicU64,
    pub(crate) operations: AtomicU64,
    /// Transactions committed with an fsync (`synchronous=FULL`).
    pub(crate) fsynced: AtomicU64,
    /// Batches rolled back and run again with savepoints because an operation failed.
    pub(crate) reruns: AtomicU64,
    /// Treat [`Durability::Crash`] operations as [`Durability::PowerLoss`] (read by the writer
    /// thread before each batch).
    pub(crate) fsync_issuance: AtomicBool,
}

/// The callers' end of the writer thread. Dropping the last one stops the thread.
#[derive(Debug)]
pub(crate) struct Writer {
    queue: Sender<Msg>,
}

fn stopped() -> StoreError {
    StoreError::Unavailable("the SQLite store is closed".into())
}

impl Writer {
    /// Starts the writer thread on `conn`, which must be configured and migrated already, with
    /// the checkpointer it nudges after each commit (none for an in-memory database).
    pub(crate) fn spawn(
        conn: Arc<Mutex<Connection>>,
        checkpointer: Option<Checkpointer>,
        counters: Arc<Counters>,
    ) -> Result<Writer, StoreError> {
        let (queue, inbox) = mpsc::channel();
        std::thread::Builder::new()
            .name("tokenwarden-sqlite-writer".into())
            .spawn(move || run(&conn, checkpointer, &inbox, &counters))
            .map_err(|e| StoreError::Unavailable(format!("cannot start the writer thread: {e}")))?;
        Ok(Writer { queue })
    }

    /// Runs `op` in the next batch; resolves once that batch has committed (as durably as
    /// `durability` asks, or more) or failed. Returns `Unavailable` without running `op` once the
    /// writer has stopped.
    pub(crate) async fn write<T, F>(
        &self,
        durability: Durability,
        on_commit: Option<Arc<TokenCache>>,
        op: F,
    ) -> Result<T, StoreError>
    where
        F: Fn(&Connection) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Msg::Write(Box::new(Op {
                durability,
                on_commit,
                op,
                result: None,
                reply,
            })))
            .map_err(|_| stopped())?;
        // A dropped reply means the thread stopped with the operation queued (the store was
        // closed meanwhile): it did not run.
        answer.await.unwrap_or_else(|_| Err(stopped()))
    }

    /// Runs `f` on the write connection between batches, outside any transaction.
    pub(crate) async fn call<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Msg::Call(Box::new(move |conn| {
                let _ = reply.send(f(conn));
            })))
            .map_err(|_| stopped())?;
        answer.await.unwrap_or_else(|_| Err(stopped()))
    }

    /// Lets every queued operation finish, checkpoints the WAL when `checkpoint`, closes the
    /// write connection and stops the thread. Returns once done (at once if already stopped).
    pub(crate) async fn close(&self, checkpoint: bool) {
        let (done, finished) = oneshot::channel();
        if self.queue.send(Msg::Close { checkpoint, done }).is_ok() {
            let _ = finished.await;
        }
    }
}

fn lock(conn: &Mutex<Connection>) -> Result<MutexGuard<'_, Connection>, String> {
    conn.lock()
        .map_err(|_| "the SQLite write connection is poisoned".to_owned())
}

/// The writer thread: batches until every `Writer` is dropped or `Close` arrives.
fn run(
    conn: &Mutex<Connection>,
    mut checkpointer: Option<Checkpointer>,
    inbox: &Receiver<Msg>,
    counters: &Counters,
) {
    let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(MAX_BATCH);
    // The connection's `synchronous` setting as last set here (it opens with FULL).
    let mut fsyncing = true;
    // A non-write message that ended the draining of a batch, handled right after it.
    let mut next: Option<Msg> = None;
    loop {
        let msg = match next.take() {
            Some(msg) => msg,
            None => match inbox.recv() {
                Ok(msg) => msg,
                Err(_) => return, // every `Writer` is gone
            },
        };
        match msg {
            Msg::Write(job) => {
                batch.push(job);
                while batch.len() < MAX_BATCH {
                    match inbox.try_recv() {
                        Ok(Msg::Write(job)) => batch.push(job),
                        Ok(other) => {
                            next = Some(other);
                            break;
                        }
                        Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                    }
                }
                let fsync = counters.fsync_issuance.load(Ordering::Relaxed)
                    || batch
                        .iter()
                        .any(|job| job.durability() == Durability::PowerLoss);
                let outcome = match lock(conn) {
                    Ok(conn) => end_stray_transaction(&conn)
                        .and_then(|()| set_synchronous(&conn, &mut fsyncing, fsync))
                        .and_then(|()| commit_batch(&conn, &mut batch, counters)),
                    Err(why) => Err(why),
                };
                if outcome.is_ok() {
                    if let Some(c) = &checkpointer {
                        c.nudge();
                    }
                    counters.transactions.fetch_add(1, Ordering::Relaxed);
                    if fsync {
                        counters.fsynced.fetch_add(1, Ordering::Relaxed);
                    }
                    counters
                        .operations
                        .fetch_add(batch.len() as u64, Ordering::Relaxed);
                } else if let Err(why) = &outcome {
                    tracing::error!(error = %why, operations = batch.len(), "SQLite write batch failed");
                }
                let outcome = outcome.as_ref().map_err(String::as_str).copied();
                for job in batch.drain(..) {
                    job.finish(outcome);
                }
            }
            Msg::Call(f) => match lock(conn) {
                Ok(conn) => f(&conn),
                // Dropping `f` drops its reply: the caller gets `Unavailable`.
                Err(why) => tracing::error!(error = %why, "SQLite writer call failed"),
            },
            Msg::Close { checkpoint, done } => {
                // The background checkpointer goes first: its connection would hold up the
                // final checkpoint.
                if let Some(c) = checkpointer.take() {
                    c.stop();
                }
                if checkpoint {
                    if let Ok(conn) = lock(conn) {
                        wal_checkpoint(&conn);
                    }
                }
                let _ = done.send(());
                return;
            }
        }
    }
}

/// Copies the WAL into the database file and truncates it, so a cleanly closed database is one
/// self-contained file. Failure loses nothing (the next open replays the WAL), so it is logged.
fn wal_checkpoint(conn: &Connection) {
    let result = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
        r.get::<_, i64>(0)
    });
    match result {
        Ok(0) => {}
        Ok(_) => tracing::warn!("WAL checkpoint on close incomplete: a reader was still active"),
        Err(e) => tracing::warn!(error = %e, "WAL checkpoint on close failed"),
    }
}

/// Rolls back a transaction left open on the write connection (a `ROLLBACK` that failed after a
/// failed batch): `synchronous` cannot be switched, nor a batch begun, inside one.
fn end_stray_transaction(conn: &Connection) -> Result<(), String> {
    if conn.is_autocommit() {
        return Ok(());
    }
    exec(conn, "ROLLBACK").map_err(|e| format!("cannot end a transaction left open: {e}"))
}

/// Switches the connection between `synchronous=FULL` (fsync at commit) and `NORMAL` (no fsync at
/// commit; the WAL is still fsynced before each checkpoint) when the batch needs the other one.
/// SQLite refuses the change inside a transaction, hence between batches. If it fails the batch
/// is not run: committing it with less durability than promised is not an option.
fn set_synchronous(conn: &Connection, current: &mut bool, fsync: bool) -> Result<(), String> {
    if *current != fsync {
        conn.pragma_update(None, "synchronous", if fsync { "FULL" } else { "NORMAL" })
            .map_err(|e| format!("cannot set synchronous: {e}"))?;
        *current = fsync;
    }
    Ok(())
}

/// Runs one statement that returns no rows through the statement cache.
fn exec(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

/// One group commit. `Err` when the transaction did not commit, in which case nothing of it is
/// in the database.
///
/// Nearly every batch is made of operations that all succeed, and those need no savepoints: the
/// batch first runs bare, in one `BEGIN IMMEDIATE` … `COMMIT`. A savepoint is not free — before
/// a page is first changed inside one, SQLite copies it into a sub-journal, which was a tenth of
/// the server's CPU in a profile of refresh rotation. Only if an operation fails (a `Conflict`,
/// say) is the whole transaction rolled back and the batch run again, each operation in its own
/// savepoint, so that the failed one is rolled back alone and the others commit. Running an
/// operation twice is safe ([`Job::run`]): the rollback took back everything the first run did.
fn commit_batch(
    conn: &Connection,
    batch: &mut [Box<dyn Job>],
    counters: &Counters,
) -> Result<(), String> {
    if transaction(conn, batch, Savepoints::None)? {
        return Ok(());
    }
    counters.reruns.fetch_add(1, Ordering::Relaxed);
    tracing::debug!(
        operations = batch.len(),
        "an operation failed: its batch runs again, with savepoints"
    );
    transaction(conn, batch, Savepoints::Each).map(|_| ())
}

/// How a batch's operations are isolated from each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Savepoints {
    /// None: the first operation to fail (other than a [`Durability::Crash`] one, which SQLite
    /// backs out by itself) stops the batch and rolls the transaction back.
    None,
    /// Each operation in its own, released on success and rolled back to on failure.
    Each,
}

/// `BEGIN IMMEDIATE`, the jobs, `COMMIT`. `Ok(true)` once committed; `Ok(false)` when, without
/// savepoints, an operation failed and the transaction was rolled back (nothing of it is in the
/// database, and every job is to run again); `Err` when the transaction itself failed.
fn transaction(
    conn: &Connection,
    batch: &mut [Box<dyn Job>],
    savepoints: Savepoints,
) -> Result<bool, String> {
    // Waits up to `busy_timeout` for another process's writer (the admin CLI), then gives up.
    exec(conn, "BEGIN IMMEDIATE").map_err(|e| format!("cannot begin a write: {e}"))?;
    let result = run_jobs(conn, batch, savepoints).and_then(|complete| {
        if complete {
            exec(conn, "COMMIT")
                .map(|()| true)
                .map_err(|e| format!("commit failed, the batch is rolled back: {e}"))
        } else {
            exec(conn, "ROLLBACK")
                .map(|()| false)
                .map_err(|e| format!("cannot roll back a batch to run it again: {e}"))
        }
    });
    if result.is_err() && !conn.is_autocommit() {
        // Still inside the transaction (a failed COMMIT can leave it open): end it.
        if let Err(e) = exec(conn, "ROLLBACK") {
            tracing::error!(error = %e, "SQLite rollback after a failed batch failed");
        }
    }
    result
}

/// Runs the jobs inside the open transaction. With [`Savepoints::Each`], each inside
/// `SAVEPOINT op`, released on success and rolled back to on failure, so one operation's partial
/// writes never reach the commit: `Ok(true)`. With [`Savepoints::None`], `Ok(false)` as soon as
/// an operation fails whose partial writes would stay. `Err` when the transaction itself is lost
/// (SQLite rolls back the whole transaction on some I/O and memory errors): the remaining jobs
/// then do not run at all, since they would run outside any transaction.
fn run_jobs(
    conn: &Connection,
    batch: &mut [Box<dyn Job>],
    savepoints: Savepoints,
) -> Result<bool, String> {
    for job in batch.iter_mut() {
        // One statement (see `Durability::Crash`): atomic without a savepoint.
        let bare = savepoints == Savepoints::None || job.durability() == Durability::Crash;
        if bare {
            let ok = job.run(conn);
            if conn.is_autocommit() {
                return Err("SQLite rolled back the write transaction".into());
            }
            if !ok && job.durability() != Durability::Crash {
                return Ok(false);
            }
            continue;
        }
        exec(conn, "SAVEPOINT op").map_err(|e| format!("cannot open a savepoint: {e}"))?;
        if job.run(conn) {
            exec(conn, "RELEASE op")
        } else {
            exec(conn, "ROLLBACK TO op").and_then(|()| exec(conn, "RELEASE op"))
        }
        .map_err(|e| format!("cannot end a savepoint: {e}"))?;
        if conn.is_autocommit() {
            return Err("SQLite rolled back the write transaction".into());
        }
    }
    Ok(true)
}
