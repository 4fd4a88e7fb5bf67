//! The revocation feed (a tokenwarden extension; wire format in `docs/revocation-feed.md`).
//!
//! Every revocation — `/oauth2/revoke`, refresh-token reuse detection, a second use of an
//! authorization code, `/account`, the admin CLI, client deletion — is written by the store in the
//! same transaction as the revocation itself, as a [`RevocationEvent`] with a gapless, increasing
//! sequence number. Resource servers read them from `GET /oauth2/revocations` (Server-Sent Events,
//! streamed by the HTTP adapter) and evict cached introspection results the moment an event
//! arrives.
//!
//! This module holds what is framework-agnostic: the event type and its JSON form, the request
//! check (method, client authentication, resource-server registration, cursor), the choice
//! between replay and resync, and the SSE frames. The adapter owns the connection.

use bytes::Bytes;
use http::header::{ALLOW, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use serde::Serialize;

use crate::client_auth::authenticate_client;
use crate::clock::Timestamp;
use crate::crypto::TokenDigest;
use crate::error::{ErrorCode, OAuthError};
use crate::model::Client;
use crate::server::{with_outcome, AuthorizationServer, Outcome};
use crate::store::Store;
use crate::wire::{error_response, Form, WireError};

/// What one event revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RevocationKind {
    /// One access token (`token_digest`); its grant, if any, stays active.
    Token,
    /// A whole grant (`grant_id`, `client_id`, `sub`): every access and refresh token in it.
    Grant,
    /// A client was deleted: every token issued to `client_id`.
    Client,
}

impl RevocationKind {
    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Token => "token",
            Self::Grant => "grant",
            Self::Client => "client",
        }
    }
    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "token" => Some(Self::Token),
            "grant" => Some(Self::Grant),
            "client" => Some(Self::Client),
            _ => None,
        }
    }
}

/// One revocation, as stored and as sent on the feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationEvent {
    /// Position in the feed: assigned by the store, gapless and increasing in commit order.
    pub seq: u64,
    /// When the revocation happened.
    pub at: Timestamp,
    /// What was revoked.
    pub kind: RevocationKind,
    /// The client the revoked token or grant was issued to (or the deleted client).
    pub client_id: String,
    /// `Token` events: the revoked access token's digest (its primary key in the store).
    pub token: Option<TokenDigest>,
    /// `Grant` events: the grant; `Token` events: the token's grant, when it has one.
    pub grant_id: Option<String>,
    /// `Grant` events: the user who authorized the grant (the introspection `sub`).
    pub subject: Option<String>,
}

/// A revocation about to be stored; the store assigns `seq` and `at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRevocation {
    /// What was revoked.
    pub kind: RevocationKind,
    /// See [`RevocationEvent::client_id`].
    pub client_id: String,
    /// See [`RevocationEvent::token`].
    pub token: Option<TokenDigest>,
    /// See [`RevocationEvent::grant_id`].
    pub grant_id: Option<String>,
    /// See [`RevocationEvent::subject`].
    pub subject: Option<String>,
}

impl NewRevocation {
    /// Gives the event its number and time.
    pub fn numbered(self, seq: u64, at: Timestamp) -> RevocationEvent {
        RevocationEvent {
            seq,
            at,
            kind: self.kind,
            client_id: self.client_id,
            token: self.token,
            grant_id: self.grant_id,
            subject: self.subject,
        }
    }
}

#[derive(Serialize)]
struct WireEvent<'a> {
    seq: u64,
    at: Timestamp,
    kind: RevocationKind,
    client_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    grant_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub: Option<&'a str>,
}

impl RevocationEvent {
    /// The event's JSON form (the `data` of an SSE `revoked` event).
    pub fn to_json(&self) -> String {
        let wire = WireEvent {
            seq: self.seq,
            at: self.at,
            kind: self.kind,
            client_id: &self.client_id,
            token_digest: self.token.map(|d| d.to_hex()),
            grant_id: self.grant_id.as_deref(),
            sub: self.subject.as_deref(),
        };
        // Serializing strings and integers cannot fail; an empty object would still be valid JSON.
        serde_json::to_string(&wire).unwrap_or_else(|_| String::from("{}"))
    }
}

/// Events after a cursor, read in one snapshot with the feed's bounds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeedPage {
    /// Events with `seq > after`, oldest first, at most `limit`.
    pub events: Vec<RevocationEvent>,
    /// The highest sequence number committed (`0` before the first event).
    pub head: u64,
    /// Events up to and including this number were purged (retention); a cursor below it cannot
    /// be resumed.
    pub floor: u64,
}

/// Where a subscription starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedStart {
    /// Send the events after this cursor, then follow the head.
    Resume(u64),
    /// The cursor cannot be resumed: the subscriber must drop everything it cached and continue
    /// from `head`.
    Resync {
        /// Where to continue from.
        head: u64,
        /// Why, for the subscriber's logs.
        reason: &'static str,
    },
}

impl FeedStart {
    /// Decides from a cursor (or none: start at the head) and the feed's current bounds.
    pub fn decide(cursor: Option<u64>, head: u64, floor: u64) -> Self {
        match cursor {
            None => Self::Resume(head),
            Some(c) if c < floor => Self::Resync {
                head,
                reason: "cursor is older than the feed's retention",
            },
            Some(c) if c > head => Self::Resync {
                head,
                reason: "cursor is ahead of the feed (was the database replaced?)",
            },
            Some(c) => Self::Resume(c),
        }
    }
}

/// An authorized subscription request.
#[derive(Debug, Clone)]
pub struct FeedSubscription {
    /// The resource server reading the feed, as registered when it authenticated (the adapter
    /// re-checks the registration while the stream is open).
    pub client: Client,
    /// `Last-Event-ID` or `?since=`; `None` to start at the head.
    pub cursor: Option<u64>,
}

