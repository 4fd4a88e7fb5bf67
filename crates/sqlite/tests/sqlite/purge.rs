//! Purge: expired and long-revoked rows go, in batches; grants go with their last token; codes go
//! a retention after their expiry, sessions at it.

use tokenwarden_core::model::{AuthorizationCodeRecord, Session};
use tokenwarden_core::store::{
    AccountStore as _, AdminStore as _, GrantFilter, PurgeCounts, PurgePolicy, Rotation, Store as _,
};

use crate::support::*;

const NOW: i64 = 100_000;

fn code(name: &str, expires_at: i64) -> AuthorizationCodeRecord {
    AuthorizationCodeRecord {
        digest: d(name),
        client_id: "c1".into(),
        username: "alice".into(),
        redirect_uri: "https://c1.example/cb".into(),
        redirect_uri_given: false,
        scope: scope("read"),
        code_challenge: None,
        issued_at: expires_at - 600,
        expires_at,
    }
}

fn session(name: &str, expires_at: i64) -> Session {
    Session {
        digest: d(name),
        username: "alice".into(),
        created_at: expires_at - 3_600,
        expires_at,
    }
}

fn policy(batch_size: u32) -> PurgePolicy {
    PurgePolicy {
        revoked_retention: 1_000,
        batch_size,
        // These cases are about tokens, codes and sessions; every feed event stays.
        event_retention: 1_000_000,
    }
}

