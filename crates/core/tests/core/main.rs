//! Endpoint tests of the protocol core: `http::Request<Bytes>` in, `http::Response<Bytes>` out,
//! over the in-memory store with a manual clock — no sockets, no sleeping. Each test asserts the
//! status, headers and body, and the stored state afterwards.
//!
//! One test binary (CONVENTIONS "Tests"): this file and its modules.

// clippy.toml allows these in `#[test]` functions only; the harness helpers are test code too.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

mod authorization;
mod client_auth;
mod client_credentials;
mod feed;
mod introspection;
mod metadata;
mod refresh;
mod revocation;
mod storage;
mod wire;
