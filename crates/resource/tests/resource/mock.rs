//! A mock authorization server on 127.0.0.1:0: introspection (scripted per token, countable,
//! gateable, can fail), the revocation feed (SSE frames pushed by the test, connections dropped on
//! demand, every request's headers recorded) and RFC 8414 metadata. Plus the protected test app.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use base64::Engine as _;
use tokenwarden_resource::{
    Claims, ClientSecret, ManualClock, TokenClaims, Validator, ValidatorBuilder,
};
use tokio::sync::{mpsc, Notify, Semaphore};
use tower::ServiceExt as _;

pub const CLIENT_ID: &str = "notes-api";
/// Easy to search for in Debug output.
pub const CLIENT_SECRET: &str = "rs-zQx9SECRET-resource";
/// The wall clock of the tests' [`ManualClock`].
pub const NOW: u64 = 1_763_800_000;

pub fn start_time() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(NOW)
}

/// One request the feed endpoint received.
#[derive(Clone, Debug)]
pub struct FeedRequest {
    pub last_event_id: Option<String>,
    pub authorization: Option<String>,
    pub accept: Option<String>,
}

type Frame = Result<Bytes, std::io::Error>;

pub struct MockState {
    pub introspections: AtomicUsize,
    pub introspection_auth: Mutex<Vec<String>>,
    pub introspection_bodies: Mutex<Vec<String>>,
    tokens: Mutex<HashMap<String, serde_json::Value>>,
    introspect_status: AtomicU16,
    gate: Mutex<Option<Arc<Semaphore>>>,
    pub introspection_arrived: Notify,
    feed_up: AtomicBool,
    pub feed_requests: Mutex<Vec<FeedRequest>>,
    feed_conn: Mutex<Option<mpsc::UnboundedSender<Frame>>>,
    /// `Some(heartbeat)`: send `ready` as soon as a subscriber connects.
    auto_ready: Mutex<Option<u64>>,
    head: Mutex<u64>,
}

pub struct Mock {
    pub base: String,
    pub state: Arc<MockState>,
}

