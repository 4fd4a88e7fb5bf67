//! The ceiling: the least an axum server on this machine can do per POST — read the body, answer
//! fixed JSON with the same headers tokenwarden sends. Usage: `tw-ceiling ADDR`; prints
//! `listening on http://ADDR` on stderr.

use axum::body::Bytes;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, PRAGMA};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Router;

/// The same allocator as the `tokenwarden` binary, so the ratio compares the servers, not the
/// allocators.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

async fn answer(_body: Bytes) -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, "application/json"),
            (CACHE_CONTROL, "no-store"),
            (PRAGMA, "no-cache"),
        ],
        r#"{"active":true,"scope":"read","client_id":"bench","token_type":"Bearer","exp":4102444800}"#,
    )
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".to_owned());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, Router::new().route("/", post(answer))).await
}
