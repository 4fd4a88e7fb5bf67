//! The store conformance suite against the reference backend, the in-memory store.

use tokenwarden_core::store::memory::MemoryStore;

tokenwarden_conformance::conformance_suite!(async { MemoryStore::default() });

/// Every case the crate defines is in the list the suite runs, once: a case written but not
/// listed would silently run nowhere.
#[test]
fn every_case_is_in_the_suite_exactly_once() {
    let mut listed: Vec<&str> = Vec::new();
    macro_rules! collect {
        ($into:ident; $case:ident) => {
            $into.push(stringify!($case));
        };
    }
    tokenwarden_conformance::for_each_conformance_case!(collect; listed);

    let source = include_str!("../src/lib.rs");
    let mut defined: Vec<&str> = source
        .lines()
        .filter_map(|l| l.strip_prefix("pub async fn "))
        .map(|rest| {
            rest.split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .next()
                .unwrap()
        })
        .collect();
    assert!(defined.len() > 40, "found only {defined:?}");
    defined.sort_unstable();
    let mut sorted = listed.clone();
    sorted.sort_unstable();
    let mut deduped = sorted.clone();
    deduped.dedup();
    assert_eq!(sorted, deduped, "a case is listed twice");
    assert_eq!(sorted, defined, "listed cases vs `pub async fn` cases");
}
