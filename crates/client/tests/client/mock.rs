//! A scripted OAuth token server + resource server on 127.0.0.1:0, counting every request.
//!
//! * `POST /token`: scripted answers first (`script_token`), then a strictly rotating server: a
//!   refresh token works once; anything else is `invalid_grant`. Tokens are `AT<n>…`/`RT<n>…`.
//! * `POST /revoke`: records `(token, token_type_hint)` in order; answers `revoke_status`.
//! * `POST /introspect`: `{"active": true}` for tokens it issued and has not revoked.
//! * `GET|POST /api`: 200 for a valid bearer token, 401 otherwise (or always, or after a barrier).
//! * `GET /.well-known/oauth-authorization-server`: RFC 8414 metadata.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::Router;
use base64::Engine as _;
use tokenwarden_client::{
    AccessToken, ClientCredentials, ClientSecret, EndpointUrl, Endpoints, HttpClient, HttpError,
    MemoryStore, OAuthClient, RefreshToken, ReqwestClient, TokenManager, TokenSet, TokioClock,
};

/// A suffix that makes every mock secret easy to search for in logs.
pub const MARK: &str = "zQx9SECRET";
pub const CLIENT_ID: &str = "client-1";
pub const CLIENT_SECRET: &str = "cs-zQx9SECRET-client";

