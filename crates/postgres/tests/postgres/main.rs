//! Integration tests of the PostgreSQL store against a real server: the shared conformance suite
//! (every case in a schema of its own), the compare-and-sets raced across two connection pools —
//! two nodes — the revocation feed's numbering across nodes, purge from several nodes at once,
//! migrations applied by nodes starting together, the session settings in effect, and a
//! differential run against the reference `MemoryStore`.
//!
//! Every test that needs PostgreSQL is `#[ignore]`d, so a plain `cargo test` passes without one;
//! `scripts/test` starts a server (`scripts/postgres.sh`) and runs them with `--ignored`, the URL
//! in `TOKENWARDEN_TEST_POSTGRES_URL`. An ignored test run without that variable fails, loudly.

// Test code: clippy.toml lets `#[test]` functions unwrap and panic, but not the fixture helpers
// they share, which are test code just the same.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod concurrency;
mod conformance;
mod differential;
mod feed;
mod migrations;
mod purge;
mod semantics;
mod settings;
mod support;
