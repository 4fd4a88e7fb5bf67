//! The authorization-code flow over HTTP against the binary: sign-in, consent, code, exchange,
//! account page — and every error branch (bad redirect URI, PKCE, code reuse, expiry, wrong
//! client, CSRF, Deny).

use serde_json::Value;

use crate::harness::*;
use crate::web::*;

const CALLBACK: &str = "https://app.example/callback";

struct Setup {
    db: TempDb,
    server: ServerProcess,
    app: (String, String),
}

fn setup(extra: &[&str]) -> Setup {
    let db = TempDb::new();
    let app = db.client(
        "webapp",
        &[
            "--grant-type",
            "authorization_code",
            "--grant-type",
            "refresh_token",
            "--redirect-uri",
            CALLBACK,
            "--redirect-uri",
            "https://app.example/other",
            "--scope",
            "profile read write",
        ],
    );
    let out = db.cli_stdin(&["user", "create", "alice"], "wonderland\n");
    assert!(out.status.success());
    let server = db.start(extra);
    Setup { db, server, app }
}

fn authorize_path(challenge: &str, state: &str) -> String {
    format!(
        "/oauth2/authorize?response_type=code&client_id=webapp&redirect_uri={}&scope=profile+read&state={state}&code_challenge={challenge}&code_challenge_method=S256",
        enc(CALLBACK)
    )
}

/// Walks sign-in and consent; returns the redirect Location to the client.
async fn approve(agent: &mut Agent, path: &str) -> String {
    let after_login = agent.sign_in(path, "alice", "wonderland").await;
    let consent = agent.get(&after_login).await;
    assert_eq!(consent.status, 200, "{}", consent.body);
    assert!(
        consent.body.contains("webapp"),
        "consent page names the client"
    );
    assert!(consent.body.contains("read your data"), "scopes in words");
    let csrf = hidden(&consent.body, "csrf_token");
    let request = unescape(&hidden(&consent.body, "request"));
    let done = agent
        .post(
            "/consent",
            &[
                ("csrf_token", &csrf),
                ("request", &request),
                ("decision", "approve"),
            ],
        )
        .await;
    assert_eq!(done.status, 303);
    done.location.unwrap()
}

