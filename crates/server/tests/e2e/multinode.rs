//! Several `tokenwarden serve` nodes on one PostgreSQL database (issue: no lost or resurrected
//! token). Needs PostgreSQL: `scripts/test` starts one and sets `TOKENWARDEN_TEST_POSTGRES_URL`;
//! each test creates its own database in it.
#![allow(clippy::disallowed_methods)] // wall-clock timings are reported, never asserted

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::*;

fn postgres_url() -> String {
    std::env::var("TOKENWARDEN_TEST_POSTGRES_URL").expect(
        "TOKENWARDEN_TEST_POSTGRES_URL must point at a PostgreSQL server (scripts/test starts one)",
    )
}

/// A fresh database on the test server; dropped (best effort) with the returned guard.
async fn fresh_database(tag: &str) -> TempDb {
    use sqlx::Connection as _;
    let base = postgres_url();
    let name = format!("tw_e2e_{tag}_{}", std::process::id());
    let mut conn = sqlx::PgConnection::connect(&base).await.unwrap();
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .unwrap();
    let (prefix, _) = base.rsplit_once('/').unwrap();
    TempDb::with_url(format!("{prefix}/{name}"))
}

async fn pg_scalar(url: &str, sql: &str) -> i64 {
    use sqlx::{Connection as _, Row as _};
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::query(sql)
        .fetch_one(&mut conn)
        .await
        .unwrap()
        .try_get::<i64, _>(0)
        .unwrap()
}

