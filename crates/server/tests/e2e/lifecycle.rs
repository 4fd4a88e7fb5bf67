//! Issue, refresh (rotation, grace, reuse), introspect, revoke — over HTTP against the binary.

use serde_json::Value;

use crate::harness::*;

async fn introspect(server: &ServerProcess, rs: &(String, String), token: &str) -> Value {
    let (status, body) = json_of(
        post_form(
            &server.url("/oauth2/introspect"),
            &rs.0,
            &rs.1,
            &[("token", token)],
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
    body
}

async fn refresh(server: &ServerProcess, app: &(String, String), rt: &str) -> (u16, String) {
    let r = post_form(
        &server.url("/oauth2/token"),
        &app.0,
        &app.1,
        &[("grant_type", "refresh_token"), ("refresh_token", rt)],
    )
    .await;
    (r.status().as_u16(), r.text().await.unwrap())
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
            "read write",
        ],
    );
    db.cli_stdin(&["user", "create", "alice"], "correct horse\n");
    let grant = db.json(&["token", "issue", "--client", "app", "--user", "alice"]);
    (app, grant)
}

#[tokio::test(flavor = "multi_thread")]
async fn client_credentials_token_is_stored_only_as_digest_and_revocation_ends_it() {
    let db = TempDb::new();
    let svc = db.client("svc", &["--scope", "read write"]);
    // No background purge: its writes could share the issuance's batch (and fsync it).
    let server = db.start(&["--purge-interval", "0"]);
    let r = post_form(
        &server.url("/oauth2/token"),
        &svc.0,
        &svc.1,
        &[("grant_type", "client_credentials"), ("scope", "read")],
    )
    .await;
    assert_eq!(r.headers()["cache-control"], "no-store");
    let (status, body) = json_of(r).await;
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("twa_") && token.len() >= 4 + 43);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["scope"], "read");
    assert!(body.get("refresh_token").is_none());
    // The issuance went into a commit of its own, without an fsync (the durability classes).
    let commits = |text: &str, fsync: &str| -> u64 {
        let key = format!("tokenwarden_sqlite_commits_total{{fsync=\"{fsync}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(key.as_str()))
            .unwrap_or_else(|| panic!("{key} missing: {text}"))
            .parse()
            .unwrap()
    };
    let after_issue = metrics_text(&server).await;
    assert_eq!(commits(&after_issue, "false"), 1, "{after_issue}");

    let claims = introspect(&server, &svc, &token).await;
    assert_eq!(claims["active"], true);
    assert_eq!(claims["client_id"], "svc");
    assert_eq!(claims["scope"], "read");
    assert_eq!(claims["iss"], server.base);
    for field in ["exp", "iat", "sub", "aud", "jti", "token_type"] {
        assert!(claims.get(field).is_some(), "{field} missing: {claims}");
    }

    // Neither the database nor its WAL holds the token or the client secret in clear.
    for file in std::fs::read_dir(&db.dir).unwrap() {
        let bytes = std::fs::read(file.unwrap().path()).unwrap();
        assert!(!bytes.windows(token.len()).any(|w| w == token.as_bytes()));
        assert!(!bytes.windows(svc.1.len()).any(|w| w == svc.1.as_bytes()));
    }

    // Another client may not revoke it: 400, nothing revoked.
    let other = db.client("other", &[]);
    let r = post_form(
        &server.url("/oauth2/revoke"),
        &other.0,
        &other.1,
        &[("token", &token)],
    )
    .await;
    assert_eq!(r.status(), 400);
    assert_eq!(json_of(r).await.1["error"], "invalid_request");
    assert_eq!(introspect(&server, &svc, &token).await["active"], true);

    // Revoke with a wrong hint: the hint orders the search, never limits it.
    let r = post_form(
        &server.url("/oauth2/revoke"),
        &svc.0,
        &svc.1,
        &[("token", &token), ("token_type_hint", "refresh_token")],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().is_empty());
    assert_eq!(
        introspect(&server, &svc, &token).await,
        serde_json::json!({"active": false})
    );
    // The revocation was fsynced.
    let after_revoke = metrics_text(&server).await;
    assert_eq!(commits(&after_revoke, "false"), 1, "{after_revoke}");
    assert!(
        commits(&after_revoke, "true") > commits(&after_issue, "true"),
        "{after_revoke}"
    );
    assert_eq!(
        db_scalar(
            &db.path(),
            "SELECT COUNT(*) FROM access_tokens WHERE revoked_at IS NOT NULL"
        )
        .await,
        1
    );

    // Unknown and already-revoked tokens: 200 as well.
    for t in ["twa_unknown", token.as_str()] {
        let r = post_form(
            &server.url("/oauth2/revoke"),
            &svc.0,
            &svc.1,
            &[("token", t)],
        )
        .await;
        assert_eq!(r.status(), 200);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_refreshes_with_one_token_produce_one_successor() {
    let db = TempDb::new();
    let (app, grant) = user_grant(&db);
    let server = db.start(&[]);
    let rt = grant["refresh_token"].as_str().unwrap().to_owned();
    let tasks: Vec<_> = (0..24)
        .map(|_| {
            let url = server.url("/oauth2/token");
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
    assert!(
        bodies.iter().all(|b| b == &bodies[0]),
        "all callers get the same response"
    );
    // Stored state: the grant holds exactly the original and one successor.
    assert_eq!(
        db_scalar(&db.path(), "SELECT COUNT(*) FROM refresh_tokens").await,
        2
    );
    assert_eq!(
        db_scalar(&db.path(), "SELECT COUNT(*) FROM access_tokens").await,
        2
    );

    // A retry within the grace window: byte-identical response.
    let (status, again) = refresh(&server, &app, &rt).await;
    assert_eq!(status, 200);
    assert_eq!(again, bodies[0]);

    // The successor works and rotates on.
    let successor: Value = serde_json::from_str(&bodies[0]).unwrap();
    let next = successor["refresh_token"].as_str().unwrap();
    assert!(next.starts_with("twr_") && next != rt);
    let (status, body) = refresh(&server, &app, next).await;
    assert_eq!(status, 200, "{body}");
    // Now the original is two generations back: re-presenting it is reuse, even within grace.
    let (status, body) = refresh(&server, &app, &rt).await;
    assert_eq!(status, 400);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["error"],
        "invalid_grant"
    );
    let grants = db.json(&["grant", "list", "--client", "app"]);
    assert_eq!(grants[0]["state"], "revoked");
}

#[tokio::test(flavor = "multi_thread")]
async fn replay_after_grace_revokes_the_grant() {
    let db = TempDb::new();
    let (app, grant) = user_grant(&db);
    let rs = db.client("api", &["--introspect"]);
    let server = db.start(&["--refresh-grace", "0"]);
    let rt = grant["refresh_token"].as_str().unwrap();
    let (status, body) = refresh(&server, &app, rt).await;
    assert_eq!(status, 200);
    let newest: Value = serde_json::from_str(&body).unwrap();
    let newest_access = newest["access_token"].as_str().unwrap();
    assert_eq!(
        introspect(&server, &rs, newest_access).await["active"],
        true
    );
    assert_eq!(
        introspect(&server, &rs, newest_access).await["username"],
        "alice"
    );

    let (status, body) = refresh(&server, &app, rt).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["error"],
        "invalid_grant"
    );
    assert_eq!(
        introspect(&server, &rs, newest_access).await,
        serde_json::json!({"active": false})
    );
    let (status, _) = refresh(&server, &app, newest["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 400);
    let metrics = metrics_text(&server).await;
    assert!(
        metrics.contains("tokenwarden_refresh_reuse_detections_total 1"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn revoking_refresh_token_revokes_its_access_tokens() {
    let db = TempDb::new();
    let (app, grant) = user_grant(&db);
    let server = db.start(&[]);
    let access = grant["access_token"].as_str().unwrap();
    let rt = grant["refresh_token"].as_str().unwrap();
    assert_eq!(introspect(&server, &app, access).await["active"], true);
    let r = post_form(
        &server.url("/oauth2/revoke"),
        &app.0,
        &app.1,
        &[("token", rt), ("token_type_hint", "refresh_token")],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(introspect(&server, &app, access).await["active"], false);
    assert_eq!(refresh(&server, &app, rt).await.0, 400);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_shuts_down_cleanly() {
    let db = TempDb::new();
    let mut server = db.start(&[]);
    let pid = server.child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = server.child.wait().unwrap();
    assert!(
        status.success(),
        "exit status {status:?}; stderr: {}",
        server.stderr_text()
    );
}