pub enum Scripted {
    Status {
        status: u16,
        retry_after: Option<u64>,
        body: String,
    },
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum ApiMode {
    ValidTokens,
    AlwaysUnauthorized,
}

#[derive(Default)]
pub struct Grants {
    counter: u32,
    valid_access: HashSet<String>,
    current_refresh: Option<String>,
    issued: Vec<String>,
}

pub struct MockState {
    pub token_posts: AtomicUsize,
    pub api_calls: AtomicUsize,
    pub api_by_token: Mutex<HashMap<String, usize>>,
    pub revocations: Mutex<Vec<(String, Option<String>)>>,
    pub token_forms: Mutex<Vec<Vec<(String, String)>>>,
    pub basic_credentials: Mutex<Vec<String>>,
    script: Mutex<VecDeque<Scripted>>,
    grants: Mutex<Grants>,
    expires_in: Mutex<Option<u64>>,
    rotate: Mutex<bool>,
    revoke_status: AtomicU16,
    api_mode: Mutex<ApiMode>,
    api_barrier: Mutex<Option<(String, Arc<tokio::sync::Barrier>)>>,
    token_delay_ms: AtomicU64,
    token_gate: Mutex<Option<Arc<tokio::sync::Semaphore>>>,
    pub token_arrived: tokio::sync::Notify,
    base: Mutex<String>,
}

pub struct MockServer {
    pub base: String,
    pub state: Arc<MockState>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl MockServer {
    pub fn start() -> Self {
        let state = Arc::new(MockState {
            token_posts: AtomicUsize::new(0),
            api_calls: AtomicUsize::new(0),
            api_by_token: Mutex::default(),
            revocations: Mutex::default(),
            token_forms: Mutex::default(),
            basic_credentials: Mutex::default(),
            script: Mutex::default(),
            grants: Mutex::default(),
            expires_in: Mutex::new(Some(3600)),
            rotate: Mutex::new(true),
            revoke_status: AtomicU16::new(200),
            api_mode: Mutex::new(ApiMode::ValidTokens),
            api_barrier: Mutex::default(),
            token_delay_ms: AtomicU64::new(0),
            token_gate: Mutex::default(),
            token_arrived: tokio::sync::Notify::new(),
            base: Mutex::default(),
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        *state.base.lock().unwrap() = base.clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app = router(Arc::clone(&state));
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = rx.await;
                    })
                    .await;
            });
        });
        Self {
            base,
            state,
            shutdown: Some(tx),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn endpoints(&self) -> Endpoints {
        Endpoints {
            token: Some(EndpointUrl::parse(&self.url("/token")).unwrap()),
            revocation: Some(EndpointUrl::parse(&self.url("/revoke")).unwrap()),
            introspection: Some(EndpointUrl::parse(&self.url("/introspect")).unwrap()),
        }
    }

    /// Makes `access`/`refresh` the live pair, as if issued before the test.
    pub fn seed(&self, access: &str, refresh: &str) {
        let mut g = self.state.grants.lock().unwrap();
        g.valid_access.insert(access.to_owned());
        g.current_refresh = Some(refresh.to_owned());
        g.issued.push(access.to_owned());
        g.issued.push(refresh.to_owned());
    }

    pub fn set_current_refresh(&self, refresh: &str) {
        self.state.grants.lock().unwrap().current_refresh = Some(refresh.to_owned());
    }

    pub fn invalidate_access(&self, access: &str) {
        self.state
            .grants
            .lock()
            .unwrap()
            .valid_access
            .remove(access);
    }

    pub fn issued(&self) -> Vec<String> {
        self.state.grants.lock().unwrap().issued.clone()
    }

    pub fn script_token(&self, status: u16, retry_after: Option<u64>, body: &str) {
        self.state
            .script
            .lock()
            .unwrap()
            .push_back(Scripted::Status {
                status,
                retry_after,
                body: body.to_owned(),
            });
    }

    pub fn set_expires_in(&self, expires_in: Option<u64>) {
        *self.state.expires_in.lock().unwrap() = expires_in;
    }

    pub fn set_rotate(&self, rotate: bool) {
        *self.state.rotate.lock().unwrap() = rotate;
    }

    pub fn set_revoke_status(&self, status: u16) {
        self.state.revoke_status.store(status, Ordering::SeqCst);
    }

    pub fn set_api_mode(&self, mode: ApiMode) {
        *self.state.api_mode.lock().unwrap() = mode;
    }

    /// Requests to /api with `token` wait until `n` of them are in flight, then get 401.
    pub fn api_barrier(&self, token: &str, n: usize) {
        *self.state.api_barrier.lock().unwrap() =
            Some((token.to_owned(), Arc::new(tokio::sync::Barrier::new(n))));
    }

    pub fn set_token_delay(&self, delay: Duration) {
        self.state
            .token_delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    /// Token requests wait until `open_token_gate`.
    pub fn close_token_gate(&self) -> Arc<tokio::sync::Semaphore> {
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        *self.state.token_gate.lock().unwrap() = Some(Arc::clone(&gate));
        gate
    }

    pub fn token_posts(&self) -> usize {
        self.state.token_posts.load(Ordering::SeqCst)
    }

    pub fn api_calls(&self) -> usize {
        self.state.api_calls.load(Ordering::SeqCst)
    }

    pub fn api_calls_with(&self, token: &str) -> usize {
        *self
            .state
            .api_by_token
            .lock()
            .unwrap()
            .get(token)
            .unwrap_or(&0)
    }

    pub fn revocations(&self) -> Vec<(String, Option<String>)> {
        self.state.revocations.lock().unwrap().clone()
    }

    pub fn basic_credentials(&self) -> Vec<String> {
        self.state.basic_credentials.lock().unwrap().clone()
    }

    pub fn token_forms(&self) -> Vec<Vec<(String, String)>> {
        self.state.token_forms.lock().unwrap().clone()
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

fn router(state: Arc<MockState>) -> Router {
    Router::new()
        .route("/token", post(token))
        .route("/revoke", post(revoke))
        .route("/introspect", post(introspect))
        .route("/api", any(api))
        .route("/.well-known/oauth-authorization-server", get(metadata))
        .with_state(state)
}

fn json(status: u16, body: String) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        [
            ("content-type", "application/json"),
            ("cache-control", "no-store"),
        ],
        body,
    )
        .into_response()
}

fn form(body: &Bytes) -> Vec<(String, String)> {
    form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn param<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn record_basic(state: &MockState, headers: &HeaderMap) {
    if let Some(value) = headers.get("authorization").and_then(|v| v.to_str().ok()) {
        if let Some(b64) = value.strip_prefix("Basic ") {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap();
            state
                .basic_credentials
                .lock()
                .unwrap()
                .push(String::from_utf8(decoded).unwrap());
        }
    }
}

async fn token(State(state): State<Arc<MockState>>, headers: HeaderMap, body: Bytes) -> Response {
    state.token_posts.fetch_add(1, Ordering::SeqCst);
    state.token_arrived.notify_one();
    record_basic(&state, &headers);
    let form = form(&body);
    state.token_forms.lock().unwrap().push(form.clone());
    let gate = state.token_gate.lock().unwrap().clone();
    if let Some(gate) = gate {
        let _ = tokio::time::timeout(Duration::from_secs(20), gate.acquire()).await;
    }
    let delay = state.token_delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let scripted = state.script.lock().unwrap().pop_front();
    if let Some(Scripted::Status {
        status,
        retry_after,
        body,
    }) = scripted
    {
        let mut response = json(status, body);
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert("retry-after", secs.to_string().parse().unwrap());
        }
        return response;
    }
    let expires_in = *state.expires_in.lock().unwrap();
    let rotate = *state.rotate.lock().unwrap();
    let mut g = state.grants.lock().unwrap();
    let refresh_token = match param(&form, "grant_type") {
        Some("refresh_token") => {
            let presented = param(&form, "refresh_token").unwrap_or_default();
            if g.current_refresh.as_deref() != Some(presented) {
                return json(
                    400,
                    r#"{"error":"invalid_grant","error_description":"refresh token invalid"}"#
                        .into(),
                );
            }
            g.counter += 1;
            if rotate {
                let rt = format!("RT{}-{MARK}", g.counter);
                g.current_refresh = Some(rt.clone());
                g.issued.push(rt.clone());
                Some(rt)
            } else {
                None
            }
        }
        Some("client_credentials") => {
            g.counter += 1;
            None
        }
        _ => return json(400, r#"{"error":"unsupported_grant_type"}"#.into()),
    };
    let access = format!("AT{}-{MARK}", g.counter);
    g.valid_access.insert(access.clone());
    g.issued.push(access.clone());
    let mut body = serde_json::json!({
        "access_token": access,
        "token_type": "Bearer",
        "scope": "read",
    });
    if let Some(secs) = expires_in {
        body["expires_in"] = secs.into();
    }
    if let Some(rt) = refresh_token {
        body["refresh_token"] = rt.into();
    }
    json(200, body.to_string())
}

async fn revoke(State(state): State<Arc<MockState>>, headers: HeaderMap, body: Bytes) -> Response {
    record_basic(&state, &headers);
    let form = form(&body);
    let token = param(&form, "token").unwrap_or_default().to_owned();
    let hint = param(&form, "token_type_hint").map(str::to_owned);
    state
        .revocations
        .lock()
        .unwrap()
        .push((token.clone(), hint));
    let status = state.revoke_status.load(Ordering::SeqCst);
    if status == 200 {
        let mut g = state.grants.lock().unwrap();
        g.valid_access.remove(&token);
        if g.current_refresh.as_deref() == Some(token.as_str()) {
            g.current_refresh = None;
        }
        (StatusCode::OK, "").into_response()
    } else {
        json(status, r#"{"error":"server_error"}"#.into())
    }
}

async fn introspect(State(state): State<Arc<MockState>>, body: Bytes) -> Response {
    let form = form(&body);
    let token = param(&form, "token").unwrap_or_default();
    let g = state.grants.lock().unwrap();
    let body = if g.valid_access.contains(token) {
        serde_json::json!({"active": true, "client_id": CLIENT_ID, "scope": "read", "aud": ["api"], "exp": 2_000_000_000})
    } else {
        serde_json::json!({"active": false})
    };
    json(200, body.to_string())
}

async fn api(State(state): State<Arc<MockState>>, headers: HeaderMap) -> Response {
    state.api_calls.fetch_add(1, Ordering::SeqCst);
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_owned();
    *state
        .api_by_token
        .lock()
        .unwrap()
        .entry(token.clone())
        .or_default() += 1;
    let barrier = state.api_barrier.lock().unwrap().clone();
    if let Some((held, barrier)) = barrier {
        if held == token {
            tokio::time::timeout(Duration::from_secs(20), barrier.wait())
                .await
                .expect("barrier: not all requests arrived");
            return unauthorized();
        }
    }
    let mode = *state.api_mode.lock().unwrap();
    let valid = state.grants.lock().unwrap().valid_access.contains(&token);
    if mode == ApiMode::ValidTokens && valid {
        (StatusCode::OK, format!("hello {}", token.len())).into_response()
    } else {
        unauthorized()
    }
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [("www-authenticate", r#"Bearer error="invalid_token""#)],
        "",
    )
        .into_response()
}

async fn metadata(State(state): State<Arc<MockState>>) -> Response {
    let base = state.base.lock().unwrap().clone();
    json(
        200,
        serde_json::json!({
            "issuer": base,
            "token_endpoint": format!("{base}/token"),
            "revocation_endpoint": format!("{base}/revoke"),
            "introspection_endpoint": format!("{base}/introspect"),
            "grant_types_supported": ["client_credentials", "refresh_token"],
        })
        .to_string(),
    )
}

// ---- client-side helpers ----

/// 2025-01-01T09:00:00Z.
pub const T0_UNIX: u64 = 1_735_722_000;

/// 2025-01-01 at hh:mm:ss.ms UTC.
pub fn at(h: u64, m: u64, s: u64, ms: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH
        + Duration::from_secs(T0_UNIX - 9 * 3600 + h * 3600 + m * 60 + s)
        + Duration::from_millis(ms)
}

pub fn token_set(
    access: &str,
    refresh: Option<&str>,
    obtained: SystemTime,
    expires: SystemTime,
) -> TokenSet {
    TokenSet {
        access_token: AccessToken::new(access),
        token_type: "Bearer".into(),
        refresh_token: refresh.map(RefreshToken::new),
        scope: Some("read".into()),
        obtained_at: obtained,
        expires_at: expires,
        expiry_assumed: false,
    }
}

/// A reqwest client without timers (no pool idle timeout), so tokio's paused clock only moves
/// when a test advances it or a backoff sleeps.
pub fn test_reqwest() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .pool_idle_timeout(None)
        .build()
        .unwrap()
}

/// Records every request with its virtual time before passing it on.
#[derive(Debug)]
pub struct Recording {
    inner: ReqwestClient,
    pub log: Mutex<Vec<(String, tokio::time::Instant)>>,
}

impl Recording {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            inner: ReqwestClient::from_client(test_reqwest()),
            log: Mutex::default(),
        })
    }

    pub fn count(&self, path: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p == path)
            .count()
    }

    pub fn total(&self) -> usize {
        self.log.lock().unwrap().len()
    }

    pub fn times(&self, path: &str) -> Vec<tokio::time::Instant> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, t)| *t)
            .collect()
    }
}