fn user_grant(db: &TempDb) -> ((String, String), Value) {
    let app = db.client(
        "app",
        &[
            "--grant-type",
            "authorization_code",
            "--grant-type",
            "refresh_token",
            "--scope",
            "read",
        ],
    );
    assert!(db
        .cli_stdin(&["user", "create", "alice"], "pw\n")
        .status
        .success());
    (
        app,
        db.json(&["token", "issue", "--client", "app", "--user", "alice"]),
    )
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs PostgreSQL (scripts/test starts it and sets TOKENWARDEN_TEST_POSTGRES_URL)"]
async fn two_nodes_forty_concurrent_refreshes_one_successor() {
    let db = fresh_database("rotation").await;
    let (app, grant) = user_grant(&db);
    let a = db.start(&[]);
    let b = db.start(&[]);
    let rt = grant["refresh_token"].as_str().unwrap().to_owned();
    let started = Instant::now();
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let url = if i % 2 == 0 {
                a.url("/oauth2/token")
            } else {
                b.url("/oauth2/token")
            };
            let (app, rt) = (app.clone(), rt.clone());
            tokio::spawn(async move {
                let r = post_form(
                    &url,
                    &app.0,
                    &app.1,
                    &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
                )
                .await;
                (r.status().as_u16(), r.text().await.unwrap())
            })
        })
        .collect();
    let mut bodies = Vec::new();
    for t in tasks {
        let (status, body) = t.await.unwrap();
        assert_eq!(status, 200, "{body}");
        bodies.push(body);
    }
    let elapsed = started.elapsed();
    assert!(
        bodies.iter().all(|b| b == &bodies[0]),
        "every caller, on either node, gets the same response"
    );
    let successors = pg_scalar(&db.url(), "SELECT COUNT(*) FROM refresh_tokens").await - 1;
    assert_eq!(successors, 1);
    println!("two-node rotation: 40 concurrent refreshes (20 per node) → {successors} successor, 40×200 identical, {elapsed:?}");
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs PostgreSQL (scripts/test starts it and sets TOKENWARDEN_TEST_POSTGRES_URL)"]
async fn revoke_on_one_node_is_seen_by_the_other_at_once_and_tokens_move_between_nodes() {
    let db = fresh_database("revoke").await;
    let (app, grant) = user_grant(&db);
    let svc = db.client("svc", &["--scope", "read", "--introspect"]);
    let a = db.start(&[]);
    let b = db.start(&[]);

    // Issued on A (the CLI grant), refreshed on B.
    let r = post_form(
        &b.url("/oauth2/token"),
        &app.0,
        &app.1,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", grant["refresh_token"].as_str().unwrap()),
        ],
    )
    .await;
    let (status, refreshed) = json_of(r).await;
    assert_eq!(status, 200, "{refreshed}");
    // A client-credentials token issued on A, refreshed grant's token introspected on A.
    let (_, cc) = json_of(
        post_form(
            &a.url("/oauth2/token"),
            &svc.0,
            &svc.1,
            &[("grant_type", "client_credentials")],
        )
        .await,
    )
    .await;
    let token = cc["access_token"].as_str().unwrap();
    let (_, claims) = json_of(
        post_form(
            &b.url("/oauth2/introspect"),
            &svc.0,
            &svc.1,
            &[("token", token)],
        )
        .await,
    )
    .await;
    assert_eq!(claims["active"], true);

    // Revoke on A → the very next introspection on B says inactive.
    let started = Instant::now();
    let r = post_form(
        &a.url("/oauth2/revoke"),
        &svc.0,
        &svc.1,
        &[("token", token)],
    )
    .await;
    assert_eq!(r.status(), 200);
    let (_, claims) = json_of(
        post_form(
            &b.url("/oauth2/introspect"),
            &svc.0,
            &svc.1,
            &[("token", token)],
        )
        .await,
    )
    .await;
    assert_eq!(claims, serde_json::json!({"active": false}));
    println!(
        "revoke on A → inactive on B on the next request ({:?} for both requests)",
        started.elapsed()
    );

    // The refreshed user token, revoked through its refresh token on B, is inactive on A.
    let r = post_form(
        &b.url("/oauth2/revoke"),
        &app.0,
        &app.1,
        &[("token", refreshed["refresh_token"].as_str().unwrap())],
    )
    .await;
    assert_eq!(r.status(), 200);
    let (_, claims) = json_of(
        post_form(
            &a.url("/oauth2/introspect"),
            &svc.0,
            &svc.1,
            &[("token", refreshed["access_token"].as_str().unwrap())],
        )
        .await,
    )
    .await;
    assert_eq!(claims["active"], false);
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs PostgreSQL (scripts/test starts it and sets TOKENWARDEN_TEST_POSTGRES_URL)"]
async fn kill_9_of_one_node_mid_load_loses_no_answered_token() {
    let db = fresh_database("kill").await;
    let svc = db.client("svc", &["--scope", "read", "--introspect"]);
    let a = db.start(&[]);
    let b = db.start(&[]);
    let (a_url, b_url) = (a.url("/oauth2/token"), b.url("/oauth2/token"));
    // Each load task records every token it got a 200 for, as it goes.
    let load = |url: String, svc: (String, String), sink: Arc<Mutex<Vec<String>>>| {
        tokio::spawn(async move {
            let mut failed = 0u32;
            for _ in 0..300 {
                let r = http()
                    .post(&url)
                    .basic_auth(&svc.0, Some(&svc.1))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body("grant_type=client_credentials")
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == 200 => {
                        let token = r.json::<Value>().await.unwrap()["access_token"]
                            .as_str()
                            .unwrap()
                            .to_owned();
                        sink.lock().unwrap().push(token);
                    }
                    _ => failed += 1,
                }
            }
            failed
        })
    };
    let (from_a, from_b) = (
        Arc::new(Mutex::new(Vec::new())),
        Arc::new(Mutex::new(Vec::new())),
    );
    let on_a: Vec<_> = (0..4)
        .map(|_| load(a_url.clone(), svc.clone(), Arc::clone(&from_a)))
        .collect();
    let on_b: Vec<_> = (0..4)
        .map(|_| load(b_url.clone(), svc.clone(), Arc::clone(&from_b)))
        .collect();
    // Kill A mid-load: once it has answered some requests, while its tasks still send more.
    let started = Instant::now();
    while from_a.lock().unwrap().len() < 20 {
        assert!(
            started.elapsed().as_secs() < 60,
            "node A answered too little"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    a.kill_9();
    let mut failed_a = 0;
    for t in on_a {
        failed_a += t.await.unwrap();
    }
    let mut failed_b = 0;
    for t in on_b {
        failed_b += t.await.unwrap();
    }
    let answered_a = from_a.lock().unwrap().len();
    let mut answered = from_a.lock().unwrap().clone();
    answered.extend(from_b.lock().unwrap().iter().cloned());
    assert!(failed_a > 0, "node A was killed mid-load");
    assert_eq!(failed_b, 0, "node B keeps serving");
    let mut inactive = 0;
    for token in &answered {
        let (_, claims) = json_of(
            post_form(
                &b.url("/oauth2/introspect"),
                &svc.0,
                &svc.1,
                &[("token", token)],
            )
            .await,
        )
        .await;
        if claims["active"] != true {
            inactive += 1;
        }
    }
    assert_eq!(
        inactive, 0,
        "every token answered 200 is there after kill -9"
    );
    println!(
        "kill -9 mid-load: node A answered {answered_a} (then {failed_a} requests failed), node B {} — all {} active afterwards",
        answered.len() - answered_a,
        answered.len()
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs PostgreSQL (scripts/test starts it and sets TOKENWARDEN_TEST_POSTGRES_URL)"]
async fn revocations_on_one_node_reach_feed_subscribers_of_the_other() {
    use crate::feed::Feed;
    let db = fresh_database("feed").await;
    let rs = db.client("rs", &["--introspect"]);
    let svc = db.client("svc", &[]);
    let a = db.start(&[]);
    let b = db.start(&[]);
    let mut feed = Feed::open(&b, &rs, None).await;
    assert_eq!(feed.next().await.unwrap().event, "ready");
    let mut delays = Vec::new();
    for i in 1..=50u64 {
        let (status, body) = json_of(
            post_form(
                &a.url("/oauth2/token"),
                &svc.0,
                &svc.1,
                &[("grant_type", "client_credentials")],
            )
            .await,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let token = body["access_token"].as_str().unwrap();
        let r = post_form(
            &a.url("/oauth2/revoke"),
            &svc.0,
            &svc.1,
            &[("token", token)],
        )
        .await;
        assert_eq!(r.status(), 200);
        // From the revocation's 200 on node A to the event on node B's feed.
        let answered = Instant::now();
        let e = feed.revoked().await;
        delays.push(answered.elapsed());
        assert_eq!(e["seq"].as_u64(), Some(i), "gapless, in order");
        assert_eq!(e["kind"], "token");
    }
    delays.sort();
    let (p50, p99) = (delays[delays.len() / 2], delays[delays.len() * 99 / 100]);
    println!("feed across nodes: revoke on A → event on B's feed, 50 revocations: p50 {p50:?}, p99 {p99:?}, max {:?}", delays[delays.len() - 1]);
    assert!(delays.iter().all(|d| d.as_millis() < 1000), "{delays:?}");
    assert_eq!(
        pg_scalar(&db.url(), "SELECT head FROM revocation_feed").await,
        50
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs PostgreSQL (scripts/test starts it and sets TOKENWARDEN_TEST_POSTGRES_URL)"]
async fn an_api_subscribed_to_node_b_rejects_tokens_revoked_on_node_a() {
    use crate::protect::{client_credentials, report, revoke_and_time_rejection, Api};
    let db = fresh_database("protect").await;
    let rs = db.client("rs", &["--introspect"]);
    let svc = db.client("svc", &["--scope", "read"]);
    let a = db.start(&[]);
    let b = db.start(&[]);
    let api = Api::start(|builder| builder.issuer(b.base.clone()), &rs).await;
    api.wait_for_feed().await;
    let mut delays = Vec::new();
    for _ in 0..50 {
        let token = client_credentials(&a, &svc).await;
        assert_eq!(api.status(&token).await, 200);
        assert_eq!(api.status(&token).await, 200);
        delays.push(revoke_and_time_rejection(&a, &svc, &api, &token).await);
    }
    let max = report(
        "PostgreSQL, revoke on node A, API subscribed to node B",
        &delays,
    );
    let stats = api.validator.stats();
    println!("layer: {stats:?}");
    assert!(max < Duration::from_secs(1), "max {max:?}");
    assert_eq!(stats.evictions.token, 50);
    assert_eq!(stats.introspections, 100);
}
