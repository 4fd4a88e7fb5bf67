//! Time is injected (CONVENTIONS §4). Only this module reads the clocks; the cache, the feed's
//! staleness bound and `exp` checks ask a [`Clock`].
//!
//! Two readings are needed: a monotonic [`Instant`] for cache lifetimes and the feed's stale bound
//! (immune to wall-clock jumps), and the wall clock to turn a token's `exp` (seconds since the
//! epoch, RFC 7662 §2.2) into a remaining lifetime. Tests use [`ManualClock`] and move time with
//! [`ManualClock::advance`]; the feed's own timers (reconnect backoff, heartbeat) stay on tokio's
//! clock.

use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

/// A source of monotonic and wall-clock time.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Monotonic time: cache deadlines, how long the feed has been down.
    fn now(&self) -> Instant;
    /// Wall-clock time: compared with a token's `exp`.
    fn wall(&self) -> SystemTime;
}

/// The operating system's clocks.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the one place that reads the monotonic clock
    fn now(&self) -> Instant {
        Instant::now()
    }

    #[allow(clippy::disallowed_methods)] // the one place that reads the wall clock
    fn wall(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// Follows tokio's clock (`tokio::time::Instant`), so it stands still under `tokio::time::pause()`
/// and moves with `tokio::time::advance`. Wall time is `start` plus the tokio time elapsed since
/// the clock was made.
#[derive(Clone, Copy, Debug)]
pub struct TokioClock {
    wall_start: SystemTime,
    origin: tokio::time::Instant,
}

impl TokioClock {
    /// A clock whose wall time reads `wall_start` now.
    pub fn starting_at(wall_start: SystemTime) -> Self {
        Self {
            wall_start,
            origin: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }

    fn wall(&self) -> SystemTime {
        self.wall_start + self.origin.elapsed()
    }
}

/// A clock that moves only when told to: [`ManualClock::advance`]. For tests.
#[derive(Debug)]
pub struct ManualClock {
    origin: Instant,
    wall_origin: SystemTime,
    offset: Mutex<Duration>,
}

impl ManualClock {
    /// A clock whose wall time reads `wall_start` until advanced.
    pub fn starting_at(wall_start: SystemTime) -> Self {
        Self {
            origin: SystemClock.now(),
            wall_origin: wall_start,
            offset: Mutex::new(Duration::ZERO),
        }
    }

    /// Moves both readings forward by `by`.
    pub fn advance(&self, by: Duration) {
        let mut offset = self.offset.lock().unwrap_or_else(PoisonError::into_inner);
        *offset = offset.saturating_add(by);
    }

    fn offset(&self) -> Duration {
        *self.offset.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.origin + self.offset()
    }

    fn wall(&self) -> SystemTime {
        self.wall_origin + self.offset()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_both_readings_together() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let clock = ManualClock::starting_at(start);
        let before = clock.now();
        clock.advance(Duration::from_secs(7));
        assert_eq!(clock.now() - before, Duration::from_secs(7));
        assert_eq!(clock.wall(), start + Duration::from_secs(7));
    }
}
