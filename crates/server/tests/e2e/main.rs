//! End-to-end tests: the real binary over HTTP on 127.0.0.1 with a fresh database each.

mod harness;

mod cli;
mod durability;
mod lifecycle;
mod wire;