#[tokio::test]
async fn purge_deletes_in_batches_smaller_than_the_work() {
    let db = TempDb::new("purge");
    let store = db.open().await;

    // 5 expired grant-less access tokens, 2 live ones.
    for i in 0..5 {
        store
            .insert_access_token(&access(&format!("twa_cc{i}"), None, "c1", 1_000, NOW - i))
            .await
            .unwrap();
    }
    for i in 0..2 {
        store
            .insert_access_token(&access(&format!("twa_live{i}"), None, "c1", 1_000, NOW + 1))
            .await
            .unwrap();
    }
    // 7 grants whose tokens have all expired: all of them and their tokens go.
    for i in 0..7 {
        let g = grant(&format!("g-dead{i}"), "c1", "alice", 1_000 + i);
        store
            .create_grant(
                &g,
                &access(&format!("twa_g{i}"), Some(&g), "c1", 1_000, NOW),
                Some(&refresh(&format!("twr_g{i}"), &g, 1_000, NOW - 1)),
            )
            .await
            .unwrap();
    }
    // A grant revoked long ago (beyond retention) with unexpired tokens: goes.
    let old = grant("g-revoked-old", "c1", "alice", 2_000);
    store
        .create_grant(
            &old,
            &access("twa_ro", Some(&old), "c1", 2_000, NOW + 10_000),
            Some(&refresh("twr_ro", &old, 2_000, NOW + 10_000)),
        )
        .await
        .unwrap();
    assert!(store
        .revoke_grant("g-revoked-old", NOW - 1_000)
        .await
        .unwrap());
    // A grant revoked recently: kept, tokens and all.
    let recent = grant("g-revoked-recent", "c1", "bob", 3_000);
    store
        .create_grant(
            &recent,
            &access("twa_rr", Some(&recent), "c1", 3_000, NOW + 10_000),
            Some(&refresh("twr_rr", &recent, 3_000, NOW + 10_000)),
        )
        .await
        .unwrap();
    assert!(store
        .revoke_grant("g-revoked-recent", NOW - 999)
        .await
        .unwrap());
    // A live grant whose access token expired but refresh token is alive (and used: a used
    // refresh token is kept until it expires, reuse detection needs it): grant kept.
    let live = grant("g-live", "c1", "carol", 4_000);
    store
        .create_grant(
            &live,
            &access("twa_l0", Some(&live), "c1", 4_000, NOW - 5),
            Some(&refresh("twr_l0", &live, 4_000, NOW + 10_000)),
        )
        .await
        .unwrap();
    let mut next = successor(&live, "l1", 5_000);
    next.access.expires_at = NOW - 3;
    next.refresh.expires_at = NOW + 10_000;
    assert!(matches!(
        store
            .rotate_refresh_token(&d("twr_l0"), &next, 5_000)
            .await
            .unwrap(),
        Rotation::Rotated
    ));

    // 5 codes expired beyond the retention go; one expired within it and a live one stay.
    for i in 0..5 {
        store
            .insert_authorization_code(&code(&format!("twc_dead{i}"), NOW - 1_000 - i))
            .await
            .unwrap();
    }
    for (name, exp) in [("twc_recent", NOW - 999), ("twc_live", NOW + 1)] {
        store
            .insert_authorization_code(&code(name, exp))
            .await
            .unwrap();
    }
    // 3 sessions past expiry go (the retention does not apply to them); a live one stays.
    for i in 0..3 {
        store
            .create_session(&session(&format!("tws_dead{i}"), NOW - i))
            .await
            .unwrap();
    }
    store
        .create_session(&session("tws_live", NOW + 1))
        .await
        .unwrap();

    let expected = PurgeCounts {
        access_tokens: 5 + 7 + 1 + 2, // cc, dead grants, revoked-old, g-live's two expired
        refresh_tokens: 7 + 1,        // dead grants, revoked-old
        grants: 7 + 1,
        authorization_codes: 5,
        sessions: 3,
        revocation_events: 0,
    };
    let dry = store.purge(NOW, policy(2), true).await.unwrap();
    assert_eq!(dry, expected);
    // A dry run deletes nothing: the same counts again.
    assert_eq!(store.purge(NOW, policy(3), true).await.unwrap(), expected);
    assert_eq!(
        store
            .list_grants(&GrantFilter::default())
            .await
            .unwrap()
            .len(),
        10
    );

    let done = store.purge(NOW, policy(2), false).await.unwrap();
    assert_eq!(done, expected);

    let left: Vec<String> = store
        .list_grants(&GrantFilter::default())
        .await
        .unwrap()
        .into_iter()
        .map(|g| g.grant_id)
        .collect();
    assert_eq!(left, ["g-revoked-recent", "g-live"]);
    for gone in ["twa_cc0", "twa_cc4", "twa_g6", "twa_ro", "twa_l0", "twa_l1"] {
        assert!(
            store.find_access_token(&d(gone)).await.unwrap().is_none(),
            "{gone}"
        );
    }
    for kept in ["twa_live0", "twa_live1", "twa_rr"] {
        assert!(
            store.find_access_token(&d(kept)).await.unwrap().is_some(),
            "{kept}"
        );
    }
    for gone in ["twr_g0", "twr_g6", "twr_ro"] {
        assert!(
            store.find_refresh_token(&d(gone)).await.unwrap().is_none(),
            "{gone}"
        );
    }
    let used = store
        .find_refresh_token(&d("twr_l0"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(used.used_at, Some(5_000));
    assert!(store
        .find_refresh_token(&d("twr_l1"))
        .await
        .unwrap()
        .is_some());
    assert!(store
        .find_refresh_token(&d("twr_rr"))
        .await
        .unwrap()
        .is_some());

    for gone in ["twc_dead0", "twc_dead4"] {
        assert!(
            store
                .find_authorization_code(&d(gone))
                .await
                .unwrap()
                .is_none(),
            "{gone}"
        );
    }
    for kept in ["twc_recent", "twc_live"] {
        assert!(
            store
                .find_authorization_code(&d(kept))
                .await
                .unwrap()
                .is_some(),
            "{kept}"
        );
    }
    assert!(store.find_session(&d("tws_dead0")).await.unwrap().is_none());
    assert!(store.find_session(&d("tws_live")).await.unwrap().is_some());

    // Nothing left to do.
    assert_eq!(
        store.purge(NOW, policy(2), false).await.unwrap(),
        PurgeCounts::default()
    );
    store.close().await;
}

#[tokio::test]
async fn purge_with_exact_multiple_and_zero_batch_size_finishes() {
    for batch in [0, 1, 4] {
        let db = TempDb::new("purge-batch");
        let store = db.open().await;
        for i in 0..4 {
            let g = grant(&format!("g{i}"), "c1", "alice", 1_000);
            store
                .create_grant(
                    &g,
                    &access(&format!("twa_{i}"), Some(&g), "c1", 1_000, NOW - 1),
                    Some(&refresh(&format!("twr_{i}"), &g, 1_000, NOW - 1)),
                )
                .await
                .unwrap();
        }
        let counts = store.purge(NOW, policy(batch), false).await.unwrap();
        assert_eq!(
            counts,
            PurgeCounts {
                access_tokens: 4,
                refresh_tokens: 4,
                grants: 4,
                authorization_codes: 0,
                sessions: 0,
                revocation_events: 0,
            },
            "batch {batch}"
        );
        store.close().await;
    }
}

#[tokio::test]
async fn grant_ids_sorting_first_are_purged_too() {
    let db = TempDb::new("purge-empty-id");
    let store = db.open().await;
    for id in ["", "a"] {
        let g = grant(id, "c1", "alice", 1_000);
        store
            .create_grant(
                &g,
                &access(&format!("twa_{id}"), Some(&g), "c1", 1_000, NOW - 1),
                None,
            )
            .await
            .unwrap();
    }
    let counts = store.purge(NOW, policy(1), false).await.unwrap();
    assert_eq!(counts.grants, 2);
    store.close().await;
}
