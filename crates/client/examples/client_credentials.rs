//! Service-to-service: a [`TokenManager`] on the client credentials grant, endpoints discovered
//! from the issuer (RFC 8414), the secret from the environment.
//!
//! ```sh
//! tokenwarden client create --name svc --client-id svc --scope read   # prints the secret
//! tokenwarden serve &
//! TOKENWARDEN_CLIENT_SECRET=tws_… cargo run -p tokenwarden-client --example client_credentials -- http://127.0.0.1:8080 svc
//! ```

use std::sync::Arc;

use tokenwarden_client::{
    ClientCredentials, ClientSecret, IssuerUrl, OAuthClient, ReqwestClient, TokenManager,
    TokenTypeHint,
};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut args = std::env::args().skip(1);
    let issuer = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:8080".into());
    let client_id = args.next().unwrap_or_else(|| "svc".into());
    let secret = ClientSecret::new(std::env::var("TOKENWARDEN_CLIENT_SECRET")?);

    let http = Arc::new(ReqwestClient::new()?);
    let client = OAuthClient::discover(
        http,
        &IssuerUrl::parse(&issuer)?,
        ClientCredentials::basic(client_id, secret),
    )
    .await?;
    let manager = TokenManager::builder(client)
        .client_credentials(Some("read"))
        .build();

    // The first call fetches a token; the next ones reuse it until it is due.
    let token = manager.access_token().await?;
    let again = manager.access_token().await?;
    assert_eq!(token, again);

    let info = manager.client().introspect(token.secret(), None).await?;
    println!(
        "active: {}, scope: {:?}, exp: {:?}",
        info.active, info.scope, info.exp
    );

    manager
        .client()
        .revoke(token.secret(), Some(TokenTypeHint::AccessToken))
        .await?;
    let info = manager.client().introspect(token.secret(), None).await?;
    println!("after revocation, active: {}", info.active);
    Ok(())
}
