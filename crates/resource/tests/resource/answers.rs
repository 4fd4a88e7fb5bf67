//! The HTTP answers of the layer (RFC 6750 §3), the claims handed to handlers, configuration
//! errors and redaction.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use tokenwarden_resource::{BuildError, ClientSecret, ManualClock, Validator};

use crate::mock::{
    bearer, call, connected, start_time, wait_until, Mock, CLIENT_ID, CLIENT_SECRET, NOW,
};

const INVALID_TOKEN: &str = "Bearer realm=\"api\", error=\"invalid_token\", error_description=\"The access token is invalid, expired or revoked\"";

async fn setup() -> (Mock, Arc<ManualClock>, Validator, axum::Router) {
    let mock = Mock::start().await;
    let clock = Arc::new(ManualClock::starting_at(start_time()));
    let validator = connected(mock.builder(&clock)).await;
    let app = crate::mock::app(&validator);
    (mock, clock, validator, app)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_credentials_get_a_bare_challenge_without_error_code() {
    let (mock, _clock, _validator, app) = setup().await;
    // No Authorization header; another scheme; the token only in the query (not accepted).
    for (path, authorization) in [
        ("/notes", None),
        ("/notes", Some("Basic YWxpY2U6c2VjcmV0")),
        ("/notes?access_token=abc", None),
    ] {
        let answer = call(&app, path, authorization).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{authorization:?}");
        assert_eq!(answer.www_authenticate(), Some("Bearer realm=\"api\""));
        assert_eq!(answer.body, "");
        assert_eq!(answer.headers["cache-control"], "no-store");
    }
    assert_eq!(mock.introspections(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_authorization_is_invalid_request_without_introspection() {
    let (mock, _clock, _validator, app) = setup().await;
    for (value, description) in [
        ("Bearer", "The Bearer credentials carry no token"),
        (
            "Bearer a b",
            "The Bearer token is not a b64token (RFC 6750 section 2.1)",
        ),
        (
            "Bearer tok\"en",
            "The Bearer token is not a b64token (RFC 6750 section 2.1)",
        ),
    ] {
        let answer = call(&app, "/notes", Some(value)).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{value}");
        assert_eq!(
            answer.www_authenticate().unwrap(),
            format!("Bearer realm=\"api\", error=\"invalid_request\", error_description=\"{description}\"")
        );
        let body: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
        assert_eq!(body["error"], "invalid_request");
        assert_eq!(answer.headers["content-type"], "application/json");
    }
    // Two Authorization headers.
    let request = axum::http::Request::builder()
        .uri("/notes")
        .header("authorization", "Bearer a")
        .header("authorization", "Bearer b")
        .body(axum::body::Body::empty())
        .unwrap();
    let response = tower::ServiceExt::oneshot(app.clone(), request)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        response.headers()["www-authenticate"],
        "Bearer realm=\"api\", error=\"invalid_request\", error_description=\"More than one Authorization header\""
    );
    assert_eq!(mock.introspections(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_token_is_invalid_token_and_valid_token_reaches_the_handler_with_its_claims() {
    let (mock, _clock, _validator, app) = setup().await;
    let answer = bearer(&app, "/notes", "nope").await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.www_authenticate(), Some(INVALID_TOKEN));
    let body: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(body["error"], "invalid_token");

    mock.issue("tok-alice", "app", "alice", "read write");
    let answer = bearer(&app, "/notes", "tok-alice").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body, "alice|app|read,write|jti-tok-alice");
    // The scheme is case-insensitive (RFC 7235 §2.1).
    let answer = call(&app, "/notes", Some("bearer tok-alice")).await;
    assert_eq!(answer.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_scope_is_insufficient_scope_naming_every_required_scope() {
    let (mock, _clock, _validator, app) = setup().await;
    mock.issue("tok-reader", "app", "alice", "read");
    let answer = bearer(&app, "/admin", "tok-reader").await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(
        answer.www_authenticate(),
        Some("Bearer realm=\"api\", error=\"insufficient_scope\", error_description=\"The access token does not grant the required scope\", scope=\"read admin\"")
    );
    let body: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(body["error"], "insufficient_scope");
    mock.issue("tok-admin", "app", "root", "admin read");
    assert_eq!(
        bearer(&app, "/admin", "tok-admin").await.status,
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_token_is_not_an_access_token() {
    let (mock, _clock, _validator, app) = setup().await;
    mock.set(
        "twr_refresh",
        serde_json::json!({"active": true, "token_type": "refresh_token", "client_id": "app", "sub": "alice", "scope": "read"}),
    );
    let answer = bearer(&app, "/notes", "twr_refresh").await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.www_authenticate(), Some(INVALID_TOKEN));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_type_may_be_absent_or_any_case_of_bearer_and_nothing_else() {
    let (mock, _clock, validator, app) = setup().await;
    let answer = |token_type: Option<&str>| {
        let mut answer = serde_json::json!({"active": true, "client_id": "app", "sub": "alice", "exp": NOW + 60});
        if let Some(token_type) = token_type {
            answer["token_type"] = token_type.into();
        }
        answer
    };
    // RFC 7662 §2.2: token_type is optional. Accepted, and cached.
    for (token, token_type) in [
        ("t-none", None),
        ("t-lower", Some("bearer")),
        ("t-upper", Some("BEARER")),
    ] {
        mock.set(token, answer(token_type));
        assert_eq!(
            bearer(&app, "/notes", token).await.status,
            StatusCode::OK,
            "{token_type:?}"
        );
        assert_eq!(
            bearer(&app, "/notes", token).await.status,
            StatusCode::OK,
            "{token_type:?}"
        );
    }
    assert_eq!(mock.introspections(), 3);
    for (token, token_type) in [
        ("t-mac", "mac"),
        ("t-dpop", "DPoP"),
        ("t-empty", ""),
        ("t-na", "N_A"),
    ] {
        mock.set(token, answer(Some(token_type)));
        let answer = bearer(&app, "/notes", token).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{token_type}");
        assert_eq!(answer.www_authenticate(), Some(INVALID_TOKEN));
    }
    assert_eq!(validator.stats().cache_entries, 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_answers_that_feed_events_could_not_find_are_accepted_but_not_cached() {
    let (mock, _clock, validator, app) = setup().await;
    // No client_id: a `client` or `grant` event could not evict it.
    mock.set(
        "no-client",
        serde_json::json!({"active": true, "token_type": "Bearer", "sub": "alice", "exp": NOW + 60}),
    );
    // A username but no sub: a `grant` event names the user by `sub`.
    mock.set(
        "no-sub",
        serde_json::json!({"active": true, "token_type": "Bearer", "client_id": "app", "username": "alice", "exp": NOW + 60}),
    );
    for token in ["no-client", "no-sub"] {
        for _ in 0..3 {
            assert_eq!(
                bearer(&app, "/notes", token).await.status,
                StatusCode::OK,
                "{token}"
            );
        }
    }
    assert_eq!(mock.introspections(), 6, "validated per request");
    assert_eq!(validator.stats().cache_entries, 0);
    // With both, cached as usual.
    mock.issue("both", "app", "alice", "read");
    for _ in 0..3 {
        assert_eq!(bearer(&app, "/notes", "both").await.status, StatusCode::OK);
    }
    assert_eq!(mock.introspections(), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misses_beyond_the_concurrent_introspection_cap_are_503_at_once() {
    let mock = Mock::start().await;
    let clock = Arc::new(ManualClock::starting_at(start_time()));
    let validator = connected(mock.builder(&clock).max_concurrent_introspections(4)).await;
    let app = crate::mock::app(&validator);
    let gate = mock.gate_introspection();
    let tokens: Vec<String> = (0..6).map(|i| format!("cap-{i}")).collect();
    for token in &tokens {
        mock.issue(token, "app", "alice", "read");
    }
    let spawn = |token: &str| {
        let (app, token) = (app.clone(), token.to_owned());
        tokio::spawn(async move { bearer(&app, "/notes", &token).await })
    };
    let tasks: Vec<_> = tokens.iter().map(|t| spawn(t)).collect();
    // Four introspections held at the server; the other two misses are refused without waiting.
    wait_until("4 in flight, 2 refused", || {
        mock.introspections() == 4 && tasks.iter().filter(|t| t.is_finished()).count() == 2
    })
    .await;
    assert_eq!(validator.stats().overloaded, 2);
    // A request for a token already in flight joins it: no slot needed.
    let in_flight = tokens
        .iter()
        .zip(&tasks)
        .find(|(_, task)| !task.is_finished())
        .map(|(token, _)| token.clone())
        .unwrap();
    let joiner = spawn(&in_flight);
    wait_until("joined", || validator.stats().coalesced == 1).await;
    gate.add_permits(100);
    let mut statuses = Vec::new();
    for task in tasks {
        let answer = task.await.unwrap();
        if answer.status == StatusCode::SERVICE_UNAVAILABLE {
            let body: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
            assert_eq!(body["error"], "temporarily_unavailable");
        }
        statuses.push(answer.status);
    }
    statuses.sort();
    assert_eq!(
        statuses,
        [
            [StatusCode::OK; 4].as_slice(),
            &[StatusCode::SERVICE_UNAVAILABLE; 2]
        ]
        .concat()
    );
    assert_eq!(joiner.await.unwrap().status, StatusCode::OK);
    assert_eq!(mock.introspections(), 4);
    // The slots are free again: the refused tokens go through now.
    for token in &tokens {
        assert_eq!(bearer(&app, "/notes", token).await.status, StatusCode::OK);
    }
    assert_eq!(mock.introspections(), 6);
    assert_eq!(validator.stats().overloaded, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspection_failure_is_503_and_is_not_cached() {
    let (mock, _clock, validator, app) = setup().await;
    mock.issue("tok", "app", "alice", "read");
    mock.set_introspect_status(500);
    for _ in 0..3 {
        let answer = bearer(&app, "/notes", "tok").await;
        assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(answer.www_authenticate(), None);
        let body: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
        assert_eq!(body["error"], "temporarily_unavailable");
    }
    assert_eq!(mock.introspections(), 3);
    assert_eq!(validator.stats().introspection_failures, 3);
    mock.set_introspect_status(200);
    assert_eq!(bearer(&app, "/notes", "tok").await.status, StatusCode::OK);
    assert_eq!(bearer(&app, "/notes", "tok").await.status, StatusCode::OK);
    assert_eq!(mock.introspections(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_or_slow_introspection_is_503() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let validator = Validator::builder()
        .introspection_endpoint(format!("http://127.0.0.1:{port}/introspect"))
        .client_credentials(CLIENT_ID, ClientSecret::new(CLIENT_SECRET))
        .build()
        .await
        .unwrap();
    let app = crate::mock::app(&validator);
    assert_eq!(
        bearer(&app, "/notes", "tok").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );

    let mock = Mock::start().await;
    let gate = mock.gate_introspection();
    let validator = Validator::builder()
        .introspection_endpoint(format!("{}/introspect", mock.base))
        .client_credentials(CLIENT_ID, ClientSecret::new(CLIENT_SECRET))
        .introspection_timeout(Duration::from_millis(100))
        .build()
        .await
        .unwrap();
    let app = crate::mock::app(&validator);
    assert_eq!(
        bearer(&app, "/notes", "tok").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    gate.add_permits(10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_extractor_fails_closed_on_an_unprotected_route() {
    let (_mock, _clock, _validator, app) = setup().await;
    let answer = call(&app, "/open/required", None).await;
    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
    let answer = call(&app, "/open/optional", None).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body, "none");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unusable_required_scope_fails_closed() {
    let (mock, _clock, validator, _app) = setup().await;
    mock.issue("tok", "app", "alice", "read");
    let app = axum::Router::new()
        .route("/x", axum::routing::get(|| async { "in" }))
        .route_layer(validator.layer().require_scope("two words"));
    let answer = bearer(&app, "/x", "tok").await;
    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_realm_is_configurable_per_validator_and_per_layer() {
    let mock = Mock::start().await;
    let clock = Arc::new(ManualClock::starting_at(start_time()));
    let validator = mock
        .builder(&clock)
        .realm("notes \"v2\"")
        .build()
        .await
        .unwrap();
    let app = axum::Router::new()
        .route("/a", axum::routing::get(|| async { "a" }))
        .route_layer(validator.layer())
        .merge(
            axum::Router::new()
                .route("/b", axum::routing::get(|| async { "b" }))
                .route_layer(validator.layer().realm("other")),
        );
    assert_eq!(
        call(&app, "/a", None).await.www_authenticate(),
        Some("Bearer realm=\"notes v2\"")
    );
    assert_eq!(
        call(&app, "/b", None).await.www_authenticate(),
        Some("Bearer realm=\"other\"")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_are_discovered_from_the_issuer_metadata() {
    let mock = Mock::start().await;
    let clock = Arc::new(ManualClock::starting_at(start_time()));
    let validator = connected(
        Validator::builder()
            .issuer(&mock.base)
            .client_credentials(CLIENT_ID, ClientSecret::new(CLIENT_SECRET))
            .clock(clock),
    )
    .await;
    mock.issue("tok", "app", "alice", "read");
    let app = crate::mock::app(&validator);
    assert_eq!(bearer(&app, "/notes", "tok").await.status, StatusCode::OK);
    assert_eq!(bearer(&app, "/notes", "tok").await.status, StatusCode::OK);
    assert_eq!(mock.introspections(), 1);
    assert_eq!(mock.feed_requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_errors_are_reported() {
    let missing = Validator::builder()
        .introspection_endpoint("http://127.0.0.1:1/introspect")
        .build()
        .await;
    assert!(matches!(missing, Err(BuildError::MissingCredentials)));
    let no_endpoint = Validator::builder()
        .client_credentials(CLIENT_ID, ClientSecret::new(CLIENT_SECRET))
        .build()
        .await;
    assert!(matches!(
        no_endpoint,
        Err(BuildError::MissingEndpoint("introspection_endpoint"))
    ));
    // https is required off loopback (RFC 7662 §4), as tokenwarden-client does.
    let insecure = Validator::builder()
        .introspection_endpoint("http://auth.example.com/introspect")
        .client_credentials(CLIENT_ID, ClientSecret::new(CLIENT_SECRET))
        .build()
        .await;
    assert!(matches!(insecure, Err(BuildError::Url(_))));
    let insecure_feed = Validator::builder()
        .introspection_endpoint("https://auth.example.com/introspect")
        .revocation_feed_endpoint("http://auth.example.com/feed")
        .client_credentials(CLIENT_ID, ClientSecret::new(CLIENT_SECRET))
        .build()
        .await;
    assert!(matches!(insecure_feed, Err(BuildError::Url(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_output_never_shows_the_client_secret_or_a_token() {
    let (mock, clock, validator, app) = setup().await;
    mock.issue("tok-zQx9SECRET", "app", "alice", "read");
    assert_eq!(
        bearer(&app, "/notes", "tok-zQx9SECRET").await.status,
        StatusCode::OK
    );
    let builder = mock.builder(&clock);
    let layer = validator.layer().require_scope("read");
    for text in [
        format!("{validator:?}"),
        format!("{builder:?}"),
        format!("{layer:?}"),
        format!("{:?}", validator.stats()),
    ] {
        assert!(!text.contains("zQx9SECRET"), "{text}");
    }
    assert!(format!("{builder:?}").contains("[redacted]"));
    assert!(format!("{validator:?}").contains(CLIENT_ID));
}
