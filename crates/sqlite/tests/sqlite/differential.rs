//! The shared differential run (tokenwarden_conformance::differential) on a SQLite file.

use crate::support::*;

#[tokio::test]
async fn sqlite_store_answers_like_the_memory_store() {
    let db = TempDb::new("differential");
    let sql = db.open().await;
    tokenwarden_conformance::differential::answers_like_the_memory_store(&sql, "sqlite").await;
    sql.close().await;
}
