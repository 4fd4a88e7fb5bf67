//! `GET /oauth2/revocations`: the revocation feed as Server-Sent Events (docs/revocation-feed.md).
//!
//! The core checks the request and reads events; this module owns the connections. One pump per
//! node follows the feed's head while anybody is subscribed — it reads the store at once when
//! this node's own endpoints revoke something ([`FeedHub::poke`]) or when PostgreSQL notifies a
//! commit by another node ([`FeedHub::waker`]), and otherwise every `poll` interval (events
//! written by the admin CLI on SQLite, or a missed notification, arrive within one interval). Each subscription waits on the head and reads the events after
//! its cursor from the store, so a slow subscriber never holds events in memory for others.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use tokenwarden_core::feed::{
    sse_event, sse_ready, sse_response_head, sse_resync, FeedStart, SSE_KEEPALIVE,
};
use tokenwarden_core::model::Client;
use tokenwarden_core::store::Store;
use tokio::sync::{watch, Notify};

use crate::http::AppState;

/// Events read from the store per query while a subscriber catches up.
const PAGE: u32 = 500;

/// Node-wide state of the feed: the head as last read, the subscriber count, the shutdown flag.
pub struct FeedHub {
    head: watch::Sender<u64>,
    subscribers: AtomicUsize,
    wake: Arc<Notify>,
    pump_started: AtomicBool,
    closing: watch::Sender<bool>,
    poll: Duration,
    heartbeat: Duration,
}

impl FeedHub {
    /// A hub polling every `poll` while subscribed and sending a keep-alive comment after
    /// `heartbeat` of silence.
    pub fn new(poll: Duration, heartbeat: Duration) -> Self {
        Self {
            head: watch::Sender::new(0),
            subscribers: AtomicUsize::new(0),
            wake: Arc::new(Notify::new()),
            pump_started: AtomicBool::new(false),
            closing: watch::Sender::new(false),
            poll: poll.max(Duration::from_millis(1)),
            heartbeat: heartbeat.max(Duration::from_secs(1)),
        }
    }

    /// Something was revoked on this node: read the head now instead of at the next poll.
    pub fn poke(&self) {
        self.wake.notify_one();
    }

    /// A handle for the store's change notifications (PostgreSQL `LISTEN`): wakes the pump like
    /// [`Self::poke`].
    pub fn waker(&self) -> Arc<dyn Fn() + Send + Sync> {
        let wake = Arc::clone(&self.wake);
        Arc::new(move || wake.notify_one())
    }

    /// Ends every subscription (graceful shutdown: SSE responses never end on their own).
    pub fn close(&self) {
        self.closing.send_replace(true);
        self.wake.notify_one();
    }

    /// Open subscriptions on this node.
    pub fn subscribers(&self) -> usize {
        self.subscribers.load(Ordering::Relaxed)
    }
}

impl Default for FeedHub {
    fn default() -> Self {
        Self::new(Duration::from_millis(20), Duration::from_secs(10))
    }
}

/// Follows the head while anyone is subscribed; idle (no store reads) otherwise.
async fn pump<S: Store + 'static>(state: Arc<AppState<S>>) {
    let hub = &state.feed;
    let mut closing = hub.closing.subscribe();
    loop {
        if *closing.borrow() {
            return;
        }
        if hub.subscribers() == 0 {
            tokio::select! {
                () = hub.wake.notified() => {}
                _ = closing.changed() => {}
            }
            continue;
        }
        match state.server.store().revocation_events(0, 0).await {
            Ok(page) => {
                hub.head.send_if_modified(|h| {
                    let newer = page.head != *h;
                    *h = page.head;
                    newer
                });
            }
            Err(e) => tracing::warn!(error = %e, "revocation feed: reading the head failed"),
        }
        tokio::select! {
            () = tokio::time::sleep(hub.poll) => {}
            () = hub.wake.notified() => {}
            _ = closing.changed() => {}
        }
    }
}

/// Decrements the subscriber count when a subscription's stream is dropped.
struct Subscribed<S: Store + 'static>(Arc<AppState<S>>);

impl<S: Store + 'static> Drop for Subscribed<S> {
    fn drop(&mut self) {
        self.0.feed.subscribers.fetch_sub(1, Ordering::Relaxed);
    }
}

struct Subscription<S: Store + 'static> {
    guard: Subscribed<S>,
    /// The subscriber's registration when it connected: the stream ends when that changes.
    client: Client,
    /// When the registration was last checked.
    checked: tokio::time::Instant,
    cursor: u64,
    head: watch::Receiver<u64>,
    closing: watch::Receiver<bool>,
    frames: VecDeque<String>,
    done: bool,
}

