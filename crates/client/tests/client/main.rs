#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code
//! Integration tests of tokenwarden-client against a scripted mock token server on 127.0.0.1
//! (`mock`), one module per concern. The numbered scenarios of issue 4 are named `sN_…`.
//!
//! The mock server runs on its own thread and runtime (real time); the tests run on tokio's paused
//! clock, so expiry and backoff happen in virtual time and nothing sleeps.

mod mock;

mod auth;
mod lifecycle;
mod logging;
mod multiprocess;
mod protocol;
mod store;
