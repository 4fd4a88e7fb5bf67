//! Micro-benchmarks of the core's hot paths: form parsing, client authentication, token
//! generation and digest, and a whole introspection against the in-memory store.
//! `cargo bench -p tokenwarden-core`; figures in BENCHMARKS.md.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use http::Request;
use tokenwarden_core::client_auth::authenticate_client;
use tokenwarden_core::clock::ManualClock;
use tokenwarden_core::crypto::TokenDigest;
use tokenwarden_core::model::{AccessTokenRecord, Client, GrantType, Scope};
use tokenwarden_core::random::{new_access_token, OsRandom};
use tokenwarden_core::store::memory::MemoryStore;
use tokenwarden_core::store::{AdminStore, Store};
use tokenwarden_core::wire::parse_form;
use tokenwarden_core::{AuthorizationServer, Config};

/// The memory store never waits: poll once.
fn ready<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("memory store future pending"),
    }
}

const NOW: i64 = 1_800_000_000;
const SECRET: &str = "tws_0123456789abcdefghijklmnopqrstuvwxyzABCDEFG";
const TOKEN: &str = "twa_0123456789abcdefghijklmnopqrstuvwxyzABCDEFG";

fn setup() -> AuthorizationServer<MemoryStore> {
    let store = MemoryStore::default();
    ready(store.create_client(&Client {
        client_id: "bench".into(),
        name: "bench".into(),
        secret_digest: Some(TokenDigest::of(SECRET)),
        grant_types: vec![GrantType::ClientCredentials],
        redirect_uris: vec![],
        scope: Scope::parse("read write").unwrap(),
        introspect: true,
        cors_origins: vec![],
        created_at: NOW,
    }))
    .unwrap();
    ready(store.insert_access_token(&AccessTokenRecord {
        digest: TokenDigest::of(TOKEN),
        grant_id: None,
        client_id: "bench".into(),
        username: None,
        scope: Scope::parse("read").unwrap(),
        issued_at: NOW,
        expires_at: NOW + 3600,
    }))
    .unwrap();
    AuthorizationServer::new(
        store,
        Config::new("https://auth.example"),
        Arc::new(ManualClock::new(NOW)),
        Arc::new(OsRandom),
    )
}

fn basic() -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("bench:{SECRET}"))
    )
}

fn benches(c: &mut Criterion) {
    let body = format!("token={TOKEN}&token_type_hint=access_token");
    c.bench_function("parse_form (token + hint)", |b| {
        b.iter(|| parse_form(black_box(body.as_bytes())).unwrap())
    });

    let server = setup();
    let mut headers = http::HeaderMap::new();
    headers.insert(http::header::AUTHORIZATION, basic().parse().unwrap());
    let form = parse_form(body.as_bytes()).unwrap();
    c.bench_function("authenticate_client (Basic, SHA-256, memory store)", |b| {
        b.iter(|| {
            ready(authenticate_client(
                server.store(),
                black_box(&headers),
                &form,
                false,
            ))
            .unwrap()
        })
    });

    c.bench_function("new_access_token + SHA-256 digest", |b| {
        b.iter(|| {
            let t = new_access_token(&OsRandom, 1_763_800_000_000).unwrap();
            black_box(TokenDigest::of(t.secret()))
        })
    });

    let auth = basic();
    c.bench_function("introspect endpoint (memory store, active token)", |b| {
        b.iter(|| {
            let request = Request::post("/oauth2/introspect")
                .header("content-type", "application/x-www-form-urlencoded")
                .header("authorization", auth.as_str())
                .body(Bytes::from(body.clone()))
                .unwrap();
            let response = ready(server.introspect(request));
            assert_eq!(response.status(), 200);
            black_box(response)
        })
    });
}

criterion_group!(core, benches);
criterion_main!(core);
