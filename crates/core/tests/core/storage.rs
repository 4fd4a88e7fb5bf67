//! Storage failure → `503 temporarily_unavailable`, never a silent success, and the internal
//! cause never reaches the client.

use http::StatusCode;
use serde_json::Value;
use tokenwarden_core::crypto::TokenDigest;
use tokenwarden_core::store::{GrantFilter, Store};

use crate::support::*;

async fn flaky() -> Harness<FlakyStore> {
    let store = FlakyStore::default();
    seed_clients(&store.inner).await;
    Harness::with_store(store, |_| {})
}

#[track_caller]
fn assert_unavailable(r: &Resp) {
    r.assert_error(StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable");
    assert!(
        !r.text().contains("fire"),
        "internal cause leaked: {}",
        r.text()
    );
    assert!(
        !r.text().contains("secret.db"),
        "internal cause leaked: {}",
        r.text()
    );
}

/// Issues a user grant through the inner store's server path, with storage healthy.
async fn grant(h: &Harness<FlakyStore>) -> Tokens {
    let client = h.store().inner.find_client(APP.0).await.unwrap().unwrap();
    let body = h
        .server
        .issue_user_grant(&client, "alice", None)
        .await
        .unwrap();
    Tokens::from_body(&body)
}

#[tokio::test]
async fn storage_failure_on_every_endpoint_is_503_temporarily_unavailable() {
    let h = flaky().await;
    let token = h.client_credentials(APP).await;
    let tokens = grant(&h).await;
    h.store().set(true, true);
    let requests = [
        (
            TOKEN,
            Req::post(TOKEN)
                .basic(APP.0, APP.1)
                .form(&[("grant_type", "client_credentials")]),
        ),
        (
            TOKEN,
            Req::post(TOKEN).basic(APP.0, APP.1).form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", &tokens.refresh),
            ]),
        ),
        (
            REVOKE,
            Req::post(REVOKE)
                .basic(APP.0, APP.1)
                .form(&[("token", &token)]),
        ),
        (
            INTROSPECT,
            Req::post(INTROSPECT)
                .basic(APP.0, APP.1)
                .form(&[("token", &token)]),
        ),
    ];
    for (path, req) in requests {
        assert_unavailable(&h.call(path, req.build()).await);
    }
    h.store().set(false, false);
    assert!(h.is_active(&token).await);
    assert!(h.is_active(&tokens.access).await);
}

#[tokio::test]
async fn failure_to_store_an_issued_token_is_503_and_no_token_is_handed_out() {
    let h = flaky().await;
    h.store().set(false, true);
    let r = h
        .token(
            Req::post(TOKEN)
                .basic(APP.0, APP.1)
                .form(&[("grant_type", "client_credentials")])
                .build(),
        )
        .await;
    assert_unavailable(&r);
    assert!(r.json().get("access_token").is_none());
    h.store().set(false, false);
    let client = h.store().inner.find_client(APP.0).await.unwrap().unwrap();
    h.store().set(false, true);
    assert!(h
        .server
        .issue_user_grant(&client, "alice", None)
        .await
        .is_err());
    h.store().set(false, false);
    let grants =
        tokenwarden_core::store::AdminStore::list_grants(&h.store().inner, &GrantFilter::default())
            .await
            .unwrap();
    assert!(grants.is_empty(), "no grant stored");
}

#[tokio::test]
async fn storage_failure_during_refresh_leaves_the_refresh_token_usable() {
    let h = flaky().await;
    let tokens = grant(&h).await;
    h.store().set(false, true);
    assert_unavailable(&h.refresh(APP, &tokens.refresh).await);
    h.store().set(false, false);
    let state = h
        .store()
        .inner
        .find_refresh_token(&TokenDigest::of(&tokens.refresh))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(state.used_at, None, "not consumed");
    let r = h.refresh(APP, &tokens.refresh).await;
    r.assert_status(StatusCode::OK);
}

#[tokio::test]
async fn storage_failure_during_revocation_is_503_not_200() {
    let h = flaky().await;
    let token = h.client_credentials(APP).await;
    let tokens = grant(&h).await;
    h.store().set(false, true);
    for t in [&token, &tokens.access, &tokens.refresh] {
        assert_unavailable(&h.revoke_as(APP, t, None).await);
    }
    h.store().set(false, false);
    assert!(h.is_active(&token).await, "the 503 did not half-revoke");
    assert!(h.is_active(&tokens.refresh).await);
}

#[tokio::test]
async fn storage_failure_during_introspection_is_503_not_inactive() {
    let h = flaky().await;
    let token = h.client_credentials(APP).await;
    // Client lookup works, token lookup fails: still 503, never {"active":false}.
    h.store()
        .fail_token_reads
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let r = h
        .introspect(
            Req::post(INTROSPECT)
                .basic(APP.0, APP.1)
                .form(&[("token", &token)])
                .build(),
        )
        .await;
    assert_unavailable(&r);
    assert_ne!(r.json().get("active"), Some(&Value::Bool(false)));
}
