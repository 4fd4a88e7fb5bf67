//! The refresh token grant (RFC 6749 §6) with rotation, the grace window and reuse detection
//! (RFC 9700 §4.14.2).

use http::StatusCode;
use serde_json::Value;
use tokenwarden_core::model::Scope;
use tokenwarden_core::Outcome;

use crate::support::*;

const GRACE: i64 = 30;

async fn refresh_ok(h: &Harness, refresh_token: &str) -> Tokens {
    let r = h.refresh(APP, refresh_token).await;
    r.assert_status(StatusCode::OK);
    r.assert_json_headers();
    Tokens::from_body(&r.body)
}

/// The grant is revoked: its revoked_at is set and every token given reads revoked.
async fn assert_grant_revoked(h: &Harness, access: &[&str], refresh: &[&str]) {
    let grants = h.grants().await;
    assert_eq!(grants.len(), 1);
    assert!(grants[0].revoked_at.is_some(), "grant must be revoked");
    for t in access {
        assert!(
            !h.is_active(t).await,
            "access token must introspect inactive"
        );
        assert!(h.access_state(t).await.unwrap().revoked);
    }
    for t in refresh {
        let r = h.refresh(APP, t).await;
        r.assert_error(StatusCode::BAD_REQUEST, "invalid_grant");
        assert!(h.refresh_state(t).await.unwrap().revoked);
    }
}

#[tokio::test]
async fn refresh_rotates_to_a_new_refresh_token_and_retires_the_old_one() {
    let h = Harness::new().await;
    let first = h.user_grant(APP.0, "alice").await;
    h.advance(100);
    let r = h.refresh(APP, &first.refresh).await;
    r.assert_status(StatusCode::OK);
    r.assert_json_headers();
    assert_eq!(r.outcome, Some(Outcome::TokenRefreshed));
    let v = r.json();
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["expires_in"], 3600);
    assert_eq!(v["scope"], "read write");
    let second = Tokens::from_body(&r.body);
    assert!(second.refresh.starts_with("twr_"), "{}", second.refresh);
    assert_eq!(second.refresh.len(), 4 + 51);
    assert!(second.access.starts_with("twa_"));
    assert_ne!(second.refresh, first.refresh);
    assert_ne!(second.access, first.access);

    // The old refresh token is now used: inactive at introspection, for its owner too.
    assert_eq!(
        h.introspect_as(APP, &first.refresh).await,
        serde_json::json!({"active": false})
    );
    let old = h.refresh_state(&first.refresh).await.unwrap();
    assert_eq!(old.used_at, Some(T0 + 100));
    assert!(!old.revoked);
    assert!(old.sealed_successor.is_some());
    // The new ones work; the first access token is still valid until it expires.
    let new = h.refresh_state(&second.refresh).await.unwrap();
    assert_eq!(new.record.issued_at, T0 + 100);
    assert_eq!(new.record.expires_at, T0 + 100 + 60 * 24 * 3600);
    assert_eq!(new.record.grant_id, old.record.grant_id, "same grant");
    assert!(h.is_active(&second.access).await);
    assert!(h.is_active(&first.access).await);
    assert_eq!(h.introspect_as(APP, &second.refresh).await["active"], true);
    assert_eq!(h.grants().await[0].last_refreshed_at, Some(T0 + 100));
    h.advance(GRACE + 1);
    let third = refresh_ok(&h, &second.refresh).await;
    assert_ne!(third.refresh, second.refresh);
}

#[tokio::test]
async fn public_client_refreshes_with_client_id_only() {
    let h = Harness::new().await;
    let first = h.user_grant(SPA, "alice").await;
    let r = h
        .token(
            Req::post(TOKEN)
                .form(&[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", &first.refresh),
                    ("client_id", SPA),
                ])
                .build(),
        )
        .await;
    r.assert_status(StatusCode::OK);
    let next = Tokens::from_body(&r.body);
    assert_eq!(
        h.refresh_state(&next.refresh)
            .await
            .unwrap()
            .record
            .client_id,
        SPA
    );
}

