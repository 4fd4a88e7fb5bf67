//! What PostgreSQL needs care with to behave like the memory store: byte-order sorting whatever
//! the database locale, arrays holding any string, corrupt rows.

use tokenwarden_core::model::GrantType;
use tokenwarden_core::store::{
    AccountStore as _, AdminStore as _, GrantFilter, Store as _, StoreError,
};

use crate::support::*;

/// `list_clients` is in byte order (Rust's `str::cmp`), and `list_grants` ties on `grant_id` in
/// byte order, even for ids a locale would sort differently (case, accents, punctuation).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL (scripts/test starts it)"]
async fn lists_are_in_byte_order_whatever_the_locale() {
    with_schema("byte_order", |schema| async move {
        let store = schema.open().await;
        let ids = ["b", "B", "a", "A", "_x", "é", "e", "Z9", "a-b", "ab"];
        for id in ids {
            store.create_client(&client(id)).await.unwrap();
            let g = grant(id, id, "alice", 1_000);
            store
                .create_grant(
                    &g,
                    &access(&format!("twa_{id}"), Some(&g), id, 1_000, 9_000),
                    None,
                )
                .await
                .unwrap();
        }
        let mut expected: Vec<&str> = ids.to_vec();
        expected.sort_unstable();
        let listed: Vec<String> = store
            .list_clients()
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.client_id)
            .collect();
        assert_eq!(listed, expected);
        let grants: Vec<String> = store
            .list_grants(&GrantFilter::default())
            .await
            .unwrap()
            .into_iter()
            .map(|g| g.grant_id)
            .collect();
        assert_eq!(grants, expected);
        store.close().await;
    })
    .await;
}

/// Client lists round-trip exactly, including strings an array literal would have to quote, and
/// empty lists; a public client has no secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL (scripts/test starts it)"]
async fn client_lists_round_trip_any_string() {
    with_schema("arrays", |schema| async move {
        let store = schema.open().await;
        let mut c = client("odd");
        c.redirect_uris = vec![
            "https://a.example/cb?x={1,2}&y=\"q\"".into(),
            "http://127.0.0.1:9/a\\b c".into(),
            "NULL".into(),
            String::new(),
        ];
        c.cors_origins = vec![];
        c.grant_types = vec![GrantType::ClientCredentials];
        c.secret_digest = None;
        store.create_client(&c).await.unwrap();
        assert_eq!(store.find_client("odd").await.unwrap(), Some(c));
        store.close().await;
    })
    .await;
}

/// A row another writer corrupted reads as `Unavailable`, never as a panic or a half-valid value.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL (scripts/test starts it)"]
async fn a_corrupt_row_is_unavailable_not_a_panic() {
    with_schema("corrupt", |schema| async move {
        let store = schema.open().await;
        store.create_client(&client("c1")).await.unwrap();
        let g = grant("g1", "c1", "alice", 1_000);
        store
            .create_grant(
                &g,
                &access("twa_1", Some(&g), "c1", 1_000, 9_000),
                Some(&refresh("twr_1", &g, 1_000, 9_000)),
            )
            .await
            .unwrap();
        let mut raw = schema.raw().await;
        sqlx::raw_sql(
            "UPDATE clients SET grant_types = ARRAY['password']; \
             UPDATE refresh_tokens SET scope = 'bad\"quote'; \
             UPDATE grants SET scope = 'back\\slash';",
        )
        .execute(&mut raw)
        .await
        .unwrap();
        assert!(matches!(
            store.find_client("c1").await,
            Err(StoreError::Unavailable(m)) if m.contains("clients.grant_types")
        ));
        assert!(matches!(
            store.list_clients().await,
            Err(StoreError::Unavailable(_))
        ));
        assert!(matches!(
            store.find_refresh_token(&d("twr_1")).await,
            Err(StoreError::Unavailable(m)) if m.contains("refresh_tokens.scope")
        ));
        assert!(matches!(
            store.list_grants(&GrantFilter::default()).await,
            Err(StoreError::Unavailable(m)) if m.contains("grants.scope")
        ));
        store.close().await;
    })
    .await;
}

/// PostgreSQL text cannot hold U+0000, so nothing stored has it in its key: a lookup by such a key
/// answers "none", as the memory store does, instead of failing (a `%00` in a login form must not
/// become a 503). Nothing else is touched.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL (scripts/test starts it)"]
async fn lookups_by_a_key_containing_nul_match_nothing() {
    with_schema("nul_keys", |schema| async move {
        let store = schema.open().await;
        store.create_client(&client("c1")).await.unwrap();
        store.create_user(&user("alice")).await.unwrap();
        let g = grant("g1", "c1", "alice", 1_000);
        store
            .create_grant(&g, &access("twa_1", Some(&g), "c1", 1_000, 9_000), None)
            .await
            .unwrap();
        let nul = "c1\0";
        assert_eq!(store.find_client(nul).await.unwrap(), None);
        assert_eq!(store.find_user("alice\0").await.unwrap(), None);
        assert_eq!(store.find_consent("alice", nul).await.unwrap(), None);
        assert!(!store.set_client_secret(nul, &d("s")).await.unwrap());
        assert_eq!(store.delete_client(nul, 2_000).await.unwrap(), None);
        assert!(!store.revoke_grant("g1\0", 2_000).await.unwrap());
        store.delete_consent("alice\0", "c1").await.unwrap();
        let f = GrantFilter {
            username: Some("alice\0".into()),
            client_id: None,
        };
        assert!(store.list_grants(&f).await.unwrap().is_empty());
        assert_eq!(store.revoke_grants(&f, 2_000).await.unwrap(), 0);
        assert!(store.find_client("c1").await.unwrap().is_some());
        assert!(
            !store
                .find_access_token(&d("twa_1"))
                .await
                .unwrap()
                .unwrap()
                .revoked
        );
        store.close().await;
    })
    .await;
}
