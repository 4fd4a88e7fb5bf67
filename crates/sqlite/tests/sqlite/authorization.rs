//! The authorization-code compare-and-set (RFC 6749 §4.1.2) under real concurrency, and the
//! schema version that brought codes, sessions and consents.

use std::sync::Arc;

use tokenwarden_core::model::AuthorizationCodeRecord;
use tokenwarden_core::store::{AdminStore as _, GrantFilter, Redemption, Store as _, StoreError};

use crate::support::*;

fn code(name: &str, issued_at: i64) -> AuthorizationCodeRecord {
    AuthorizationCodeRecord {
        digest: d(name),
        client_id: "c1".into(),
        username: "alice".into(),
        redirect_uri: "https://c1.example/cb".into(),
        redirect_uri_given: true,
        scope: scope("read write"),
        // RFC 7636 Appendix B.
        code_challenge: Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into()),
        issued_at,
        expires_at: issued_at + 600,
    }
}

/// 20 tasks on a multi-threaded runtime redeem one code at once, each with its own grant: the
/// writer pool and `BEGIN IMMEDIATE` let exactly one through, and every loser is told which grant
/// the winner created.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_redemptions_of_one_code_yield_exactly_one_winner() {
    let db = TempDb::new("code-race");
    let store = Arc::new(db.open().await);
    store
        .insert_authorization_code(&code("twc_0", 1_000))
        .await
        .unwrap();

    let now = 1_100;
    let barrier = Arc::new(tokio::sync::Barrier::new(20));
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let store = Arc::clone(&store);
            let barrier = Arc::clone(&barrier);
            tokio::spawn(async move {
                let g = grant(&format!("g{i}"), "c1", "alice", now);
                let a = access(&format!("twa_{i}"), Some(&g), "c1", now, now + 3_600);
                let r = refresh(&format!("twr_{i}"), &g, now, now + 86_400);
                barrier.wait().await;
                let outcome = store
                    .redeem_authorization_code(&d("twc_0"), &g, &a, Some(&r), now)
                    .await
                    .unwrap();
                (i, outcome)
            })
        })
        .collect();
    let mut winners = Vec::new();
    let mut losers = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            (i, Redemption::Redeemed) => winners.push(i),
            (_, Redemption::AlreadyUsed { grant_id }) => losers.push(grant_id),
            (_, Redemption::Unknown) => panic!("the code exists"),
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    let w = winners[0];
    // Each loser read the code under the write lock, after the winner's commit.
    assert_eq!(losers, vec![Some(format!("g{w}")); 19]);

    let grants = store.list_grants(&GrantFilter::default()).await.unwrap();
    assert_eq!(grants.len(), 1);
    assert_eq!(grants[0].grant_id, format!("g{w}"));
    for i in 0..20 {
        let stored = store
            .find_access_token(&d(&format!("twa_{i}")))
            .await
            .unwrap();
        assert_eq!(stored.is_some(), i == w, "access {i}");
        let stored = store
            .find_refresh_token(&d(&format!("twr_{i}")))
            .await
            .unwrap();
        assert_eq!(stored.is_some(), i == w, "refresh {i}");
    }
    let state = store
        .find_authorization_code(&d("twc_0"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(state.used_at, Some(now));
    assert_eq!(state.grant_id, Some(format!("g{w}")));
    store.close().await;
}

/// A database created at schema version 1 (before codes, sessions and consents) is migrated in
/// place on open: its rows stay, and the new tables work.
#[tokio::test]
async fn a_version_1_database_is_upgraded_in_place() {
    let db = TempDb::new("upgrade");
    // Schema version 1 alone, applied by sqlx exactly as an older release did.
    let v1 = std::env::temp_dir().join(format!(
        "tokenwarden-sqlite-migrations-v1-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&v1);
    std::fs::create_dir_all(&v1).unwrap();
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../migrations/sqlite/0001_initial.sql"
        ),
        v1.join("0001_initial.sql"),
    )
    .unwrap();
    {
        use sqlx::Connection as _;
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&db.path)
            .create_if_missing(true);
        let mut conn = sqlx::SqliteConnection::connect_with(&options)
            .await
            .unwrap();
        sqlx::migrate::Migrator::new(v1.as_path())
            .await
            .unwrap()
            .run(&mut conn)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO users (username, password_hash, created_at) VALUES ('alice', 'h', 1000)",
        )
        .execute(&mut conn)
        .await
        .unwrap();
    }
    std::fs::remove_dir_all(&v1).unwrap();

    let store = db.open().await;
    assert!(store.find_user("alice").await.unwrap().is_some());
    store
        .insert_authorization_code(&code("twc_1", 1_000))
        .await
        .unwrap();
    let g = grant("g1", "c1", "alice", 1_010);
    assert_eq!(
        store
            .redeem_authorization_code(
                &d("twc_1"),
                &g,
                &access("twa_1", Some(&g), "c1", 1_010, 4_610),
                None,
                1_010,
            )
            .await
            .unwrap(),
        Redemption::Redeemed
    );
    let mut conn = raw(&db.path).await;
    let versions: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert_eq!(versions, [1, 2, 3, 4]);
    store.close().await;
}

/// A code row that does not parse is `Unavailable`, for the lookup and for the redemption that
/// reads it after losing the compare-and-set.
#[tokio::test]
async fn a_corrupt_code_row_is_unavailable_not_a_panic() {
    let db = TempDb::new("corrupt-code");
    let store = db.open().await;
    store
        .insert_authorization_code(&code("twc_1", 1_000))
        .await
        .unwrap();
    let mut conn = raw(&db.path).await;
    sqlx::query("UPDATE authorization_codes SET scope = 'bad\"quote', used_at = 1001")
        .execute(&mut conn)
        .await
        .unwrap();
    let err = store
        .find_authorization_code(&d("twc_1"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    let g = grant("g1", "c1", "alice", 1_010);
    let err = store
        .redeem_authorization_code(
            &d("twc_1"),
            &g,
            &access("twa_1", Some(&g), "c1", 1_010, 4_610),
            None,
            1_010,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    store.close().await;
}
