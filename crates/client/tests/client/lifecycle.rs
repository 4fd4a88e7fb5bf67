//! The TokenManager's lifecycle rules, scenarios 1–7 of issue 4 and the rules around them. Every
//! test runs on tokio's paused clock.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokenwarden_client::store::{StoreError, StoreLock};
use tokenwarden_client::{
    Clock as _, EndpointUrl, Endpoints, Error, MemoryStore, OAuthClient, RetryPolicy, TokenManager,
    TokenSet, TokenStore,
};

use crate::mock::*;

async fn concurrent_access_tokens(manager: &TokenManager, n: usize) -> Vec<String> {
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let m = manager.clone();
            tokio::spawn(async move { m.access_token().await })
        })
        .collect();
    let mut tokens = Vec::new();
    for h in handles {
        tokens.push(h.await.unwrap().unwrap().secret().to_owned());
    }
    tokens
}

fn middleware_error(e: reqwest_middleware::Error) -> Error {
    match e {
        reqwest_middleware::Error::Middleware(e) => e.downcast::<Error>().unwrap(),
        other => panic!("expected a manager error, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn s1_hundred_concurrent_callers_at_the_refresh_point_send_one_refresh() {
    let s = Setup::new();
    // Token expires 10:00; buffer 5 min; lifetime 1 h → refresh point 09:55:00.
    s.advance_to(at(9, 54, 59, 999)).await;
    let tokens = concurrent_access_tokens(&s.manager, 100).await;
    assert!(tokens.iter().all(|t| *t == at0()));
    assert_eq!(s.mock.token_posts(), 0, "09:54:59.999 → no refresh");

    s.advance_to(at(9, 55, 0, 0)).await;
    let tokens = concurrent_access_tokens(&s.manager, 100).await;
    assert_eq!(tokens.len(), 100);
    assert!(tokens.iter().all(|t| *t == at_n(1)), "{tokens:?}");
    assert_eq!(s.mock.token_posts(), 1, "09:55:00 → exactly one refresh");
    let stored = s.store.snapshot().unwrap();
    assert_eq!(stored.access_token.secret(), at_n(1));
    assert_eq!(stored.refresh_token.unwrap().secret(), rt_n(1));
    // Expiry counted from when the refresh was sent.
    assert_eq!(stored.obtained_at, at(9, 55, 0, 0));
    assert_eq!(stored.expires_at, at(10, 55, 0, 0));
}

#[tokio::test(start_paused = true)]
async fn s2_fifty_requests_rejected_with_the_same_token_cause_one_refresh_and_fifty_replays() {
    let s = Setup::new();
    // The server stopped accepting AT0 although it has not expired.
    s.mock.invalidate_access(&at0());
    s.mock.api_barrier(&at0(), 50);
    let api = s.api();
    let handles: Vec<_> = (0..50)
        .map(|_| {
            let api = api.clone();
            let url = s.mock.url("/api");
            tokio::spawn(async move { api.get(url).send().await })
        })
        .collect();
    for h in handles {
        assert_eq!(h.await.unwrap().unwrap().status(), 200);
    }
    assert_eq!(s.mock.token_posts(), 1, "one refresh");
    assert_eq!(s.mock.api_calls_with(&at0()), 50, "50 rejected requests");
    assert_eq!(s.mock.api_calls_with(&at_n(1)), 50, "50 replays");
    assert_eq!(s.mock.api_calls(), 100);
}

#[tokio::test(start_paused = true)]
async fn s3_expires_in_240_over_ten_minutes_of_steady_calls_refreshes_at_most_five_times() {
    let s = Setup::with_tokens(Some(token_set(
        &at0(),
        Some(&rt0()),
        at(9, 0, 0, 0),
        at(9, 4, 0, 0),
    )));
    s.mock.set_expires_in(Some(240));
    let api = s.api();
    let mut calls = 0;
    while s.clock.now() <= at(9, 10, 0, 0) {
        let response = api.get(s.mock.url("/api")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let tokens = s.manager.tokens().await.unwrap().unwrap();
        assert!(s.clock.now() < tokens.expires_at, "never an expired token");
        calls += 1;
        tokio::time::advance(Duration::from_secs(1)).await;
    }
    assert_eq!(calls, 601);
    // lifetime 240 s → refresh 120 s before expiry: at 09:02, 09:04, 09:06, 09:08, 09:10.
    assert_eq!(s.mock.token_posts(), 5);
    assert_eq!(s.mock.api_calls(), 601, "no 401s, no replays");
}

#[tokio::test(start_paused = true)]
async fn s4_an_api_that_always_answers_401_gets_two_calls_and_a_stream_gets_one_and_a_typed_error()
{
    let s = Setup::new();
    s.mock.set_api_mode(ApiMode::AlwaysUnauthorized);
    let api = s.api();
    let response = api.get(s.mock.url("/api")).send().await.unwrap();
    assert_eq!(
        response.status(),
        401,
        "the second 401 goes back to the caller"
    );
    assert_eq!(s.mock.api_calls(), 2, "exactly one retry");
    assert_eq!(s.mock.token_posts(), 1);

    // A streaming body cannot be replayed.
    let body = reqwest::Body::wrap(String::from("payload"));
    let e = api
        .post(s.mock.url("/api"))
        .body(body)
        .send()
        .await
        .unwrap_err();
    assert!(matches!(middleware_error(e), Error::NotReplayable));
    assert_eq!(
        s.mock.api_calls(),
        3,
        "one call for the non-replayable request"
    );
    // The rejected token was still the stored one, so it was refreshed for the next request.
    assert_eq!(s.mock.token_posts(), 2);

    // Through the manager's own HTTP path as well.
    let request = http::Request::builder()
        .uri(s.mock.url("/api"))
        .body(bytes::Bytes::new())
        .unwrap();
    let response = s.manager.execute(request).await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(s.mock.api_calls(), 5);
}

#[tokio::test(start_paused = true)]
async fn s5_invalid_grant_wipes_the_store_and_later_calls_fail_fast_without_network() {
    let s = Setup::with_tokens(Some(token_set(
        &at0(),
        Some(&rt0()),
        at(8, 0, 0, 0),
        at(8, 59, 0, 0),
    )));
    // The server no longer knows RT0 (revoked, reused…).
    s.mock.set_current_refresh("something-else");
    let e = s.manager.access_token().await.unwrap_err();
    assert!(matches!(e, Error::ReconnectRequired), "{e:?}");
    assert!(s.store.snapshot().is_none(), "store wiped");
    assert_eq!(s.mock.token_posts(), 1);

    let network_before = s.http.total();
    let api = s.api();
    for i in 0..1000 {
        if i % 2 == 0 {
            assert!(matches!(
                s.manager.access_token().await,
                Err(Error::ReconnectRequired)
            ));
        } else {
            let e = api.get(s.mock.url("/api")).send().await.unwrap_err();
            assert!(matches!(middleware_error(e), Error::ReconnectRequired));
        }
    }
    assert_eq!(s.http.total(), network_before, "0 network calls");
    assert_eq!(s.mock.token_posts(), 1);
    assert_eq!(s.mock.api_calls(), 0);

    // New tokens (the user signed in again) end the state.
    s.mock.seed(&at_n(50), &rt_n(50));
    s.manager
        .set_tokens(token_set(
            &at_n(50),
            Some(&rt_n(50)),
            s.clock.now(),
            s.clock.now() + Duration::from_secs(3600),
        ))
        .await
        .unwrap();
    assert_eq!(s.manager.access_token().await.unwrap().secret(), at_n(50));
    assert_eq!(
        api.get(s.mock.url("/api")).send().await.unwrap().status(),
        200
    );
}

#[tokio::test(start_paused = true)]
async fn s6_transient_failures_back_off_honouring_retry_after_and_keep_the_tokens() {
    let expired = token_set(&at0(), Some(&rt0()), at(8, 0, 0, 0), at(8, 59, 0, 0));
    let s = Setup::with_tokens(Some(expired.clone()));
    s.mock
        .script_token(503, Some(7), r#"{"error":"temporarily_unavailable"}"#);
    s.mock.script_token(503, None, "<html>unavailable</html>");
    let token = s.manager.access_token().await.unwrap();
    assert_eq!(token.secret(), at_n(1));
    assert_eq!(s.mock.token_posts(), 3, "503, 503, 200");
    let times = s.http.times("/token");
    assert_eq!(
        times[1] - times[0],
        Duration::from_secs(7),
        "Retry-After honoured"
    );
    assert_eq!(
        times[2] - times[1],
        Duration::from_secs(2),
        "then exponential backoff"
    );

    // Endpoint stays down: bounded attempts, the stored tokens untouched, then fail fast.
    let s = Setup::with_tokens(Some(expired.clone()));
    for _ in 0..10 {
        s.mock
            .script_token(503, None, r#"{"error":"temporarily_unavailable"}"#);
    }
    let e = s.manager.access_token().await.unwrap_err();
    assert!(e.is_transient(), "{e:?}");
    assert_eq!(
        s.mock.token_posts(),
        RetryPolicy::default().max_attempts as usize
    );
    assert_eq!(s.store.snapshot(), Some(expired.clone()), "tokens kept");
    let e = s.manager.access_token().await.unwrap_err();
    assert!(matches!(e, Error::Backoff { .. }), "{e:?}");
    assert_eq!(s.mock.token_posts(), 4, "no request while backing off");
    // A Retry-After longer than the policy allows is not slept through: fail now, honour it later.
    let s = Setup::with_tokens(Some(expired.clone()));
    s.mock
        .script_token(429, Some(120), r#"{"error":"slow_down"}"#);
    let e = s.manager.access_token().await.unwrap_err();
    assert_eq!(e.retry_after(), Some(Duration::from_secs(120)));
    assert_eq!(s.mock.token_posts(), 1);
    tokio::time::advance(Duration::from_secs(60)).await;
    assert!(matches!(
        s.manager.access_token().await,
        Err(Error::Backoff { .. })
    ));
    tokio::time::advance(Duration::from_secs(60)).await;
    assert_eq!(s.manager.access_token().await.unwrap().secret(), at_n(1));
    assert_eq!(s.mock.token_posts(), 2);
}

#[tokio::test(start_paused = true)]
async fn s6_api_calls_succeed_on_the_valid_token_while_the_token_endpoint_is_down_early() {
    let s = Setup::new();
    // The token endpoint is down: nothing listens on its port.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let down = format!("http://{}/token", closed.local_addr().unwrap());
    drop(closed);
    let client = OAuthClient::new(
        s.http.clone(),
        credentials(),
        Endpoints {
            token: Some(EndpointUrl::parse(&down).unwrap()),
            ..s.mock.endpoints()
        },
    );
    let manager = TokenManager::builder(client)
        .store(s.store.clone())
        .clock(Arc::new(s.clock))
        .build();
    let api = manager.authorized_client(test_reqwest());
    s.advance_to(at(9, 56, 0, 0)).await; // inside the early window (from 09:55)
    for _ in 0..60 {
        let r = api.get(s.mock.url("/api")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        tokio::time::advance(Duration::from_secs(1)).await;
    }
    assert_eq!(
        s.mock.api_calls_with(&at0()),
        60,
        "all on the still-valid token"
    );
    // One attempt per backoff step (1, 2, 4, 8, 16 s …), not one per call.
    let attempts = s.http.count("/token");
    assert_eq!(attempts, 6, "attempts at +0, +1, +3, +7, +15, +31 s");
    assert_eq!(s.store.snapshot().unwrap().access_token.secret(), at0());
}

#[tokio::test(start_paused = true)]
async fn s7_logout_revokes_refresh_then_access_token_and_clears_the_store_even_on_500() {
    let s = Setup::new();
    s.mock.set_revoke_status(500);
    let e = s.manager.logout().await.unwrap_err();
    assert!(matches!(e, Error::OAuth { status: 500, .. }), "{e:?}");
    assert_eq!(
        s.mock.revocations(),
        vec![
            (rt0(), Some("refresh_token".into())),
            (at0(), Some("access_token".into())),
        ]
    );
    assert!(s.store.snapshot().is_none(), "store cleared regardless");
    let before = s.http.total();
    assert!(matches!(
        s.manager.access_token().await,
        Err(Error::ReconnectRequired)
    ));
    assert_eq!(s.http.total(), before);

    let s = Setup::new();
    s.manager.logout().await.unwrap();
    assert_eq!(s.mock.revocations().len(), 2);
    assert!(s.store.snapshot().is_none());
}

#[tokio::test(start_paused = true)]
async fn s7_logout_during_a_refresh_awaits_it_and_revokes_its_result() {
    let s = Setup::with_tokens(Some(token_set(
        &at0(),
        Some(&rt0()),
        at(8, 0, 0, 0),
        at(8, 59, 0, 0),
    )));
    let gate = s.mock.close_token_gate();
    let m = s.manager.clone();
    let caller = tokio::spawn(async move { m.access_token().await });
    s.mock.state.token_arrived.notified().await;
    let m = s.manager.clone();
    let logout = tokio::spawn(async move { m.logout().await });
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert!(
        s.mock.revocations().is_empty(),
        "logout waits for the refresh"
    );
    gate.add_permits(1);
    assert_eq!(caller.await.unwrap().unwrap().secret(), at_n(1));
    logout.await.unwrap().unwrap();
    assert_eq!(
        s.mock.revocations(),
        vec![
            (rt_n(1), Some("refresh_token".into())),
            (at_n(1), Some("access_token".into())),
            (at0(), Some("access_token".into())),
        ]
    );
    assert!(s.store.snapshot().is_none());
    assert_eq!(s.mock.token_posts(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_new_refresh_token_is_adopted_and_the_old_one_kept_when_none_is_returned() {
    let s = Setup::new();
    s.manager.refresh_now().await.unwrap();
    let stored = s.store.snapshot().unwrap();
    assert_eq!(stored.refresh_token.unwrap().secret(), rt_n(1));

    s.mock.set_rotate(false);
    s.manager.refresh_now().await.unwrap();
    let stored = s.store.snapshot().unwrap();
    assert_eq!(stored.access_token.secret(), at_n(2));
    assert_eq!(
        stored.refresh_token.unwrap().secret(),
        rt_n(1),
        "old one kept"
    );
    assert_eq!(stored.scope.as_deref(), Some("read"));
    let forms = s.mock.token_forms();
    assert_eq!(forms.len(), 2);
    assert!(forms[1].contains(&("refresh_token".into(), rt_n(1))));
}

#[tokio::test(start_paused = true)]
async fn expiry_counts_from_when_the_request_was_sent() {
    #[derive(Debug)]
    struct Slow(Arc<Recording>);
    #[async_trait::async_trait]
    impl tokenwarden_client::HttpClient for Slow {
        async fn execute(
            &self,
            request: http::Request<bytes::Bytes>,
        ) -> Result<http::Response<bytes::Bytes>, tokenwarden_client::HttpError> {
            let response = self.0.execute(request).await;
            tokio::time::sleep(Duration::from_secs(10)).await; // a slow network
            response
        }
    }
    let s = Setup::new();
    let client = OAuthClient::new(
        Arc::new(Slow(s.http.clone())),
        credentials(),
        s.mock.endpoints(),
    );
    let manager = TokenManager::builder(client)
        .store(s.store.clone())
        .clock(Arc::new(s.clock))
        .build();
    s.advance_to(at(9, 58, 0, 0)).await;
    manager.access_token().await.unwrap();
    let stored = s.store.snapshot().unwrap();
    assert_eq!(stored.obtained_at, at(9, 58, 0, 0));
    assert_eq!(stored.expires_at, at(10, 58, 0, 0));
    assert_eq!(s.clock.now(), at(9, 58, 10, 0));
}

#[tokio::test(start_paused = true)]
async fn without_expires_in_the_assumed_lifetime_applies_and_a_401_refreshes_earlier() {
    let s = Setup::new();
    s.mock.set_expires_in(None);
    let manager = s.manager_with(|b| b.assumed_lifetime(Duration::from_secs(600)));
    manager.refresh_now().await.unwrap();
    let stored = s.store.snapshot().unwrap();
    assert!(stored.expiry_assumed);
    assert_eq!(stored.expires_at, at(9, 10, 0, 0), "never valid forever");
    // Refresh point: 10 min − min(5 min, 5 min) = 09:05.
    s.advance_to(at(9, 4, 59, 0)).await;
    assert_eq!(manager.access_token().await.unwrap().secret(), at_n(1));
    s.advance_to(at(9, 5, 0, 0)).await;
    assert_eq!(manager.access_token().await.unwrap().secret(), at_n(2));
    // The server expires tokens sooner than assumed: the 401 refreshes.
    s.mock.invalidate_access(&at_n(2));
    let api = manager.authorized_client(test_reqwest());
    assert_eq!(
        api.get(s.mock.url("/api")).send().await.unwrap().status(),
        200
    );
    assert_eq!(s.mock.token_posts(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_401_for_a_token_already_replaced_does_not_refresh_again() {
    let s = Setup::new();
    s.manager.refresh_now().await.unwrap();
    assert_eq!(s.mock.token_posts(), 1);
    let old = tokenwarden_client::AccessToken::new(at0());
    let token = s.manager.refresh_after_unauthorized(&old).await.unwrap();
    assert_eq!(token.secret(), at_n(1));
    assert_eq!(s.mock.token_posts(), 1);
}

/// A store whose saves fail while `failures` is positive.
#[derive(Debug, Default)]
struct FlakyStore {
    inner: MemoryStore,
    failures: AtomicUsize,
}

#[async_trait::async_trait]
impl TokenStore for FlakyStore {
    async fn load(&self) -> Result<Option<TokenSet>, StoreError> {
        self.inner.load().await
    }
    async fn save(&self, tokens: &TokenSet) -> Result<(), StoreError> {
        if self
            .failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(StoreError::Io(std::io::Error::other("disk full")));
        }
        self.inner.save(tokens).await
    }
    async fn clear(&self) -> Result<(), StoreError> {
        self.inner.clear().await
    }
    async fn lock(&self) -> Result<StoreLock, StoreError> {
        Ok(StoreLock::none())
    }
}

#[tokio::test(start_paused = true)]
async fn a_store_failure_after_refresh_fails_closed_and_the_pair_is_persisted_before_use() {
    let s = Setup::new();
    let store = Arc::new(FlakyStore {
        inner: MemoryStore::with_tokens(token_set(
            &at0(),
            Some(&rt0()),
            at(8, 0, 0, 0),
            at(8, 59, 0, 0),
        )),
        failures: AtomicUsize::new(2),
    });
    let client = OAuthClient::new(s.http.clone(), credentials(), s.mock.endpoints());
    let manager = TokenManager::builder(client)
        .store(store.clone())
        .clock(Arc::new(s.clock))
        .build();
    for _ in 0..2 {
        let e = manager.access_token().await.unwrap_err();
        assert!(matches!(e, Error::Store(_)), "{e:?}");
        assert_eq!(
            store.inner.snapshot().unwrap().access_token.secret(),
            at0(),
            "new pair not handed out, old one still stored"
        );
    }
    assert_eq!(
        s.mock.token_posts(),
        1,
        "the rotated pair is kept aside, not re-requested"
    );
    let token = manager.access_token().await.unwrap();
    assert_eq!(token.secret(), at_n(1));
    let stored = store.inner.snapshot().unwrap();
    assert_eq!(stored.refresh_token.unwrap().secret(), rt_n(1));
    assert_eq!(s.mock.token_posts(), 1);
}

#[tokio::test(start_paused = true)]
async fn client_credentials_mode_fetches_on_first_use_and_again_when_due() {
    let s = Setup::with_tokens(None);
    let manager = s.manager_with(|b| b.client_credentials(Some("read")));
    let token = manager.access_token().await.unwrap();
    assert_eq!(token.secret(), at_n(1));
    assert_eq!(manager.access_token().await.unwrap().secret(), at_n(1));
    s.advance_to(at(9, 55, 0, 0)).await;
    assert_eq!(manager.access_token().await.unwrap().secret(), at_n(2));
    let forms = s.mock.token_forms();
    assert_eq!(forms.len(), 2);
    assert!(forms[0].contains(&("grant_type".into(), "client_credentials".into())));
    assert!(forms[0].contains(&("scope".into(), "read".into())));
}

#[tokio::test(start_paused = true)]
async fn an_empty_store_means_reconnect_required_without_network() {
    let s = Setup::with_tokens(None);
    assert!(matches!(
        s.manager.access_token().await,
        Err(Error::ReconnectRequired)
    ));
    assert_eq!(s.http.total(), 0);
}