impl Mock {
    pub async fn start() -> Self {
        let state = Arc::new(MockState {
            introspections: AtomicUsize::new(0),
            introspection_auth: Mutex::default(),
            introspection_bodies: Mutex::default(),
            tokens: Mutex::default(),
            introspect_status: AtomicU16::new(200),
            gate: Mutex::default(),
            introspection_arrived: Notify::new(),
            feed_up: AtomicBool::new(true),
            feed_requests: Mutex::default(),
            feed_conn: Mutex::default(),
            auto_ready: Mutex::new(Some(10)),
            head: Mutex::new(41),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let metadata_base = base.clone();
        let app = Router::new()
            .route("/introspect", post(introspect))
            .route("/feed", get(feed))
            .route(
                "/.well-known/oauth-authorization-server",
                get(move || async move {
                    json(serde_json::json!({
                        "issuer": metadata_base,
                        "introspection_endpoint": format!("{metadata_base}/introspect"),
                        "revocation_feed_endpoint": format!("{metadata_base}/feed"),
                    }))
                }),
            )
            .with_state(Arc::clone(&state));
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { base, state }
    }

    /// A validator against this mock, on `clock`, with fast reconnects.
    pub fn builder(&self, clock: &Arc<ManualClock>) -> ValidatorBuilder {
        Validator::builder()
            .introspection_endpoint(format!("{}/introspect", self.base))
            .revocation_feed_endpoint(format!("{}/feed", self.base))
            .client_credentials(CLIENT_ID, ClientSecret::new(CLIENT_SECRET))
            .clock(Arc::clone(clock) as Arc<dyn tokenwarden_resource::Clock>)
            .reconnect_backoff(Duration::from_millis(10), Duration::from_millis(100))
    }

    /// An active access token of `client_id` for `sub` with `scope`, expiring an hour after NOW.
    pub fn issue(&self, token: &str, client_id: &str, sub: &str, scope: &str) {
        self.set(
            token,
            serde_json::json!({
                "active": true, "scope": scope, "client_id": client_id, "username": sub,
                "token_type": "Bearer", "exp": NOW + 3600, "iat": NOW, "sub": sub,
                "aud": client_id, "iss": "http://issuer.test", "jti": format!("jti-{token}"),
            }),
        );
    }

    /// Scripts the introspection answer for `token`.
    pub fn set(&self, token: &str, answer: serde_json::Value) {
        self.state
            .tokens
            .lock()
            .unwrap()
            .insert(token.to_owned(), answer);
    }

    /// Introspection now answers `{"active": false}` for `token`.
    pub fn deactivate(&self, token: &str) {
        self.state.tokens.lock().unwrap().remove(token);
    }

    pub fn introspections(&self) -> usize {
        self.state.introspections.load(Ordering::SeqCst)
    }

    pub fn set_introspect_status(&self, status: u16) {
        self.state.introspect_status.store(status, Ordering::SeqCst);
    }

    /// From now on every introspection waits for a permit of the returned semaphore.
    pub fn gate_introspection(&self) -> Arc<Semaphore> {
        let gate = Arc::new(Semaphore::new(0));
        *self.state.gate.lock().unwrap() = Some(Arc::clone(&gate));
        gate
    }

    pub fn set_auto_ready(&self, heartbeat: Option<u64>) {
        *self.state.auto_ready.lock().unwrap() = heartbeat;
    }

    pub fn set_feed_up(&self, up: bool) {
        self.state.feed_up.store(up, Ordering::SeqCst);
    }

    pub fn feed_requests(&self) -> Vec<FeedRequest> {
        self.state.feed_requests.lock().unwrap().clone()
    }

    /// Sends raw SSE text on the current feed connection.
    pub fn send(&self, frame: &str) {
        let conn = self.state.feed_conn.lock().unwrap();
        conn.as_ref()
            .expect("no feed connection")
            .send(Ok(Bytes::from(frame.to_owned())))
            .expect("feed connection gone");
    }

    pub fn send_ready(&self, cursor: u64, heartbeat: u64) {
        self.send(&ready_frame(cursor, heartbeat));
    }

    /// A `revoked` event with `seq` and the given members.
    pub fn send_revoked(&self, seq: u64, members: serde_json::Value) {
        let mut data = serde_json::json!({"seq": seq, "at": NOW});
        for (k, v) in members.as_object().unwrap() {
            data[k] = v.clone();
        }
        self.send(&format!("event: revoked\nid: {seq}\ndata: {data}\n\n"));
    }

    /// Ends the current feed response (the subscriber sees the stream end).
    pub fn drop_feed(&self) {
        self.state.feed_conn.lock().unwrap().take();
    }

    /// Aborts the current feed response mid-stream (an error instead of a clean end).
    pub fn abort_feed(&self) {
        if let Some(conn) = self.state.feed_conn.lock().unwrap().take() {
            let _ = conn.send(Err(std::io::Error::other("abort")));
        }
    }
}

pub fn ready_frame(cursor: u64, heartbeat: u64) -> String {
    format!(
        "retry: 1000\nevent: ready\nid: {cursor}\ndata: {{\"cursor\":{cursor},\"heartbeat\":{heartbeat}}}\n\n"
    )
}

fn json(value: serde_json::Value) -> Response {
    ([("content-type", "application/json")], value.to_string()).into_response()
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name).map(|v| v.to_str().unwrap().to_owned())
}

fn expected_basic() -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"))
    )
}

