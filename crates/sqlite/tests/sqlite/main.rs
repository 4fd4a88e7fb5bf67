//! Integration tests of the SQLite store on real database files: durability across reopen and
//! `kill -9`, group commit (batching, per-operation rollback, close), the pragmas actually in
//! effect, the rotation and authorization-code compare-and-sets under concurrency, the schema
//! upgrade, the client cache's exactness across processes, the revocation feed's numbering and durability, batched purge, a differential run
//! against the reference `MemoryStore`, and the shared conformance suite on an in-memory and on a
//! file database.

// Test code: clippy.toml lets `#[test]` functions unwrap and panic, but not the fixture helpers
// they share, which are test code just the same.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod authorization;
mod client_cache;
mod conformance;
mod differential;
mod durability;
mod feed;
mod group_commit;
mod pragmas;
mod purge;
mod rotation;
mod semantics;
mod support;
mod token_cache;
