//! The embedded schema: applied once however many nodes start at the same time, and enforcing the
//! digest lengths itself.

use futures_util::future::join_all;
use tokenwarden_core::store::{AdminStore as _, Store as _};
use tokenwarden_postgres::PostgresStore;

use crate::support::*;

/// Six nodes opening a fresh database at the same instant all succeed: sqlx's migrator takes an
/// advisory lock first, so one applies the migrations and the others wait, then find them
/// applied. Each version is recorded once, successfully; a later open changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL (scripts/test starts it)"]
async fn nodes_starting_together_apply_the_migrations_once() {
    with_schema("migrate_race", |schema| async move {
        let opened = join_all((0..6).map(|_| PostgresStore::open(schema.url()))).await;
        let stores: Vec<PostgresStore> = opened
            .into_iter()
            .enumerate()
            .map(|(i, r)| r.unwrap_or_else(|e| panic!("node {i}: {e}")))
            .collect();
        let mut raw = schema.raw().await;
        let applied: Vec<(i64, bool)> =
            sqlx::query_as("SELECT version, success FROM _sqlx_migrations ORDER BY version")
                .fetch_all(&mut raw)
                .await
                .unwrap();
        assert_eq!(applied, [(1, true), (2, true), (3, true)]);

        // Every node works on the one schema.
        stores[0].create_user(&user("alice")).await.unwrap();
        for s in &stores {
            assert!(s.find_user("alice").await.unwrap().is_some());
        }
        let again = schema.open().await;
        assert_eq!(
            count(&mut raw, "SELECT count(*) FROM _sqlx_migrations").await,
            3
        );
        again.close().await;
        for s in stores {
            s.close().await;
        }
    })
    .await;
}

/// The tables live in the schema the URL's search path names: two schemas are two independent
/// databases as far as the store can tell (what the conformance runner relies on).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL (scripts/test starts it)"]
async fn each_schema_is_an_independent_store() {
    with_schema("isolation_a", |a| async move {
        with_schema("isolation_b", |b| async move {
            let (sa, sb) = (a.open().await, b.open().await);
            sa.create_client(&client("c1")).await.unwrap();
            assert!(sb.find_client("c1").await.unwrap().is_none());
            sb.create_client(&client("c1")).await.unwrap();
            sa.close().await;
            sb.close().await;
        })
        .await;
    })
    .await;
}

/// The schema refuses what the store never writes: a digest of the wrong length, a NULL inside a
/// client's list — even from another writer.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL (scripts/test starts it)"]
async fn the_schema_checks_digest_lengths_and_list_elements() {
    with_schema("checks", |schema| async move {
        let store = schema.open().await;
        let mut raw = schema.raw().await;
        for (table, sql) in [
            (
                "access_tokens",
                "INSERT INTO access_tokens (digest, client_id, scope, issued_at, expires_at) \
                 VALUES ('\\x0102'::bytea, 'c1', 'read', 1, 2)",
            ),
            (
                "sessions",
                "INSERT INTO sessions (digest, username, created_at, expires_at) \
                 VALUES (sha224('x'::bytea), 'alice', 1, 2)",
            ),
            (
                "clients",
                "INSERT INTO clients (client_id, name, secret_digest, grant_types, redirect_uris, \
                                      scope, introspect, cors_origins, created_at) \
                 VALUES ('c1', 'n', NULL, ARRAY['refresh_token', NULL], '{}', '', false, '{}', 1)",
            ),
        ] {
            let err = sqlx::query(sql).execute(&mut raw).await.unwrap_err();
            let code = err
                .as_database_error()
                .and_then(|e| e.code())
                .map(|c| c.into_owned());
            // 23514: check_violation.
            assert_eq!(code.as_deref(), Some("23514"), "{table}: {err}");
        }
        // A token naming a grant that does not exist is refused (foreign key), as on SQLite.
        let err = store
            .insert_access_token(&access(
                "twa_1",
                Some(&grant("nope", "c1", "alice", 1)),
                "c1",
                1,
                2,
            ))
            .await
            .unwrap_err();
        assert!(
            matches!(err, tokenwarden_core::store::StoreError::Unavailable(_)),
            "{err:?}"
        );
        store.close().await;
    })
    .await;
}
