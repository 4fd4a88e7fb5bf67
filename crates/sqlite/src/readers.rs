//! Read connections, used directly on the calling task.
//!
//! A read is an indexed point lookup; with the pages in SQLite's cache (or the OS's) it takes a
//! few microseconds — less than handing it to another thread and being woken with the answer, and
//! that hop is what dominated the profile when every read went through a connection thread. So a
//! read borrows an idle connection from a small pool, runs its statement on the caller's thread,
//! and puts the connection back. The cost of the choice: a read that must go to disk (a cold
//! cache) blocks that runtime worker for the duration of the I/O, typically well under a
//! millisecond on local storage; no read here scans more than one index range.
//!
//! The pool holds at most [`READ_CONNECTIONS`](crate::READ_CONNECTIONS) idle connections. It
//! starts with one per CPU (the most that can be in use at once by runtime workers) and opens
//! another when a read finds none idle — more threads than that reading at once (a
//! `spawn_blocking` caller, say) get a connection of their own rather than wait, and the extra
//! ones are closed as they come back.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OpenFlags};
use tokenwarden_core::store::StoreError;

use crate::{closed, db_err};

/// Opens and configures one read connection to a database file.
#[derive(Debug)]
pub(crate) struct Opener {
    pub(crate) uri: String,
    pub(crate) flags: OpenFlags,
}

impl Opener {
    pub(crate) fn open(&self) -> Result<Connection, StoreError> {
        let conn = Connection::open_with_flags(&self.uri, self.flags).map_err(db_err)?;
        crate::configure(&conn).map_err(db_err)?;
        // A write sent here by mistake fails loudly instead of racing the writer.
        conn.pragma_update(None, "query_only", true)
            .map_err(db_err)?;
        Ok(conn)
    }
}

/// Where reads run.
#[derive(Debug)]
pub(crate) enum Readers {
    /// A database file: a pool of read-only connections, each seeing the last committed state
    /// (WAL snapshot isolation) without waiting for the writer.
    Pool {
        idle: Mutex<Vec<Connection>>,
        cap: usize,
        opener: Opener,
        closed: AtomicBool,
    },
    /// An in-memory database has one connection, shared with the writer thread, which holds it
    /// for a whole batch: a read never sees a batch half-done.
    Shared(Arc<Mutex<Connection>>),
}

impl Readers {
    /// A pool for a file, with `initial` connections opened up front.
    pub(crate) fn pool(opener: Opener, initial: usize, cap: usize) -> Result<Readers, StoreError> {
        let idle = (0..initial.min(cap))
            .map(|_| opener.open())
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Readers::Pool {
            idle: Mutex::new(idle),
            cap,
            opener,
            closed: AtomicBool::new(false),
        })
    }

    /// Runs `f` on a read connection, on the calling thread.
    pub(crate) fn with<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        match self {
            Readers::Shared(conn) => {
                let conn = conn.lock().map_err(|_| poisoned())?;
                f(&conn)
            }
            Readers::Pool {
                idle,
                cap,
                opener,
                closed: is_closed,
            } => {
                if is_closed.load(Ordering::Acquire) {
                    return Err(closed());
                }
                let pooled = idle.lock().map_err(|_| poisoned())?.pop();
                let conn = match pooled {
                    Some(conn) => conn,
                    None => opener.open()?,
                };
                let result = f(&conn);
                // A connection left inside a transaction (a read whose COMMIT failed) would pin
                // its snapshot: later reads on it would see old data and checkpoints would stall.
                // It is closed instead of pooled (closing rolls the transaction back).
                if conn.is_autocommit() && !is_closed.load(Ordering::Acquire) {
                    if let Ok(mut idle) = idle.lock() {
                        if idle.len() < *cap {
                            idle.push(conn);
                            return result;
                        }
                    }
                }
                // Past the cap, or closed meanwhile: `conn` closes here, outside the lock.
                drop(conn);
                result
            }
        }
    }

    /// Closes the idle connections; reads from now on fail, and connections in use are closed
    /// when they come back.
    pub(crate) fn close(&self) {
        if let Readers::Pool { idle, closed, .. } = self {
            closed.store(true, Ordering::Release);
            let conns = idle.lock().map(|mut idle| std::mem::take(&mut *idle));
            drop(conns);
        }
    }
}

fn poisoned() -> StoreError {
    StoreError::Unavailable("a SQLite read connection lock is poisoned".into())
}
