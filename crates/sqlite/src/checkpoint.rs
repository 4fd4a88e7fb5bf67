//! The background checkpointer: copies committed pages from the WAL into the database file off
//! the writer thread.
//!
//! SQLite's default is to checkpoint inside the commit that pushes the WAL past 1000 pages, on
//! the writing connection. Here that stalls the writer thread — and every caller queued behind
//! it — for the copy and its fsync of the database file: the biggest latency spikes of the write
//! path, and a fifth of the writer's time. So the writer only nudges this thread after each
//! commit, and the thread runs a `PASSIVE` checkpoint (which never blocks the writer or readers),
//! nudges that arrive meanwhile merged into the next one.
//!
//! Why right away rather than every so often: a checkpoint ends with an fsync of the database
//! file, and on ext4 the writer's next WAL fsync waits for it (one journal per file system). The
//! longer the checkpointer waits, the more it has to flush at once, and the longer that stall.
//! Measured on the benchmark machine (`POST /oauth2/token` client_credentials, 32 connections,
//! 400 000 tokens stored), p99: 11–14 ms checkpointing after every commit, 17–19 ms every 5 ms,
//! 40–55 ms every 20–200 ms, 17 ms with SQLite's in-writer default — and 5 ms with no checkpoint
//! at all, which says what is left of the tail is checkpoint I/O. Checkpointing every 200 ms
//! instead gives about 13 % more throughput (fewer fsyncs of the database file), for that 4×
//! worse tail.
//!
//! A background checkpoint cannot reset the WAL while writes keep coming — the log only starts
//! over from its beginning when a writer finds it entirely copied — so the writer keeps SQLite's
//! own checkpoint as a backstop at [`WRITER_AUTOCHECKPOINT`] pages. By then this thread has
//! copied all but the last commit or two, so the writer's checkpoint is short, and the WAL stays
//! bounded (about 70 MB measured under sustained load).

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;
use tokenwarden_core::store::StoreError;

/// The pause after each background checkpoint: lets the writer at the disk between two, and
/// bounds the checkpoints to a thousand a second.
pub(crate) const INTERVAL: Duration = Duration::from_millis(1);

/// `wal_autocheckpoint` on the write connection, in pages (64 MiB of WAL at 4 KiB pages): the
/// backstop described above.
pub(crate) const WRITER_AUTOCHECKPOINT: i64 = 16_384;

/// The writer's handle on the checkpointer thread. Dropping it stops the thread.
#[derive(Debug)]
pub(crate) struct Checkpointer {
    signal: Arc<Signal>,
    thread: Option<JoinHandle<()>>,
}

/// What the writer tells the thread: new commits, or stop. Several nudges before the thread
/// wakes are one.
#[derive(Debug, Default)]
struct Signal {
    state: Mutex<State>,
    wake: Condvar,
}

#[derive(Debug, Default)]
struct State {
    nudged: bool,
    stopped: bool,
}

impl Signal {
    fn set(&self, f: impl FnOnce(&mut State)) {
        if let Ok(mut state) = self.state.lock() {
            f(&mut state);
            self.wake.notify_one();
        }
    }
}

impl Checkpointer {
    /// Starts the thread on its own connection to the database file.
    pub(crate) fn spawn(conn: Connection) -> Result<Checkpointer, StoreError> {
        let signal = Arc::new(Signal::default());
        let theirs = Arc::clone(&signal);
        let thread = std::thread::Builder::new()
            .name("tokenwarden-sqlite-checkpoint".into())
            .spawn(move || run(&conn, &theirs))
            .map_err(|e| {
                StoreError::Unavailable(format!("cannot start the checkpoint thread: {e}"))
            })?;
        Ok(Checkpointer {
            signal,
            thread: Some(thread),
        })
    }

    /// Tells the thread that there are new commits to copy. Never waits for a checkpoint.
    pub(crate) fn nudge(&self) {
        self.signal.set(|s| s.nudged = true);
    }

    /// Stops the thread, waiting for a checkpoint in progress to finish, and closes its
    /// connection.
    pub(crate) fn stop(mut self) {
        self.signal.set(|s| s.stopped = true);
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the SQLite checkpoint thread panicked");
            }
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        // The store was dropped without `close`: let the thread end on its own.
        self.signal.set(|s| s.stopped = true);
    }
}

fn run(conn: &Connection, signal: &Signal) {
    loop {
        // Wait for commits to copy.
        let Ok(state) = signal.state.lock() else {
            return;
        };
        let Ok(mut state) = signal.wake.wait_while(state, |s| !s.nudged && !s.stopped) else {
            return;
        };
        if state.stopped {
            return;
        }
        state.nudged = false;
        drop(state);

        let outcome = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
        });
        match outcome {
            Ok((log, copied)) => tracing::trace!(log, copied, "WAL checkpoint"),
            // Nothing is lost: the pages stay in the WAL for the next checkpoint.
            Err(e) => tracing::warn!(error = %e, "background WAL checkpoint failed"),
        }

        // Then rest for the interval, unless told to stop.
        let Ok(state) = signal.state.lock() else {
            return;
        };
        match signal
            .wake
            .wait_timeout_while(state, INTERVAL, |s| !s.stopped)
        {
            Ok((state, _)) if !state.stopped => {}
            _ => return,
        }
    }
}