impl<S: Store + 'static> Subscription<S> {
    /// The next frame: queued ones first, then the events after the cursor, else a keep-alive
    /// after a heartbeat of silence. `None` ends the response (shutdown, or a store error — the
    /// subscriber reconnects from its cursor).
    async fn next_frame(&mut self) -> Option<String> {
        loop {
            if let Some(frame) = self.frames.pop_front() {
                return Some(frame);
            }
            if self.done || *self.closing.borrow() {
                return None;
            }
            if self.checked.elapsed() >= self.guard.0.feed.heartbeat {
                if !self.still_authorized().await {
                    return None;
                }
                self.checked = tokio::time::Instant::now();
            }
            let head = *self.head.borrow_and_update();
            if head < self.cursor {
                // Either this subscription read events the pump has not seen yet (harmless), or
                // the database went back in time (restored from a backup): the store decides.
                match self.guard.0.server.store().revocation_events(0, 0).await {
                    Ok(page) if page.head < self.cursor => {
                        self.frames.push_back(sse_resync(
                            page.head,
                            "the feed's head went back (was the database restored?)",
                        ));
                        self.cursor = page.head;
                        continue;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "revocation feed: reading the head failed");
                        self.done = true;
                        continue;
                    }
                }
            }
            if head > self.cursor {
                let state = &self.guard.0;
                match state
                    .server
                    .store()
                    .revocation_events(self.cursor, PAGE)
                    .await
                {
                    Ok(page) if page.floor > self.cursor => {
                        // Purged while this subscriber lagged: it cannot catch up event by event.
                        self.frames.push_back(sse_resync(
                            page.head,
                            "events after the cursor were purged (retention)",
                        ));
                        self.cursor = page.head;
                    }
                    Ok(page) => {
                        for event in &page.events {
                            self.frames.push_back(sse_event(event));
                            self.cursor = event.seq;
                        }
                        if page.events.is_empty() {
                            // A head without its events (a store whose reads are not one
                            // snapshot): never skip ahead; read again after a poll interval.
                            tokio::time::sleep(state.feed.poll).await;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "revocation feed: reading events failed");
                        self.done = true;
                    }
                }
                continue;
            }
            let heartbeat = self.guard.0.feed.heartbeat;
            tokio::select! {
                changed = self.head.changed() => {
                    if changed.is_err() {
                        self.done = true;
                    }
                }
                _ = self.closing.changed() => {}
                () = tokio::time::sleep(heartbeat) => {
                    return Some(SSE_KEEPALIVE.to_owned());
                }
            }
        }
    }

    /// The subscriber is still registered as it was at connect time: same secret, still a
    /// resource server. A rotated secret, a deleted client or a dropped `--introspect` ends the
    /// stream (the reconnect is then authenticated afresh).
    async fn still_authorized(&self) -> bool {
        match self
            .guard
            .0
            .server
            .store()
            .find_client(&self.client.client_id)
            .await
        {
            Ok(Some(now)) => {
                let same = now.introspect
                    && match (now.secret_digest, self.client.secret_digest) {
                        (Some(a), Some(b)) => a.ct_eq(&b),
                        _ => false,
                    };
                if !same {
                    tracing::info!(client_id = %self.client.client_id, "revocation feed: subscriber's registration changed; closing");
                }
                same
            }
            Ok(None) => {
                tracing::info!(client_id = %self.client.client_id, "revocation feed: subscriber deleted; closing");
                false
            }
            // A store error ends the stream too; the subscriber reconnects from its cursor.
            Err(e) => {
                tracing::warn!(error = %e, "revocation feed: re-checking the subscriber failed");
                false
            }
        }
    }
}

/// Handles `GET /oauth2/revocations`.
pub async fn subscribe<S: Store + 'static>(
    state: Arc<AppState<S>>,
    request: http::Request<Bytes>,
) -> Result<Response, http::Response<Bytes>> {
    let subscription = state.server.authorize_revocation_feed(&request).await?;
    let page = match state.server.revocation_events(0, 0).await {
        Ok(page) => page,
        Err(e) => {
            return Err(tokenwarden_core::wire::error_response(&e.into()));
        }
    };
    let hub = &state.feed;
    hub.head.send_if_modified(|h| {
        let newer = page.head > *h;
        *h = (*h).max(page.head);
        newer
    });
    hub.subscribers.fetch_add(1, Ordering::Relaxed);
    let guard = Subscribed(Arc::clone(&state));
    if !hub.pump_started.swap(true, Ordering::AcqRel) {
        let pumped = Arc::clone(&state);
        tokio::spawn(pump(pumped));
    }
    hub.poke();
    let mut frames = VecDeque::new();
    let cursor = match FeedStart::decide(subscription.cursor, page.head, page.floor) {
        FeedStart::Resume(cursor) => {
            frames.push_back(sse_ready(cursor, hub.heartbeat.as_secs()));
            cursor
        }
        FeedStart::Resync { head, reason } => {
            frames.push_back(sse_ready(head, hub.heartbeat.as_secs()));
            frames.push_back(sse_resync(head, reason));
            head
        }
    };
    tracing::info!(
        client_id = %subscription.client.client_id,
        cursor,
        "revocation feed subscribed"
    );
    let sub = Subscription {
        guard,
        client: subscription.client,
        checked: tokio::time::Instant::now(),
        cursor,
        head: hub.head.subscribe(),
        closing: hub.closing.subscribe(),
        frames,
        done: false,
    };
    let stream = futures_util::stream::unfold(sub, |mut sub| async move {
        let frame = sub.next_frame().await?;
        Some((Ok::<_, Infallible>(Bytes::from(frame)), sub))
    });
    Ok(sse_response_head()
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| Response::new(Body::empty())))
}
