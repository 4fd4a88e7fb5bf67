//! The in-memory cache of active access tokens (`tokens.rs`). A revocation made through the store
//! itself is seen by the very next lookup, whatever the window; one made by another process — a
//! second store on the same file, as the admin CLI is — once the window has passed. Here the
//! window is zero or the test waits it out, so the cross-process path (the feed's head, raised in
//! the revoking transaction) is checked end to end.

use std::future::Future as _;
use std::time::Duration;

use tokenwarden_core::store::{AdminStore as _, GrantFilter, Store as _};
use tokenwarden_sqlite::{SqliteStore, CLIENT_CACHE_WINDOW};

use crate::support::*;

async fn revoked(store: &SqliteStore, token: &str) -> Option<bool> {
    store
        .find_access_token(&d(token))
        .await
        .unwrap()
        .map(|s| s.revoked)
}

async fn server_with_tokens(db: &TempDb) -> SqliteStore {
    let server = db.open().await;
    server.create_client(&client("c1")).await.unwrap();
    server.create_user(&user("alice")).await.unwrap();
    let g = grant("g1", "c1", "alice", 1_000);
    server
        .create_grant(&g, &access("twa_g", Some(&g), "c1", 1_000, 4_600), None)
        .await
        .unwrap();
    server
        .insert_access_token(&access("twa_cc", None, "c1", 1_000, 4_600))
        .await
        .unwrap();
    // Warm the cache.
    for _ in 0..3 {
        assert_eq!(revoked(&server, "twa_g").await, Some(false));
        assert_eq!(revoked(&server, "twa_cc").await, Some(false));
    }
    server
}

#[tokio::test]
async fn revocations_through_the_store_are_seen_at_once_with_the_default_window() {
    let db = TempDb::new("tokens-local");
    let server = server_with_tokens(&db).await;
    server
        .revoke_access_token(&d("twa_cc"), 1_100)
        .await
        .unwrap();
    assert_eq!(revoked(&server, "twa_cc").await, Some(true));
    assert_eq!(revoked(&server, "twa_g").await, Some(false));
    assert!(server.revoke_grant("g1", 1_200).await.unwrap());
    assert_eq!(revoked(&server, "twa_g").await, Some(true));
    server.close().await;

    let db = TempDb::new("tokens-local-client");
    let server = server_with_tokens(&db).await;
    server.delete_client("c1", 1_100).await.unwrap();
    assert_eq!(revoked(&server, "twa_cc").await, Some(true));
    assert_eq!(revoked(&server, "twa_g").await, Some(true));
    server.close().await;
}

#[tokio::test]
async fn a_grant_revoked_by_another_process_is_seen_at_once_with_a_zero_window() {
    let db = TempDb::new("tokens-cli-grant");
    let server = server_with_tokens(&db).await;
    server.set_token_cache_window(Duration::ZERO);
    // The admin CLI: a store of its own on the same file (its own connections and writer).
    let cli = db.open().await;
    assert_eq!(
        cli.revoke_grants(
            &GrantFilter {
                username: Some("alice".into()),
                ..GrantFilter::default()
            },
            1_100
        )
        .await
        .unwrap(),
        1
    );
    cli.close().await;
    assert_eq!(revoked(&server, "twa_g").await, Some(true));
    assert_eq!(revoked(&server, "twa_cc").await, Some(false));
    server.close().await;
}

#[tokio::test]
async fn a_token_revoked_by_another_process_is_seen_once_the_default_window_has_passed() {
    let db = TempDb::new("tokens-cli-window");
    let server = server_with_tokens(&db).await;
    let cli = db.open().await;
    cli.revoke_access_token(&d("twa_cc"), 1_100).await.unwrap();
    cli.delete_client("c1", 1_100).await.unwrap();
    cli.close().await;
    tokio::time::sleep(CLIENT_CACHE_WINDOW + Duration::from_millis(5)).await;
    assert_eq!(revoked(&server, "twa_cc").await, Some(true));
    assert_eq!(revoked(&server, "twa_g").await, Some(true));
    server.close().await;
}

#[tokio::test]
async fn a_purge_through_the_store_forgets_the_tokens_it_deleted() {
    let db = TempDb::new("tokens-purge");
    let server = server_with_tokens(&db).await;
    let policy = tokenwarden_core::store::PurgePolicy::default();
    // Long after both expired (4 600).
    let counts = server.purge(1_000_000, policy, false).await.unwrap();
    assert_eq!(counts.access_tokens, 2);
    assert_eq!(revoked(&server, "twa_cc").await, None);
    assert_eq!(revoked(&server, "twa_g").await, None);
    server.close().await;
}

/// The revocation feed must never publish a revocation the token cache could still contradict: a
/// resource server evicting on the event and introspecting again would cache the stale "active"
/// for minutes. Reading the feed past the cache's head empties the cache first.
#[tokio::test]
async fn once_the_feed_has_read_another_process_s_revocation_the_cache_has_dropped_it() {
    let db = TempDb::new("tokens-feed-order");
    let server = server_with_tokens(&db).await;
    // A window long enough that only the feed's reading can explain what follows.
    server.set_token_cache_window(Duration::from_secs(600));
    assert_eq!(revoked(&server, "twa_g").await, Some(false));
    let cli = db.open().await;
    assert!(cli.revoke_grant("g1", 1_100).await.unwrap());
    cli.close().await;
    // Well within the window: the cache alone could still answer from memory here.
    let page = server.revocation_events(0, 100).await.unwrap();
    assert_eq!(page.head, 1);
    assert_eq!(revoked(&server, "twa_g").await, Some(true));
    server.close().await;
}

/// A revocation whose caller stopped waiting (a cancelled request) still empties the cache when
/// it commits: the writer thread does it, not the caller.
#[tokio::test]
async fn a_revocation_whose_caller_gave_up_still_empties_the_cache_when_it_commits() {
    let db = TempDb::new("tokens-cancelled");
    let server = server_with_tokens(&db).await;
    // Another connection holds the write lock, so the revocation cannot commit before its caller
    // has given up.
    let lock = rusqlite::Connection::open(&db.path).unwrap();
    lock.execute_batch("BEGIN IMMEDIATE").unwrap();
    {
        let digest = d("twa_cc");
        let mut revocation = Box::pin(server.revoke_access_token(&digest, 1_100));
        std::future::poll_fn(|cx| {
            assert!(
                revocation.as_mut().poll(cx).is_pending(),
                "answered under the lock"
            );
            std::task::Poll::Ready(())
        })
        .await;
        // Dropped here, still queued: the caller gave up.
    }
    lock.execute_batch("COMMIT").unwrap();
    // Wait for the commit through a write queued behind it (the writer runs them in order).
    server.create_user(&user("bob")).await.unwrap();
    assert_eq!(revoked(&server, "twa_cc").await, Some(true));
    assert_eq!(revoked(&server, "twa_g").await, Some(false));
    server.close().await;
}
