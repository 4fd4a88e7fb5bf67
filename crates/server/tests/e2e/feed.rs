//! `GET /oauth2/revocations` over real HTTP: every revocation path feeds it, a reconnect resumes
//! from the cursor, a stale cursor gets `resync`, and shutdown ends open subscriptions.
#![allow(clippy::disallowed_methods)] // timeouts only, nothing is asserted on wall-clock time

use std::time::Duration;

use serde_json::Value;

use crate::harness::*;
use crate::protect::client_credentials;
use crate::web::{hidden, Agent};

/// One parsed SSE frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub event: String,
    pub id: Option<u64>,
    pub data: Value,
}

/// A subscription read frame by frame (comments skipped).
pub struct Feed {
    response: reqwest::Response,
    buffer: String,
}

impl Feed {
    pub async fn open(server: &ServerProcess, rs: &(String, String), cursor: Option<u64>) -> Self {
        let mut request = http()
            .get(server.url("/oauth2/revocations"))
            .basic_auth(enc(&rs.0), Some(enc(&rs.1)))
            .header("accept", "text/event-stream");
        if let Some(c) = cursor {
            request = request.header("last-event-id", c.to_string());
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        assert_eq!(response.headers()["cache-control"], "no-store");
        Self {
            response,
            buffer: String::new(),
        }
    }

    /// The next frame, or `None` when the server ends the stream; panics after 10 s of silence.
    pub async fn next(&mut self) -> Option<Frame> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut frame = Frame {
                    event: "message".into(),
                    id: None,
                    data: Value::Null,
                };
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event: ") {
                        frame.event = v.to_owned();
                    } else if let Some(v) = line.strip_prefix("id: ") {
                        frame.id = Some(v.parse().unwrap());
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data.push_str(v);
                    }
                }
                if data.is_empty() {
                    continue; // a comment (keep-alive) or the retry hint alone
                }
                frame.data = serde_json::from_str(&data).unwrap();
                return Some(frame);
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.response.chunk())
                .await
                .expect("no frame within 10 s")
                .unwrap()?;
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    pub async fn revoked(&mut self) -> Value {
        let f = self.next().await.expect("stream ended");
        assert_eq!(f.event, "revoked", "{f:?}");
        assert_eq!(
            f.id,
            f.data["seq"].as_u64(),
            "the SSE id is the sequence number"
        );
        f.data
    }
}