#[tokio::test]
async fn narrower_scope_narrows_the_access_token_and_the_refresh_token_keeps_the_grant_scope() {
    let h = Harness::new().await;
    let first = h.user_grant(APP.0, "alice").await;
    let r = h
        .token(
            Req::post(TOKEN)
                .basic(APP.0, APP.1)
                .form(&[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", &first.refresh),
                    ("scope", "read"),
                ])
                .build(),
        )
        .await;
    r.assert_status(StatusCode::OK);
    assert_eq!(r.json()["scope"], "read");
    let second = Tokens::from_body(&r.body);
    let read = Scope::parse("read").unwrap();
    let all = Scope::parse("read write").unwrap();
    assert_eq!(
        h.access_state(&second.access).await.unwrap().record.scope,
        read
    );
    // RFC 6749 §6: the new refresh token's scope is identical to the presented one's.
    assert_eq!(
        h.refresh_state(&second.refresh).await.unwrap().record.scope,
        all
    );
    assert_eq!(h.introspect_as(APP, &second.access).await["scope"], "read");
    assert_eq!(
        h.introspect_as(APP, &second.refresh).await["scope"],
        "read write"
    );
    // A later refresh without scope gets the whole grant scope back.
    h.advance(GRACE + 1);
    let r = h.refresh(APP, &second.refresh).await;
    r.assert_status(StatusCode::OK);
    assert_eq!(r.json()["scope"], "read write");
}

#[tokio::test]
async fn wider_scope_is_invalid_scope_and_does_not_consume_the_refresh_token() {
    let h = Harness::new().await;
    let first = h.user_grant(APP.0, "alice").await;
    for scope in ["read write admin", "admin"] {
        let r = h
            .token(
                Req::post(TOKEN)
                    .basic(APP.0, APP.1)
                    .form(&[
                        ("grant_type", "refresh_token"),
                        ("refresh_token", &first.refresh),
                        ("scope", scope),
                    ])
                    .build(),
            )
            .await;
        r.assert_error(StatusCode::BAD_REQUEST, "invalid_scope");
    }
    assert_eq!(h.refresh_state(&first.refresh).await.unwrap().used_at, None);
    assert_eq!(
        h.row_counts().await.refresh_tokens,
        1,
        "no successor minted"
    );
    refresh_ok(&h, &first.refresh).await;
}

#[tokio::test]
async fn refresh_token_of_another_client_is_invalid_grant() {
    let h = Harness::new().await;
    let first = h.user_grant(APP.0, "alice").await;
    let r = h.refresh(OTHER, &first.refresh).await;
    r.assert_error(StatusCode::BAD_REQUEST, "invalid_grant");
    // Answered like an unknown token: not consumed, grant untouched.
    let state = h.refresh_state(&first.refresh).await.unwrap();
    assert_eq!(state.used_at, None);
    assert!(!state.revoked);
    assert_eq!(h.grants().await[0].revoked_at, None);
    assert_eq!(h.row_counts().await.refresh_tokens, 1);
    refresh_ok(&h, &first.refresh).await;
}

#[tokio::test]
async fn unknown_or_missing_refresh_token_is_refused() {
    let h = Harness::new().await;
    h.user_grant(APP.0, "alice").await;
    let r = h.refresh(APP, "twr_doesnotexist").await;
    r.assert_error(StatusCode::BAD_REQUEST, "invalid_grant");
    let r = h
        .token(
            Req::post(TOKEN)
                .basic(APP.0, APP.1)
                .form(&[("grant_type", "refresh_token")])
                .build(),
        )
        .await;
    r.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    // An access token is not a refresh token.
    let t = h.user_grant(APP.0, "bob").await;
    let r = h.refresh(APP, &t.access).await;
    r.assert_error(StatusCode::BAD_REQUEST, "invalid_grant");
}

#[tokio::test]
async fn expired_refresh_token_is_invalid_grant() {
    let h = Harness::new().await;
    let ttl = 60 * 24 * 3600;
    let a = h.user_grant(APP.0, "alice").await;
    h.advance(1);
    let b = h.user_grant(APP.0, "bob").await;
    // Now a expires exactly (now == expires_at); b has one second left.
    h.advance(ttl - 1);
    let r = h.refresh(APP, &a.refresh).await;
    r.assert_error(StatusCode::BAD_REQUEST, "invalid_grant");
    assert_eq!(h.refresh_state(&a.refresh).await.unwrap().used_at, None);
    refresh_ok(&h, &b.refresh).await;
}

#[tokio::test]
async fn refresh_of_a_revoked_grant_is_invalid_grant() {
    let h = Harness::new().await;
    let first = h.user_grant(APP.0, "alice").await;
    h.revoke_as(APP, &first.refresh, None)
        .await
        .assert_revocation_ok();
    let r = h.refresh(APP, &first.refresh).await;
    r.assert_error(StatusCode::BAD_REQUEST, "invalid_grant");
    assert_eq!(
        h.row_counts().await.refresh_tokens,
        1,
        "no successor minted"
    );
}

