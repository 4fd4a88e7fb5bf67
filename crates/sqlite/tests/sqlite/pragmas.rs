//! The durability settings are in effect, not just requested.

use sqlx::Row as _;
use tokenwarden_core::store::{AdminStore as _, StoreError};
use tokenwarden_sqlite::{ConnectionPragmas, SqliteStore};

use crate::support::*;

#[tokio::test]
async fn wal_full_sync_busy_timeout_and_foreign_keys_are_in_effect() {
    let db = TempDb::new("pragmas");
    let store = db.open().await;
    let p = store.effective_pragmas().await.unwrap();
    let expected = ConnectionPragmas {
        journal_mode: "wal".into(),
        synchronous: 2, // FULL
        foreign_keys: true,
        busy_timeout_ms: 5_000,
        query_only: false,
    };
    assert_eq!(p.writer, expected);
    assert_eq!(
        p.reader,
        ConnectionPragmas {
            query_only: true,
            ..expected
        }
    );

    // WAL is a property of the file: a connection that asked for nothing sees it too.
    let mut conn = raw(&db.path).await;
    let mode: String = sqlx::query("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await
        .unwrap()
        .get(0);
    assert_eq!(mode.to_ascii_lowercase(), "wal");
    store.close().await;
}

#[tokio::test]
async fn in_memory_store_uses_one_connection_for_both() {
    let store = SqliteStore::open("sqlite::memory:").await.unwrap();
    let p = store.effective_pragmas().await.unwrap();
    assert_eq!(p.writer, p.reader);
    assert_eq!(p.writer.journal_mode, "memory");
    assert!(!p.writer.query_only);
    assert!(p.writer.foreign_keys);
}

#[tokio::test]
async fn foreign_keys_reject_a_token_of_a_missing_grant() {
    let db = TempDb::new("fk");
    let store = db.open().await;
    let g = grant("nowhere", "c1", "alice", 1_000);
    let err = tokenwarden_core::store::Store::insert_access_token(
        &store,
        &access("twa_orphan", Some(&g), "c1", 1_000, 2_000),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    store.create_user(&user("alice")).await.unwrap();
    store.close().await;
}
