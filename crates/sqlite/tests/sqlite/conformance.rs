//! The shared store conformance suite (`tokenwarden-conformance`), run against the SQLite store.
//! Both runs take their case list from the suite's macro, so a case added to the suite runs here
//! on both databases unasked.

/// On `sqlite::memory:`, where one connection serves reads and writes.
mod in_memory {
    tokenwarden_conformance::conformance_suite!(async {
        tokenwarden_sqlite::SqliteStore::open("sqlite::memory:")
            .await
            .unwrap()
    });
}

/// On a database file, where reads and writes go through separate pools (the production
/// configuration). The runner keeps the temporary file alive for the case and removes it after.
mod on_file {
    use std::future::Future;

    use tokenwarden_sqlite::SqliteStore;

    use crate::support::TempDb;

    tokenwarden_conformance::conformance_suite!(run = on_file);

    async fn on_file<F, Fut>(case: &'static str, run: F)
    where
        F: FnOnce(SqliteStore) -> Fut,
        Fut: Future<Output = ()>,
    {
        let db = TempDb::new(&format!("conformance-{case}"));
        let store = db.open().await;
        // A clone shares the pools; ours closes them before the file is removed.
        run(store.clone()).await;
        store.close().await;
    }
}
