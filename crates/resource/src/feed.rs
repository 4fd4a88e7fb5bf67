//! The revocation feed subscriber (wire format: `docs/revocation-feed.md` in the tokenwarden
//! repository).
//!
//! One long `GET` with `Accept: text/event-stream`, HTTP Basic client authentication and, on
//! reconnect, `Last-Event-ID: <cursor>`. The body is parsed as Server-Sent Events ([`crate::sse`]):
//!
//! * `ready` (`{"cursor", "heartbeat"}`): the connection is live; the cache may be written.
//! * `revoked` (`{"seq", "kind", "client_id", "token_digest"?, "sub"?, …}`): evict — `token` the
//!   entry whose digest is `token_digest`; `grant` every entry with that `client_id` and `sub`;
//!   `client` every entry with that `client_id`.
//! * `resync`: drop the whole cache.
//!
//! An event that cannot be read, or of an unknown kind, flushes the whole cache: over-evicting
//! costs an introspection, under-evicting would honour a revoked token. So does a `revoked` event
//! whose id is not the cursor + 1 (the feed's ids are gapless: a gap means events were missed),
//! and an event of an unknown type that carries an id (it takes a place in the sequence, and may
//! stand for a revocation we cannot read); the cursor then moves to the event's id.
//!
//! The cursor is the `id` of the last event processed. Every chunk received on a connection past
//! its `ready` records `last_heard` (after the chunk's events are applied): the cache is written
//! only while the feed is connected and silent for at most 1.5 × the heartbeat, and read only
//! while that holds or the silence is below the stale bound (see [`crate::validator`]). The
//! heartbeat announced by `ready` is clamped to 1–60 s (10 s until `ready`). A connection silent
//! (no byte, not even a keep-alive comment) for 2 × the heartbeat is dropped and reconnected;
//! so is one that ends, errors, or breaks the SSE parser's limits (a line or one event's data
//! over 64 KiB). Reconnects back off from 100 ms doubling to 5 s (configurable), back to the
//! start after a `ready`. The server's `retry:` field is read but not followed: its 1 s suits
//! browsers, while a resource server wants its feed back as soon as the server is.
//!
//! However the task ends — aborted with the last validator, or a panic — a drop guard marks the
//! feed lost, so the cache goes out of use once the stale bound has passed since it was last
//! heard from.

use std::sync::Arc;
use std::time::Duration;

use http::header::{HeaderValue, ACCEPT, AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE};
use serde::Deserialize;
use tokenwarden_client::EndpointUrl;
use tracing::{debug, info, warn};

use crate::digest::TokenDigest;
use crate::sse::{SseEvent, SseItem, SseParser};
use crate::stats::bump;
use crate::validator::{Shared, DEFAULT_HEARTBEAT};

/// The smallest heartbeat believed.
pub(crate) const MIN_HEARTBEAT: Duration = Duration::from_secs(1);
/// The largest heartbeat believed: a server announcing more still gets its connection dropped
/// after 2 minutes of silence, and the cache stops being written after 90 s of it.
pub(crate) const MAX_HEARTBEAT: Duration = Duration::from_secs(60);
/// Silence for this many heartbeats means the connection is dead: reconnect.
const HEARTBEATS_BEFORE_DEAD: u32 = 2;
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
    token_digest: Option<String>,
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

/// Marks the feed lost when dropped: when the feed task ends, however it ends (aborted, a panic
/// unwinding through it, a return), the cache must not go on trusting a feed nobody reads.
pub(crate) struct LostOnDrop(pub Arc<Shared>);

impl Drop for LostOnDrop {
    fn drop(&mut self) {
        self.0.feed_lost();
    }
}

/// The heartbeat `ready` announced (seconds), clamped to [`MIN_HEARTBEAT`]..=[`MAX_HEARTBEAT`];
/// [`DEFAULT_HEARTBEAT`] when absent.
pub(crate) fn clamp_heartbeat(announced: Option<u64>) -> Duration {
    let Some(secs) = announced else {
        return DEFAULT_HEARTBEAT;
    };
    let heartbeat = Duration::from_secs(secs).clamp(MIN_HEARTBEAT, MAX_HEARTBEAT);
    if heartbeat.as_secs() != secs {
        warn!(
            announced = secs,
            used = heartbeat.as_secs(),
            "feed heartbeat out of range; clamped"
        );
    }
    heartbeat
}