async fn introspect(
    State(state): State<Arc<MockState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    state.introspections.fetch_add(1, Ordering::SeqCst);
    let auth = header(&headers, "authorization").unwrap_or_default();
    state.introspection_auth.lock().unwrap().push(auth.clone());
    let body = String::from_utf8(body.to_vec()).unwrap();
    state
        .introspection_bodies
        .lock()
        .unwrap()
        .push(body.clone());
    state.introspection_arrived.notify_waiters();
    let gate = state.gate.lock().unwrap().clone();
    if let Some(gate) = gate {
        gate.acquire().await.unwrap().forget();
    }
    if auth != expected_basic() {
        return (StatusCode::UNAUTHORIZED, r#"{"error":"invalid_client"}"#).into_response();
    }
    let status = state.introspect_status.load(Ordering::SeqCst);
    if status != 200 {
        return (StatusCode::from_u16(status).unwrap(), "boom").into_response();
    }
    // Test tokens are plain [A-Za-z0-9_-]: no form decoding needed.
    let token = body
        .split('&')
        .find_map(|pair| pair.strip_prefix("token="))
        .unwrap_or_default()
        .to_owned();
    let answer = state
        .tokens
        .lock()
        .unwrap()
        .get(&token)
        .cloned()
        .unwrap_or_else(|| serde_json::json!({"active": false}));
    json(answer)
}

async fn feed(State(state): State<Arc<MockState>>, headers: HeaderMap) -> Response {
    let request = FeedRequest {
        last_event_id: header(&headers, "last-event-id"),
        authorization: header(&headers, "authorization"),
        accept: header(&headers, "accept"),
    };
    state.feed_requests.lock().unwrap().push(request.clone());
    if !state.feed_up.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "down").into_response();
    }
    if request.authorization.as_deref() != Some(expected_basic().as_str()) {
        return (StatusCode::UNAUTHORIZED, r#"{"error":"invalid_client"}"#).into_response();
    }
    let (sender, receiver) = mpsc::unbounded_channel::<Frame>();
    if let Some(heartbeat) = *state.auto_ready.lock().unwrap() {
        let cursor = match request.last_event_id.as_deref() {
            Some(id) => id.parse().unwrap(),
            None => *state.head.lock().unwrap(),
        };
        sender
            .send(Ok(Bytes::from(ready_frame(cursor, heartbeat))))
            .unwrap();
    }
    *state.feed_conn.lock().unwrap() = Some(sender);
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|frame| (frame, receiver))
    });
    Response::builder()
        .status(200)
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-store")
        .body(Body::from_stream(stream))
        .unwrap()
}

/// The API under test: `/notes` needs a token, `/admin` scope `admin`, `/open` is unprotected.
pub fn app(validator: &Validator) -> Router {
    async fn notes(claims: Claims, Extension(raw): Extension<Arc<TokenClaims>>) -> String {
        assert!(Arc::ptr_eq(&claims.0, &raw));
        format!(
            "{}|{}|{}|{}",
            claims.subject.as_deref().unwrap_or("-"),
            claims.client_id.as_deref().unwrap_or("-"),
            claims.scopes.join(","),
            claims.jti.as_deref().unwrap_or("-"),
        )
    }
    async fn open_required(_claims: Claims) -> &'static str {
        "unreachable"
    }
    async fn open_optional(claims: Option<Claims>) -> &'static str {
        if claims.is_some() {
            "claims"
        } else {
            "none"
        }
    }
    let protected = Router::new()
        .route("/notes", get(notes))
        .route_layer(validator.layer());
    let admin = Router::new().route("/admin", get(notes)).route_layer(
        validator
            .layer()
            .require_scope("read")
            .require_scope("admin"),
    );
    Router::new()
        .merge(protected)
        .merge(admin)
        .route("/open/required", get(open_required))
        .route("/open/optional", get(open_optional))
}

/// An answer, read whole.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn www_authenticate(&self) -> Option<&str> {
        self.headers
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap())
    }
}

/// `GET path` with `Authorization: <authorization>` (raw header value) through the app.
pub async fn call(app: &Router, path: &str, authorization: Option<&str>) -> Answer {
    let mut request = axum::http::Request::builder().uri(path);
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}

/// `GET path` with a bearer token.
pub async fn bearer(app: &Router, path: &str, token: &str) -> Answer {
    call(app, path, Some(&format!("Bearer {token}"))).await
}

/// Polls `condition` every 5 ms for up to 10 s.
pub async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Moves the manual `clock` forward while the feed keeps talking: advances it by `by`, then has
/// the feed send a keep-alive comment and waits until the validator heard it (its silence is back
/// to zero on the stopped clock). Without it a long jump of the clock is a silent feed.
pub async fn advance_heard(mock: &Mock, validator: &Validator, clock: &ManualClock, by: Duration) {
    clock.advance(by);
    mock.send(": keepalive\n\n");
    wait_until("the keep-alive heard", || {
        validator.stats().feed_silence == Some(Duration::ZERO)
    })
    .await;
}

/// A validator with its feed connected.
pub async fn connected(builder: ValidatorBuilder) -> Validator {
    let validator = builder.build().await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), validator.feed_connected())
        .await
        .expect("feed did not connect");
    validator
}
