//! The store conformance suite against the reference backend, the in-memory store.

use tokenwarden_core::store::memory::MemoryStore;

tokenwarden_conformance::conformance_suite!(async { MemoryStore::default() });
