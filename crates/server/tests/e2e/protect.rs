//! An API protected by `tokenwarden-resource` in front of the real server: cached validation,
//! revocation reaching the API through the feed, reconnect from the cursor, fail-safe fallback.
#![allow(clippy::disallowed_methods)] // latencies are measured and reported; bounds are loose

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use tokenwarden_resource::{Claims, ClientSecret, Validator, ValidatorBuilder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::harness::*;

/// Introspection requests the server has answered (from `/metrics`).
pub async fn introspections(server: &ServerProcess) -> u64 {
    let text = metrics_text(server).await;
    text.lines()
        .filter(|l| l.starts_with("tokenwarden_requests_total{endpoint=\"introspect\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// A protected API on 127.0.0.1: `GET /hello` answers the token's subject.
pub struct Api {
    pub base: String,
    pub validator: Validator,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Api {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Api {
    pub async fn start(
        configure: impl FnOnce(ValidatorBuilder) -> ValidatorBuilder,
        rs: &(String, String),
    ) -> Self {
        let builder = Validator::builder()
            .client_credentials(rs.0.clone(), ClientSecret::new(rs.1.clone()))
            .cache_max_ttl(Duration::from_secs(300));
        let validator = configure(builder).build().await.unwrap();
        let app = Router::new()
            .route(
                "/hello",
                get(|claims: Claims| async move { claims.subject.clone().unwrap_or_default() }),
            )
            .route_layer(validator.layer().require_scope("read"));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            base,
            validator,
            task,
        }
    }

    pub async fn get(&self, token: &str) -> reqwest::Response {
        http()
            .get(format!("{}/hello", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    pub async fn status(&self, token: &str) -> u16 {
        self.get(token).await.status().as_u16()
    }

    pub async fn wait_for_feed(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.validator.stats().feed_connected {
            assert!(
                Instant::now() < deadline,
                "feed never connected: {:?}",
                self.validator.stats()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

pub async fn client_credentials(server: &ServerProcess, c: &(String, String)) -> String {
    let (status, body) = json_of(
        post_form(
            &server.url("/oauth2/token"),
            &c.0,
            &c.1,
            &[("grant_type", "client_credentials"), ("scope", "read")],
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

/// How long a revocation took to reach the API.
pub struct Timing {
    /// From sending the revocation to its `200` (the server's durable commit included).
    pub revoke: Duration,
    /// From sending the revocation until the API answered `401`.
    pub total: Duration,
}

/// Revokes `token` at `server` (node A in the two-node test) and measures until `api` answers
/// `401` for it, polling every millisecond.
pub async fn revoke_and_time_rejection(
    server: &ServerProcess,
    owner: &(String, String),
    api: &Api,
    token: &str,
) -> Timing {
    let started = Instant::now();
    let r = post_form(
        &server.url("/oauth2/revoke"),
        &owner.0,
        &owner.1,
        &[("token", token)],
    )
    .await;
    assert_eq!(r.status(), 200);
    let revoke = started.elapsed();
    loop {
        let response = api.get(token).await;
        if response.status() == 401 {
            let elapsed = started.elapsed();
            let challenge = response.headers()["www-authenticate"].to_str().unwrap();
            assert!(challenge.starts_with("Bearer "), "{challenge}");
            assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
            return Timing {
                revoke,
                total: elapsed,
            };
        }
        assert_eq!(response.status(), 200);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "still accepted after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

pub fn percentiles(mut d: Vec<Duration>) -> (Duration, Duration, Duration) {
    d.sort();
    (
        d[d.len() / 2],
        d[(d.len() * 99).div_ceil(100) - 1],
        d[d.len() - 1],
    )
}

/// Prints the distribution of revocation → rejection over a run, split at the revocation's 200.
pub fn report(what: &str, timings: &[Timing]) -> Duration {
    let total = percentiles(timings.iter().map(|t| t.total).collect());
    let revoke = percentiles(timings.iter().map(|t| t.revoke).collect());
    let after = percentiles(timings.iter().map(|t| t.total - t.revoke).collect());
    println!(
        "{what}, {} revocations: revoke sent → API rejects p50 {:?} p99 {:?} max {:?}; \
         of which the revocation's own 200: p50 {:?} p99 {:?}; from its 200 to the API's 401: p50 {:?} p99 {:?} max {:?}",
        timings.len(), total.0, total.1, total.2, revoke.0, revoke.1, after.0, after.1, after.2
    );
    total.2
}

#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_requests_with_one_token_cost_one_introspection() {
    let db = TempDb::new();
    let rs = db.client("rs", &["--introspect"]);
    let svc = db.client("svc", &["--scope", "read"]);
    let server = db.start(&[]);
    let api = Api::start(|b| b.issuer(server.base.clone()), &rs).await;
    api.wait_for_feed().await;
    let token = client_credentials(&server, &svc).await;
    let before = introspections(&server).await;
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let (base, token) = (api.base.clone(), token.clone());
            tokio::spawn(async move {
                let client = http();
                for _ in 0..100 {
                    let r = client
                        .get(format!("{base}/hello"))
                        .bearer_auth(&token)
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 200);
                    assert_eq!(r.text().await.unwrap(), "svc");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let used = introspections(&server).await - before;
    let stats = api.validator.stats();
    println!(
        "1000 API requests with one token: {used} introspection(s) at the server; layer: {stats:?}"
    );
    assert!(used <= 3, "{used} introspections for 1000 requests");
    assert_eq!(stats.cache_hits + stats.cache_misses, 1000);

    // Without a token, with a garbage one, with a token lacking the scope.
    let r = http()
        .get(format!("{}/hello", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(!r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("error="));
    assert_eq!(api.status("twa_not_a_token").await, 401);
    let writer = db.client("writer", &["--scope", "write"]);
    let (_, body) = json_of(
        post_form(
            &server.url("/oauth2/token"),
            &writer.0,
            &writer.1,
            &[("grant_type", "client_credentials")],
        )
        .await,
    )
    .await;
    let r = api.get(body["access_token"].as_str().unwrap()).await;
    assert_eq!(r.status(), 403);
    assert!(r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("error=\"insufficient_scope\""));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_token_is_rejected_by_the_api_within_milliseconds() {
    let db = TempDb::new();
    let rs = db.client("rs", &["--introspect"]);
    let svc = db.client("svc", &["--scope", "read"]);
    let server = db.start(&[]);
    let api = Api::start(|b| b.issuer(server.base.clone()), &rs).await;
    api.wait_for_feed().await;
    let mut delays = Vec::new();
    for _ in 0..50 {
        let token = client_credentials(&server, &svc).await;
        assert_eq!(api.status(&token).await, 200);
        assert_eq!(api.status(&token).await, 200);
        delays.push(revoke_and_time_rejection(&server, &svc, &api, &token).await);
    }
    let max = report("SQLite", &delays);
    let stats = api.validator.stats();
    println!("layer: {stats:?}");
    assert!(max < Duration::from_secs(1), "max {max:?}");
    assert_eq!(
        stats.evictions.token, 50,
        "every rejection came from a feed eviction"
    );
    // Every token was introspected once to cache it and once after its eviction.
    assert_eq!(stats.introspections, 100);
}

/// A TCP proxy in front of the server's feed that can cut connections and refuse new ones.
struct Proxy {
    addr: String,
    down: Arc<AtomicBool>,
    requests: Arc<Mutex<Vec<String>>>,
    conns: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

impl Proxy {
    async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let down = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let conns = Arc::new(Mutex::new(Vec::new()));
        let (d, r, c) = (down.clone(), requests.clone(), conns.clone());
        let accept = tokio::spawn(async move {
            loop {
                let (mut inbound, _) = listener.accept().await.unwrap();
                if d.load(Ordering::SeqCst) {
                    drop(inbound); // refused while down
                    continue;
                }
                let (upstream, requests) = (upstream.clone(), r.clone());
                c.lock().unwrap().push(tokio::spawn(async move {
                    let mut outbound = TcpStream::connect(&upstream).await.unwrap();
                    // Record the request head (to check Last-Event-ID), then pipe both ways.
                    let mut head = vec![0u8; 4096];
                    let n = inbound.read(&mut head).await.unwrap_or(0);
                    requests
                        .lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&head[..n]).to_lowercase());
                    outbound.write_all(&head[..n]).await.unwrap();
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }));
            }
        });
        Self {
            addr,
            down,
            requests,
            conns,
            accept,
        }
    }

    /// Kills every open connection.
    fn cut(&self) {
        for task in self.conns.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}

async fn feed_via_proxy(
    stale_bound: Duration,
) -> (TempDb, ServerProcess, (String, String), Proxy, Api) {
    let db = TempDb::new();
    let rs = db.client("rs", &["--introspect"]);
    let svc = db.client("svc", &["--scope", "read"]);
    let server = db.start(&[]);
    let upstream = server.base.trim_start_matches("http://").to_owned();
    let proxy = Proxy::start(upstream).await;
    let feed = format!("http://{}/oauth2/revocations", proxy.addr);
    let introspect = server.url("/oauth2/introspect");
    let api = Api::start(
        move |b| {
            b.introspection_endpoint(introspect)
                .revocation_feed_endpoint(feed)
                .feed_stale_bound(stale_bound)
                .reconnect_backoff(Duration::from_millis(50), Duration::from_millis(200))
        },
        &rs,
    )
    .await;
    api.wait_for_feed().await;
    (db, server, svc, proxy, api)
}

#[tokio::test(flavor = "multi_thread")]
async fn after_the_feed_connection_is_killed_the_layer_resumes_from_its_cursor() {
    let (_db, server, svc, proxy, api) = feed_via_proxy(Duration::from_secs(30)).await;
    // One event before the cut, so the cursor is not 0.
    let first = client_credentials(&server, &svc).await;
    assert_eq!(api.status(&first).await, 200);
    revoke_and_time_rejection(&server, &svc, &api, &first).await;
    let cursor = api.validator.stats().cursor;
    assert_eq!(cursor, Some(1));

    let tokens = [
        client_credentials(&server, &svc).await,
        client_credentials(&server, &svc).await,
        client_credentials(&server, &svc).await,
    ];
    for t in &tokens {
        assert_eq!(api.status(t).await, 200);
    }
    proxy.down.store(true, Ordering::SeqCst);
    proxy.cut();
    // Revoked while the layer cannot hear about it.
    for t in &tokens {
        let r = post_form(
            &server.url("/oauth2/revoke"),
            &svc.0,
            &svc.1,
            &[("token", t)],
        )
        .await;
        assert_eq!(r.status(), 200);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!api.validator.stats().feed_connected);
    proxy.down.store(false, Ordering::SeqCst);
    // The layer reconnects with Last-Event-ID: 1 and gets events 2, 3, 4.
    let deadline = Instant::now() + Duration::from_secs(10);
    while api.validator.stats().cursor != Some(4) {
        assert!(Instant::now() < deadline, "{:?}", api.validator.stats());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for t in &tokens {
        assert_eq!(api.status(t).await, 401, "no event missed");
    }
    let requests = proxy.requests.lock().unwrap().clone();
    assert!(requests.len() >= 2, "{requests:?}");
    assert!(
        requests.last().unwrap().contains("last-event-id: 1\r\n"),
        "{:?}",
        requests.last()
    );
    assert!(api.validator.stats().feed_reconnects >= 1);
    assert_eq!(api.validator.stats().evictions.token, 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn with_the_feed_down_longer_than_the_bound_every_request_is_introspected() {
    let (_db, server, svc, proxy, api) = feed_via_proxy(Duration::from_millis(300)).await;
    let token = client_credentials(&server, &svc).await;
    assert_eq!(api.status(&token).await, 200);
    let before = introspections(&server).await;
    for _ in 0..20 {
        assert_eq!(api.status(&token).await, 200);
    }
    assert_eq!(
        introspections(&server).await - before,
        0,
        "cached while the feed is up"
    );

    proxy.down.store(true, Ordering::SeqCst);
    proxy.cut();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let before = introspections(&server).await;
    for _ in 0..20 {
        assert_eq!(api.status(&token).await, 200);
    }
    assert_eq!(
        introspections(&server).await - before,
        20,
        "one introspection per request"
    );
    // And a token revoked now is rejected at once, feed or no feed.
    let r = post_form(
        &server.url("/oauth2/revoke"),
        &svc.0,
        &svc.1,
        &[("token", &token)],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(api.status(&token).await, 401);

    // Feed back: caching resumes.
    proxy.down.store(false, Ordering::SeqCst);
    api.wait_for_feed().await;
    let fresh = client_credentials(&server, &svc).await;
    assert_eq!(api.status(&fresh).await, 200);
    let before = introspections(&server).await;
    for _ in 0..20 {
        assert_eq!(api.status(&fresh).await, 200);
    }
    assert_eq!(introspections(&server).await - before, 0);
}
