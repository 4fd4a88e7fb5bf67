//! The refresh compare-and-set (RFC 9700 §4.14.2).

use std::sync::Arc;

use tokenwarden_core::store::{Rotation, Store as _};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_rotations_of_one_token_yield_exactly_one_winner() {
    let db = TempDb::new("race");
    let store = Arc::new(db.open().await);
    let g = grant("g1", "c1", "alice", 1_000);
    store
        .create_grant(
            &g,
            &access("twa_0", Some(&g), "c1", 1_000, 4_600),
            Some(&refresh("twr_0", &g, 1_000, 90_000)),
        )
        .await
        .unwrap();

    let now = 2_000;
    let barrier = Arc::new(tokio::sync::Barrier::new(20));
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let store = Arc::clone(&store);
            let barrier = Arc::clone(&barrier);
            let g = g.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                let input = successor(&g, &format!("n{i}"), now);
                (
                    i,
                    store
                        .rotate_refresh_token(&d("twr_0"), &input, now)
                        .await
                        .unwrap(),
                )
            })
        })
        .collect();
    let mut winners = Vec::new();
    let mut losers = 0;
    for t in tasks {
        match t.await.unwrap() {
            (i, Rotation::Rotated) => winners.push(i),
            (_, Rotation::NotRotated(state)) => {
                losers += 1;
                // The state read in the losing transaction already shows the winner's commit.
                assert_eq!(state.used_at, Some(now));
                assert!(!state.revoked);
                assert!(state.sealed_successor.is_some());
            }
            (_, Rotation::Unknown) => panic!("the token exists"),
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    assert_eq!(losers, 19);

    // Exactly the winner's successor was stored, and the sealed response is the winner's.
    let w = winners[0];
    let old = store
        .find_refresh_token(&d("twr_0"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        old.sealed_successor,
        Some(format!("sealed-n{w}").into_bytes())
    );
    for i in 0..20 {
        let stored = store
            .find_refresh_token(&d(&format!("twr_n{i}")))
            .await
            .unwrap();
        assert_eq!(stored.is_some(), i == w, "successor {i}");
        let stored = store
            .find_access_token(&d(&format!("twa_n{i}")))
            .await
            .unwrap();
        assert_eq!(stored.is_some(), i == w, "access {i}");
    }
    store.close().await;
}

#[tokio::test]
async fn rotation_refuses_used_expired_revoked_and_unknown_tokens() {
    let db = TempDb::new("cas");
    let store = db.open().await;
    let g = grant("g1", "c1", "alice", 1_000);
    store
        .create_grant(
            &g,
            &access("twa_0", Some(&g), "c1", 1_000, 4_600),
            Some(&refresh("twr_0", &g, 1_000, 5_000)),
        )
        .await
        .unwrap();

    // Unknown.
    let r = store
        .rotate_refresh_token(&d("twr_nope"), &successor(&g, "x", 1_500), 1_500)
        .await
        .unwrap();
    assert!(matches!(r, Rotation::Unknown));

    // Expired: now == expires_at is already too late.
    let r = store
        .rotate_refresh_token(&d("twr_0"), &successor(&g, "x", 5_000), 5_000)
        .await
        .unwrap();
    let Rotation::NotRotated(s) = r else {
        panic!("expired token rotated: {r:?}")
    };
    assert_eq!(s.used_at, None);
    assert!(!s.revoked);
    assert!(store
        .find_refresh_token(&d("twr_x"))
        .await
        .unwrap()
        .is_none());

    // Rotated once, then used.
    let r = store
        .rotate_refresh_token(&d("twr_0"), &successor(&g, "1", 1_500), 1_500)
        .await
        .unwrap();
    assert!(matches!(r, Rotation::Rotated));
    let grants = tokenwarden_core::store::AdminStore::list_grants(&store, &Default::default())
        .await
        .unwrap();
    assert_eq!(grants[0].last_refreshed_at, Some(1_500));
    let r = store
        .rotate_refresh_token(&d("twr_0"), &successor(&g, "y", 1_600), 1_600)
        .await
        .unwrap();
    let Rotation::NotRotated(s) = r else {
        panic!("used token rotated: {r:?}")
    };
    assert_eq!(s.used_at, Some(1_500));
    assert_eq!(s.sealed_successor, Some(b"sealed-1".to_vec()));

    // The grant revoked: its current token is refused and reported revoked.
    assert!(store.revoke_grant("g1", 1_700).await.unwrap());
    let r = store
        .rotate_refresh_token(&d("twr_1"), &successor(&g, "z", 1_800), 1_800)
        .await
        .unwrap();
    let Rotation::NotRotated(s) = r else {
        panic!("revoked token rotated: {r:?}")
    };
    assert!(s.revoked);
    assert_eq!(s.used_at, None);
    store.close().await;
}

#[tokio::test]
async fn revoking_the_grant_revokes_tokens_issued_by_rotation() {
    let db = TempDb::new("family");
    let store = db.open().await;
    let g = grant("g1", "c1", "alice", 1_000);
    store
        .create_grant(
            &g,
            &access("twa_0", Some(&g), "c1", 1_000, 4_600),
            Some(&refresh("twr_0", &g, 1_000, 90_000)),
        )
        .await
        .unwrap();
    for (old, new, now) in [("twr_0", "1", 1_100), ("twr_1", "2", 1_200)] {
        let r = store
            .rotate_refresh_token(&d(old), &successor(&g, new, now), now)
            .await
            .unwrap();
        assert!(matches!(r, Rotation::Rotated));
    }
    assert!(store.revoke_grant("g1", 1_300).await.unwrap());
    assert!(
        !store.revoke_grant("g1", 1_400).await.unwrap(),
        "idempotent"
    );
    for t in ["twa_0", "twa_1", "twa_2"] {
        assert!(
            store
                .find_access_token(&d(t))
                .await
                .unwrap()
                .unwrap()
                .revoked,
            "{t}"
        );
    }
    for t in ["twr_0", "twr_1", "twr_2"] {
        assert!(
            store
                .find_refresh_token(&d(t))
                .await
                .unwrap()
                .unwrap()
                .revoked,
            "{t}"
        );
    }
    store.close().await;
}
