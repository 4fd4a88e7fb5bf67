//! The revocation endpoint (RFC 7009).

use http::header::CONTENT_TYPE;
use http::StatusCode;
use serde_json::Value;
use tokenwarden_core::config::TokenTypeHint;
use tokenwarden_core::Outcome;

use crate::support::*;

#[tokio::test]
async fn revoking_an_unknown_token_is_200_with_an_empty_body() {
    let h = Harness::new().await;
    let r = h.revoke_as(APP, "twa_neverissued", None).await;
    r.assert_revocation_ok();
    assert_eq!(r.outcome, Some(Outcome::NothingToRevoke));
    let r = h
        .revoke_as(APP, "twr_neverissued", Some("refresh_token"))
        .await;
    r.assert_revocation_ok();
}

#[tokio::test]
async fn revoking_an_access_token_makes_it_inactive() {
    let h = Harness::new().await;
    let token = h.client_credentials(APP).await;
    let r = h.revoke_as(APP, &token, Some("access_token")).await;
    r.assert_revocation_ok();
    assert_eq!(r.outcome, Some(Outcome::Revoked));
    assert!(h.access_state(&token).await.unwrap().revoked);
    assert!(!h.is_active(&token).await);
}

#[tokio::test]
async fn revoking_an_expired_token_is_200() {
    let h = Harness::new().await;
    let token = h.client_credentials(APP).await;
    h.advance(3600 + 1);
    h.revoke_as(APP, &token, None).await.assert_revocation_ok();
    let tokens = h.user_grant(APP.0, "alice").await;
    h.advance(60 * 24 * 3600 + 1);
    h.revoke_as(APP, &tokens.refresh, Some("refresh_token"))
        .await
        .assert_revocation_ok();
}

#[tokio::test]
async fn revoking_an_already_revoked_token_is_200() {
    let h = Harness::new().await;
    let token = h.client_credentials(APP).await;
    h.revoke_as(APP, &token, None).await.assert_revocation_ok();
    let r = h.revoke_as(APP, &token, None).await;
    r.assert_revocation_ok();
    assert_eq!(r.outcome, Some(Outcome::NothingToRevoke));
    let tokens = h.user_grant(APP.0, "alice").await;
    h.revoke_as(APP, &tokens.refresh, None)
        .await
        .assert_revocation_ok();
    h.revoke_as(APP, &tokens.refresh, None)
        .await
        .assert_revocation_ok();
    h.revoke_as(APP, &tokens.access, None)
        .await
        .assert_revocation_ok();
}

#[tokio::test]
async fn hint_orders_the_lookup_but_never_limits_it() {
    let h = Harness::new().await;
    // An access token hinted as a refresh token is still found and revoked.
    let access = h.client_credentials(APP).await;
    h.revoke_as(APP, &access, Some("refresh_token"))
        .await
        .assert_revocation_ok();
    assert!(h.access_state(&access).await.unwrap().revoked);
    // A refresh token hinted as an access token likewise.
    let tokens = h.user_grant(APP.0, "alice").await;
    h.revoke_as(APP, &tokens.refresh, Some("access_token"))
        .await
        .assert_revocation_ok();
    assert!(h.refresh_state(&tokens.refresh).await.unwrap().revoked);
}

#[tokio::test]
async fn unknown_token_type_hint_is_ignored() {
    let h = Harness::new().await;
    for hint in [
        "id_token",
        "urn:ietf:params:oauth:token-type:jwt",
        "ACCESS_TOKEN",
    ] {
        let access = h.client_credentials(APP).await;
        h.revoke_as(APP, &access, Some(hint))
            .await
            .assert_revocation_ok();
        assert!(h.access_state(&access).await.unwrap().revoked, "{hint}");
    }
    let tokens = h.user_grant(APP.0, "alice").await;
    h.revoke_as(APP, &tokens.refresh, Some("id_token"))
        .await
        .assert_revocation_ok();
    assert!(h.refresh_state(&tokens.refresh).await.unwrap().revoked);
}

