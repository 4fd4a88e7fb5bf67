//! The in-memory client cache (`clients.rs`, migration 0004). A change made through the store
//! itself is seen by the very next lookup, whatever the window. A change made by another process
//! — rotate a secret, delete a client, edit the row in plain SQL — is seen once the store's window
//! has passed (`clients.rs` unit tests move an `Instant` to pin that); here the window is zero, so
//! the cross-process path (the triggers, the counter, the snapshot reads) is checked end to end
//! without sleeping.

use std::time::Duration;

use tokenwarden_core::crypto::TokenDigest;
use tokenwarden_core::store::{AdminStore, Store};
use tokenwarden_sqlite::SqliteStore;

use crate::support::*;

/// Authenticates `id`/`secret` as the core's `authenticate_client` does (look the client up, then
/// compare the secret's digest in constant time): the client id, or why not.
async fn auth(store: &SqliteStore, id: &str, secret: &str) -> Result<String, &'static str> {
    let client = store
        .find_client(id)
        .await
        .unwrap()
        .ok_or("unknown client")?;
    match client.secret_digest {
        Some(stored) if stored.ct_eq(&TokenDigest::of(secret)) => Ok(client.client_id),
        _ => Err("wrong secret"),
    }
}

#[tokio::test]
async fn a_secret_rotated_by_another_process_stops_authenticating_at_once() {
    let db = TempDb::new("cache-rotate");
    let server = db.open().await;
    server.set_client_cache_window(Duration::ZERO);
    server.create_client(&client("c1")).await.unwrap();
    // Warm the cache: several authentications, all answered.
    for _ in 0..3 {
        assert_eq!(auth(&server, "c1", "c1-secret").await.unwrap(), "c1");
    }
    // The admin CLI: a store of its own on the same file (its own connections and writer).
    let cli = db.open().await;
    assert!(cli.set_client_secret("c1", &d("rotated")).await.unwrap());
    cli.close().await;

    assert_eq!(auth(&server, "c1", "c1-secret").await, Err("wrong secret"));
    assert_eq!(auth(&server, "c1", "rotated").await.unwrap(), "c1");
    server.close().await;
}

#[tokio::test]
async fn a_client_deleted_by_another_process_stops_authenticating_at_once() {
    let db = TempDb::new("cache-delete");
    let server = db.open().await;
    server.set_client_cache_window(Duration::ZERO);
    server.create_client(&client("c1")).await.unwrap();
    server.create_client(&client("c2")).await.unwrap();
    assert_eq!(auth(&server, "c1", "c1-secret").await.unwrap(), "c1");
    assert_eq!(auth(&server, "c2", "c2-secret").await.unwrap(), "c2");

    let cli = db.open().await;
    assert_eq!(cli.delete_client("c1", 2_000).await.unwrap(), Some(0));
    cli.close().await;

    assert_eq!(
        auth(&server, "c1", "c1-secret").await,
        Err("unknown client")
    );
    assert!(server.find_client("c1").await.unwrap().is_none());
    // The other client is unaffected (read again, then cached again).
    assert_eq!(auth(&server, "c2", "c2-secret").await.unwrap(), "c2");
    // Registering the id again gives the new registration, not a leftover.
    let mut again = client("c1");
    again.secret_digest = Some(d("second life"));
    let cli = db.open().await;
    cli.create_client(&again).await.unwrap();
    cli.close().await;
    assert_eq!(auth(&server, "c1", "c1-secret").await, Err("wrong secret"));
    assert_eq!(auth(&server, "c1", "second life").await.unwrap(), "c1");
    server.close().await;
}

/// The change counter is kept by triggers in the database, so even a hand-written `UPDATE` (an
/// operator with the `sqlite3` shell) is seen.
#[tokio::test]
async fn any_change_to_the_clients_table_is_seen_by_the_next_lookup() {
    let db = TempDb::new("cache-raw");
    let store = db.open().await;
    store.set_client_cache_window(Duration::ZERO);
    store.create_client(&client("c1")).await.unwrap();
    assert!(!store.find_client("c1").await.unwrap().unwrap().introspect);

    let mut conn = raw(&db.path).await;
    sqlx::query("UPDATE clients SET introspect = 1 WHERE client_id = 'c1'")
        .execute(&mut conn)
        .await
        .unwrap();
    assert!(store.find_client("c1").await.unwrap().unwrap().introspect);

    assert!(store.set_client_secret("c1", &d("mine")).await.unwrap());
    let generation: i64 = sqlx::query_scalar("SELECT generation FROM client_changes")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(generation, 3, "insert, raw update, secret rotation");
    store.close().await;
}

