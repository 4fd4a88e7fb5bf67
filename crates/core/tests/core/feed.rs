//! The revocation feed: which revocations append which events, and the subscription request
//! check (docs/revocation-feed.md).

use http::header::{ALLOW, WWW_AUTHENTICATE};
use http::{Method, StatusCode};
use tokenwarden_core::crypto::TokenDigest;
use tokenwarden_core::feed::{FeedPage, FeedSubscription, RevocationEvent, RevocationKind};
use tokenwarden_core::store::Store;

use crate::support::*;

const FEED: &str = "/oauth2/revocations";

async fn events(h: &Harness) -> Vec<RevocationEvent> {
    h.store().revocation_events(0, 1000).await.unwrap().events
}

async fn subscribe(h: &Harness, req: Req) -> Result<FeedSubscription, Resp> {
    h.server
        .authorize_revocation_feed(&req.build())
        .await
        .map_err(Resp::from)
}

#[tokio::test]
async fn revoking_an_access_token_appends_a_token_event_with_its_digest_and_grant() {
    let h = Harness::new().await;
    let tokens = h.user_grant(APP.0, "alice").await;
    h.advance(3);
    h.revoke_as(APP, &tokens.access, None)
        .await
        .assert_revocation_ok();
    let grant_id = h.grants().await[0].grant_id.clone();
    assert_eq!(
        events(&h).await,
        vec![RevocationEvent {
            seq: 1,
            at: T0 + 3,
            kind: RevocationKind::Token,
            client_id: "app".into(),
            token: Some(TokenDigest::of(&tokens.access)),
            grant_id: Some(grant_id),
            subject: None,
        }]
    );
    // A second revocation of the same token, and of an unknown one, append nothing.
    h.revoke_as(APP, &tokens.access, None)
        .await
        .assert_revocation_ok();
    h.revoke_as(APP, "twa_never_issued", None)
        .await
        .assert_revocation_ok();
    assert_eq!(events(&h).await.len(), 1);
}

#[tokio::test]
async fn revoking_a_refresh_token_appends_a_grant_event_naming_the_user() {
    let h = Harness::new().await;
    let tokens = h.user_grant(APP.0, "alice").await;
    h.revoke_as(APP, &tokens.refresh, Some("refresh_token"))
        .await
        .assert_revocation_ok();
    let e = events(&h).await;
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].kind, RevocationKind::Grant);
    assert_eq!(e[0].client_id, "app");
    assert_eq!(e[0].subject.as_deref(), Some("alice"));
    assert_eq!(
        e[0].grant_id.as_deref(),
        Some(h.grants().await[0].grant_id.as_str())
    );
    assert_eq!(e[0].token, None);
}

#[tokio::test]
async fn refresh_token_reuse_appends_a_grant_event() {
    let h = Harness::new().await;
    let first = h.user_grant(APP.0, "alice").await;
    h.refresh(APP, &first.refresh)
        .await
        .assert_status(StatusCode::OK);
    h.advance(31);
    let r = h.refresh(APP, &first.refresh).await;
    r.assert_status(StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["error"], "invalid_grant");
    let e = events(&h).await;
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].kind, RevocationKind::Grant);
    assert_eq!(e[0].at, T0 + 31);
    assert_eq!(e[0].subject.as_deref(), Some("alice"));
}

#[tokio::test]
async fn cascading_access_revocation_appends_token_then_grant_events() {
    let h = Harness::with_config(|c| c.revocation.revoke_access_cascades = true).await;
    let tokens = h.user_grant(APP.0, "alice").await;
    h.revoke_as(APP, &tokens.access, None)
        .await
        .assert_revocation_ok();
    let kinds: Vec<RevocationKind> = events(&h).await.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, vec![RevocationKind::Token, RevocationKind::Grant]);
}