#[tokio::test]
async fn revoking_another_clients_token_is_invalid_request_and_revokes_nothing() {
    let h = Harness::new().await;
    let cc = h.client_credentials(APP).await;
    let tokens = h.user_grant(APP.0, "alice").await;
    for (token, hint) in [
        (&cc, None),
        (&cc, Some("refresh_token")),
        (&tokens.access, None),
        (&tokens.refresh, None),
        (&tokens.refresh, Some("refresh_token")),
    ] {
        let r = h.revoke_as(OTHER, token, hint).await;
        r.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    }
    // Also not through a public client.
    let r = h
        .revoke(
            Req::post(REVOKE)
                .form(&[("token", &tokens.refresh), ("client_id", SPA)])
                .build(),
        )
        .await;
    r.assert_error(StatusCode::BAD_REQUEST, "invalid_request");

    assert!(!h.access_state(&cc).await.unwrap().revoked);
    assert!(!h.access_state(&tokens.access).await.unwrap().revoked);
    assert!(!h.refresh_state(&tokens.refresh).await.unwrap().revoked);
    assert_eq!(h.grants().await[0].revoked_at, None);
}

#[tokio::test]
async fn revoking_refresh_token_revokes_its_access_tokens() {
    let h = Harness::new().await;
    let first = h.user_grant(APP.0, "alice").await;
    let other_grant = h.user_grant(APP.0, "bob").await;
    let r = h.refresh(APP, &first.refresh).await;
    r.assert_status(StatusCode::OK);
    let second = Tokens::from_body(&r.body);
    h.advance(5);

    let r = h
        .revoke_as(APP, &second.refresh, Some("refresh_token"))
        .await;
    r.assert_revocation_ok();
    assert_eq!(r.outcome, Some(Outcome::Revoked));
    for access in [&first.access, &second.access] {
        assert!(!h.is_active(access).await);
        assert!(h.access_state(access).await.unwrap().revoked);
    }
    for refresh in [&first.refresh, &second.refresh] {
        assert!(h.refresh_state(refresh).await.unwrap().revoked);
    }
    h.refresh(APP, &second.refresh)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_grant");
    let grants = h.grants().await;
    let revoked: Vec<_> = grants.iter().filter(|g| g.revoked_at.is_some()).collect();
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0].username, "alice");
    assert_eq!(revoked[0].revoked_at, Some(T0 + 5));
    // Bob's grant is untouched.
    assert!(h.is_active(&other_grant.access).await);
}

#[tokio::test]
async fn revoking_a_used_refresh_token_revokes_its_grant() {
    let h = Harness::new().await;
    let first = h.user_grant(APP.0, "alice").await;
    let r = h.refresh(APP, &first.refresh).await;
    let second = Tokens::from_body(&r.body);
    h.revoke_as(APP, &first.refresh, None)
        .await
        .assert_revocation_ok();
    assert!(!h.is_active(&second.access).await);
    h.refresh(APP, &second.refresh)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_grant");
}

#[tokio::test]
async fn revoking_access_token_leaves_the_refresh_token_alive() {
    let h = Harness::new().await;
    let first = h.user_grant(APP.0, "alice").await;
    h.revoke_as(APP, &first.access, None)
        .await
        .assert_revocation_ok();
    assert!(!h.is_active(&first.access).await);
    assert!(!h.refresh_state(&first.refresh).await.unwrap().revoked);
    assert_eq!(h.grants().await[0].revoked_at, None);
    let r = h.refresh(APP, &first.refresh).await;
    r.assert_status(StatusCode::OK);
    let second = Tokens::from_body(&r.body);
    assert!(h.is_active(&second.access).await);
}

#[tokio::test]
async fn revoke_access_cascades_revokes_the_whole_grant() {
    let h = Harness::with_config(|c| c.revocation.revoke_access_cascades = true).await;
    let first = h.user_grant(APP.0, "alice").await;
    h.revoke_as(APP, &first.access, None)
        .await
        .assert_revocation_ok();
    assert!(h.grants().await[0].revoked_at.is_some());
    assert!(h.refresh_state(&first.refresh).await.unwrap().revoked);
    h.refresh(APP, &first.refresh)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_grant");
    // A grant-less token cascades to nothing and still revokes.
    let cc = h.client_credentials(APP).await;
    h.revoke_as(APP, &cc, None).await.assert_revocation_ok();
    assert!(h.access_state(&cc).await.unwrap().revoked);
}

#[tokio::test]
async fn refresh_token_hint_without_refresh_support_is_unsupported_token_type() {
    let h = Harness::with_config(|c| {
        c.revocation.supported_token_types = vec![TokenTypeHint::AccessToken];
    })
    .await;
    let tokens = h.user_grant(APP.0, "alice").await;
    let r = h
        .revoke_as(APP, &tokens.refresh, Some("refresh_token"))
        .await;
    r.assert_error(StatusCode::BAD_REQUEST, "unsupported_token_type");
    assert!(!h.refresh_state(&tokens.refresh).await.unwrap().revoked);
    assert_eq!(h.grants().await[0].revoked_at, None);
    // Access tokens are still revocable.
    h.revoke_as(APP, &tokens.access, Some("access_token"))
        .await
        .assert_revocation_ok();
    assert!(h.access_state(&tokens.access).await.unwrap().revoked);
}

