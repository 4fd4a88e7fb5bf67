//! INTERFACE "Wire rules" shared by `/oauth2/token`, `/oauth2/revoke`, `/oauth2/introspect`.

use http::header::{ALLOW, CONTENT_TYPE};
use http::{Method, StatusCode};

use crate::support::*;

const POST_ENDPOINTS: [&str; 3] = [TOKEN, REVOKE, INTROSPECT];

/// A request that would succeed (200) on `path` for client `app`, given `token`.
fn valid_request(path: &str, token: &str) -> Req {
    let req = Req::post(path).basic(APP.0, APP.1);
    match path {
        TOKEN => req.form(&[("grant_type", "client_credentials")]),
        _ => req.form(&[("token", token)]),
    }
}

#[tokio::test]
async fn get_is_405_with_allow_post_on_every_post_endpoint() {
    let h = Harness::new().await;
    let token = h.client_credentials(APP).await;
    for path in POST_ENDPOINTS {
        for method in [Method::GET, Method::PUT, Method::DELETE] {
            let req = Req::new(method.clone(), path)
                .basic(APP.0, APP.1)
                .header(CONTENT_TYPE, FORM)
                .form(&[("token", &token), ("grant_type", "client_credentials")])
                .build();
            let r = h.call(path, req).await;
            r.assert_error(StatusCode::METHOD_NOT_ALLOWED, "invalid_request");
            assert_eq!(r.header(ALLOW), Some("POST"), "{method} {path}");
        }
    }
    assert!(h.is_active(&token).await, "no method but POST revokes");
    assert_eq!(h.row_counts().await.access_tokens, 1, "nothing issued");
}

#[tokio::test]
async fn missing_content_type_is_invalid_request() {
    let h = Harness::new().await;
    let token = h.client_credentials(APP).await;
    for path in POST_ENDPOINTS {
        let r = h
            .call(
                path,
                valid_request(path, &token)
                    .without_header(CONTENT_TYPE)
                    .build(),
            )
            .await;
        r.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
        assert_eq!(r.header(ALLOW), None);
    }
    assert!(h.is_active(&token).await);
    assert_eq!(h.row_counts().await.access_tokens, 1);
}

#[tokio::test]
async fn wrong_content_type_is_invalid_request() {
    let h = Harness::new().await;
    let token = h.client_credentials(APP).await;
    for path in POST_ENDPOINTS {
        for ct in [
            "application/json",
            "text/plain",
            "multipart/form-data; boundary=x",
            "application/x-www-form-urlencodedx",
        ] {
            let r = h
                .call(
                    path,
                    valid_request(path, &token).header(CONTENT_TYPE, ct).build(),
                )
                .await;
            r.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
        }
    }
    assert!(h.is_active(&token).await);
    assert_eq!(h.row_counts().await.access_tokens, 1);
}

#[tokio::test]
async fn form_content_type_with_charset_or_other_case_is_accepted() {
    let h = Harness::new().await;
    for ct in [
        "application/x-www-form-urlencoded; charset=UTF-8",
        "application/x-www-form-urlencoded;charset=utf-8",
        "Application/X-WWW-Form-URLEncoded",
    ] {
        let r = h
            .token(valid_request(TOKEN, "").header(CONTENT_TYPE, ct).build())
            .await;
        r.assert_status(StatusCode::OK);
        r.assert_json_headers();
        let token = r.json()["access_token"].as_str().unwrap().to_owned();
        let i = h
            .introspect(
                valid_request(INTROSPECT, &token)
                    .header(CONTENT_TYPE, ct)
                    .build(),
            )
            .await;
        assert_eq!(i.json()["active"], true, "{ct}");
        let rv = h
            .revoke(
                valid_request(REVOKE, &token)
                    .header(CONTENT_TYPE, ct)
                    .build(),
            )
            .await;
        rv.assert_revocation_ok();
        assert!(h.access_state(&token).await.unwrap().revoked, "{ct}");
    }
}

#[tokio::test]
async fn body_over_64_kib_is_413() {
    let h = Harness::new().await;
    let token = h.client_credentials(APP).await;
    for path in POST_ENDPOINTS {
        let mut body =
            crate::support::form_encode(&[("grant_type", "client_credentials"), ("token", &token)]);
        body.push_str("&pad=");
        body.push_str(&"x".repeat(64 * 1024 + 1 - body.len()));
        assert_eq!(body.len(), 64 * 1024 + 1);
        let r = h
            .call(
                path,
                Req::post(path).basic(APP.0, APP.1).raw_body(body).build(),
            )
            .await;
        r.assert_error(StatusCode::PAYLOAD_TOO_LARGE, "invalid_request");
    }
    assert!(
        h.is_active(&token).await,
        "an oversized revocation revokes nothing"
    );
    assert_eq!(h.row_counts().await.access_tokens, 1, "nothing issued");
}

#[tokio::test]
async fn body_of_exactly_64_kib_is_accepted() {
    let h = Harness::new().await;
    let mut body = String::from("grant_type=client_credentials&pad=");
    body.push_str(&"x".repeat(64 * 1024 - body.len()));
    assert_eq!(body.len(), 64 * 1024);
    let r = h
        .token(Req::post(TOKEN).basic(APP.0, APP.1).raw_body(body).build())
        .await;
    r.assert_status(StatusCode::OK);
}