#[async_trait::async_trait]
impl HttpClient for Recording {
    async fn execute(
        &self,
        request: http::Request<bytes::Bytes>,
    ) -> Result<http::Response<bytes::Bytes>, HttpError> {
        self.log
            .lock()
            .unwrap()
            .push((request.uri().path().to_owned(), tokio::time::Instant::now()));
        self.inner.execute(request).await
    }
}

pub fn credentials() -> ClientCredentials {
    ClientCredentials::basic(CLIENT_ID, ClientSecret::new(CLIENT_SECRET))
}

pub struct Setup {
    pub mock: MockServer,
    pub http: Arc<Recording>,
    pub store: Arc<MemoryStore>,
    pub clock: TokioClock,
    pub manager: TokenManager,
}

impl Setup {
    /// A manager at 09:00:00 holding `AT0`/`RT0` (obtained 09:00, expiring 10:00), which the mock
    /// server accepts.
    pub fn new() -> Self {
        Self::with_tokens(Some(token_set(
            &format!("AT0-{MARK}"),
            Some(&format!("RT0-{MARK}")),
            at(9, 0, 0, 0),
            at(10, 0, 0, 0),
        )))
    }

    pub fn with_tokens(tokens: Option<TokenSet>) -> Self {
        let mock = MockServer::start();
        mock.seed(&format!("AT0-{MARK}"), &format!("RT0-{MARK}"));
        let http = Recording::new();
        let store = Arc::new(match tokens {
            Some(t) => MemoryStore::with_tokens(t),
            None => MemoryStore::new(),
        });
        let clock = TokioClock::starting_at(at(9, 0, 0, 0));
        let client = OAuthClient::new(http.clone(), credentials(), mock.endpoints());
        let manager = TokenManager::builder(client)
            .store(store.clone())
            .clock(Arc::new(clock))
            .build();
        Self {
            mock,
            http,
            store,
            clock,
            manager,
        }
    }

    pub fn manager_with(
        &self,
        f: impl FnOnce(
            tokenwarden_client::TokenManagerBuilder,
        ) -> tokenwarden_client::TokenManagerBuilder,
    ) -> TokenManager {
        let client = OAuthClient::new(self.http.clone(), credentials(), self.mock.endpoints());
        f(TokenManager::builder(client)
            .store(self.store.clone())
            .clock(Arc::new(self.clock)))
        .build()
    }

    /// Advances tokio's paused clock to `target`.
    pub async fn advance_to(&self, target: SystemTime) {
        use tokenwarden_client::Clock as _;
        let now = self.clock.now();
        let step = target.duration_since(now).unwrap();
        tokio::time::advance(step).await;
        assert_eq!(self.clock.now(), target);
    }

    pub fn api(&self) -> reqwest_middleware::ClientWithMiddleware {
        self.manager.authorized_client(test_reqwest())
    }
}

pub fn at0() -> String {
    format!("AT0-{MARK}")
}

pub fn rt0() -> String {
    format!("RT0-{MARK}")
}

pub fn at_n(n: u32) -> String {
    format!("AT{n}-{MARK}")
}

pub fn rt_n(n: u32) -> String {
    format!("RT{n}-{MARK}")
}
