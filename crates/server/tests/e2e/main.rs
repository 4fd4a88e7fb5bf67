#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test harness code
//! End-to-end tests: the real binary over HTTP on 127.0.0.1 with a fresh database each.

mod harness;
mod web;

mod authorize;
mod browser;
mod cli;
mod durability;
mod feed;
mod lifecycle;
mod multinode;
mod protect;
mod remote;
mod wire;
