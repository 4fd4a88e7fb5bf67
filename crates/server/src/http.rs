//! The axum adapter: routes, body limit, metrics, `/healthz`. Each OAuth handler converts the
//! axum request into `http::Request<Bytes>`, calls the core and returns its response unchanged.

use std::future::Future;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::Router;
use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, StatusCode};
use tokenwarden_core::error::{ErrorCode, OAuthError};
use tokenwarden_core::feed::REVOCATION_FEED_PATH;
use tokenwarden_core::metadata::{
    AUTHORIZATION_PATH, INTROSPECTION_PATH, REVOCATION_PATH, TOKEN_PATH, WELL_KNOWN_PATH,
};
use tokenwarden_core::store::{AccountStore, Store};
use tokenwarden_core::wire::{error_response, MAX_BODY_BYTES};
use tokenwarden_core::{AuthorizationServer, Outcome};

use crate::backend::Health;
use crate::feed::FeedHub;
use crate::metrics::{Endpoint, Metrics};
use crate::pages::{self, LoginLimiter};

/// Shared state of the HTTP handlers.
pub struct AppState<S> {
    /// The protocol core.
    pub server: AuthorizationServer<S>,
    /// Metrics registry.
    pub metrics: Metrics,
    /// Failed sign-in attempts, for rate limiting.
    pub login_limiter: LoginLimiter,
    /// The revocation feed's subscriptions.
    pub feed: FeedHub,
}

impl<S> AppState<S> {
    /// State around a configured core.
    pub fn new(server: AuthorizationServer<S>) -> Self {
        Self {
            server,
            metrics: Metrics::default(),
            login_limiter: LoginLimiter::default(),
            feed: FeedHub::default(),
        }
    }

    /// Replaces the feed's polling and heartbeat intervals.
    pub fn with_feed(mut self, feed: FeedHub) -> Self {
        self.feed = feed;
        self
    }
}

/// The application router: every route of INTERFACE.md implemented so far.
pub fn router<S: AccountStore + Health + 'static>(state: Arc<AppState<S>>) -> Router {
    Router::new()
        .route(AUTHORIZATION_PATH, get(pages::authorize::<S>))
        .route("/consent", post(pages::consent::<S>))
        .route(
            "/login",
            get(pages::login_form::<S>).post(pages::login::<S>),
        )
        .route("/logout", post(pages::logout::<S>))
        .route("/account", get(pages::account::<S>))
        .route(
            "/account/apps/{client_id}/revoke",
            post(pages::revoke_app::<S>),
        )
        .route("/static/style.css", get(pages::stylesheet))
        .route(TOKEN_PATH, any(token::<S>))
        .route(REVOCATION_PATH, any(revoke::<S>))
        .route(INTROSPECTION_PATH, any(introspect::<S>))
        .route(REVOCATION_FEED_PATH, any(revocation_feed::<S>))
        .route(WELL_KNOWN_PATH, any(metadata::<S>))
        .route("/healthz", get(healthz::<S>))
        .route("/metrics", get(metrics::<S>))
        .with_state(state)
}

/// How much of an oversized body is read and discarded before answering `413`, so a client still
/// sending it receives the answer instead of a connection reset; a larger body is cut off.
const DRAIN_BYTES: usize = 4 << 20;

