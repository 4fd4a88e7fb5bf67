//! Time is injected (CONVENTIONS §4). Only this module reads the wall clock; everything else asks a
//! [`Clock`]. Tests use [`TokioClock`] with tokio's paused time (`#[tokio::test(start_paused =
//! true)]`) so expiry and backoff are exercised in virtual time, without sleeping.

use std::fmt;
use std::time::{Duration, SystemTime};

/// A source of wall-clock time. Token expiry is absolute wall time so that a file store shared by
/// several processes means the same instant to all of them.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time.
    fn now(&self) -> SystemTime;
}

/// The operating system's wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the one place that reads the wall clock
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// Wall time that advances with tokio's clock: `start + (tokio::time::Instant::now() - origin)`.
/// Under `tokio::time::pause()` it moves only when the test advances time (or the runtime
/// auto-advances to a pending timer), which makes backoff sleeps and expiry deterministic.
#[derive(Clone, Copy, Debug)]
pub struct TokioClock {
    start: SystemTime,
    origin: tokio::time::Instant,
}

impl TokioClock {
    /// A clock that reads `start` now and follows tokio's clock from here on.
    pub fn starting_at(start: SystemTime) -> Self {
        Self {
            start,
            origin: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> SystemTime {
        self.start + self.origin.elapsed()
    }
}

/// Milliseconds since the Unix epoch (0 for earlier times); the persisted form of a time.
pub(crate) fn to_unix_millis(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The inverse of [`to_unix_millis`].
pub(crate) fn from_unix_millis(millis: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(millis)
}
