#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // bench code
//! The per-request cost of a cached validation: SHA-256 of the token, the cache lookup, and (for
//! the layer) the header parse and the claims put into the request extensions. Target < 5 µs.
//!
//! A mock introspection endpoint and revocation feed run on 127.0.0.1 so the validator is in its
//! normal state (feed connected, token cached); the measured calls never leave the process.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use futures_util::StreamExt as _;
use tokenwarden_resource::{ClientSecret, TokenClaims, TokenDigest, Validator};
use tower::{Service as _, ServiceExt as _};

const TOKEN: &str = "twa_Q2hhbmdlIG1lIGludG8gYSByZWFsIHRva2VuIHBsZWFzZQ";

async fn mock() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new()
        .route(
            "/introspect",
            post(|| async {
                let body = serde_json::json!({
                    "active": true, "scope": "read write", "client_id": "app", "sub": "alice",
                    "username": "alice", "token_type": "Bearer", "exp": 4_000_000_000u64,
                    "iat": 1_700_000_000u64, "jti": "jti-1",
                });
                ([("content-type", "application/json")], body.to_string()).into_response()
            }),
        )
        .route(
            "/feed",
            get(|| async {
                let ready = Bytes::from_static(
                    b"event: ready\nid: 1\ndata: {\"cursor\":1,\"heartbeat\":10}\n\n",
                );
                // Keep-alives as the server sends them: a silent feed would take the cache out
                // of use after 1.5 heartbeats.
                let keepalives = futures_util::stream::unfold((), |()| async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    Some((
                        Ok::<_, std::io::Error>(Bytes::from_static(b": keepalive\n\n")),
                        (),
                    ))
                });
                let stream =
                    futures_util::stream::once(async move { Ok::<_, std::io::Error>(ready) })
                        .chain(keepalives);
                Response::builder()
                    .header("content-type", "text/event-stream")
                    .body(Body::from_stream(stream))
                    .unwrap()
            }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

fn cached_validation(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let validator = rt.block_on(async {
        let base = mock().await;
        let validator = Validator::builder()
            .introspection_endpoint(format!("{base}/introspect"))
            .revocation_feed_endpoint(format!("{base}/feed"))
            .client_credentials("bench", ClientSecret::new("secret"))
            .cache_max_ttl(Duration::from_secs(3600))
            .build()
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(10), validator.feed_connected())
            .await
            .unwrap();
        validator.validate(TOKEN).await.unwrap();
        validator
    });
    assert_eq!(validator.stats().introspections, 1);

    c.bench_function("sha256 of a token", |b| {
        b.iter(|| TokenDigest::of(std::hint::black_box(TOKEN)))
    });

    c.bench_function("validate (cached)", |b| {
        b.iter(|| {
            rt.block_on(validator.validate(std::hint::black_box(TOKEN)))
                .unwrap()
        })
    });

    let inner = tower::service_fn(|request: http::Request<Body>| async move {
        let claims = request.extensions().get::<Arc<TokenClaims>>().cloned();
        std::hint::black_box(claims);
        Ok::<_, std::convert::Infallible>(Response::new(Body::empty()))
    });
    let mut service = tower::Layer::layer(&validator.layer().require_scope("read"), inner);
    let header = format!("Bearer {TOKEN}");
    c.bench_function("layer: header + validate (cached) + extensions", |b| {
        b.iter_batched(
            || {
                http::Request::builder()
                    .uri("/notes")
                    .header("authorization", header.as_str())
                    .body(Body::empty())
                    .unwrap()
            },
            |request| {
                rt.block_on(async {
                    let service = service.ready().await.unwrap();
                    let response = service.call(request).await.unwrap();
                    assert_eq!(response.status(), 200);
                })
            },
            BatchSize::SmallInput,
        )
    });
    let stats = validator.stats();
    assert_eq!(
        stats.introspections, 1,
        "every measured call was a cache hit"
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = cached_validation
}
criterion_main!(benches);