/// Reads the body up to the 64 KiB limit. A larger body is answered `413`, after discarding up
/// to [`DRAIN_BYTES`] of it.
async fn buffered(request: Request) -> Result<http::Request<Bytes>, Response> {
    use futures_util::StreamExt as _;
    let too_large = || {
        core_response(error_response(
            &OAuthError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::InvalidRequest,
                "request body exceeds 64 KiB",
            )
            .into(),
        ))
    };
    let (parts, body) = request.into_parts();
    let mut stream = body.into_data_stream();
    // Most bodies arrive in one chunk: keep it as is, copy only when a second one comes.
    let mut first: Option<Bytes> = None;
    let mut buffer = bytes::BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else {
            return Err(core_response(error_response(
                &OAuthError::invalid_request("the request body could not be read").into(),
            )));
        };
        let held = first.as_ref().map_or(0, Bytes::len) + buffer.len();
        if held + chunk.len() > MAX_BODY_BYTES {
            let mut seen = held + chunk.len();
            while seen <= DRAIN_BYTES {
                match stream.next().await {
                    Some(Ok(more)) => seen += more.len(),
                    _ => break,
                }
            }
            return Err(too_large());
        }
        match first.take() {
            None if buffer.is_empty() => first = Some(chunk),
            None => buffer.extend_from_slice(&chunk),
            Some(earlier) => {
                buffer.extend_from_slice(&earlier);
                buffer.extend_from_slice(&chunk);
            }
        }
    }
    let body = first.unwrap_or_else(|| buffer.freeze());
    Ok(http::Request::from_parts(parts, body))
}

fn core_response(response: http::Response<Bytes>) -> Response {
    response.map(Body::from)
}

/// Runs one OAuth endpoint: buffer, call the core, record metrics (the outcome the core put in
/// the response's extensions, and the time to the response head).
async fn endpoint<F, Fut>(metrics: &Metrics, name: Endpoint, request: Request, call: F) -> Response
where
    F: FnOnce(http::Request<Bytes>) -> Fut,
    Fut: Future<Output = Response>,
{
    #[allow(clippy::disallowed_methods)] // monotonic latency measurement, not a wall-clock read
    let started = std::time::Instant::now();
    let response = match buffered(request).await {
        Ok(request) => call(request).await,
        Err(response) => response,
    };
    let outcome = response.extensions().get::<Outcome>().copied();
    metrics.record(
        name,
        outcome,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

async fn token<S: Store + Health + 'static>(
    State(st): State<Arc<AppState<S>>>,
    request: Request,
) -> Response {
    endpoint(&st.metrics, Endpoint::Token, request, |r| async {
        let response = st.server.token(r).await;
        // Reuse of a refresh token or of an authorization code revokes a grant.
        if response.extensions().get::<Outcome>() == Some(&Outcome::ReuseDetected) {
            st.feed.poke();
        }
        core_response(response)
    })
    .await
}

async fn revoke<S: Store + Health + 'static>(
    State(st): State<Arc<AppState<S>>>,
    request: Request,
) -> Response {
    endpoint(&st.metrics, Endpoint::Revoke, request, |r| async {
        let response = st.server.create_revocation_response(r).await;
        if response.extensions().get::<Outcome>() == Some(&Outcome::Revoked) {
            st.feed.poke();
        }
        core_response(response)
    })
    .await
}

async fn revocation_feed<S: Store + Health + 'static>(
    State(st): State<Arc<AppState<S>>>,
    request: Request,
) -> Response {
    endpoint(&st.metrics, Endpoint::RevocationFeed, request, |r| async {
        crate::feed::subscribe(Arc::clone(&st), r)
            .await
            .unwrap_or_else(core_response)
    })
    .await
}

async fn introspect<S: Store + Health + 'static>(
    State(st): State<Arc<AppState<S>>>,
    request: Request,
) -> Response {
    endpoint(&st.metrics, Endpoint::Introspect, request, |r| async {
        core_response(st.server.introspect(r).await)
    })
    .await
}

async fn metadata<S: Store + Health + 'static>(
    State(st): State<Arc<AppState<S>>>,
    request: Request,
) -> Response {
    let server = &st.server;
    endpoint(&st.metrics, Endpoint::Metadata, request, |r| async move {
        core_response(server.metadata(&r))
    })
    .await
}

async fn healthz<S: Store + Health + 'static>(State(st): State<Arc<AppState<S>>>) -> Response {
    if st.server.store().healthy().await {
        (StatusCode::OK, "ok").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response()
    }
}

async fn metrics<S: Store + Health + 'static>(State(st): State<Arc<AppState<S>>>) -> Response {
    let mut text = st.metrics.render();
    if let Some(store) = st.server.store().write_metrics() {
        text.push_str(&store);
    }
    let mut response = text.into_response();
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}
