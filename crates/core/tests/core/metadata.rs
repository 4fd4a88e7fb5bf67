//! Authorization server metadata (RFC 8414).

use http::header::{ALLOW, CONTENT_TYPE};
use http::{Method, StatusCode};
use serde_json::json;
use tokenwarden_core::Outcome;

use crate::support::*;

const WELL_KNOWN: &str = "/.well-known/oauth-authorization-server";

#[tokio::test]
async fn metadata_lists_endpoints_grant_types_and_auth_methods() {
    let h = Harness::new().await;
    let r = Resp::from(
        h.server
            .metadata(&Req::new(Method::GET, WELL_KNOWN).build()),
    );
    r.assert_status(StatusCode::OK);
    assert_eq!(r.header(CONTENT_TYPE), Some("application/json"));
    assert_eq!(r.outcome, Some(Outcome::Metadata));
    let v = r.json();
    assert_eq!(v["issuer"], ISSUER);
    assert_eq!(v["token_endpoint"], format!("{ISSUER}/oauth2/token"));
    assert_eq!(v["revocation_endpoint"], format!("{ISSUER}/oauth2/revoke"));
    assert_eq!(
        v["introspection_endpoint"],
        format!("{ISSUER}/oauth2/introspect")
    );
    let grant_types = v["grant_types_supported"].as_array().unwrap();
    for g in ["client_credentials", "refresh_token"] {
        assert!(grant_types.contains(&json!(g)), "{g} in {grant_types:?}");
    }
    assert!(
        v["response_types_supported"].is_array(),
        "RFC 8414 §2: REQUIRED"
    );
    let all = json!(["client_secret_basic", "client_secret_post", "none"]);
    assert_eq!(v["token_endpoint_auth_methods_supported"], all);
    assert_eq!(v["revocation_endpoint_auth_methods_supported"], all);
    // Public clients may not introspect.
    assert_eq!(
        v["introspection_endpoint_auth_methods_supported"],
        json!(["client_secret_basic", "client_secret_post"])
    );
    assert_eq!(v["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(r.text(), h.server.metadata_document().to_string());
}

#[tokio::test]
async fn metadata_is_get_only() {
    let h = Harness::new().await;
    let head = Resp::from(
        h.server
            .metadata(&Req::new(Method::HEAD, WELL_KNOWN).build()),
    );
    head.assert_status(StatusCode::OK);
    for method in [Method::POST, Method::PUT, Method::DELETE] {
        let r = Resp::from(h.server.metadata(&Req::new(method, WELL_KNOWN).build()));
        r.assert_status(StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(r.header(CONTENT_TYPE), Some("application/json"));
        assert_eq!(r.json()["error"], "invalid_request");
        let allow = r.header(ALLOW).unwrap();
        assert!(allow.contains("GET"), "{allow}");
        assert!(!allow.contains("POST"), "{allow}");
    }
}

#[tokio::test]
async fn metadata_endpoints_join_an_issuer_with_a_trailing_slash_cleanly() {
    let h =
        Harness::with_config(|c| *c = tokenwarden_core::Config::new("https://as.example/tenant/"))
            .await;
    let v = h.server.metadata_document();
    assert_eq!(v["issuer"], "https://as.example/tenant");
    assert_eq!(
        v["token_endpoint"],
        "https://as.example/tenant/oauth2/token"
    );
}