#[tokio::test]
async fn validate_revocation_request_checks_without_revoking() {
    let h = Harness::new().await;
    let tokens = h.user_grant(APP.0, "alice").await;
    let req = Req::post(REVOKE)
        .basic(APP.0, APP.1)
        .form(&[
            ("token", &tokens.refresh),
            ("token_type_hint", "refresh_token"),
        ])
        .build();
    let validated = h.server.validate_revocation_request(&req).await.unwrap();
    assert_eq!(validated.token.secret(), tokens.refresh);
    assert_eq!(validated.token_type_hint, Some(TokenTypeHint::RefreshToken));
    assert_eq!(validated.client.client.client_id, APP.0);
    assert_eq!(validated.callback, None);
    assert!(!h.refresh_state(&tokens.refresh).await.unwrap().revoked);
    assert!(h.is_active(&tokens.access).await);

    // Failures come back as errors, also without side effects.
    let bad = Req::post(REVOKE)
        .basic(OTHER.0, "wrong")
        .form(&[("token", &tokens.refresh)])
        .build();
    let err = h
        .server
        .validate_revocation_request(&bad)
        .await
        .unwrap_err();
    assert_eq!(err.error.error.status, StatusCode::UNAUTHORIZED);
    let missing = Req::post(REVOKE).basic(APP.0, APP.1).build();
    let err = h
        .server
        .validate_revocation_request(&missing)
        .await
        .unwrap_err();
    assert_eq!(err.error.error.status, StatusCode::BAD_REQUEST);
    assert!(h.is_active(&tokens.access).await);
}

#[tokio::test]
async fn public_client_revokes_its_own_token() {
    let h = Harness::new().await;
    let tokens = h.user_grant(SPA, "alice").await;
    let r = h
        .revoke(
            Req::post(REVOKE)
                .form(&[("token", &tokens.refresh), ("client_id", SPA)])
                .build(),
        )
        .await;
    r.assert_revocation_ok();
    assert!(h.refresh_state(&tokens.refresh).await.unwrap().revoked);
    assert!(h.access_state(&tokens.access).await.unwrap().revoked);
}

#[tokio::test]
async fn missing_token_is_invalid_request() {
    let h = Harness::new().await;
    let r = h
        .revoke(
            Req::post(REVOKE)
                .basic(APP.0, APP.1)
                .form(&[("token_type_hint", "access_token")])
                .build(),
        )
        .await;
    r.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
}

// --- JSONP (RFC 7009 §2.3) ---------------------------------------------------------------------

async fn jsonp() -> Harness {
    Harness::with_config(|c| c.revocation.enable_jsonp = true).await
}

fn assert_javascript(r: &Resp) {
    r.assert_status(StatusCode::OK);
    assert_eq!(r.header(CONTENT_TYPE), Some("application/javascript"));
    r.assert_no_store();
}

/// The JSON argument of `cb(…);`.
fn callback_argument(body: &str, cb: &str) -> Value {
    let inner = body
        .strip_prefix(&format!("{cb}("))
        .and_then(|b| b.strip_suffix(");"))
        .unwrap_or_else(|| panic!("not a {cb}(…); call: {body}"));
    serde_json::from_str(inner).unwrap()
}

#[tokio::test]
async fn jsonp_success_calls_the_callback_with_no_argument() {
    let h = jsonp().await;
    let token = h.client_credentials(APP).await;
    let r = h
        .revoke(
            Req::post(&format!("{REVOKE}?callback=cb"))
                .basic(APP.0, APP.1)
                .form(&[("token", &token)])
                .build(),
        )
        .await;
    assert_javascript(&r);
    assert_eq!(r.text(), "cb();");
    assert!(h.access_state(&token).await.unwrap().revoked);

    // Dotted identifier paths are accepted too; an unknown token is still a success.
    let r = h
        .revoke(
            Req::post(&format!("{REVOKE}?callback=$.app_1.done"))
                .basic(APP.0, APP.1)
                .form(&[("token", "twa_unknown")])
                .build(),
        )
        .await;
    assert_javascript(&r);
    assert_eq!(r.text(), "$.app_1.done();");
}

