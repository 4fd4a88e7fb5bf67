//! Helpers for `scripts/bench` (see BENCHMARKS.md): `tw-ceiling`, a bare axum server answering a
//! POST with fixed JSON — the HTTP ceiling every figure is compared with — and `tw-seed`, which
//! fills a tokenwarden SQLite database with many tokens quickly (one transaction per batch).
#![warn(missing_docs)]
