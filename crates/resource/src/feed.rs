//! The revocation feed subscriber (wire format: `docs/revocation-feed.md` in the tokenwarden
//! repository).
//!
//! One long `GET` with `Accept: text/event-stream`, HTTP Basic client authentication and, on
//! reconnect, `Last-Event-ID: <cursor>`. The body is parsed as Server-Sent Events ([`crate::sse`]):
//!
//! * `ready` (`{"cursor", "heartbeat"}`): the connection is live; the cache may be written.
//! * `revoked` (`{"seq", "kind", "client_id", "token_sha256"?, "sub"?, …}`): evict — `token` the
//!   entry whose digest is `token_sha256`; `grant` every entry with that `client_id` and `sub`;
//!   `client` every entry with that `client_id`.
//! * `resync`: drop the whole cache.
//!
//! An event that cannot be read, or of an unknown kind, flushes the whole cache: over-evicting
//! costs an introspection, under-evicting would honour a revoked token.
//!
//! The cursor is the `id` of the last event processed. A connection silent (no byte, not even a
//! keep-alive comment) for three heartbeats is dead; so is one that ends or errors. Reconnects
//! back off from 100 ms doubling to 5 s (configurable), back to the start after a `ready`. The
//! server's `retry:` field is read but not followed: its 1 s suits browsers, while a resource
//! server wants its feed back as soon as the server is.

use std::sync::Arc;
use std::time::Duration;

use http::header::{HeaderValue, ACCEPT, AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE};
use serde::Deserialize;
use tokenwarden_client::EndpointUrl;
use tracing::{debug, info, warn};

use crate::digest::TokenDigest;
use crate::sse::{SseEvent, SseItem, SseParser};
use crate::stats::bump;
use crate::validator::Shared;

/// The heartbeat assumed until `ready` announces the real one (tokenwarden's default).
const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(10);
/// Silence for this many heartbeats means the connection is dead.
const HEARTBEATS_BEFORE_DEAD: u32 = 3;
/// How long to wait for the response head.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Deserialize)]
struct Ready {
    cursor: u64,
    #[serde(default)]
    heartbeat: Option<u64>,
}

#[derive(Deserialize)]
struct Resync {
    head: u64,
}

#[derive(Deserialize)]
struct Revoked {
    kind: String,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    token_sha256: Option<String>,
    #[serde(default)]
    sub: Option<String>,
}

/// Why a connection ended.
#[derive(Debug)]
enum Ended {
    /// Could not connect, or the server refused.
    Refused(String),
    /// The stream ended, failed, or went silent.
    Lost(String),
}

/// Subscribes until the task is aborted (the last [`crate::Validator`] clone dropped).
pub(crate) async fn run(
    shared: Arc<Shared>,
    endpoint: EndpointUrl,
    http: reqwest::Client,
    authorization: HeaderValue,
) {
    let mut backoff = shared.settings.reconnect_min;
    let mut first = true;
    loop {
        if !first {
            bump(&shared.stats.feed_reconnects);
        }
        first = false;
        let mut reached_ready = false;
        let ended = connect(
            &shared,
            &endpoint,
            &http,
            &authorization,
            &mut reached_ready,
        )
        .await;
        shared.feed_lost();
        match &ended {
            Ended::Refused(reason) => {
                warn!(%reason, "revocation feed unavailable; introspecting every request once the stale bound passes")
            }
            Ended::Lost(reason) => info!(%reason, "revocation feed connection lost; reconnecting"),
        }
        if reached_ready {
            backoff = shared.settings.reconnect_min;
        }
        tokio::time::sleep(backoff).await;
        backoff = backoff.saturating_mul(2).min(shared.settings.reconnect_max);
    }
}