#[tokio::test]
async fn jsonp_error_calls_the_callback_with_the_error() {
    let h = jsonp().await;
    let token = h.client_credentials(APP).await;
    // Another client's token.
    let r = h
        .revoke(
            Req::post(&format!("{REVOKE}?callback=cb"))
                .basic(OTHER.0, OTHER.1)
                .form(&[("token", &token)])
                .build(),
        )
        .await;
    assert_javascript(&r);
    assert!(r.text().starts_with("cb({\"error\":"), "{}", r.text());
    let arg = callback_argument(r.text(), "cb");
    assert_eq!(arg["error"], "invalid_request");
    assert!(arg["error_description"].is_string());
    assert!(
        !h.access_state(&token).await.unwrap().revoked,
        "nothing revoked"
    );
    // Failed client authentication.
    let r = h
        .revoke(
            Req::post(&format!("{REVOKE}?callback=cb"))
                .basic(APP.0, "wrong")
                .form(&[("token", &token)])
                .build(),
        )
        .await;
    assert_javascript(&r);
    assert_eq!(callback_argument(r.text(), "cb")["error"], "invalid_client");
    assert!(!h.access_state(&token).await.unwrap().revoked);
}

#[tokio::test]
async fn jsonp_invalid_callback_is_400() {
    let h = jsonp().await;
    let token = h.client_credentials(APP).await;
    for cb in [
        "1cb",
        "a-b",
        "a..b",
        "alert%281%29",
        "cb%3Balert%281%29",
        "a.",
        "%20cb",
    ] {
        let r = h
            .revoke(
                Req::post(&format!("{REVOKE}?callback={cb}"))
                    .basic(APP.0, APP.1)
                    .form(&[("token", &token)])
                    .build(),
            )
            .await;
        r.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    }
    assert!(
        !h.access_state(&token).await.unwrap().revoked,
        "nothing revoked"
    );
}

#[tokio::test]
async fn jsonp_allows_only_callback_in_the_query() {
    let h = jsonp().await;
    let token = h.client_credentials(APP).await;
    for query in [
        format!("callback=cb&token={token}"),
        "callback=cb&callback=cb".to_owned(),
    ] {
        let r = h
            .revoke(
                Req::post(&format!("{REVOKE}?{query}"))
                    .basic(APP.0, APP.1)
                    .form(&[("token", &token)])
                    .build(),
            )
            .await;
        r.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    }
    assert!(!h.access_state(&token).await.unwrap().revoked);
}

#[tokio::test]
async fn callback_in_query_without_jsonp_is_400() {
    let h = Harness::new().await;
    let token = h.client_credentials(APP).await;
    let r = h
        .revoke(
            Req::post(&format!("{REVOKE}?callback=cb"))
                .basic(APP.0, APP.1)
                .form(&[("token", &token)])
                .build(),
        )
        .await;
    r.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    assert!(!h.access_state(&token).await.unwrap().revoked);
}

#[tokio::test]
async fn jsonp_callback_may_come_in_the_body_but_not_twice() {
    let h = jsonp().await;
    let token = h.client_credentials(APP).await;
    let r = h
        .revoke(
            Req::post(REVOKE)
                .basic(APP.0, APP.1)
                .form(&[("token", &token), ("callback", "cb")])
                .build(),
        )
        .await;
    assert_javascript(&r);
    assert_eq!(r.text(), "cb();");
    assert!(h.access_state(&token).await.unwrap().revoked);

    let other = h.client_credentials(APP).await;
    let r = h
        .revoke(
            Req::post(&format!("{REVOKE}?callback=cb"))
                .basic(APP.0, APP.1)
                .form(&[("token", &other), ("callback", "cb")])
                .build(),
        )
        .await;
    r.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    assert!(!h.access_state(&other).await.unwrap().revoked);
}

#[tokio::test]
async fn unhinted_token_of_an_unsupported_type_is_unsupported_token_type() {
    let h = Harness::with_config(|c| {
        c.revocation.supported_token_types = vec![TokenTypeHint::AccessToken];
    })
    .await;
    let tokens = h.user_grant(APP.0, "alice").await;
    let r = h.revoke_as(APP, &tokens.refresh, None).await;
    r.assert_error(StatusCode::BAD_REQUEST, "unsupported_token_type");
    assert!(!h.refresh_state(&tokens.refresh).await.unwrap().revoked);
    assert_eq!(h.grants().await[0].revoked_at, None);
}