/// tokenwarden's digest of a time-ordered token, computed here from its definition
/// (docs/revocation-feed.md): the 6 time bytes the token's body starts with, then the first 26
/// bytes of the SHA-256 of the token string.
fn digest_hex(token: &str) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    let body = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&token[4..])
        .expect("a time-ordered token");
    assert_eq!(body.len(), 38, "{token}");
    let sha = sha2::Sha256::digest(token.as_bytes());
    body[..6]
        .iter()
        .chain(&sha[..26])
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_revocation_path_reaches_the_feed_in_order() {
    let db = TempDb::new();
    let rs = db.client("rs", &["--introspect"]);
    let svc = db.client("svc", &["--scope", "read"]);
    let app = db.client(
        "app",
        &[
            "--grant-type",
            "authorization_code",
            "--grant-type",
            "refresh_token",
        ],
    );
    db.cli_stdin(&["user", "create", "alice"], "correct horse\n");
    let server = db.start(&["--refresh-grace", "0"]);
    let mut feed = Feed::open(&server, &rs, None).await;
    let ready = feed.next().await.unwrap();
    assert_eq!(ready.event, "ready");
    assert_eq!(ready.id, Some(0));
    assert_eq!(ready.data["cursor"], 0);
    assert_eq!(ready.data["heartbeat"], 10);

    // 1. POST /oauth2/revoke of an access token.
    let token = client_credentials(&server, &svc).await;
    let r = post_form(
        &server.url("/oauth2/revoke"),
        &svc.0,
        &svc.1,
        &[("token", &token)],
    )
    .await;
    assert_eq!(r.status(), 200);
    let e = feed.revoked().await;
    assert_eq!(e["seq"], 1);
    assert_eq!(e["kind"], "token");
    assert_eq!(e["client_id"], "svc");
    assert_eq!(e["token_digest"], digest_hex(&token));
    assert!(
        e.get("grant_id").is_none(),
        "client-credentials tokens have no grant: {e}"
    );

    // 2. Refresh-token reuse (strict rotation) revokes the grant.
    let grant = db.json(&["token", "issue", "--client", "app", "--user", "alice"]);
    let rt = grant["refresh_token"].as_str().unwrap();
    let refresh = |rt: String| {
        let url = server.url("/oauth2/token");
        let app = app.clone();
        async move {
            post_form(
                &url,
                &app.0,
                &app.1,
                &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
            )
            .await
            .status()
            .as_u16()
        }
    };
    assert_eq!(refresh(rt.to_owned()).await, 200);
    assert_eq!(refresh(rt.to_owned()).await, 400);
    let e = feed.revoked().await;
    assert_eq!(
        (e["seq"].as_u64(), e["kind"].as_str()),
        (Some(2), Some("grant"))
    );
    assert_eq!(e["sub"], "alice");
    assert_eq!(e["client_id"], "app");
    let grants = db.json(&["grant", "list", "--user", "alice"]);
    assert_eq!(e["grant_id"], grants[0]["grant_id"]);

    // 3. The CLI (another process on the same database): `grant revoke`.
    let second = db.json(&["token", "issue", "--client", "app", "--user", "alice"]);
    assert!(second["access_token"].is_string());
    let out = db.json(&["grant", "revoke", "--user", "alice"]);
    assert_eq!(out["revoked"], 1);
    let e = feed.revoked().await;
    assert_eq!(
        (e["seq"].as_u64(), e["kind"].as_str()),
        (Some(3), Some("grant"))
    );

    // 4. "Revoke access" on /account.
    db.json(&["token", "issue", "--client", "app", "--user", "alice"]);
    let mut agent = Agent::new(&server.base);
    let landed = agent.sign_in("/account", "alice", "correct horse").await;
    assert_eq!(landed, "/account");
    let account = agent.get("/account").await;
    let csrf = hidden(&account.body, "csrf_token");
    let done = agent
        .post("/account/apps/app/revoke", &[("csrf_token", &csrf)])
        .await;
    assert_eq!(done.status, 303);
    let e = feed.revoked().await;
    assert_eq!(
        (e["seq"].as_u64(), e["kind"].as_str()),
        (Some(4), Some("grant"))
    );
    assert_eq!(e["sub"], "alice");

    // 5. Client deletion: one `client` event.
    let out = db.cli(&["client", "delete", "app"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let e = feed.revoked().await;
    assert_eq!(
        (
            e["seq"].as_u64(),
            e["kind"].as_str(),
            e["client_id"].as_str()
        ),
        (Some(5), Some("client"), Some("app"))
    );

    // Stored: five events, head 5.
    assert_eq!(
        db_scalar(&db.path(), "SELECT count(*) FROM revocation_events").await,
        5
    );
    assert_eq!(
        db_scalar(&db.path(), "SELECT head FROM revocation_feed").await,
        5
    );

    // A reconnect from cursor 2 replays 3, 4, 5 — nothing missed, nothing twice.
    let mut again = Feed::open(&server, &rs, Some(2)).await;
    let ready = again.next().await.unwrap();
    assert_eq!((ready.event.as_str(), ready.id), ("ready", Some(2)));
    let seqs = [
        again.revoked().await["seq"].as_u64(),
        again.revoked().await["seq"].as_u64(),
        again.revoked().await["seq"].as_u64(),
    ];
    assert_eq!(seqs, [Some(3), Some(4), Some(5)]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cursor_past_the_head_or_the_retention_gets_resync() {
    let db = TempDb::new();
    let rs = db.client("rs", &["--introspect"]);
    let svc = db.client("svc", &["--scope", "read"]);
    let server = db.start(&[]);
    let token = client_credentials(&server, &svc).await;
    post_form(
        &server.url("/oauth2/revoke"),
        &svc.0,
        &svc.1,
        &[("token", &token)],
    )
    .await;

    let mut ahead = Feed::open(&server, &rs, Some(40)).await;
    assert_eq!(ahead.next().await.unwrap().event, "ready");
    let resync = ahead.next().await.unwrap();
    assert_eq!(resync.event, "resync");
    assert_eq!(resync.id, Some(1));
    assert_eq!(resync.data["head"], 1);

    // Purge with a retention of 0 s drops the event and raises the floor.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    drop(server);
    let out = db.cli(&["purge", "--event-retention", "0"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        db_scalar(&db.path(), "SELECT floor FROM revocation_feed").await,
        1
    );
    let server = db.start(&[]);
    let mut old = Feed::open(&server, &rs, Some(0)).await;
    assert_eq!(old.next().await.unwrap().event, "ready");
    let resync = old.next().await.unwrap();
    assert_eq!(resync.event, "resync");
    assert_eq!(resync.data["head"], 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn refuses_clients_that_are_not_resource_servers() {
    let db = TempDb::new();
    let svc = db.client("svc", &["--scope", "read"]);
    let server = db.start(&[]);
    let r = http()
        .get(server.url("/oauth2/revocations"))
        .basic_auth(&svc.0, Some(&svc.1))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(r).await;
    assert_eq!(status, 403);
    assert_eq!(body["error"], "unauthorized_client");
    let r = http()
        .get(server.url("/oauth2/revocations"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("www-authenticate"));
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_ends_open_subscriptions_and_exits_cleanly() {
    let db = TempDb::new();
    let rs = db.client("rs", &["--introspect"]);
    let server = db.start(&[]);
    let mut feed = Feed::open(&server, &rs, None).await;
    assert_eq!(feed.next().await.unwrap().event, "ready");
    let pid = server.child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    assert_eq!(feed.next().await, None, "the stream ends on shutdown");
    let status = tokio::task::spawn_blocking(move || {
        let mut server = server;
        let status = server.child.wait().unwrap();
        (status, server.stderr_text())
    })
    .await
    .unwrap();
    assert!(status.0.success(), "exit {:?}: {}", status.0, status.1);
    assert!(status.1.contains("shut down cleanly"), "{}", status.1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_subscription_ends_when_its_client_secret_is_rotated() {
    let db = TempDb::new();
    let rs = db.client("rs", &["--introspect"]);
    let server = db.start(&["--feed-heartbeat", "1"]);
    let mut feed = Feed::open(&server, &rs, None).await;
    assert_eq!(feed.next().await.unwrap().event, "ready");
    let rotated = db.json(&["client", "rotate-secret", "rs"]);
    assert!(rotated["client_secret"].is_string());
    // Checked at least once per heartbeat: the stream ends, and the old secret no longer connects.
    assert_eq!(feed.next().await, None);
    let r = http()
        .get(server.url("/oauth2/revocations"))
        .basic_auth(&rs.0, Some(&rs.1))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}
