//! The connection settings are in effect, not just requested; `ping`, `close`, and failing fast
//! when there is no server.

use std::time::Duration;

use tokenwarden_core::store::{Store as _, StoreError};
use tokenwarden_postgres::{PoolSettings, PostgresStore, SessionSettings};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL (scripts/test starts it)"]
async fn read_committed_durable_commits_and_timeouts_are_in_effect() {
    with_schema("settings", |schema| async move {
        let store = schema.open().await;
        let s = store.session_settings().await.unwrap();
        assert_eq!(
            (
                s.transaction_isolation.as_str(),
                s.synchronous_commit.as_str(),
                s.statement_timeout.as_str(),
                s.idle_in_transaction_session_timeout.as_str(),
            ),
            ("read committed", "on", "30s", "15s"),
            "{s:?}"
        );
        assert!(s.server_version_num >= 120_000, "{s:?}");
        // Run with `?sslmode=require` (and the `tls` feature), every connection is encrypted.
        let url = base_url();
        if [
            "sslmode=require",
            "sslmode=verify-ca",
            "sslmode=verify-full",
        ]
        .iter()
        .any(|m| url.contains(m))
        {
            assert!(s.ssl, "{s:?}");
        }
        store.ping().await.unwrap();
        store.close().await;
    })
    .await;
}

/// A database (or role, or URL) asking for `SERIALIZABLE` and `synchronous_commit = off` still
/// gets `READ COMMITTED` and durable commits; a stronger `synchronous_commit` is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL (scripts/test starts it)"]
async fn weaker_server_defaults_are_overridden_and_stronger_ones_kept() {
    with_schema("settings_override", |schema| async move {
        let weak = format!(
            "{}%20-c%20default_transaction_isolation%3Dserializable%20-c%20synchronous_commit%3Doff",
            schema.url()
        );
        let store = PostgresStore::open(&weak).await.unwrap();
        let s: SessionSettings = store.session_settings().await.unwrap();
        assert_eq!(s.transaction_isolation, "read committed");
        assert_eq!(s.synchronous_commit, "on");
        store.close().await;

        let strong = format!("{}%20-c%20synchronous_commit%3Dremote_apply", schema.url());
        let store = PostgresStore::open_with(
            &strong,
            PoolSettings {
                statement_timeout: Duration::ZERO,
                ..PoolSettings::default()
            },
        )
        .await
        .unwrap();
        let s = store.session_settings().await.unwrap();
        assert_eq!(s.synchronous_commit, "remote_apply");
        assert_eq!(s.statement_timeout, "0");
        store.close().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL (scripts/test starts it)"]
async fn a_closed_store_is_unavailable() {
    with_schema("closed", |schema| async move {
        let store = schema.open().await;
        store.close().await;
        store.close().await;
        assert!(matches!(
            store.ping().await,
            Err(StoreError::Unavailable(_))
        ));
        assert!(matches!(
            store.find_client("c1").await,
            Err(StoreError::Unavailable(_))
        ));
    })
    .await;
}

/// The pool waits at most `acquire_timeout` for a connection, then answers `Unavailable` (a 503),
/// not a hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL (scripts/test starts it)"]
async fn an_exhausted_pool_answers_unavailable_after_the_acquire_timeout() {
    with_schema("exhausted", |schema| async move {
        let store = schema
            .open_with(PoolSettings {
                max_connections: 1,
                acquire_timeout: Duration::from_millis(300),
                ..PoolSettings::default()
            })
            .await;
        let g = grant("g1", "c1", "alice", 1_000);
        store
            .create_grant(&g, &access("twa_1", Some(&g), "c1", 1_000, 9_000), None)
            .await
            .unwrap();
        // Another writer holds the grant's row lock...
        let mut holder = schema.raw().await;
        sqlx::raw_sql("BEGIN; SELECT 1 FROM grants WHERE grant_id = 'g1' FOR UPDATE;")
            .execute(&mut holder)
            .await
            .unwrap();
        // ...so a revocation through the store waits for it, on the pool's only connection.
        let revoking = {
            let store = store.clone();
            tokio::spawn(async move { store.revoke_grant("g1", 2_000).await })
        };
        wait_for_lock_waiters(&schema, 1).await;
        let err = store.ping().await.unwrap_err();
        assert!(
            matches!(&err, StoreError::Unavailable(m) if m.contains("timed out")),
            "{err:?}"
        );
        sqlx::raw_sql("COMMIT").execute(&mut holder).await.unwrap();
        assert!(revoking.await.unwrap().unwrap());
        store.ping().await.unwrap();
        store.close().await;
    })
    .await;
}

/// With nothing listening, `open` fails with `Unavailable` — quickly, and without echoing the
/// password of the URL. (Needs no server: not ignored.)
#[tokio::test]
async fn open_without_a_server_is_unavailable_and_does_not_leak_the_password() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("postgres://tokenwarden:hunter2@127.0.0.1:{port}/tokenwarden");
    let result = tokio::time::timeout(
        Duration::from_secs(20),
        PostgresStore::open_with(
            &url,
            PoolSettings {
                acquire_timeout: Duration::from_secs(2),
                ..PoolSettings::default()
            },
        ),
    )
    .await
    .expect("open hung");
    match result {
        Err(StoreError::Unavailable(m)) => assert!(!m.contains("hunter2"), "{m}"),
        other => panic!("{other:?}"),
    }
}