/// Path of the feed.
pub const REVOCATION_FEED_PATH: &str = "/oauth2/revocations";

/// Seconds between keep-alive comments when the feed is idle (announced in the `ready` event, so
/// subscribers know when a silent connection is dead).
pub const DEFAULT_HEARTBEAT_SECS: u64 = 10;

impl<S: Store> AuthorizationServer<S> {
    /// Checks a `GET /oauth2/revocations` request: method, client authentication (HTTP Basic —
    /// a GET has no form body and a secret never goes in the URL), the client's registration as a
    /// resource server (`introspect`), and the cursor (`Last-Event-ID`, else `?since=`). The `Err`
    /// is the complete error response.
    pub async fn authorize_revocation_feed(
        &self,
        request: &Request<Bytes>,
    ) -> Result<FeedSubscription, Response<Bytes>> {
        let reject =
            |error: OAuthError| with_outcome(error_response(&error.into()), Outcome::Rejected);
        if request.method() != Method::GET {
            let mut response = error_response(&WireError {
                error: OAuthError::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    ErrorCode::InvalidRequest,
                    "the revocation feed accepts only GET",
                ),
                allow_post: false,
            });
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET"));
            return Err(with_outcome(response, Outcome::Rejected));
        }
        let cursor = parse_cursor(request).map_err(reject)?;
        let client = authenticate_client(&self.store, request.headers(), &Form::default(), false)
            .await
            .map_err(reject)?
            .client;
        if !client.introspect {
            return Err(reject(OAuthError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::UnauthorizedClient,
                "the revocation feed is for resource servers (clients created with --introspect)",
            )));
        }
        Ok(FeedSubscription { client, cursor })
    }

    /// Reads events after `after` (at most `limit`) with the feed's bounds.
    pub async fn revocation_events(&self, after: u64, limit: u32) -> Result<FeedPage, OAuthError> {
        Ok(self.store.revocation_events(after, limit).await?)
    }
}

fn parse_cursor(request: &Request<Bytes>) -> Result<Option<u64>, OAuthError> {
    let bad = || OAuthError::invalid_request("the cursor must be a sequence number (0 or more)");
    // Digits only: `u64::from_str` would also take `+5`.
    let number = |text: &str| {
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        text.parse::<u64>().map_err(|_| bad())
    };
    let mut since = None;
    if let Some(query) = request.uri().query().filter(|q| !q.is_empty()) {
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            if name != "since" || since.is_some() {
                return Err(OAuthError::invalid_request(
                    "only one query parameter is accepted: `since`",
                ));
            }
            since = Some(number(value)?);
        }
    }
    // `Last-Event-ID` (what an EventSource sends on reconnect) wins over the URL.
    if let Some(value) = request.headers().get("last-event-id") {
        let text = value.to_str().map_err(|_| bad())?.trim();
        return number(text).map(Some);
    }
    Ok(since)
}

/// The first frame of every subscription: the reconnect delay, the cursor the stream starts
/// after (as the SSE `id`, so `Last-Event-ID` resumes from it) and the heartbeat interval.
pub fn sse_ready(cursor: u64, heartbeat_secs: u64) -> String {
    format!(
        "retry: 1000\nevent: ready\nid: {cursor}\ndata: {{\"cursor\":{cursor},\"heartbeat\":{heartbeat_secs}}}\n\n"
    )
}

/// A `revoked` frame; its `id` is the event's sequence number.
pub fn sse_event(event: &RevocationEvent) -> String {
    format!(
        "event: revoked\nid: {}\ndata: {}\n\n",
        event.seq,
        event.to_json()
    )
}

/// A `resync` frame: the subscriber drops its whole cache and continues after `head`.
pub fn sse_resync(head: u64, reason: &str) -> String {
    let data = serde_json::json!({ "head": head, "reason": reason });
    format!("event: resync\nid: {head}\ndata: {data}\n\n")
}

/// The keep-alive comment sent when the feed has been idle for a heartbeat interval.
pub const SSE_KEEPALIVE: &str = ": keepalive\n\n";

/// The response head of a subscription; the adapter streams the frames as its body.
pub fn sse_response_head() -> http::response::Builder {
    Response::builder()
        .status(StatusCode::OK)
        .header(CONTENT_TYPE, "text/event-stream")
        .header(http::header::CACHE_CONTROL, "no-store")
        .header("x-accel-buffering", "no")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_is_decided_from_cursor_and_bounds() {
        assert_eq!(FeedStart::decide(None, 7, 0), FeedStart::Resume(7));
        assert_eq!(FeedStart::decide(Some(3), 7, 0), FeedStart::Resume(3));
        assert_eq!(FeedStart::decide(Some(3), 7, 3), FeedStart::Resume(3));
        assert!(matches!(
            FeedStart::decide(Some(2), 7, 3),
            FeedStart::Resync { head: 7, .. }
        ));
        assert!(matches!(
            FeedStart::decide(Some(8), 7, 0),
            FeedStart::Resync { head: 7, .. }
        ));
    }

    #[test]
    fn event_json_omits_absent_members() {
        let e = RevocationEvent {
            seq: 5,
            at: 100,
            kind: RevocationKind::Client,
            client_id: "app".into(),
            token: None,
            grant_id: None,
            subject: None,
        };
        assert_eq!(
            e.to_json(),
            r#"{"seq":5,"at":100,"kind":"client","client_id":"app"}"#
        );
        assert_eq!(
            sse_event(&e),
            "event: revoked\nid: 5\ndata: {\"seq\":5,\"at\":100,\"kind\":\"client\",\"client_id\":\"app\"}\n\n"
        );
    }
}
