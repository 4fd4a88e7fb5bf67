//! The shared store conformance suite (`tokenwarden-conformance`), every case, on PostgreSQL:
//! each case gets a fresh store in a schema of its own, dropped after it.
//!
//! The case list comes from the suite's `for_each_conformance_case!`, so a case added to the suite
//! runs here unasked. (`conformance_suite!(run = …)` expands into the same tests, but without a
//! way to mark them `#[ignore]`, which tests needing a server must be.)

use crate::support::in_fresh_schema;

macro_rules! postgres_case {
    ($run:ident; $case:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        #[ignore = "needs PostgreSQL (scripts/test starts it)"]
        async fn $case() {
            $run(::core::stringify!($case), tokenwarden_conformance::$case).await;
        }
    };
}

tokenwarden_conformance::for_each_conformance_case!(postgres_case; in_fresh_schema);
