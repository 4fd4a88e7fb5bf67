//! The introspection endpoint (RFC 7662).

use http::StatusCode;
use serde_json::json;
use tokenwarden_core::crypto::TokenDigest;
use tokenwarden_core::Outcome;

use crate::support::*;

#[tokio::test]
async fn active_access_token_carries_every_claim() {
    let h = Harness::new().await;
    let tokens = h.user_grant(APP.0, "alice").await;
    h.advance(10);
    let r = h
        .introspect(
            Req::post(INTROSPECT)
                .basic(APP.0, APP.1)
                .form(&[("token", &tokens.access)])
                .build(),
        )
        .await;
    r.assert_status(StatusCode::OK);
    r.assert_json_headers();
    assert_eq!(r.outcome, Some(Outcome::Active));
    assert_eq!(
        r.json(),
        json!({
            "active": true,
            "scope": "read write",
            "client_id": "app",
            "username": "alice",
            "token_type": "Bearer",
            "exp": T0 + 3600,
            "iat": T0,
            "sub": "alice",
            "aud": "app",
            "iss": ISSUER,
            "jti": TokenDigest::of(&tokens.access).jti(),
        })
    );
}

#[tokio::test]
async fn active_refresh_token_is_reported_as_refresh_token() {
    let h = Harness::new().await;
    let tokens = h.user_grant(APP.0, "alice").await;
    let v = h.introspect_as(APP, &tokens.refresh).await;
    assert_eq!(v["active"], true);
    assert_eq!(v["token_type"], "refresh_token");
    assert_eq!(v["username"], "alice");
    assert_eq!(v["sub"], "alice");
    assert_eq!(v["exp"], T0 + 60 * 24 * 3600);
    assert_eq!(v["jti"], TokenDigest::of(&tokens.refresh).jti());
    assert_ne!(v["jti"], TokenDigest::of(&tokens.access).jti());
}

#[tokio::test]
async fn client_credentials_token_has_the_client_as_subject_and_no_username() {
    let h = Harness::new().await;
    let token = h.client_credentials(APP).await;
    let v = h.introspect_as(APP, &token).await;
    assert_eq!(v["active"], true);
    assert_eq!(v["sub"], "app");
    assert_eq!(v["client_id"], "app");
    assert!(v.get("username").is_none(), "{v}");
}

#[tokio::test]
async fn expired_token_is_exactly_active_false() {
    let h = Harness::new().await;
    let token = h.client_credentials(APP).await;
    h.advance(3599);
    assert_eq!(h.introspect_as(APP, &token).await["active"], true);
    h.advance(1); // now == exp
    let r = h
        .introspect(
            Req::post(INTROSPECT)
                .basic(APP.0, APP.1)
                .form(&[("token", &token)])
                .build(),
        )
        .await;
    r.assert_status(StatusCode::OK);
    r.assert_json_headers();
    assert_eq!(r.text(), r#"{"active":false}"#);
    assert_eq!(r.outcome, Some(Outcome::Inactive));
}

#[tokio::test]
async fn unknown_or_revoked_token_is_inactive() {
    let h = Harness::new().await;
    assert_eq!(
        h.introspect_as(APP, "twa_unknown").await,
        json!({"active": false})
    );
    let token = h.client_credentials(APP).await;
    h.revoke_as(APP, &token, None).await.assert_revocation_ok();
    assert_eq!(h.introspect_as(APP, &token).await, json!({"active": false}));
}

#[tokio::test]
async fn another_clients_token_is_inactive() {
    let h = Harness::new().await;
    let token = h.client_credentials(APP).await;
    let tokens = h.user_grant(APP.0, "alice").await;
    for t in [&token, &tokens.access, &tokens.refresh] {
        assert_eq!(h.introspect_as(OTHER, t).await, json!({"active": false}));
    }
    // Introspection by another client changes nothing.
    assert_eq!(h.introspect_as(APP, &token).await["active"], true);
}

#[tokio::test]
async fn introspect_client_sees_any_token() {
    let h = Harness::new().await;
    let token = h.client_credentials(OTHER).await;
    let tokens = h.user_grant(APP.0, "alice").await;
    let v = h.introspect_as(RS, &token).await;
    assert_eq!(v["active"], true);
    assert_eq!(v["client_id"], "other");
    let v = h.introspect_as(RS, &tokens.access).await;
    assert_eq!(v["active"], true);
    assert_eq!(v["client_id"], "app");
    assert_eq!(v["aud"], "app");
    assert_eq!(h.introspect_as(RS, &tokens.refresh).await["active"], true);
}

#[tokio::test]
async fn public_client_may_not_introspect() {
    let h = Harness::new().await;
    let tokens = h.user_grant(SPA, "alice").await;
    let r = h
        .introspect(
            Req::post(INTROSPECT)
                .form(&[("token", &tokens.access), ("client_id", SPA)])
                .build(),
        )
        .await;
    r.assert_error(StatusCode::UNAUTHORIZED, "invalid_client");
}

#[tokio::test]
async fn refresh_token_hint_still_finds_access_tokens() {
    let h = Harness::new().await;
    let tokens = h.user_grant(APP.0, "alice").await;
    for (token, hint, token_type) in [
        (&tokens.access, "refresh_token", "Bearer"),
        (&tokens.refresh, "access_token", "refresh_token"),
        (&tokens.access, "something_else", "Bearer"),
    ] {
        let r = h
            .introspect(
                Req::post(INTROSPECT)
                    .basic(APP.0, APP.1)
                    .form(&[("token", token), ("token_type_hint", hint)])
                    .build(),
            )
            .await;
        r.assert_status(StatusCode::OK);
        let v = r.json();
        assert_eq!(v["active"], true, "hint {hint}");
        assert_eq!(v["token_type"], token_type);
    }
}

#[tokio::test]
async fn missing_token_is_invalid_request() {
    let h = Harness::new().await;
    let r = h
        .introspect(
            Req::post(INTROSPECT)
                .basic(APP.0, APP.1)
                .form(&[("token_type_hint", "access_token")])
                .build(),
        )
        .await;
    r.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
}
