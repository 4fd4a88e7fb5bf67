//! A user session, the textbook way: tokens in a 0600 file, refreshed before expiry, one retry
//! after a 401, reconnect on `invalid_grant`, logout that revokes.
//!
//! Reads a token response (RFC 6749 §5.1 JSON, e.g. from `tokenwarden token issue`) on stdin:
//!
//! ```sh
//! tokenwarden token issue --client app --user alice \
//!   | TOKENWARDEN_CLIENT_SECRET=tws_… cargo run -p tokenwarden-client --example user_session -- http://127.0.0.1:8080 app
//! ```

use std::io::Read as _;
use std::sync::Arc;

use tokenwarden_client::{
    ClientCredentials, ClientSecret, Clock as _, Error, FileStore, IssuerUrl, OAuthClient,
    ReqwestClient, SystemClock, TokenManager, TokenResponse, TokenSet,
};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut args = std::env::args().skip(1);
    let issuer = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:8080".into());
    let client_id = args.next().unwrap_or_else(|| "app".into());
    let secret = ClientSecret::new(std::env::var("TOKENWARDEN_CLIENT_SECRET")?);

    let client = OAuthClient::discover(
        Arc::new(ReqwestClient::new()?),
        &IssuerUrl::parse(&issuer)?,
        ClientCredentials::basic(client_id, secret),
    )
    .await?;
    let store = std::env::temp_dir().join("tokenwarden-example-session.json");
    let manager = TokenManager::builder(client)
        .store(Arc::new(FileStore::new(&store)))
        .build();

    // Sign-in: whatever produced the token response, store it (persisted before use).
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input)?;
    let response: TokenResponse = serde_json::from_str(&input)?;
    let sent_at = SystemClock.now();
    manager
        .set_tokens(TokenSet::from_response(
            response,
            sent_at,
            std::time::Duration::from_secs(3600),
        ))
        .await?;

    // Rotation: the new refresh token is persisted in the file before the access token is used.
    let renewed = manager.refresh_now().await?;
    println!(
        "refreshed; access token of {} characters",
        renewed.secret().len()
    );

    // Any API behind the same server: the middleware authorizes, refreshes and retries once.
    let api = manager.authorized_client(reqwest::Client::new());
    let introspect = format!("{issuer}/healthz");
    match api.get(&introspect).send().await {
        Ok(response) => println!("GET /healthz → {}", response.status()),
        Err(reqwest_middleware::Error::Middleware(e))
            if matches!(e.downcast_ref::<Error>(), Some(Error::ReconnectRequired)) =>
        {
            println!("the grant is gone: sign in again");
        }
        Err(e) => return Err(e.into()),
    }

    // Logout: refresh token revoked, then the access token; the file is removed regardless.
    manager.logout().await?;
    println!("logged out; {} exists: {}", store.display(), store.exists());
    Ok(())
}
