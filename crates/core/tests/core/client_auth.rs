//! Client authentication (RFC 6749 §2.3): `client_secret_basic`, `client_secret_post`, `none`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::header::AUTHORIZATION;
use http::StatusCode;

use crate::support::*;

fn cc() -> [(&'static str, &'static str); 1] {
    [("grant_type", "client_credentials")]
}

#[tokio::test]
async fn basic_credentials_are_form_decoded_per_rfc6749_2_3_1() {
    let h = Harness::new().await;
    // Client id "a:b", secret "p@ss" → "a%3Ab:p%40ss" before base64.
    let header = format!("Basic {}", STANDARD.encode("a%3Ab:p%40ss"));
    let r = h
        .token(
            Req::post(TOKEN)
                .header(AUTHORIZATION, &header)
                .form(&cc())
                .build(),
        )
        .await;
    r.assert_status(StatusCode::OK);
    let token = r.json()["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        h.access_state(&token).await.unwrap().record.client_id,
        "a:b"
    );

    // Not form-encoded, the first colon splits: client "a" with secret "b:p@ss" — unknown.
    let raw = format!("Basic {}", STANDARD.encode("a:b:p@ss"));
    let r = h
        .token(
            Req::post(TOKEN)
                .header(AUTHORIZATION, &raw)
                .form(&cc())
                .build(),
        )
        .await;
    r.assert_error(StatusCode::UNAUTHORIZED, "invalid_client");
    assert_eq!(h.row_counts().await.access_tokens, 1);
}

#[tokio::test]
async fn client_secret_post_authenticates() {
    let h = Harness::new().await;
    let r = h
        .token(
            Req::post(TOKEN)
                .form(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", APP.0),
                    ("client_secret", APP.1),
                ])
                .build(),
        )
        .await;
    r.assert_status(StatusCode::OK);
    let token = r.json()["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        h.access_state(&token).await.unwrap().record.client_id,
        APP.0
    );
}

#[tokio::test]
async fn basic_with_the_same_client_id_in_the_body_is_accepted_and_a_different_one_refused() {
    let h = Harness::new().await;
    let r = h
        .token(
            Req::post(TOKEN)
                .basic(APP.0, APP.1)
                .form(&[("grant_type", "client_credentials"), ("client_id", APP.0)])
                .build(),
        )
        .await;
    r.assert_status(StatusCode::OK);
    let r = h
        .token(
            Req::post(TOKEN)
                .basic(APP.0, APP.1)
                .form(&[("grant_type", "client_credentials"), ("client_id", OTHER.0)])
                .build(),
        )
        .await;
    r.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    assert_eq!(h.row_counts().await.access_tokens, 1);
}

#[tokio::test]
async fn two_authentication_methods_are_invalid_request() {
    let h = Harness::new().await;
    let token = h.client_credentials(APP).await;
    for path in [TOKEN, REVOKE, INTROSPECT] {
        let r = h
            .call(
                path,
                Req::post(path)
                    .basic(APP.0, APP.1)
                    .form(&[
                        ("grant_type", "client_credentials"),
                        ("token", &token),
                        ("client_id", APP.0),
                        ("client_secret", APP.1),
                    ])
                    .build(),
            )
            .await;
        r.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    }
    assert!(h.is_active(&token).await, "nothing revoked");
    assert_eq!(h.row_counts().await.access_tokens, 1, "nothing issued");
}

#[tokio::test]
async fn failed_client_authentication_is_401_with_www_authenticate_basic() {
    let h = Harness::new().await;
    let token = h.client_credentials(APP).await;
    let attempts: Vec<(&str, Req)> = vec![
        ("wrong Basic secret", Req::post(TOKEN).basic(APP.0, "wrong")),
        (
            "unknown Basic client",
            Req::post(TOKEN).basic("ghost", APP.1),
        ),
        ("empty Basic secret", Req::post(TOKEN).basic(APP.0, "")),
        (
            "secret of another client",
            Req::post(TOKEN).basic(APP.0, OTHER.1),
        ),
        (
            "Basic on a public client",
            Req::post(TOKEN).basic(SPA, "anything"),
        ),
        (
            "not Basic",
            Req::post(TOKEN).header(AUTHORIZATION, format!("Bearer {token}")),
        ),
        (
            "malformed base64",
            Req::post(TOKEN).header(AUTHORIZATION, "Basic !!!"),
        ),
        ("no credentials at all", Req::post(TOKEN)),
    ];
    for (what, req) in attempts {
        for path in [TOKEN, REVOKE, INTROSPECT] {
            let req = req
                .clone()
                .with_uri(path)
                .form(&[("grant_type", "client_credentials"), ("token", &token)]);
            let r = h.call(path, req.build()).await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{what} on {path}");
            r.assert_error(StatusCode::UNAUTHORIZED, "invalid_client");
        }
    }
    // A confidential client may not authenticate with `none` (client_id alone), even on the
    // refresh grant that public clients may use.
    let tokens = h.user_grant(APP.0, "alice").await;
    let r = h
        .token(
            Req::post(TOKEN)
                .form(&[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", &tokens.refresh),
                    ("client_id", APP.0),
                ])
                .build(),
        )
        .await;
    r.assert_error(StatusCode::UNAUTHORIZED, "invalid_client");
    assert_eq!(
        h.refresh_state(&tokens.refresh).await.unwrap().used_at,
        None
    );
    // client_secret_post with a wrong secret.
    let r = h
        .token(
            Req::post(TOKEN)
                .form(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", APP.0),
                    ("client_secret", "wrong"),
                ])
                .build(),
        )
        .await;
    r.assert_error(StatusCode::UNAUTHORIZED, "invalid_client");
    assert!(h.is_active(&token).await, "nothing revoked");
    assert_eq!(
        h.row_counts().await.access_tokens,
        2,
        "nothing issued beyond the seeded token and grant"
    );
}

#[tokio::test]
async fn public_client_cannot_use_client_credentials() {
    let h = Harness::new().await;
    let r = h
        .token(
            Req::post(TOKEN)
                .form(&[("grant_type", "client_credentials"), ("client_id", SPA)])
                .build(),
        )
        .await;
    r.assert_error(StatusCode::UNAUTHORIZED, "invalid_client");
    assert_eq!(h.row_counts().await.access_tokens, 0);
}

#[tokio::test]
async fn client_without_the_grant_type_is_unauthorized_client() {
    let h = Harness::new().await;
    // cc-only is not registered for refresh_token: refused before the token is even looked at.
    let tokens = h.user_grant(APP.0, "alice").await;
    let r = h.refresh(CC_ONLY, &tokens.refresh).await;
    r.assert_error(StatusCode::BAD_REQUEST, "unauthorized_client");
    // The resource server has no grant types at all.
    let r = h
        .token(
            Req::post(TOKEN)
                .basic(RS.0, RS.1)
                .form(&[("grant_type", "client_credentials")])
                .build(),
        )
        .await;
    r.assert_error(StatusCode::BAD_REQUEST, "unauthorized_client");
    let counts = h.row_counts().await;
    assert_eq!(counts.access_tokens, 1, "only the seeded grant's token");
    assert_eq!(
        h.refresh_state(&tokens.refresh).await.unwrap().used_at,
        None
    );
}