/// Subscribes until the task is aborted (the last [`crate::Validator`] clone dropped).
pub(crate) async fn run(
    shared: Arc<Shared>,
    endpoint: EndpointUrl,
    http: reqwest::Client,
    authorization: HeaderValue,
) {
    let _lost = LostOnDrop(Arc::clone(&shared));
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
    let mut dead_after = DEFAULT_HEARTBEAT.saturating_mul(HEARTBEATS_BEFORE_DEAD);
    loop {
        let chunk = match tokio::time::timeout(dead_after, response.chunk()).await {
            Ok(Ok(Some(chunk))) => chunk,
            Ok(Ok(None)) => return Ended::Lost("the server closed the stream".into()),
            Ok(Err(error)) => return Ended::Lost(error.without_url().to_string()),
            Err(_) => return Ended::Lost(format!("silent for {dead_after:?}")),
        };
        let received = shared.clock.now();
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
                        dead_after = heartbeat.saturating_mul(HEARTBEATS_BEFORE_DEAD);
                    }
                }
            }
        }
        // After the chunk's events are applied: a reader that finds the feed current again
        // after a silence also finds what the feed said meanwhile.
        if *reached_ready {
            shared.feed_heard(received);
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
                let heartbeat = clamp_heartbeat(ready.heartbeat);
                shared.feed_ready(ready.cursor, heartbeat);
                *reached_ready = true;
                info!(
                    cursor = ready.cursor,
                    ?heartbeat,
                    "revocation feed connected"
                );
                return Some(heartbeat);
            }
            Err(error) => {
                // Not live: nothing will be cached on this connection.
                warn!(%error, "unreadable `ready` event; flushing the cache");
                shared.flush();
            }
        },
        "revoked" => {
            bump(&shared.stats.feed_events);
            // Ids are gapless: anything but cursor + 1 means events were missed (or replayed
            // out of order). Drop everything before moving the cursor past them.
            let expected = shared
                .feed
                .cursor()
                .and_then(|cursor| cursor.checked_add(1));
            if id.is_some() && id == expected {
                apply_revoked(shared, &event.data);
            } else {
                warn!(
                    id = event.id.as_deref().unwrap_or("none"),
                    expected = ?expected,
                    "`revoked` event out of sequence (a gap in the feed); flushing the cache"
                );
                shared.flush();
            }
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
        other if event.id.is_some() => {
            // It takes a place in the sequence: it may stand for a revocation we cannot read.
            warn!(
                event = other,
                "unknown feed event type carrying an id; flushing the cache"
            );
            shared.flush();
        }
        other => debug!(
            event = other,
            "ignoring an unknown feed event without an id"
        ),
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
            .token_digest
            .as_deref()
            .and_then(TokenDigest::from_hex)
        {
            Some(digest) => shared.revoke_token(&digest),
            None => {
                warn!("`token` event without a usable token_digest; flushing the cache");
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

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use tokenwarden_client::ClientSecret;

    use super::*;
    use crate::clock::{Clock as _, ManualClock};
    use crate::Validator;

    async fn validator(clock: &Arc<ManualClock>) -> Validator {
        Validator::builder()
            .introspection_endpoint("http://127.0.0.1:9/introspect")
            .client_credentials("rs", ClientSecret::new("secret"))
            .without_feed()
            .clock(Arc::clone(clock) as Arc<dyn crate::Clock>)
            .build()
            .await
            .unwrap()
    }

    #[test]
    fn the_announced_heartbeat_is_clamped_to_one_to_sixty_seconds() {
        let s = Duration::from_secs;
        assert_eq!(clamp_heartbeat(None), s(10));
        assert_eq!(clamp_heartbeat(Some(0)), s(1));
        assert_eq!(clamp_heartbeat(Some(1)), s(1));
        assert_eq!(clamp_heartbeat(Some(25)), s(25));
        assert_eq!(clamp_heartbeat(Some(61)), s(60));
        assert_eq!(clamp_heartbeat(Some(u64::MAX)), s(60));
        // The arithmetic on it saturates rather than panics, whatever it is.
        assert_eq!(
            Duration::MAX.saturating_mul(HEARTBEATS_BEFORE_DEAD),
            Duration::MAX
        );
        assert_eq!(
            crate::validator::live_window(Duration::MAX),
            Duration::MAX / 2
        );
        assert_eq!(crate::validator::live_window(s(10)), s(15));
    }

    #[tokio::test]
    async fn a_panicking_feed_task_leaves_the_feed_lost() {
        let clock = Arc::new(ManualClock::starting_at(SystemTime::UNIX_EPOCH));
        let validator = validator(&clock).await;
        let shared = Arc::clone(validator.shared());
        shared.feed_ready(41, Duration::from_secs(10));
        assert!(validator.stats().feed_connected);
        let guarded = Arc::clone(&shared);
        let task = tokio::spawn(async move {
            let _lost = LostOnDrop(guarded);
            #[allow(clippy::panic)]
            {
                panic!("a bug in the feed task");
            }
        });
        assert!(task.await.unwrap_err().is_panic());
        assert!(!validator.stats().feed_connected);
        // Down since it was last heard from: usable for the stale bound (10 s), then not.
        clock.advance(Duration::from_millis(9_999));
        assert!(shared.cache_usable(clock.now()));
        assert!(!shared.cache_writable(clock.now()));
        clock.advance(Duration::from_millis(1));
        assert!(!shared.cache_usable(clock.now()));
    }

    #[tokio::test]
    async fn an_aborted_feed_task_leaves_the_feed_lost() {
        // A server that accepts the connection and never answers: the task waits in `connect`.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint =
            EndpointUrl::parse(&format!("http://{}/feed", listener.local_addr().unwrap())).unwrap();
        let clock = Arc::new(ManualClock::starting_at(SystemTime::UNIX_EPOCH));
        let validator = validator(&clock).await;
        let shared = Arc::clone(validator.shared());
        let task = tokio::spawn(run(
            Arc::clone(&shared),
            endpoint,
            reqwest::Client::new(),
            HeaderValue::from_static("Basic cnM6c2VjcmV0"),
        ));
        tokio::time::sleep(Duration::from_millis(50)).await;
        // As if its `ready` had arrived.
        shared.feed_ready(41, Duration::from_secs(10));
        assert!(validator.stats().feed_connected);
        task.abort();
        assert!(task.await.unwrap_err().is_cancelled());
        assert!(!validator.stats().feed_connected);
        drop(listener);
    }
}
