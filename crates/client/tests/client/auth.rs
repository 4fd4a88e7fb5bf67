//! Client authentication on the wire (RFC 6749 §2.3.1), scenario 8.

use std::sync::Arc;

use tokenwarden_client::{ClientCredentials, ClientSecret, OAuthClient, ReqwestClient};

use crate::mock::*;

fn client(mock: &MockServer, credentials: ClientCredentials) -> OAuthClient {
    OAuthClient::new(
        Arc::new(ReqwestClient::from_client(test_reqwest())),
        credentials,
        mock.endpoints(),
    )
}

#[tokio::test]
async fn s8_basic_credentials_of_a_colon_b_and_p_at_ss_decode_to_form_encoded_values() {
    let mock = MockServer::start();
    let c = client(
        &mock,
        ClientCredentials::basic("a:b", ClientSecret::new("p@ss")),
    );
    c.exchange_client_credentials(None).await.unwrap();
    assert_eq!(mock.basic_credentials(), vec!["a%3Ab:p%40ss".to_owned()]);
    let form = &mock.token_forms()[0];
    assert!(!form
        .iter()
        .any(|(k, _)| k == "client_id" || k == "client_secret"));
}

#[tokio::test]
async fn client_secret_post_and_none_put_the_client_in_the_body() {
    let mock = MockServer::start();
    client(
        &mock,
        ClientCredentials::post("a:b", ClientSecret::new("p@ss")),
    )
    .exchange_client_credentials(Some("read"))
    .await
    .unwrap();
    client(&mock, ClientCredentials::public("spa"))
        .revoke("whatever", None)
        .await
        .unwrap();
    assert!(mock.basic_credentials().is_empty());
    let form = &mock.token_forms()[0];
    assert!(form.contains(&("client_id".into(), "a:b".into())));
    assert!(form.contains(&("client_secret".into(), "p@ss".into())));
    assert!(form.contains(&("scope".into(), "read".into())));
}
