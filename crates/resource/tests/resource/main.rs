#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code
//! Integration tests of tokenwarden-resource against a mock introspection endpoint and a mock
//! revocation feed on 127.0.0.1 (`mock`), one module per concern. Real time drives the feed's
//! timers (reconnects back off from 10 ms in these tests, a connection silent for two heartbeats
//! is dropped); the cache's clock is a `ManualClock`, so lifetimes, the feed's silence (1.5
//! heartbeats, the stale bound) are crossed without sleeping. A long jump of that clock is a
//! silent feed unless the feed speaks (`mock::advance_heard`).

mod mock;

mod answers;
mod cache;
mod feed;
