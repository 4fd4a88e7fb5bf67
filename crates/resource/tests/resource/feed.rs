//! The revocation feed: evictions by kind, resync, gaps, reconnect from the cursor, the stale
//! bound counted from when the feed was last heard, silent connections, the heartbeat clamp, the
//! SSE size limits, and events racing an introspection in flight.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use tokenwarden_resource::{ManualClock, TokenDigest};

use crate::mock::{bearer, connected, start_time, wait_until, Mock};

const INVALID_TOKEN: &str = "Bearer realm=\"api\", error=\"invalid_token\", error_description=\"The access token is invalid, expired or revoked\"";

fn sha256_hex(token: &str) -> String {
    TokenDigest::of(token).to_hex()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_event_evicts_and_the_revoked_token_is_then_refused() {
    let mock = Mock::start().await;
    let clock = Arc::new(ManualClock::starting_at(start_time()));
    let validator = connected(mock.builder(&clock)).await;
    let app = crate::mock::app(&validator);
    mock.issue("tok-a", "app", "alice", "read");
    mock.issue("tok-b", "app", "alice", "read");
    for token in ["tok-a", "tok-b", "tok-a", "tok-b"] {
        assert_eq!(bearer(&app, "/notes", token).await.status, StatusCode::OK);
    }
    assert_eq!(mock.introspections(), 2);

    // The server revokes tok-a and says so on the feed.
    mock.deactivate("tok-a");
    mock.send_revoked(
        42,
        serde_json::json!({"kind": "token", "client_id": "app", "token_digest": sha256_hex("tok-a"), "grant_id": "twg_1"}),
    );
    wait_until("token eviction", || validator.stats().evictions.token == 1).await;
    assert_eq!(validator.stats().cursor, Some(42));
    let answer = bearer(&app, "/notes", "tok-a").await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.www_authenticate(), Some(INVALID_TOKEN));
    assert_eq!(mock.introspections(), 3);
    // tok-b was not touched.
    assert_eq!(bearer(&app, "/notes", "tok-b").await.status, StatusCode::OK);
    assert_eq!(mock.introspections(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grant_and_client_events_evict_only_the_matching_entries() {
    let mock = Mock::start().await;
    let clock = Arc::new(ManualClock::starting_at(start_time()));
    let validator = connected(mock.builder(&clock)).await;
    let app = crate::mock::app(&validator);
    let tokens = [
        ("app-alice-1", "app", "alice"),
        ("app-alice-2", "app", "alice"),
        ("app-bob", "app", "bob"),
        ("other-alice", "other", "alice"),
    ];
    for (token, client, sub) in tokens {
        mock.issue(token, client, sub, "read");
        assert_eq!(bearer(&app, "/notes", token).await.status, StatusCode::OK);
    }
    assert_eq!(mock.introspections(), 4);

    mock.send_revoked(
        42,
        serde_json::json!({"kind": "grant", "client_id": "app", "grant_id": "twg_1", "sub": "alice"}),
    );
    wait_until("grant eviction", || validator.stats().evictions.grant == 2).await;
    for token in ["app-bob", "other-alice"] {
        assert_eq!(bearer(&app, "/notes", token).await.status, StatusCode::OK);
    }
    assert_eq!(
        mock.introspections(),
        4,
        "bob's and the other client's entries stayed"
    );
    assert_eq!(validator.stats().cache_entries, 2);

    mock.send_revoked(
        43,
        serde_json::json!({"kind": "client", "client_id": "app"}),
    );
    wait_until("client eviction", || {
        validator.stats().evictions.client == 1
    })
    .await;
    assert_eq!(
        bearer(&app, "/notes", "other-alice").await.status,
        StatusCode::OK
    );
    assert_eq!(mock.introspections(), 4);
    assert_eq!(
        bearer(&app, "/notes", "app-bob").await.status,
        StatusCode::OK
    );
    assert_eq!(mock.introspections(), 5);
    let stats = validator.stats();
    assert_eq!(stats.evictions.token, 0);
    assert_eq!(stats.feed_events, 2);
    assert_eq!(stats.cursor, Some(43));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resync_and_unreadable_events_flush_the_whole_cache() {
    let mock = Mock::start().await;
    let clock = Arc::new(ManualClock::starting_at(start_time()));
    let validator = connected(mock.builder(&clock)).await;
    let app = crate::mock::app(&validator);
    for token in ["r1", "r2", "r3"] {
        mock.issue(token, "app", "alice", "read");
        assert_eq!(bearer(&app, "/notes", token).await.status, StatusCode::OK);
    }
    mock.send("event: resync\nid: 57\ndata: {\"head\":57,\"reason\":\"cursor is older than the feed's retention\"}\n\n");
    wait_until("resync", || validator.stats().evictions.resync == 3).await;
    assert_eq!(validator.stats().cache_entries, 0);
    assert_eq!(validator.stats().cursor, Some(57));
    assert_eq!(bearer(&app, "/notes", "r1").await.status, StatusCode::OK);
    assert_eq!(mock.introspections(), 4);

    // A `revoked` event of a kind we do not know: drop everything rather than guess.
    mock.send_revoked(
        58,
        serde_json::json!({"kind": "galaxy", "client_id": "app"}),
    );
    wait_until("flush", || validator.stats().evictions.resync == 4).await;
    assert_eq!(validator.stats().cursor, Some(58));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_feed_reconnects_from_the_last_event_id_and_applies_the_replay() {
    let mock = Mock::start().await;
    let clock = Arc::new(ManualClock::starting_at(start_time()));
    let validator = connected(mock.builder(&clock)).await;
    let app = crate::mock::app(&validator);
    mock.issue("keep", "app", "alice", "read");
    mock.issue("gone", "app", "bob", "read");
    for token in ["keep", "gone"] {
        assert_eq!(bearer(&app, "/notes", token).await.status, StatusCode::OK);
    }
    mock.send_revoked(
        42,
        serde_json::json!({"kind": "client", "client_id": "unrelated"}),
    );
    mock.send_revoked(
        43,
        serde_json::json!({"kind": "client", "client_id": "unrelated"}),
    );
    wait_until("cursor 43", || validator.stats().cursor == Some(43)).await;

    // The connection breaks mid-stream.
    mock.abort_feed();
    wait_until("second connection", || mock.feed_requests().len() == 2).await;
    let requests = mock.feed_requests();
    assert_eq!(requests[0].last_event_id, None);
    assert_eq!(requests[1].last_event_id.as_deref(), Some("43"));
    for request in &requests {
        assert_eq!(request.accept.as_deref(), Some("text/event-stream"));
        assert!(request
            .authorization
            .as_deref()
            .unwrap()
            .starts_with("Basic "));
    }
    // `ready` (cursor 43, auto-sent) then the event missed while disconnected.
    wait_until("reconnected", || validator.stats().feed_connections == 2).await;
    mock.deactivate("gone");
    mock.send_revoked(
        44,
        serde_json::json!({"kind": "grant", "client_id": "app", "sub": "bob"}),
    );
    wait_until("cursor 44", || validator.stats().cursor == Some(44)).await;
    assert_eq!(validator.stats().evictions.grant, 1);
    assert_eq!(
        bearer(&app, "/notes", "gone").await.status,
        StatusCode::UNAUTHORIZED
    );
    // The quick reconnect (< stale bound, same cursor) kept the rest of the cache.
    assert_eq!(bearer(&app, "/notes", "keep").await.status, StatusCode::OK);
    assert_eq!(mock.introspections(), 3);

    // A clean end of stream is a lost connection too.
    mock.drop_feed();
    wait_until("third connection", || mock.feed_requests().len() == 3).await;
    assert_eq!(mock.feed_requests()[2].last_event_id.as_deref(), Some("44"));
    wait_until("reconnected again", || {
        validator.stats().feed_connections == 3
    })
    .await;
    assert!(validator.stats().feed_reconnects >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_the_stale_bound_every_request_is_introspected() {
    let mock = Mock::start().await;
    let clock = Arc::new(ManualClock::starting_at(start_time()));
    let validator = connected(
        mock.builder(&clock)
            .feed_stale_bound(Duration::from_secs(10)),
    )
    .await;
    let app = crate::mock::app(&validator);
    mock.issue("tok", "app", "alice", "read");
    assert_eq!(bearer(&app, "/notes", "tok").await.status, StatusCode::OK);
    assert_eq!(mock.introspections(), 1);

    // The feed goes down and stays down.
    mock.set_feed_up(false);
    mock.drop_feed();
    wait_until("feed lost", || !validator.stats().feed_connected).await;
    // Within the bound the cache still answers (nothing is inserted, though).
    clock.advance(Duration::from_secs(9));
    for _ in 0..5 {
        assert_eq!(bearer(&app, "/notes", "tok").await.status, StatusCode::OK);
    }
    assert_eq!(mock.introspections(), 1);
    // Past it: every request is introspected.
    clock.advance(Duration::from_secs(2));
    for _ in 0..5 {
        assert_eq!(bearer(&app, "/notes", "tok").await.status, StatusCode::OK);
    }
    assert_eq!(mock.introspections(), 6);
    wait_until("kept trying to reconnect", || {
        mock.feed_requests().len() >= 2
    })
    .await;

    // The feed comes back: entries from before the outage are dropped; caching resumes.
    mock.set_feed_up(true);
    tokio::time::timeout(Duration::from_secs(10), validator.feed_connected())
        .await
        .unwrap();
    assert_eq!(validator.stats().cache_entries, 0);
    assert_eq!(validator.stats().evictions.resync, 1);
    for _ in 0..5 {
        assert_eq!(bearer(&app, "/notes", "tok").await.status, StatusCode::OK);
    }
    assert_eq!(mock.introspections(), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_is_dropped_after_two_heartbeats() {
    let mock = Mock::start().await;
    mock.set_auto_ready(Some(1));
    let clock = Arc::new(ManualClock::starting_at(start_time()));
    let validator = connected(mock.builder(&clock)).await;
    let started = tokio::time::Instant::now();
    wait_until("reconnect after silence", || {
        mock.feed_requests().len() == 2
    })
    .await;
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(1_900), "{waited:?}");
    assert!(waited < Duration::from_millis(2_900), "{waited:?}");
    assert_eq!(mock.feed_requests()[1].last_event_id.as_deref(), Some("41"));
    drop(validator);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_comments_keep_a_quiet_connection_alive() {
    let mock = Mock::start().await;
    mock.set_auto_ready(Some(1));
    let clock = Arc::new(ManualClock::starting_at(start_time()));
    let validator = connected(mock.builder(&clock)).await;
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        mock.send(": keepalive\n\n");
    }
    assert_eq!(mock.feed_requests().len(), 1);
    assert!(validator.stats().feed_connected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_during_an_introspection_keeps_its_answer_out_of_the_cache() {
    let mock = Mock::start().await;
    let clock = Arc::new(ManualClock::starting_at(start_time()));
    let validator = connected(mock.builder(&clock)).await;
    let app = crate::mock::app(&validator);
    mock.issue("tok", "app", "alice", "read");

    // Request A's introspection is held at the server…
    let gate = mock.gate_introspection();
    let first = {
        let app = app.clone();
        tokio::spawn(async move { bearer(&app, "/notes", "tok").await.status })
    };
    wait_until("A's introspection", || mock.introspections() == 1).await;
    // …while the feed reports a revocation (of anything: the answer in flight may predate it).
    mock.send_revoked(
        42,
        serde_json::json!({"kind": "client", "client_id": "someone-else"}),
    );
    wait_until("event processed", || validator.stats().feed_events == 1).await;
    // Request B, arriving after the event, does not join A's flight: it asks again.
    let second = {
        let app = app.clone();
        tokio::spawn(async move { bearer(&app, "/notes", "tok").await.status })
    };
    wait_until("B's own introspection", || mock.introspections() == 2).await;
    assert_eq!(validator.stats().coalesced, 0);
    // A is answered first: accepted (it was in flight before the event) but not cached.
    gate.add_permits(1);
    assert_eq!(first.await.unwrap(), StatusCode::OK);
    assert_eq!(validator.stats().cache_entries, 0);
    // B started after the event and nothing happened since: its answer is cached.
    gate.add_permits(1);
    assert_eq!(second.await.unwrap(), StatusCode::OK);
    assert_eq!(validator.stats().cache_entries, 1);
    gate.add_permits(100);
    assert_eq!(bearer(&app, "/notes", "tok").await.status, StatusCode::OK);
    assert_eq!(mock.introspections(), 2);

    // Same race with a real revocation of the token itself: the stale "active" is not cached,
    // the next request sees the revocation.
    let gate = mock.gate_introspection();
    mock.issue("tok2", "app", "bob", "read");
    let racing = {
        let app = app.clone();
        tokio::spawn(async move { bearer(&app, "/notes", "tok2").await.status })
    };
    wait_until("tok2 introspection", || mock.introspections() == 3).await;
    mock.deactivate("tok2");
    mock.send_revoked(
        43,
        serde_json::json!({"kind": "token", "client_id": "app", "token_digest": sha256_hex("tok2")}),
    );
    wait_until("event processed", || validator.stats().feed_events == 2).await;
    // The mock answers from its state at release time; make it answer the stale "active".
    mock.issue("tok2", "app", "bob", "read");
    gate.add_permits(1);
    assert_eq!(racing.await.unwrap(), StatusCode::OK);
    mock.deactivate("tok2");
    gate.add_permits(100);
    let answer = bearer(&app, "/notes", "tok2").await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.www_authenticate(), Some(INVALID_TOKEN));
}

/// One cached token, one token to introspect now, on a validator whose cache is in use.
async fn cached_and_fresh(
    mock: &Mock,
    app: &axum::Router,
    cached: &str,
    fresh: &str,
) -> (StatusCode, StatusCode) {
    mock.issue(cached, "app", "alice", "read");
    mock.issue(fresh, "app", "bob", "read");
    (
        bearer(app, "/notes", cached).await.status,
        bearer(app, "/notes", fresh).await.status,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_open_feed_stops_writes_after_one_and_a_half_heartbeats_and_reads_after_the_stale_bound(
) {
    let mock = Mock::start().await;
    // `ready` announces a 10 s heartbeat, then the connection stays open and says nothing. Real
    // time barely moves (no reconnect after 20 s); the validator's clock jumps.
    let clock = Arc::new(ManualClock::starting_at(start_time()));
    let validator = connected(
        mock.builder(&clock)
            .feed_stale_bound(Duration::from_secs(30)),
    )
    .await;
    let app = crate::mock::app(&validator);
    mock.issue("old", "app", "alice", "read");
    assert_eq!(bearer(&app, "/notes", "old").await.status, StatusCode::OK);
    assert_eq!(mock.introspections(), 1);

    // 15 s of silence = 1.5 heartbeats: still current, results still cached.
    clock.advance(Duration::from_secs(15));
    assert_eq!(
        validator.stats().feed_silence,
        Some(Duration::from_secs(15))
    );
    let (a, b) = cached_and_fresh(&mock, &app, "old", "new-15").await;
    assert_eq!((a, b), (StatusCode::OK, StatusCode::OK));
    assert_eq!(mock.introspections(), 2);
    assert_eq!(
        bearer(&app, "/notes", "new-15").await.status,
        StatusCode::OK
    );
    assert_eq!(mock.introspections(), 2, "cached at 1.5 heartbeats");

    // Past 1.5 heartbeats: the cache is still read (within the 30 s stale bound) but nothing
    // new is written.
    clock.advance(Duration::from_millis(1));
    for _ in 0..3 {
        let (a, b) = cached_and_fresh(&mock, &app, "old", "new-16").await;
        assert_eq!((a, b), (StatusCode::OK, StatusCode::OK));
    }
    assert_eq!(
        mock.introspections(),
        5,
        "new-16 introspected every time, old from the cache"
    );
    assert!(
        validator.stats().feed_connected,
        "the connection itself is still open"
    );

    // Once the silence reaches the stale bound, every request is introspected.
    clock.advance(Duration::from_millis(29_999 - 15_001));
    assert_eq!(bearer(&app, "/notes", "old").await.status, StatusCode::OK);
    assert_eq!(mock.introspections(), 5);
    clock.advance(Duration::from_millis(1));
    for _ in 0..3 {
        assert_eq!(bearer(&app, "/notes", "old").await.status, StatusCode::OK);
    }
    assert_eq!(mock.introspections(), 8);

    // The feed speaks again: what it said is applied, and the cache is current again.
    mock.deactivate("old");
    mock.send_revoked(
        42,
        serde_json::json!({"kind": "token", "client_id": "app", "token_digest": sha256_hex("old")}),
    );
    wait_until("heard again", || {
        validator.stats().feed_silence == Some(Duration::ZERO)
    })
    .await;
    assert_eq!(validator.stats().evictions.token, 1);
    assert_eq!(
        bearer(&app, "/notes", "old").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        bearer(&app, "/notes", "new-15").await.status,
        StatusCode::OK
    );
    assert_eq!(mock.introspections(), 9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_feed_counts_as_down_since_it_was_last_heard_not_since_the_loss_was_noticed() {
    let mock = Mock::start().await;
    let clock = Arc::new(ManualClock::starting_at(start_time()));
    let validator = connected(
        mock.builder(&clock)
            .feed_stale_bound(Duration::from_secs(10)),
    )
    .await;
    let app = crate::mock::app(&validator);
    mock.issue("tok", "app", "alice", "read");
    assert_eq!(bearer(&app, "/notes", "tok").await.status, StatusCode::OK);

    // 8 s of silence (within 1.5 heartbeats), then the connection ends and stays down.
    clock.advance(Duration::from_secs(8));
    mock.set_feed_up(false);
    mock.drop_feed();
    wait_until("feed lost", || !validator.stats().feed_connected).await;
    assert_eq!(bearer(&app, "/notes", "tok").await.status, StatusCode::OK);
    assert_eq!(mock.introspections(), 1);
    // 10 s after the feed was last heard from, 2 s after the loss was noticed: out of use.
    clock.advance(Duration::from_secs(2));
    assert_eq!(bearer(&app, "/notes", "tok").await.status, StatusCode::OK);
    assert_eq!(bearer(&app, "/notes", "tok").await.status, StatusCode::OK);
    assert_eq!(mock.introspections(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_out_of_range_heartbeat_is_clamped_and_panics_nothing() {
    // u64::MAX seconds (`Duration::from_secs(hb) * 3` used to panic in the feed task, which then
    // left the feed "connected" forever): used as 60 s, so the feed stops being current after
    // 90 s of silence.
    let mock = Mock::start().await;
    mock.set_auto_ready(Some(u64::MAX));
    let clock = Arc::new(ManualClock::starting_at(start_time()));
    let validator = connected(mock.builder(&clock)).await;
    let app = crate::mock::app(&validator);
    mock.issue("tok", "app", "alice", "read");
    assert_eq!(bearer(&app, "/notes", "tok").await.status, StatusCode::OK);
    clock.advance(Duration::from_secs(90));
    assert_eq!(bearer(&app, "/notes", "tok").await.status, StatusCode::OK);
    assert_eq!(mock.introspections(), 1);
    clock.advance(Duration::from_millis(1));
    assert_eq!(bearer(&app, "/notes", "tok").await.status, StatusCode::OK);
    assert_eq!(mock.introspections(), 2);
    // The task is alive and well: still the one connection, and it still applies events.
    assert!(validator.stats().feed_connected);
    assert_eq!(mock.feed_requests().len(), 1);
    mock.send_revoked(42, serde_json::json!({"kind": "client", "client_id": "x"}));
    wait_until("event applied", || validator.stats().cursor == Some(42)).await;

    // 0 is used as 1 s: current for 1.5 s of silence (and with no stale bound, read no longer).
    let mock = Mock::start().await;
    mock.set_auto_ready(Some(0));
    let clock = Arc::new(ManualClock::starting_at(start_time()));
    let validator = connected(mock.builder(&clock).feed_stale_bound(Duration::ZERO)).await;
    let app = crate::mock::app(&validator);
    mock.issue("tok", "app", "alice", "read");
    assert_eq!(bearer(&app, "/notes", "tok").await.status, StatusCode::OK);
    clock.advance(Duration::from_millis(1_500));
    assert_eq!(bearer(&app, "/notes", "tok").await.status, StatusCode::OK);
    assert_eq!(mock.introspections(), 1);
    clock.advance(Duration::from_millis(1));
    assert_eq!(bearer(&app, "/notes", "tok").await.status, StatusCode::OK);
    assert_eq!(mock.introspections(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_with_endless_data_lines_is_dropped_with_its_connection() {
    let mock = Mock::start().await;
    let clock = Arc::new(ManualClock::starting_at(start_time()));
    let validator = connected(mock.builder(&clock)).await;
    // A `revoked` event whose `data:` lines never end (no blank line): 70 lines of 1 000 bytes,
    // each well under the line limit, together over the 64 KiB an event may carry.
    let line = format!("data: {}\n", "x".repeat(1_000));
    mock.send(&format!("event: revoked\nid: 42\n{}", line.repeat(70)));
    wait_until("reconnect", || mock.feed_requests().len() == 2).await;
    // Reconnected from the cursor before the event, which was not applied.
    assert_eq!(mock.feed_requests()[1].last_event_id.as_deref(), Some("41"));
    wait_until("reconnected", || validator.stats().feed_connections == 2).await;
    let stats = validator.stats();
    assert_eq!(stats.feed_events, 0);
    assert_eq!(stats.cursor, Some(41));
}

/// Caches two tokens.
async fn fill(mock: &Mock, app: &axum::Router, validator: &tokenwarden_resource::Validator) {
    for token in ["g1", "g2"] {
        mock.issue(token, "app", "alice", "read");
        assert_eq!(bearer(app, "/notes", token).await.status, StatusCode::OK);
    }
    assert_eq!(validator.stats().cache_entries, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gap_in_the_ids_or_an_unknown_event_with_an_id_flushes_the_cache() {
    let mock = Mock::start().await;
    let clock = Arc::new(ManualClock::starting_at(start_time()));
    let validator = connected(mock.builder(&clock)).await;
    let app = crate::mock::app(&validator);
    let unrelated = || serde_json::json!({"kind": "client", "client_id": "unrelated"});
    fill(&mock, &app, &validator).await;
    assert_eq!(validator.stats().cursor, Some(41));

    // In sequence (41 → 42): applied precisely, nothing else evicted.
    mock.send_revoked(42, unrelated());
    wait_until("cursor 42", || validator.stats().cursor == Some(42)).await;
    assert_eq!(validator.stats().cache_entries, 2);

    // 43 missing: flush, then move on to 44.
    mock.send_revoked(44, unrelated());
    wait_until("cursor 44", || validator.stats().cursor == Some(44)).await;
    assert_eq!(validator.stats().cache_entries, 0);
    assert_eq!(validator.stats().evictions.resync, 2);
    fill(&mock, &app, &validator).await;

    // An event type we do not know, carrying an id: it took a place in the sequence.
    mock.send("event: revoked-v2\nid: 45\ndata: {\"seq\":45}\n\n");
    wait_until("cursor 45", || validator.stats().cursor == Some(45)).await;
    assert_eq!(validator.stats().cache_entries, 0);
    assert_eq!(validator.stats().evictions.resync, 4);
    fill(&mock, &app, &validator).await;

    // Without an id it is ignored; the next event is in sequence.
    mock.send("event: hello\ndata: {}\n\n");
    mock.send_revoked(46, unrelated());
    wait_until("cursor 46", || validator.stats().cursor == Some(46)).await;
    assert_eq!(validator.stats().cache_entries, 2);

    // A replayed id is out of sequence too, and so is a `revoked` event without an id.
    mock.send_revoked(46, unrelated());
    wait_until("flush", || validator.stats().evictions.resync == 6).await;
    assert_eq!(validator.stats().cursor, Some(46));
    fill(&mock, &app, &validator).await;
    mock.send("event: revoked\ndata: {\"seq\":47,\"kind\":\"client\",\"client_id\":\"x\"}\n\n");
    wait_until("flush", || validator.stats().evictions.resync == 8).await;
    assert_eq!(validator.stats().cursor, Some(46));
    assert_eq!(mock.introspections(), 8);
}
