//! Embedding tokenwarden's protocol core in your own axum application.
//!
//! The core knows nothing about axum: each endpoint takes an `http::Request<Bytes>` and returns an
//! `http::Response<Bytes>`. Your app decides the routes, the body limit, the store (anything that
//! implements `tokenwarden_core::store::Store`; here the in-memory one, seeded with one client),
//! the clock and the random source.
//!
//! ```text
//! cargo run -p embed-axum
//! curl -s -u my-service:my-service-secret -d grant_type=client_credentials http://127.0.0.1:3000/auth/token
//! ```

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use axum::routing::{any, get};
use axum::Router;
use tokenwarden_core::clock::{Clock as _, SystemClock};
use tokenwarden_core::crypto::TokenDigest;
use tokenwarden_core::model::{Client, GrantType, Scope};
use tokenwarden_core::random::OsRandom;
use tokenwarden_core::store::memory::MemoryStore;
use tokenwarden_core::store::AdminStore as _;
use tokenwarden_core::wire::MAX_BODY_BYTES;
use tokenwarden_core::{AuthorizationServer, Config};

type Server = Arc<AuthorizationServer<MemoryStore>>;

/// Buffers the body (with your limit) and hands the request to the core.
async fn to_core(request: Request) -> Option<http::Request<bytes::Bytes>> {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES + 1).await.ok()?;
    Some(http::Request::from_parts(parts, bytes))
}

fn too_large() -> Response {
    Response::builder()
        .status(413)
        .body(Body::empty())
        .unwrap_or_default()
}

async fn token(State(server): State<Server>, request: Request) -> Response {
    match to_core(request).await {
        Some(r) => server.token(r).await.map(Body::from),
        None => too_large(),
    }
}

async fn revoke(State(server): State<Server>, request: Request) -> Response {
    match to_core(request).await {
        Some(r) => server.create_revocation_response(r).await.map(Body::from),
        None => too_large(),
    }
}

async fn introspect(State(server): State<Server>, request: Request) -> Response {
    match to_core(request).await {
        Some(r) => server.introspect(r).await.map(Body::from),
        None => too_large(),
    }
}

async fn hello() -> &'static str {
    "your own routes live beside the OAuth ones\n"
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store = MemoryStore::default();
    store
        .create_client(&Client {
            client_id: "my-service".into(),
            name: "My service".into(),
            // In a real deployment, generate the secret with tokenwarden_core::random::new_client_secret.
            secret_digest: Some(TokenDigest::of("my-service-secret")),
            grant_types: vec![GrantType::ClientCredentials],
            redirect_uris: vec![],
            scope: Scope::parse("read write")?,
            introspect: true,
            cors_origins: vec![],
            created_at: SystemClock.now(),
        })
        .await?;
    let server: Server = Arc::new(AuthorizationServer::new(
        store,
        Config::new("http://127.0.0.1:3000/auth"),
        Arc::new(SystemClock),
        Arc::new(OsRandom),
    ));
    let app = Router::new()
        .route("/", get(hello))
        .route("/auth/token", any(token))
        .route("/auth/revoke", any(revoke))
        .route("/auth/introspect", any(introspect))
        .with_state(server);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    eprintln!("listening on http://127.0.0.1:3000");
    axum::serve(listener, app).await?;
    Ok(())
}