async fn connect(
    shared: &Shared,
    endpoint: &EndpointUrl,
    http: &reqwest::Client,
    authorization: &HeaderValue,
    reached_ready: &mut bool,
) -> Ended {
    let mut request = http
        .get(endpoint.url().clone())
        .header(AUTHORIZATION, authorization.clone())
        .header(ACCEPT, "text/event-stream")
        .header(CACHE_CONTROL, "no-cache");
    if let Some(cursor) = shared.feed.cursor() {
        request = request.header("last-event-id", cursor.to_string());
    }
    let mut response = match tokio::time::timeout(CONNECT_TIMEOUT, request.send()).await {
        Ok(Ok(response)) => response,
        Ok(Err(error)) => return Ended::Refused(error.without_url().to_string()),
        Err(_) => return Ended::Refused("no response head in time".into()),
    };
    let status = response.status();
    if status != reqwest::StatusCode::OK {
        return Ended::Refused(format!("HTTP {status}"));
    }
    let is_event_stream = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("text/event-stream"));
    if !is_event_stream {
        return Ended::Refused("the response is not text/event-stream".into());
    }

    let mut parser = SseParser::new();
    let mut silence = DEFAULT_HEARTBEAT * HEARTBEATS_BEFORE_DEAD;
    loop {
        let chunk = match tokio::time::timeout(silence, response.chunk()).await {
            Ok(Ok(Some(chunk))) => chunk,
            Ok(Ok(None)) => return Ended::Lost("the server closed the stream".into()),
            Ok(Err(error)) => return Ended::Lost(error.without_url().to_string()),
            Err(_) => return Ended::Lost(format!("silent for {silence:?}")),
        };
        let items = match parser.push(&chunk) {
            Ok(items) => items,
            Err(error) => return Ended::Lost(error.to_string()),
        };
        for item in items {
            match item {
                SseItem::Comment => {}
                SseItem::Retry(delay) => debug!(?delay, "feed suggests a reconnection delay"),
                SseItem::Event(event) => {
                    if let Some(heartbeat) = handle(shared, &event, reached_ready) {
                        silence = heartbeat.max(Duration::from_secs(1)) * HEARTBEATS_BEFORE_DEAD;
                    }
                }
            }
        }
    }
}

/// Processes one event; returns the heartbeat when it was `ready`.
fn handle(shared: &Shared, event: &SseEvent, reached_ready: &mut bool) -> Option<Duration> {
    let mut id = event
        .id
        .as_deref()
        .and_then(|id| id.trim().parse::<u64>().ok());
    match event.event.as_str() {
        "ready" => match serde_json::from_str::<Ready>(&event.data) {
            Ok(ready) => {
                shared.feed_ready(ready.cursor);
                *reached_ready = true;
                info!(cursor = ready.cursor, "revocation feed connected");
                return Some(
                    ready
                        .heartbeat
                        .map_or(DEFAULT_HEARTBEAT, Duration::from_secs),
                );
            }
            Err(error) => {
                // Not live: nothing will be cached on this connection.
                warn!(%error, "unreadable `ready` event; flushing the cache");
                shared.flush();
            }
        },
        "revoked" => {
            bump(&shared.stats.feed_events);
            apply_revoked(shared, &event.data);
        }
        "resync" => {
            bump(&shared.stats.feed_events);
            info!(data = %event.data, "revocation feed resync; flushing the cache");
            shared.flush();
            // The stream goes on after `head` (also the event's id).
            if id.is_none() {
                id = serde_json::from_str::<Resync>(&event.data)
                    .ok()
                    .map(|r| r.head);
            }
        }
        other => debug!(event = other, "ignoring an unknown feed event"),
    }
    if let Some(id) = id {
        shared.set_cursor(id);
    } else if event.id.is_some() {
        warn!("feed event id is not a sequence number; cursor unchanged");
    }
    None
}

fn apply_revoked(shared: &Shared, data: &str) {
    let event: Revoked = match serde_json::from_str(data) {
        Ok(event) => event,
        Err(error) => {
            warn!(%error, "unreadable `revoked` event; flushing the cache");
            shared.flush();
            return;
        }
    };
    match (event.kind.as_str(), event.client_id.as_deref()) {
        ("token", _) => match event
            .token_sha256
            .as_deref()
            .and_then(TokenDigest::from_hex)
        {
            Some(digest) => shared.revoke_token(&digest),
            None => {
                warn!("`token` event without a usable token_sha256; flushing the cache");
                shared.flush();
            }
        },
        ("grant", Some(client_id)) => shared.revoke_grant(client_id, event.sub.as_deref()),
        ("client", Some(client_id)) => shared.revoke_client(client_id),
        (kind, _) => {
            warn!(
                kind,
                "`revoked` event of unknown kind or without client_id; flushing the cache"
            );
            shared.flush();
        }
    }
}