#[tokio::test]
async fn replay_within_grace_returns_the_identical_response() {
    let h = Harness::new().await;
    let first = h.user_grant(APP.0, "alice").await;
    let r1 = h.refresh(APP, &first.refresh).await;
    r1.assert_status(StatusCode::OK);

    h.advance(GRACE - 1);
    let r2 = h.refresh(APP, &first.refresh).await;
    r2.assert_status(StatusCode::OK);
    r2.assert_json_headers();
    assert_eq!(r2.outcome, Some(Outcome::GraceReplay));
    assert_eq!(r2.body, r1.body, "byte-identical token response");

    // No fork: still one successor, and it works.
    let counts = h.row_counts().await;
    assert_eq!(counts.refresh_tokens, 2);
    assert_eq!(counts.access_tokens, 2);
    assert_eq!(h.grants().await[0].revoked_at, None);
    let second = Tokens::from_body(&r1.body);
    assert!(h.is_active(&second.access).await);
    refresh_ok(&h, &second.refresh).await;
}

#[tokio::test]
async fn replay_after_grace_is_reuse_and_revokes_the_grant() {
    let h = Harness::new().await;
    let first = h.user_grant(APP.0, "alice").await;
    let second = refresh_ok(&h, &first.refresh).await;
    h.advance(GRACE + 1);
    let r = h.refresh(APP, &first.refresh).await;
    r.assert_status(StatusCode::BAD_REQUEST);
    r.assert_json_headers();
    assert_eq!(r.json()["error"], "invalid_grant");
    assert_eq!(r.outcome, Some(Outcome::ReuseDetected));
    assert_eq!(h.grants().await[0].revoked_at, Some(T0 + GRACE + 1));
    assert_grant_revoked(&h, &[&first.access, &second.access], &[&second.refresh]).await;
}

#[tokio::test]
async fn replay_of_a_token_two_generations_back_within_grace_is_reuse() {
    let h = Harness::new().await;
    let first = h.user_grant(APP.0, "alice").await;
    let second = refresh_ok(&h, &first.refresh).await;
    h.advance(1);
    let third = refresh_ok(&h, &second.refresh).await;
    h.advance(1);
    // first's successor (second) is itself used: first is no longer "the previous token".
    let r = h.refresh(APP, &first.refresh).await;
    r.assert_status(StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["error"], "invalid_grant");
    assert_eq!(r.outcome, Some(Outcome::ReuseDetected));
    assert_grant_revoked(
        &h,
        &[&first.access, &second.access, &third.access],
        &[&third.refresh],
    )
    .await;
}

#[tokio::test]
async fn zero_grace_makes_rotation_strict() {
    let h = Harness::with_config(|c| c.refresh_grace = 0).await;
    let first = h.user_grant(APP.0, "alice").await;
    let second = refresh_ok(&h, &first.refresh).await;
    // Same second, a retry: with no grace it is reuse.
    let r = h.refresh(APP, &first.refresh).await;
    r.assert_status(StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["error"], "invalid_grant");
    assert_eq!(r.outcome, Some(Outcome::ReuseDetected));
    assert_grant_revoked(&h, &[&second.access], &[&second.refresh]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_refreshes_with_one_token_get_identical_responses_and_one_successor() {
    let h = Harness::new().await;
    let first = h.user_grant(APP.0, "alice").await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let server = h.server.clone();
        let refresh = first.refresh.clone();
        tasks.spawn(async move {
            let req = Req::post(TOKEN)
                .basic(APP.0, APP.1)
                .form(&[("grant_type", "refresh_token"), ("refresh_token", &refresh)])
                .build();
            Resp::from(server.token(req).await)
        });
    }
    let responses: Vec<Resp> = tasks.join_all().await;
    for r in &responses {
        r.assert_status(StatusCode::OK);
        r.assert_json_headers();
    }
    let bodies: std::collections::HashSet<&[u8]> =
        responses.iter().map(|r| r.body.as_ref()).collect();
    assert_eq!(bodies.len(), 1, "every response is the same token response");
    let refreshed = responses
        .iter()
        .filter(|r| r.outcome == Some(Outcome::TokenRefreshed))
        .count();
    assert_eq!(
        refreshed, 1,
        "exactly one rotation; the rest are grace replays"
    );

    let counts = h.row_counts().await;
    assert_eq!(
        counts.refresh_tokens, 2,
        "the original and exactly one successor"
    );
    assert_eq!(counts.access_tokens, 2);
    assert_eq!(h.grants().await[0].revoked_at, None);
    let successor = Tokens::from_body(&responses[0].body);
    assert!(h.is_active(&successor.access).await);
    assert_eq!(
        h.introspect_as(APP, &successor.refresh).await["active"],
        Value::Bool(true)
    );
}