/// An unknown id is never remembered as unknown: registering it elsewhere makes it authenticate.
#[tokio::test]
async fn an_unknown_client_registered_later_authenticates() {
    let db = TempDb::new("cache-unknown");
    let server = db.open().await;
    server.set_client_cache_window(Duration::ZERO);
    assert_eq!(
        auth(&server, "late", "late-secret").await,
        Err("unknown client")
    );
    let cli = db.open().await;
    cli.create_client(&client("late")).await.unwrap();
    cli.close().await;
    assert_eq!(auth(&server, "late", "late-secret").await.unwrap(), "late");
    server.close().await;
}

/// With the default window, what the server does itself through the store is seen at once: the
/// store empties its cache when the change commits.
#[tokio::test]
async fn changes_made_through_the_store_are_seen_at_once_with_the_default_window() {
    let db = TempDb::new("cache-own");
    let store = db.open().await;
    store.create_client(&client("c1")).await.unwrap();
    store.create_client(&client("c2")).await.unwrap();
    assert_eq!(auth(&store, "c1", "c1-secret").await.unwrap(), "c1");
    assert_eq!(auth(&store, "c2", "c2-secret").await.unwrap(), "c2");

    assert!(store.set_client_secret("c1", &d("rotated")).await.unwrap());
    assert_eq!(auth(&store, "c1", "c1-secret").await, Err("wrong secret"));
    assert_eq!(auth(&store, "c1", "rotated").await.unwrap(), "c1");

    assert_eq!(store.delete_client("c2", 2_000).await.unwrap(), Some(0));
    assert_eq!(auth(&store, "c2", "c2-secret").await, Err("unknown client"));

    let mut again = client("c2");
    again.secret_digest = Some(d("second life"));
    store.create_client(&again).await.unwrap();
    assert_eq!(auth(&store, "c2", "second life").await.unwrap(), "c2");
    store.close().await;
}

/// Migration 0004 applies to a version 3 database that already has clients: they authenticate
/// after the upgrade, and the counter counts the changes from then on.
#[tokio::test]
async fn migration_0004_applies_to_a_version_3_database_with_clients() {
    let db = TempDb::new("cache-upgrade");
    let v3 = std::env::temp_dir().join(format!(
        "tokenwarden-sqlite-migrations-v3-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&v3);
    std::fs::create_dir_all(&v3).unwrap();
    for file in [
        "0001_initial.sql",
        "0002_authorization.sql",
        "0003_revocation_feed.sql",
    ] {
        std::fs::copy(
            format!(
                "{}/../../migrations/sqlite/{file}",
                env!("CARGO_MANIFEST_DIR")
            ),
            v3.join(file),
        )
        .unwrap();
    }
    {
        use sqlx::Connection as _;
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&db.path)
            .create_if_missing(true);
        let mut conn = sqlx::SqliteConnection::connect_with(&options)
            .await
            .unwrap();
        sqlx::migrate::Migrator::new(v3.as_path())
            .await
            .unwrap()
            .run(&mut conn)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO clients (client_id, name, secret_digest, grant_types, redirect_uris, \
                                  scope, introspect, cors_origins, created_at) \
             VALUES ('old', 'Old', ?1, '[\"client_credentials\"]', '[]', 'read', 0, '[]', 1)",
        )
        .bind(d("old-secret").as_bytes().to_vec())
        .execute(&mut conn)
        .await
        .unwrap();
        conn.close().await.unwrap();
    }
    let _ = std::fs::remove_dir_all(&v3);

    let store = db.open().await;
    store.set_client_cache_window(Duration::ZERO);
    assert_eq!(auth(&store, "old", "old-secret").await.unwrap(), "old");
    let mut conn = raw(&db.path).await;
    let generation: i64 = sqlx::query_scalar("SELECT generation FROM client_changes")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(generation, 0);
    sqlx::query("DELETE FROM clients WHERE client_id = 'old'")
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        auth(&store, "old", "old-secret").await,
        Err("unknown client")
    );
    store.close().await;
}
