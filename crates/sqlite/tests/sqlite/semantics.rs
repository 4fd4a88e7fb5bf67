//! The admin operations and error mapping, against the memory store's behaviour.

use tokenwarden_core::store::{AdminStore as _, GrantFilter, Store as _, StoreError};

use crate::support::*;

#[tokio::test]
async fn clients_round_trip_conflict_and_list_in_id_order() {
    let db = TempDb::new("clients");
    let store = db.open().await;
    let mut public = client("b-public");
    public.secret_digest = None;
    public.grant_types = vec![];
    public.redirect_uris = vec![];
    public.cors_origins = vec![];
    public.scope = scope("");
    public.introspect = true;
    for c in [client("c"), public.clone(), client("a")] {
        store.create_client(&c).await.unwrap();
    }
    assert!(matches!(
        store.create_client(&client("a")).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(
        store.find_client("b-public").await.unwrap(),
        Some(public.clone())
    );
    assert_eq!(store.find_client("zzz").await.unwrap(), None);
    let ids: Vec<String> = store
        .list_clients()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.client_id)
        .collect();
    assert_eq!(ids, ["a", "b-public", "c"]);

    assert!(store
        .set_client_secret("a", &d("new-secret"))
        .await
        .unwrap());
    assert!(!store.set_client_secret("nope", &d("x")).await.unwrap());
    let a = store.find_client("a").await.unwrap().unwrap();
    assert_eq!(a.secret_digest, Some(d("new-secret")));
    store.close().await;
}

#[tokio::test]
async fn users_conflict_on_name() {
    let db = TempDb::new("users");
    let store = db.open().await;
    store.create_user(&user("alice")).await.unwrap();
    assert!(matches!(
        store.create_user(&user("alice")).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(store.find_user("alice").await.unwrap(), Some(user("alice")));
    assert_eq!(store.find_user("bob").await.unwrap(), None);
    store.close().await;
}

#[tokio::test]
async fn create_grant_is_all_or_nothing() {
    let db = TempDb::new("atomic");
    let store = db.open().await;
    let g = grant("g1", "c1", "alice", 1_000);
    store
        .insert_access_token(&access("twa_taken", None, "c1", 1_000, 2_000))
        .await
        .unwrap();
    // The access token digest collides: the grant and its refresh token must not appear.
    let err = store
        .create_grant(
            &g,
            &access("twa_taken", Some(&g), "c1", 1_000, 2_000),
            Some(&refresh("twr_1", &g, 1_000, 9_000)),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict), "{err:?}");
    assert!(store
        .list_grants(&GrantFilter::default())
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .find_refresh_token(&d("twr_1"))
        .await
        .unwrap()
        .is_none());
    assert!(matches!(
        store
            .insert_access_token(&access("twa_taken", None, "c1", 1_000, 2_000))
            .await,
        Err(StoreError::Conflict)
    ));
    store.close().await;
}

#[tokio::test]
async fn delete_client_revokes_its_grants_and_grantless_tokens() {
    let db = TempDb::new("delete-client");
    let store = db.open().await;
    store.create_client(&client("c1")).await.unwrap();
    store.create_client(&client("c2")).await.unwrap();
    let g1 = grant("g1", "c1", "alice", 1_000);
    let g2 = grant("g2", "c1", "bob", 1_001);
    let g3 = grant("g3", "c2", "alice", 1_002);
    for g in [&g1, &g2, &g3] {
        store
            .create_grant(
                g,
                &access(
                    &format!("twa_{}", g.grant_id),
                    Some(g),
                    &g.client_id,
                    1_000,
                    9_000,
                ),
                Some(&refresh(&format!("twr_{}", g.grant_id), g, 1_000, 9_000)),
            )
            .await
            .unwrap();
    }
    store
        .insert_access_token(&access("twa_cc1", None, "c1", 1_000, 9_000))
        .await
        .unwrap();
    store
        .insert_access_token(&access("twa_cc2", None, "c2", 1_000, 9_000))
        .await
        .unwrap();
    assert!(store.revoke_grant("g2", 1_500).await.unwrap());

    // g2 was already revoked: only g1 counts.
    assert_eq!(store.delete_client("c1", 2_000).await.unwrap(), Some(1));
    assert_eq!(store.delete_client("c1", 2_000).await.unwrap(), None);
    assert_eq!(store.find_client("c1").await.unwrap(), None);

    let grants = store.list_grants(&GrantFilter::default()).await.unwrap();
    let revoked: Vec<_> = grants
        .iter()
        .map(|g| (g.grant_id.as_str(), g.revoked_at))
        .collect();
    assert_eq!(
        revoked,
        [("g1", Some(2_000)), ("g2", Some(1_500)), ("g3", None)]
    );
    for t in ["twa_g1", "twa_g2", "twa_cc1"] {
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
    for t in ["twr_g1", "twr_g2"] {
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
    for t in ["twa_g3", "twa_cc2"] {
        assert!(
            !store
                .find_access_token(&d(t))
                .await
                .unwrap()
                .unwrap()
                .revoked,
            "{t}"
        );
    }
    assert!(
        !store
            .find_refresh_token(&d("twr_g3"))
            .await
            .unwrap()
            .unwrap()
            .revoked
    );
    store.close().await;
}

#[tokio::test]
async fn revoke_grants_and_list_grants_honour_the_filter() {
    let db = TempDb::new("filter");
    let store = db.open().await;
    let gs = [
        grant("g1", "c1", "alice", 1_003),
        grant("g2", "c2", "alice", 1_001),
        grant("g3", "c1", "bob", 1_002),
        grant("g0", "c1", "alice", 1_003),
    ];
    for g in &gs {
        store
            .create_grant(
                g,
                &access(
                    &format!("twa_{}", g.grant_id),
                    Some(g),
                    &g.client_id,
                    1_000,
                    9_000,
                ),
                None,
            )
            .await
            .unwrap();
    }
    let ids = |v: Vec<tokenwarden_core::model::Grant>| {
        v.into_iter().map(|g| g.grant_id).collect::<Vec<_>>()
    };
    let all = store.list_grants(&GrantFilter::default()).await.unwrap();
    assert_eq!(ids(all), ["g2", "g3", "g0", "g1"], "created_at, then id");
    let alice_c1 = GrantFilter {
        username: Some("alice".into()),
        client_id: Some("c1".into()),
    };
    assert_eq!(
        ids(store.list_grants(&alice_c1).await.unwrap()),
        ["g0", "g1"]
    );

    assert_eq!(store.revoke_grants(&alice_c1, 2_000).await.unwrap(), 2);
    assert_eq!(store.revoke_grants(&alice_c1, 2_001).await.unwrap(), 0);
    let by_user = GrantFilter {
        username: Some("alice".into()),
        client_id: None,
    };
    assert_eq!(store.revoke_grants(&by_user, 2_002).await.unwrap(), 1);
    assert!(
        store
            .find_access_token(&d("twa_g2"))
            .await
            .unwrap()
            .unwrap()
            .revoked
    );
    assert!(
        !store
            .find_access_token(&d("twa_g3"))
            .await
            .unwrap()
            .unwrap()
            .revoked
    );
    let g1 = &store.list_grants(&alice_c1).await.unwrap()[1];
    assert_eq!(g1.revoked_at, Some(2_000), "first revocation time kept");
    store.close().await;
}

#[tokio::test]
async fn access_token_state_folds_in_the_grant() {
    let db = TempDb::new("fold");
    let store = db.open().await;
    let g = grant("g1", "c1", "alice", 1_000);
    store
        .create_grant(&g, &access("twa_1", Some(&g), "c1", 1_000, 2_000), None)
        .await
        .unwrap();
    let s = store.find_access_token(&d("twa_1")).await.unwrap().unwrap();
    assert_eq!(s.record, access("twa_1", Some(&g), "c1", 1_000, 2_000));
    assert!(s.is_active(1_999));
    assert!(!s.is_active(2_000));
    store
        .revoke_access_token(&d("twa_nope"), 1_100)
        .await
        .unwrap();
    assert!(store.revoke_grant("g1", 1_100).await.unwrap());
    assert!(
        store
            .find_access_token(&d("twa_1"))
            .await
            .unwrap()
            .unwrap()
            .revoked
    );
    assert!(!store.revoke_grant("nope", 1_100).await.unwrap());
    store.close().await;
}

#[tokio::test]
async fn a_corrupt_row_is_unavailable_not_a_panic() {
    let db = TempDb::new("corrupt");
    let store = db.open().await;
    store.create_client(&client("c1")).await.unwrap();
    let mut conn = raw(&db.path).await;
    sqlx::query("UPDATE clients SET scope = 'bad\"quote', grant_types = '[\"password\"]'")
        .execute(&mut conn)
        .await
        .unwrap();
    let err = store.find_client("c1").await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(matches!(
        store.list_clients().await,
        Err(StoreError::Unavailable(_))
    ));
    store.close().await;
}
