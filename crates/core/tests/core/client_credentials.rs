//! The client credentials grant (RFC 6749 §4.4).

use http::StatusCode;
use tokenwarden_core::crypto::TokenDigest;
use tokenwarden_core::model::Scope;
use tokenwarden_core::Outcome;

use crate::support::*;

async fn request(h: &Harness, scope: Option<&str>) -> Resp {
    let mut form = vec![("grant_type", "client_credentials")];
    if let Some(s) = scope {
        form.push(("scope", s));
    }
    h.token(Req::post(TOKEN).basic(APP.0, APP.1).form(&form).build())
        .await
}

#[tokio::test]
async fn client_credentials_defaults_to_the_client_scope_and_issues_no_refresh_token() {
    let h = Harness::new().await;
    let r = request(&h, None).await;
    r.assert_status(StatusCode::OK);
    r.assert_json_headers();
    assert_eq!(r.outcome, Some(Outcome::TokenIssued));
    let v = r.json();
    let body = v.as_object().unwrap();
    let mut keys: Vec<&str> = body.keys().map(String::as_str).collect();
    keys.sort_unstable();
    // RFC 6749 §4.4.3: "A refresh token SHOULD NOT be included."
    assert_eq!(keys, ["access_token", "expires_in", "scope", "token_type"]);
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["expires_in"], 3600);
    assert_eq!(v["scope"], "read write");

    let token = v["access_token"].as_str().unwrap();
    assert!(token.starts_with("twa_"), "{token}");
    assert_eq!(
        token.len(),
        4 + 51,
        "48 bits of time, 256 random bits, base64url"
    );
    let stored = h.access_state(token).await.unwrap();
    assert!(!stored.revoked);
    let rec = stored.record;
    assert_eq!(rec.client_id, APP.0);
    assert_eq!(
        rec.grant_id, None,
        "client_credentials tokens belong to no grant"
    );
    assert_eq!(rec.username, None);
    assert_eq!(rec.scope, Scope::parse("read write").unwrap());
    assert_eq!(rec.issued_at, T0);
    assert_eq!(rec.expires_at, T0 + 3600);
    assert!(h.grants().await.is_empty());
    assert_eq!(h.row_counts().await.refresh_tokens, 0);
}

#[tokio::test]
async fn client_credentials_each_request_issues_a_distinct_token() {
    let h = Harness::new().await;
    let a = h.client_credentials(APP).await;
    let b = h.client_credentials(APP).await;
    assert_ne!(a, b);
    assert_eq!(h.row_counts().await.access_tokens, 2);
}

#[tokio::test]
async fn client_credentials_narrower_scope_is_granted() {
    let h = Harness::new().await;
    let r = request(&h, Some("read")).await;
    r.assert_status(StatusCode::OK);
    let v = r.json();
    assert_eq!(v["scope"], "read");
    let token = v["access_token"].as_str().unwrap();
    assert_eq!(
        h.access_state(token).await.unwrap().record.scope,
        Scope::parse("read").unwrap()
    );
    // Order and repetition do not matter: the same set is the same scope.
    let r = request(&h, Some("write read write")).await;
    r.assert_status(StatusCode::OK);
    assert_eq!(r.json()["scope"], "read write");
}

#[tokio::test]
async fn client_credentials_wider_scope_is_invalid_scope() {
    let h = Harness::new().await;
    for scope in ["read admin", "admin", "read\"quoted"] {
        let r = request(&h, Some(scope)).await;
        r.assert_error(StatusCode::BAD_REQUEST, "invalid_scope");
    }
    assert_eq!(h.row_counts().await.access_tokens, 0, "nothing issued");
}

#[tokio::test]
async fn client_credentials_token_is_stored_only_as_digest() {
    let h = Harness::new().await;
    let token = h.client_credentials(APP).await;
    let random_part = token.trim_start_matches("twa_");
    // Everything the store holds, as its Debug output shows it.
    let dump = format!("{:?}", h.store());
    assert!(
        dump.contains(&TokenDigest::of(&token).jti()),
        "the dump shows the stored digest"
    );
    assert!(
        !dump.contains(random_part),
        "the token itself is not stored"
    );
    assert!(h.access_state(&token).await.is_some(), "found by digest");
}