#[tokio::test]
async fn query_string_is_invalid_request() {
    let h = Harness::new().await;
    let token = h.client_credentials(APP).await;
    for path in POST_ENDPOINTS {
        for query in [
            "grant_type=client_credentials",
            "token=abc",
            "foo=bar",
            "callback=cb",
        ] {
            let req = valid_request(path, &token).with_uri(&format!("{path}?{query}"));
            let r = h.call(path, req.build()).await;
            r.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
        }
    }
    assert!(
        h.is_active(&token).await,
        "a refused revocation revokes nothing"
    );
    assert_eq!(h.row_counts().await.access_tokens, 1, "nothing issued");
}

#[tokio::test]
async fn query_string_without_values_is_invalid_request() {
    let h = Harness::new().await;
    let token = h.client_credentials(APP).await;
    for path in POST_ENDPOINTS {
        for query in [token.as_str(), "foo=", "foo"] {
            let req = valid_request(path, &token).with_uri(&format!("{path}?{query}"));
            let r = h.call(path, req.build()).await;
            r.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
        }
    }
}

#[tokio::test]
async fn parameter_sent_twice_is_invalid_request() {
    let h = Harness::new().await;
    let token = h.client_credentials(APP).await;
    let cases: [(&str, &str); 6] = [
        (
            TOKEN,
            "grant_type=client_credentials&grant_type=client_credentials",
        ),
        (
            TOKEN,
            "grant_type=client_credentials&scope=read&scope=write",
        ),
        // RFC 6749 §3.2: refused even when one of the values is empty.
        (TOKEN, "grant_type=client_credentials&scope=&scope=read"),
        (REVOKE, "token=TOKEN&token=TOKEN"),
        (
            REVOKE,
            "token=TOKEN&token_type_hint=access_token&token_type_hint=access_token",
        ),
        (INTROSPECT, "token=TOKEN&token=other"),
    ];
    for (path, body) in cases {
        let body = body.replace("TOKEN", &token);
        let r = h
            .call(
                path,
                Req::post(path).basic(APP.0, APP.1).raw_body(body).build(),
            )
            .await;
        r.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    }
    // Sent twice in the body, client_id too.
    let r = h
        .token(
            Req::post(TOKEN)
                .form(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", APP.0),
                    ("client_id", APP.0),
                    ("client_secret", APP.1),
                ])
                .build(),
        )
        .await;
    r.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    assert!(h.is_active(&token).await);
    assert_eq!(h.row_counts().await.access_tokens, 1);
}

#[tokio::test]
async fn empty_value_counts_as_absent() {
    let h = Harness::new().await;
    // `scope=` is no scope: the client's default applies.
    let r = h
        .token(
            Req::post(TOKEN)
                .basic(APP.0, APP.1)
                .raw_body("grant_type=client_credentials&scope=&state=")
                .build(),
        )
        .await;
    r.assert_status(StatusCode::OK);
    assert_eq!(r.json()["scope"], "read write");
    // `client_secret=` next to Basic is not a second authentication method.
    let r = h
        .token(
            Req::post(TOKEN)
                .basic(APP.0, APP.1)
                .raw_body("grant_type=client_credentials&client_secret=")
                .build(),
        )
        .await;
    r.assert_status(StatusCode::OK);
    // `grant_type=` is a missing grant_type.
    let r = h
        .token(
            Req::post(TOKEN)
                .basic(APP.0, APP.1)
                .raw_body("grant_type=")
                .build(),
        )
        .await;
    r.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    // `token=` is a missing token.
    for path in [REVOKE, INTROSPECT] {
        let r = h
            .call(
                path,
                Req::post(path)
                    .basic(APP.0, APP.1)
                    .raw_body("token=")
                    .build(),
            )
            .await;
        r.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    }
    // An empty `token_type_hint=` is no hint.
    let token = h.client_credentials(APP).await;
    let r = h
        .revoke(
            Req::post(REVOKE)
                .basic(APP.0, APP.1)
                .raw_body(format!("token={token}&token_type_hint="))
                .build(),
        )
        .await;
    r.assert_revocation_ok();
    assert!(h.access_state(&token).await.unwrap().revoked);
}

#[tokio::test]
async fn non_utf8_parameter_is_invalid_request() {
    let h = Harness::new().await;
    let token = h.client_credentials(APP).await;
    for path in POST_ENDPOINTS {
        for body in [
            b"grant_type=client_credentials&token=%FF%FE".to_vec(),
            b"grant_type=client_credentials&token=\xff".to_vec(),
            b"grant_type=client_credentials&%C3%28=x&token=t".to_vec(),
        ] {
            let r = h
                .call(
                    path,
                    Req::post(path).basic(APP.0, APP.1).raw_body(body).build(),
                )
                .await;
            r.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
        }
    }
    assert!(h.is_active(&token).await);
    assert_eq!(h.row_counts().await.access_tokens, 1);
}

#[tokio::test]
async fn missing_grant_type_is_invalid_request() {
    let h = Harness::new().await;
    let r = h
        .token(
            Req::post(TOKEN)
                .basic(APP.0, APP.1)
                .form(&[("scope", "read")])
                .build(),
        )
        .await;
    r.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    assert_eq!(h.row_counts().await.access_tokens, 0);
}

#[tokio::test]
async fn unknown_grant_type_is_unsupported_grant_type() {
    let h = Harness::new().await;
    for grant_type in ["password", "implicit", "CLIENT_CREDENTIALS", "urn:x:custom"] {
        let r = h
            .token(
                Req::post(TOKEN)
                    .basic(APP.0, APP.1)
                    .form(&[("grant_type", grant_type)])
                    .build(),
            )
            .await;
        r.assert_error(StatusCode::BAD_REQUEST, "unsupported_grant_type");
    }
    assert_eq!(h.row_counts().await.access_tokens, 0);
}
