//! The typed protocol operations over HTTP: discovery (RFC 8414), revocation (RFC 7009),
//! introspection (RFC 7662), errors (RFC 6749 §5.2).

use std::sync::Arc;

use tokenwarden_client::discovery::discover;
use tokenwarden_client::{
    Error, ErrorCode, IssuerUrl, OAuthClient, RefreshToken, ReqwestClient, TokenTypeHint,
};

use crate::mock::*;

fn http() -> Arc<ReqwestClient> {
    Arc::new(ReqwestClient::from_client(test_reqwest()))
}

#[tokio::test]
async fn discovery_finds_the_endpoints_and_checks_the_issuer() {
    let mock = MockServer::start();
    let issuer = IssuerUrl::parse(&mock.base).unwrap();
    let metadata = discover(http().as_ref(), &issuer).await.unwrap();
    assert_eq!(metadata.issuer, mock.base);
    let client = OAuthClient::discover(http(), &issuer, credentials())
        .await
        .unwrap();
    assert_eq!(
        client.endpoints().revocation.as_ref().unwrap().as_str(),
        mock.url("/revoke")
    );
    // Same server, but the issuer string differs (trailing slash): RFC 8414 §3.3 refuses it.
    let other = IssuerUrl::parse(&format!("{}/", mock.base)).unwrap();
    assert!(matches!(
        discover(http().as_ref(), &other).await,
        Err(Error::Discovery(_))
    ));
}

#[tokio::test]
async fn revocation_and_introspection_round_trip() {
    let mock = MockServer::start();
    mock.seed(&at0(), &rt0());
    let client = OAuthClient::new(http(), credentials(), mock.endpoints());
    let active = client
        .introspect(&at0(), Some(TokenTypeHint::AccessToken))
        .await
        .unwrap();
    assert!(active.active);
    assert_eq!(active.client_id.as_deref(), Some(CLIENT_ID));
    client
        .revoke(&at0(), Some(TokenTypeHint::AccessToken))
        .await
        .unwrap();
    assert_eq!(
        mock.revocations(),
        vec![(at0(), Some("access_token".to_owned()))]
    );
    assert!(!client.introspect(&at0(), None).await.unwrap().active);

    mock.set_revoke_status(503);
    let e = client.revoke(&rt0(), None).await.unwrap_err();
    assert!(e.is_transient());
}

#[tokio::test]
async fn a_token_error_is_typed_with_its_code() {
    let mock = MockServer::start();
    mock.seed(&at0(), &rt0());
    let client = OAuthClient::new(http(), credentials(), mock.endpoints());
    let e = client
        .exchange_refresh_token(&RefreshToken::new("nope"), None)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(&ErrorCode::InvalidGrant));
    assert!(matches!(e, Error::OAuth { status: 400, .. }));
    let ok = client
        .exchange_refresh_token(&RefreshToken::new(rt0()), None)
        .await
        .unwrap();
    assert_eq!(ok.access_token.secret(), at_n(1));
    assert_eq!(ok.expires_in, Some(3600));
}
