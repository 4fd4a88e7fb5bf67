//! Caching: one introspection per token, lifetimes (exp, max TTL, negative TTL), the size bound,
//! nothing cached before the feed's `ready`.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use tokenwarden_resource::ManualClock;

use crate::mock::{advance_heard, bearer, connected, start_time, wait_until, Mock, NOW};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_requests_with_one_token_cost_one_introspection() {
    let mock = Mock::start().await;
    let clock = Arc::new(ManualClock::starting_at(start_time()));
    let validator = connected(mock.builder(&clock)).await;
    let app = crate::mock::app(&validator);
    mock.issue("tok-1000", "app", "alice", "read");

    // 100 concurrent requests, all missing the cache while the one introspection is held.
    let gate = mock.gate_introspection();
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            bearer(&app, "/notes", "tok-1000").await.status
        }));
    }
    wait_until("100 misses", || validator.stats().cache_misses == 100).await;
    assert_eq!(mock.introspections(), 1);
    gate.add_permits(1);
    for task in tasks {
        assert_eq!(task.await.unwrap(), StatusCode::OK);
    }
    // 900 more: 450 sequential, 450 in 9 concurrent waves of 50.
    for _ in 0..450 {
        assert_eq!(
            bearer(&app, "/notes", "tok-1000").await.status,
            StatusCode::OK
        );
    }
    for _ in 0..9 {
        let wave: Vec<_> = (0..50)
            .map(|_| {
                let app = app.clone();
                tokio::spawn(async move { bearer(&app, "/notes", "tok-1000").await.status })
            })
            .collect();
        for task in wave {
            assert_eq!(task.await.unwrap(), StatusCode::OK);
        }
    }
    assert_eq!(mock.introspections(), 1);
    let stats = validator.stats();
    assert_eq!(stats.introspections, 1);
    assert_eq!(stats.cache_misses, 100);
    assert_eq!(stats.coalesced, 99);
    assert_eq!(stats.cache_hits, 900);
    assert_eq!(stats.cache_entries, 1);

    // The one request: client_secret_basic (RFC 6749 §2.3.1) and the RFC 7662 form.
    let auth = mock.state.introspection_auth.lock().unwrap().clone();
    assert_eq!(auth.len(), 1);
    assert!(auth[0].starts_with("Basic "));
    let bodies = mock.state.introspection_bodies.lock().unwrap().clone();
    assert_eq!(bodies, ["token=tok-1000&token_type_hint=access_token"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_cached_before_the_feed_is_ready() {
    let mock = Mock::start().await;
    mock.set_auto_ready(None);
    let clock = Arc::new(ManualClock::starting_at(start_time()));
    let validator = mock.builder(&clock).build().await.unwrap();
    let app = crate::mock::app(&validator);
    mock.issue("tok", "app", "alice", "read");
    wait_until("feed connection", || mock.feed_requests().len() == 1).await;
    for _ in 0..3 {
        assert_eq!(bearer(&app, "/notes", "tok").await.status, StatusCode::OK);
    }
    assert_eq!(mock.introspections(), 3);
    assert_eq!(validator.stats().cache_entries, 0);
    assert!(!validator.stats().feed_connected);

    mock.send_ready(41, 10);
    tokio::time::timeout(Duration::from_secs(5), validator.feed_connected())
        .await
        .unwrap();
    for _ in 0..3 {
        assert_eq!(bearer(&app, "/notes", "tok").await.status, StatusCode::OK);
    }
    assert_eq!(mock.introspections(), 4);
    assert_eq!(validator.stats().cursor, Some(41));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inactive_answers_are_cached_for_the_negative_ttl_only() {
    let mock = Mock::start().await;
    let clock = Arc::new(ManualClock::starting_at(start_time()));
    let validator = connected(mock.builder(&clock).negative_ttl(Duration::from_secs(5))).await;
    let app = crate::mock::app(&validator);
    for _ in 0..3 {
        assert_eq!(
            bearer(&app, "/notes", "garbage").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(mock.introspections(), 1);
    clock.advance(Duration::from_millis(4_900));
    assert_eq!(
        bearer(&app, "/notes", "garbage").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(mock.introspections(), 1);
    // Past the negative TTL: asked again (and now it is active).
    clock.advance(Duration::from_millis(200));
    mock.issue("garbage", "app", "alice", "read");
    assert_eq!(
        bearer(&app, "/notes", "garbage").await.status,
        StatusCode::OK
    );
    assert_eq!(mock.introspections(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_answers_are_cached_until_exp_or_the_max_ttl_whichever_is_first() {
    let mock = Mock::start().await;
    let clock = Arc::new(ManualClock::starting_at(start_time()));
    let validator = connected(mock.builder(&clock).cache_max_ttl(Duration::from_secs(60))).await;
    let app = crate::mock::app(&validator);

    // exp in 30 s (< max TTL): cached 30 s.
    mock.set(
        "short",
        serde_json::json!({"active": true, "token_type": "Bearer", "client_id": "app", "sub": "a", "exp": NOW + 30}),
    );
    assert_eq!(bearer(&app, "/notes", "short").await.status, StatusCode::OK);
    // The feed keeps talking while the clock jumps (a silent feed would stop the cache).
    advance_heard(&mock, &validator, &clock, Duration::from_secs(29)).await;
    assert_eq!(bearer(&app, "/notes", "short").await.status, StatusCode::OK);
    assert_eq!(mock.introspections(), 1);
    clock.advance(Duration::from_secs(2));
    mock.deactivate("short");
    let answer = bearer(&app, "/notes", "short").await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(mock.introspections(), 2);

    // exp in an hour (> max TTL): cached 60 s.
    mock.issue("long", "app", "alice", "read");
    let before = mock.introspections();
    assert_eq!(bearer(&app, "/notes", "long").await.status, StatusCode::OK);
    advance_heard(&mock, &validator, &clock, Duration::from_secs(59)).await;
    assert_eq!(bearer(&app, "/notes", "long").await.status, StatusCode::OK);
    assert_eq!(mock.introspections(), before + 1);
    clock.advance(Duration::from_secs(2));
    assert_eq!(bearer(&app, "/notes", "long").await.status, StatusCode::OK);
    assert_eq!(mock.introspections(), before + 2);

    // Already past exp (the server's clock behind ours says active): refused as invalid_token,
    // cached only as inactive (for the negative TTL), never as active.
    mock.set(
        "stale",
        serde_json::json!({"active": true, "token_type": "Bearer", "client_id": "app", "sub": "a", "exp": NOW - 10}),
    );
    let before = mock.introspections();
    for _ in 0..2 {
        let answer = bearer(&app, "/notes", "stale").await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
        assert!(answer
            .www_authenticate()
            .unwrap()
            .contains("error=\"invalid_token\""));
    }
    assert_eq!(mock.introspections(), before + 1);
    // Exactly at exp is past too (RFC 7662 §2.2: the token expires at `exp`).
    let wall = tokenwarden_resource::Clock::wall(clock.as_ref());
    let now = wall
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    mock.set(
        "at-exp",
        serde_json::json!({"active": true, "client_id": "app", "sub": "a", "exp": now}),
    );
    assert_eq!(
        bearer(&app, "/notes", "at-exp").await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_holds_at_most_max_entries() {
    let mock = Mock::start().await;
    let clock = Arc::new(ManualClock::starting_at(start_time()));
    let validator = connected(mock.builder(&clock).max_entries(2)).await;
    let app = crate::mock::app(&validator);
    for (i, token) in ["t1", "t2", "t3"].into_iter().enumerate() {
        mock.issue(token, "app", "alice", "read");
        // Later tokens expire later, so the first is the one pushed out.
        clock.advance(Duration::from_secs(1 + i as u64));
        assert_eq!(bearer(&app, "/notes", token).await.status, StatusCode::OK);
    }
    let stats = validator.stats();
    assert_eq!(stats.cache_entries, 2);
    assert_eq!(stats.evictions.capacity, 1);
    assert_eq!(bearer(&app, "/notes", "t3").await.status, StatusCode::OK);
    assert_eq!(bearer(&app, "/notes", "t2").await.status, StatusCode::OK);
    assert_eq!(mock.introspections(), 3);
    assert_eq!(bearer(&app, "/notes", "t1").await.status, StatusCode::OK);
    assert_eq!(mock.introspections(), 4);
}
