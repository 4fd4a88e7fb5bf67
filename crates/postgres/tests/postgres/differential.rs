//! The shared differential run (tokenwarden_conformance::differential) on a PostgreSQL schema.

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL (scripts/test starts it)"]
async fn postgres_store_answers_like_the_memory_store() {
    with_schema("differential", |schema| async move {
        let sql = schema.open().await;
        tokenwarden_conformance::differential::answers_like_the_memory_store(&sql, "postgres")
            .await;
    })
    .await;
}
