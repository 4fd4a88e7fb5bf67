//! A 200 means durable: kill -9 right after the response, restart, and the write is there.

use crate::harness::*;

#[tokio::test(flavor = "multi_thread")]
async fn issuance_and_revocation_survive_kill_9() {
    let db = TempDb::new();
    let svc = db.client("svc", &["--scope", "read", "--introspect"]);

    // Issue, then SIGKILL the instant the 200 arrives.
    let server = db.start(&[]);
    let mut tokens = Vec::new();
    for _ in 0..5 {
        let r = post_form(
            &server.url("/oauth2/token"),
            &svc.0,
            &svc.1,
            &[("grant_type", "client_credentials")],
        )
        .await;
        let (status, body) = json_of(r).await;
        assert_eq!(status, 200);
        tokens.push(body["access_token"].as_str().unwrap().to_owned());
    }
    server.kill_9();

    let server = db.start(&[]);
    for t in &tokens {
        let (_, claims) = json_of(
            post_form(
                &server.url("/oauth2/introspect"),
                &svc.0,
                &svc.1,
                &[("token", t)],
            )
            .await,
        )
        .await;
        assert_eq!(
            claims["active"], true,
            "token issued before kill -9 must survive"
        );
    }
    // Revoke, then SIGKILL the instant the 200 arrives.
    let r = post_form(
        &server.url("/oauth2/revoke"),
        &svc.0,
        &svc.1,
        &[("token", &tokens[0])],
    )
    .await;
    assert_eq!(r.status(), 200);
    server.kill_9();

    let server = db.start(&[]);
    let (_, claims) = json_of(
        post_form(
            &server.url("/oauth2/introspect"),
            &svc.0,
            &svc.1,
            &[("token", &tokens[0])],
        )
        .await,
    )
    .await;
    assert_eq!(
        claims,
        serde_json::json!({"active": false}),
        "revocation answered 200 before kill -9 must survive"
    );
    let (_, claims) = json_of(
        post_form(
            &server.url("/oauth2/introspect"),
            &svc.0,
            &svc.1,
            &[("token", &tokens[1])],
        )
        .await,
    )
    .await;
    assert_eq!(claims["active"], true);
}

#[tokio::test(flavor = "multi_thread")]
async fn rotation_survives_kill_9_and_grace_replay_still_works() {
    let db = TempDb::new();
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
    db.cli_stdin(&["user", "create", "bob"], "pw\n");
    let grant = db.json(&["token", "issue", "--client", "app", "--user", "bob"]);
    let rt = grant["refresh_token"].as_str().unwrap();
    let server = db.start(&[]);
    let r = post_form(
        &server.url("/oauth2/token"),
        &app.0,
        &app.1,
        &[("grant_type", "refresh_token"), ("refresh_token", rt)],
    )
    .await;
    assert_eq!(r.status(), 200);
    let first = r.text().await.unwrap();
    server.kill_9();

    let server = db.start(&[]);
    let r = post_form(
        &server.url("/oauth2/token"),
        &app.0,
        &app.1,
        &[("grant_type", "refresh_token"), ("refresh_token", rt)],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.text().await.unwrap(),
        first,
        "the lost response is replayed after restart"
    );
}