async fn exchange(s: &Setup, code: &str, verifier: &str) -> (u16, Value) {
    json_of(
        post_form(
            &s.server.url("/oauth2/token"),
            &s.app.0,
            &s.app.1,
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", CALLBACK),
                ("code_verifier", verifier),
            ],
        )
        .await,
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn code_flow_issues_a_grant_that_the_account_page_revokes() {
    let s = setup(&[]);
    let mut agent = Agent::new(&s.server.base);
    let (verifier, challenge) = pkce_pair();
    let location = approve(&mut agent, &authorize_path(&challenge, "xyz")).await;
    assert!(location.starts_with(CALLBACK), "{location}");
    let params = query_params(&location);
    assert_eq!(params["state"], "xyz");
    assert_eq!(params["iss"], s.server.base);
    let code = &params["code"];
    assert!(code.starts_with("twc_"));

    let (status, tokens) = exchange(&s, code, &verifier).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["scope"], "profile read");
    let rt = tokens["refresh_token"].as_str().unwrap();
    let grants = s.db.json(&["grant", "list", "--user", "alice"]);
    assert_eq!(grants.as_array().unwrap().len(), 1);
    assert_eq!(grants[0]["client_id"], "webapp");

    // A second authorization skips consent (remembered per user, client, scopes).
    let again = agent.get(&authorize_path(&challenge, "second")).await;
    assert_eq!(again.status, 303);
    assert!(again.location.unwrap().starts_with(CALLBACK));

    // The account page lists the app; Revoke access ends every grant of it.
    let account = agent.get("/account").await;
    assert_eq!(account.status, 200);
    assert!(
        account.body.contains("data-client-id=\"webapp\""),
        "{}",
        account.body
    );
    assert_eq!(account.headers["x-frame-options"], "DENY");
    assert_eq!(account.headers["referrer-policy"], "no-referrer");
    assert!(account.headers["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("frame-ancestors 'none'"));
    let csrf = hidden(&account.body, "csrf_token");
    // Without the CSRF token nothing is revoked.
    let refused = agent.post("/account/apps/webapp/revoke", &[]).await;
    assert_eq!(refused.status, 403);
    assert_eq!(
        s.db.json(&["grant", "list", "--user", "alice"])[0]["state"],
        "active"
    );
    let revoked = agent
        .post("/account/apps/webapp/revoke", &[("csrf_token", &csrf)])
        .await;
    assert_eq!(revoked.status, 303);
    let account = agent.get(&revoked.location.unwrap()).await;
    assert!(account.body.contains("has been revoked"));
    assert!(account.body.contains("id=\"no-apps\""));
    assert!(s
        .db
        .json(&["grant", "list", "--user", "alice"])
        .as_array()
        .unwrap()
        .iter()
        .all(|g| g["state"] == "revoked"));
    let r = post_form(
        &s.server.url("/oauth2/token"),
        &s.app.0,
        &s.app.1,
        &[("grant_type", "refresh_token"), ("refresh_token", rt)],
    )
    .await;
    assert_eq!(json_of(r).await.1["error"], "invalid_grant");
    // Consent was forgotten: the next authorization asks again.
    let again = agent.get(&authorize_path(&challenge, "third")).await;
    assert_eq!(again.status, 200);
    assert!(again.body.contains("id=\"approve\""));
}

#[tokio::test(flavor = "multi_thread")]
async fn authorization_error_branches() {
    let s = setup(&[]);
    let mut agent = Agent::new(&s.server.base);
    let (verifier, challenge) = pkce_pair();

    // Unregistered redirect URI: an error page, never a redirect.
    let bad = agent
        .get(&format!(
            "/oauth2/authorize?response_type=code&client_id=webapp&redirect_uri={}&state=s",
            enc("https://evil.example/cb")
        ))
        .await;
    assert_eq!(bad.status, 400);
    assert!(bad.location.is_none());
    // Unknown client: error page.
    assert_eq!(
        agent
            .get("/oauth2/authorize?response_type=code&client_id=nope")
            .await
            .status,
        400
    );
    // Two registered URIs and none given: error page.
    assert_eq!(
        agent
            .get("/oauth2/authorize?response_type=code&client_id=webapp")
            .await
            .status,
        400
    );
    // plain PKCE: redirect with invalid_request and the state.
    let plain = agent
        .get(&format!("/oauth2/authorize?response_type=code&client_id=webapp&redirect_uri={}&state=s1&code_challenge={challenge}&code_challenge_method=plain", enc(CALLBACK)))
        .await;
    assert_eq!(plain.status, 302);
    let p = query_params(&plain.location.unwrap());
    assert_eq!(
        (p["error"].as_str(), p["state"].as_str()),
        ("invalid_request", "s1")
    );
    // Unsupported response type.
    let token = agent
        .get(&format!(
            "/oauth2/authorize?response_type=token&client_id=webapp&redirect_uri={}",
            enc(CALLBACK)
        ))
        .await;
    assert_eq!(
        query_params(&token.location.unwrap())["error"],
        "unsupported_response_type"
    );

    // Deny → access_denied with state.
    let after_login = agent
        .sign_in(
            &authorize_path(&challenge, "deny-me"),
            "alice",
            "wonderland",
        )
        .await;
    let consent = agent.get(&after_login).await;
    let csrf = hidden(&consent.body, "csrf_token");
    let request = unescape(&hidden(&consent.body, "request"));
    // CSRF token missing: refused, nothing issued.
    let no_csrf = agent
        .post(
            "/consent",
            &[("request", &request), ("decision", "approve")],
        )
        .await;
    assert_eq!(no_csrf.status, 403);
    let denied = agent
        .post(
            "/consent",
            &[
                ("csrf_token", &csrf),
                ("request", &request),
                ("decision", "deny"),
            ],
        )
        .await;
    let d = query_params(&denied.location.unwrap());
    assert_eq!(
        (d["error"].as_str(), d["state"].as_str()),
        ("access_denied", "deny-me")
    );

    // Approve, then: wrong verifier, wrong client, missing verifier → invalid_grant, code intact…
    let location = agent
        .post(
            "/consent",
            &[
                ("csrf_token", &csrf),
                ("request", &request),
                ("decision", "approve"),
            ],
        )
        .await
        .location
        .unwrap();
    let code = query_params(&location)["code"].clone();
    assert_eq!(
        exchange(&s, &code, &format!("{verifier}x")).await.1["error"],
        "invalid_grant"
    );
    let other = s.db.client(
        "other",
        &[
            "--grant-type",
            "authorization_code",
            "--redirect-uri",
            CALLBACK,
        ],
    );
    let (_, body) = json_of(
        post_form(
            &s.server.url("/oauth2/token"),
            &other.0,
            &other.1,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", CALLBACK),
                ("code_verifier", &verifier),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(body["error"], "invalid_grant");
    let (_, body) = json_of(
        post_form(
            &s.server.url("/oauth2/token"),
            &s.app.0,
            &s.app.1,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", CALLBACK),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(body["error"], "invalid_grant");
    // …then the right one works once; the second use fails and revokes what the first issued.
    let (status, tokens) = exchange(&s, &code, &verifier).await;
    assert_eq!(status, 200, "{tokens}");
    let (status, body) = exchange(&s, &code, &verifier).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let (_, claims) = json_of(
        post_form(
            &s.server.url("/oauth2/introspect"),
            &s.app.0,
            &s.app.1,
            &[("token", tokens["access_token"].as_str().unwrap())],
        )
        .await,
    )
    .await;
    assert_eq!(claims, serde_json::json!({"active": false}));

    // Wrong password: 401 page, no session.
    let mut stranger = Agent::new(&s.server.base);
    let login = stranger.get("/login").await;
    let csrf = hidden(&login.body, "csrf_token");
    let failed = stranger
        .post(
            "/login",
            &[
                ("username", "alice"),
                ("password", "nope"),
                ("csrf_token", &csrf),
                ("return_to", "/account"),
            ],
        )
        .await;
    assert_eq!(failed.status, 401);
    assert!(!stranger.cookies.contains_key("tw_session"));
    // Login without the CSRF cookie/field pair: refused.
    let mut bare = Agent::new(&s.server.base);
    assert_eq!(
        bare.post(
            "/login",
            &[("username", "alice"), ("password", "wonderland")]
        )
        .await
        .status,
        403
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn expired_code_is_invalid_grant() {
    // The real binary reads the wall clock, so this one test waits out a 1 s code lifetime;
    // the core tests pin the expiry edges with a manual clock.
    let s = setup(&["--auth-code-ttl", "1s"]);
    let mut agent = Agent::new(&s.server.base);
    let (verifier, challenge) = pkce_pair();
    let location = approve(&mut agent, &authorize_path(&challenge, "late")).await;
    let code = query_params(&location)["code"].clone();
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let (status, body) = exchange(&s, &code, &verifier).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn login_is_rate_limited_per_user() {
    let s = setup(&[]);
    let mut agent = Agent::new(&s.server.base);
    let login = agent.get("/login").await;
    let csrf = hidden(&login.body, "csrf_token");
    for _ in 0..5 {
        let r = agent
            .post(
                "/login",
                &[
                    ("username", "alice"),
                    ("password", "wrong"),
                    ("csrf_token", &csrf),
                ],
            )
            .await;
        assert_eq!(r.status, 401);
    }
    // Even the right password is refused while the limit holds.
    let r = agent
        .post(
            "/login",
            &[
                ("username", "alice"),
                ("password", "wonderland"),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    assert_eq!(r.status, 429);
    assert!(!agent.cookies.contains_key("tw_session"));
}