#[tokio::test]
async fn a_refused_revocation_appends_nothing() {
    let h = Harness::new().await;
    let tokens = h.user_grant(APP.0, "alice").await;
    // Another client's token is refused (README: differences from oauthlib); nothing revoked.
    h.revoke_as(OTHER, &tokens.access, None)
        .await
        .assert_status(StatusCode::BAD_REQUEST);
    assert!(events(&h).await.is_empty());
    h.revoke_as(APP, &tokens.access, None).await; // then the owner does
    assert_eq!(events(&h).await.len(), 1);
    assert_eq!(
        h.store().revocation_events(1, 10).await.unwrap(),
        FeedPage {
            events: vec![],
            head: 1,
            floor: 0
        }
    );
}

#[tokio::test]
async fn resource_server_subscribes_with_basic_and_a_cursor() {
    let h = Harness::new().await;
    let get = || Req::new(Method::GET, FEED).basic(RS.0, RS.1);
    let subscription = subscribe(&h, get()).await.unwrap();
    assert_eq!(subscription.client.client_id, "rs");
    assert!(subscription.client.introspect);
    assert_eq!(subscription.cursor, None);
    assert_eq!(
        subscribe(
            &h,
            get().header(http::HeaderName::from_static("last-event-id"), "41")
        )
        .await
        .unwrap()
        .cursor,
        Some(41)
    );
    assert_eq!(
        subscribe(&h, get().with_uri("/oauth2/revocations?since=7"))
            .await
            .unwrap()
            .cursor,
        Some(7)
    );
    // Last-Event-ID (what an EventSource sends on reconnect) wins over the URL.
    assert_eq!(
        subscribe(
            &h,
            get()
                .with_uri("/oauth2/revocations?since=7")
                .header(http::HeaderName::from_static("last-event-id"), "9")
        )
        .await
        .unwrap()
        .cursor,
        Some(9)
    );
}

#[tokio::test]
async fn feed_rejects_bad_cursors_and_unknown_parameters() {
    let h = Harness::new().await;
    let get = || Req::new(Method::GET, FEED).basic(RS.0, RS.1);
    for req in [
        get().header(http::HeaderName::from_static("last-event-id"), "-1"),
        get().header(http::HeaderName::from_static("last-event-id"), "abc"),
        get().with_uri("/oauth2/revocations?since=1.5"),
        get().with_uri("/oauth2/revocations?cursor=1"),
        get().with_uri("/oauth2/revocations?since=1&client_secret=x"),
        get().with_uri("/oauth2/revocations?since="),
        get().with_uri("/oauth2/revocations?since=%2B5"),
        get().with_uri("/oauth2/revocations?since=1&since=2"),
        get().with_uri("/oauth2/revocations?x="),
        get().header(http::HeaderName::from_static("last-event-id"), "+5"),
        get().header(http::HeaderName::from_static("last-event-id"), ""),
        // The query is checked even when Last-Event-ID is present.
        get()
            .with_uri("/oauth2/revocations?token=abc")
            .header(http::HeaderName::from_static("last-event-id"), "3"),
    ] {
        subscribe(&h, req)
            .await
            .unwrap_err()
            .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    }
}

#[tokio::test]
async fn feed_requires_a_resource_server_authenticated_with_basic() {
    let h = Harness::new().await;
    let r = subscribe(&h, Req::new(Method::GET, FEED))
        .await
        .unwrap_err();
    r.assert_error(StatusCode::UNAUTHORIZED, "invalid_client");
    assert!(r.header(WWW_AUTHENTICATE).is_some());
    subscribe(&h, Req::new(Method::GET, FEED).basic(RS.0, "wrong"))
        .await
        .unwrap_err()
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_client");
    subscribe(&h, Req::new(Method::GET, FEED).basic(APP.0, APP.1))
        .await
        .unwrap_err()
        .assert_error(StatusCode::FORBIDDEN, "unauthorized_client");
    let r = subscribe(&h, Req::post(FEED).basic(RS.0, RS.1).form(&[]))
        .await
        .unwrap_err();
    r.assert_status(StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.header(ALLOW), Some("GET"));
}

#[tokio::test]
async fn metadata_advertises_the_feed() {
    let h = Harness::new().await;
    assert_eq!(
        h.server.metadata_document()["revocation_feed_endpoint"],
        format!("{ISSUER}{FEED}")
    );
}
