//! Issue 4, scenario 11: `tokenwarden-client` and the client-side CLI commands end to end against
//! the real `tokenwarden serve` on 127.0.0.1 — client credentials, refresh with rotation,
//! introspection, revocation and logout.

use std::io::Write as _;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use serde_json::Value;
use tokenwarden_client::{
    ClientCredentials, ClientSecret, Clock as _, Error, FileStore, IssuerUrl, OAuthClient,
    ReqwestClient, SystemClock, TokenManager, TokenResponse, TokenSet, TokenStore as _,
    TokenTypeHint,
};

use crate::harness::*;

fn http() -> Arc<ReqwestClient> {
    Arc::new(ReqwestClient::from_client(
        reqwest::Client::builder().no_proxy().build().unwrap(),
    ))
}

async fn oauth_client(server: &ServerProcess, (id, secret): &(String, String)) -> OAuthClient {
    let issuer = IssuerUrl::parse(&server.base).unwrap();
    OAuthClient::discover(
        http(),
        &issuer,
        ClientCredentials::basic(id.clone(), ClientSecret::new(secret.clone())),
    )
    .await
    .unwrap()
}

fn user_tokens(issued: &Value) -> TokenSet {
    let response: TokenResponse = serde_json::from_value(issued.clone()).unwrap();
    TokenSet::from_response(
        response,
        SystemClock.now(),
        std::time::Duration::from_secs(3600),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn client_library_full_lifecycle_against_the_real_server() {
    let db = TempDb::new();
    let svc = db.client("svc", &["--scope", "read write"]);
    let rs = db.client("rs", &["--introspect"]);
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
    let first_grant = db.json(&["token", "issue", "--client", "app", "--user", "alice"]);
    let second_grant = db.json(&["token", "issue", "--client", "app", "--user", "alice"]);
    let server = db.start(&["--refresh-grace", "0"]);
    let resource_server = oauth_client(&server, &rs).await;

    // Client credentials through a manager, endpoints discovered (RFC 8414).
    let cc = TokenManager::builder(oauth_client(&server, &svc).await)
        .client_credentials(Some("read"))
        .build();
    let cc_token = cc.access_token().await.unwrap();
    assert_eq!(
        cc.access_token().await.unwrap(),
        cc_token,
        "reused, not re-requested"
    );
    let info = resource_server
        .introspect(cc_token.secret(), Some(TokenTypeHint::AccessToken))
        .await
        .unwrap();
    assert!(info.active);
    assert_eq!(info.client_id.as_deref(), Some("svc"));
    assert_eq!(info.scope.as_deref(), Some("read"));
    cc.client()
        .revoke(cc_token.secret(), Some(TokenTypeHint::AccessToken))
        .await
        .unwrap();
    assert!(
        !resource_server
            .introspect(cc_token.secret(), None)
            .await
            .unwrap()
            .active
    );

    // User tokens in a file store: refresh with rotation, persisted before use.
    let store_path = db.dir.join("client-tokens.json");
    let store = Arc::new(FileStore::new(&store_path));
    let manager = TokenManager::builder(oauth_client(&server, &app).await)
        .store(store.clone())
        .build();
    let initial = user_tokens(&first_grant);
    let old_refresh = initial.refresh_token.clone().unwrap();
    manager.set_tokens(initial.clone()).await.unwrap();
    assert_eq!(manager.access_token().await.unwrap(), initial.access_token);
    let renewed = manager.refresh_now().await.unwrap();
    assert_ne!(renewed, initial.access_token);
    let stored = store.load().await.unwrap().unwrap();
    assert_eq!(stored.access_token, renewed);
    let new_refresh = stored.refresh_token.clone().unwrap();
    assert_ne!(
        new_refresh, old_refresh,
        "the server rotates; the client adopted it"
    );
    assert!(new_refresh.secret().starts_with("twr_"));
    let info = resource_server
        .introspect(renewed.secret(), None)
        .await
        .unwrap();
    assert!(info.active);
    assert_eq!(info.username.as_deref(), Some("alice"));
    assert_eq!(info.client_id.as_deref(), Some("app"));

    // Someone replays the old refresh token: strict rotation revokes the grant; the manager's
    // next refresh gets invalid_grant → store wiped, ReconnectRequired, no network afterwards.
    let e = manager
        .client()
        .exchange_refresh_token(&old_refresh, None)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(&tokenwarden_client::ErrorCode::InvalidGrant));
    assert!(matches!(
        manager.refresh_now().await,
        Err(Error::ReconnectRequired)
    ));
    assert!(store.load().await.unwrap().is_none());
    assert!(!store_path.exists());
    assert!(matches!(
        manager.access_token().await,
        Err(Error::ReconnectRequired)
    ));

    // Signed in again (a second grant): logout revokes refresh then access token, clears the file.
    let second = user_tokens(&second_grant);
    manager.set_tokens(second.clone()).await.unwrap();
    let access = manager.access_token().await.unwrap();
    assert!(
        resource_server
            .introspect(access.secret(), None)
            .await
            .unwrap()
            .active
    );
    manager.logout().await.unwrap();
    assert!(!store_path.exists());
    for token in [
        second.access_token.secret(),
        second.refresh_token.as_ref().unwrap().secret(),
    ] {
        assert!(
            !resource_server
                .introspect(token, None)
                .await
                .unwrap()
                .active
        );
    }
    assert!(matches!(
        manager.access_token().await,
        Err(Error::ReconnectRequired)
    ));
}

/// Runs `tokenwarden` with `stdin` and extra environment (no database involved).
fn tw(args: &[&str], stdin: &str, env: &[(&str, &str)]) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .env_remove("TOKENWARDEN_CLIENT_SECRET")
        // Loopback traffic must not go through a proxy the environment may name.
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn ok_json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn client_side_cli_commands_against_the_real_server() {
    let db = TempDb::new();
    let (_, svc_secret) = db.client("svc", &["--scope", "read write"]);
    let (_, rs_secret) = db.client("rs", &["--introspect"]);
    let (_, app_secret) = db.client(
        "app",
        &[
            "--grant-type",
            "authorization_code",
            "--grant-type",
            "refresh_token",
        ],
    );
    db.cli_stdin(&["user", "create", "alice"], "pw\n");
    let grant = db.json(&["token", "issue", "--client", "app", "--user", "alice"]);
    let server = db.start(&[]);
    let issuer = server.base.clone();
    let introspect_endpoint = server.url("/oauth2/introspect");
    let rs_env = [("TOKENWARDEN_CLIENT_SECRET", rs_secret.as_str())];

    // token client-credentials: secret on stdin, endpoint discovered.
    let cc = ok_json(&tw(
        &[
            "token",
            "client-credentials",
            "--issuer",
            &issuer,
            "--client-id",
            "svc",
            "--client-secret-stdin",
            "--scope",
            "read",
        ],
        &format!("{svc_secret}\n"),
        &[],
    ));
    let cc_token = cc["access_token"].as_str().unwrap().to_owned();
    assert_eq!(cc["token_type"], "Bearer");
    assert_eq!(cc["scope"], "read");

    // introspect: secret from the environment, explicit endpoint.
    let info = ok_json(&tw(
        &[
            "introspect",
            "--endpoint",
            &introspect_endpoint,
            "--client-id",
            "rs",
            "--hint",
            "access_token",
            &cc_token,
        ],
        "",
        &rs_env,
    ));
    assert_eq!(info["active"], true);
    assert_eq!(info["client_id"], "svc");

    // token refresh: client_secret_post, secret and refresh token both on stdin.
    let old_refresh = grant["refresh_token"].as_str().unwrap();
    let refreshed = ok_json(&tw(
        &[
            "token",
            "refresh",
            "--issuer",
            &issuer,
            "--client-id",
            "app",
            "--auth",
            "post",
            "--client-secret-stdin",
            "-",
        ],
        &format!("{app_secret}\n{old_refresh}\n"),
        &[],
    ));
    let new_refresh = refreshed["refresh_token"].as_str().unwrap().to_owned();
    let new_access = refreshed["access_token"].as_str().unwrap().to_owned();
    assert_ne!(new_refresh, old_refresh);

    // revoke: exit 0 on 200; the refresh token's grant is gone, its access token too.
    let out = tw(
        &[
            "revoke",
            "--issuer",
            &issuer,
            "--client-id",
            "app",
            "--hint",
            "refresh_token",
            &new_refresh,
        ],
        "",
        &[("TOKENWARDEN_CLIENT_SECRET", app_secret.as_str())],
    );
    assert_eq!(ok_json(&out), serde_json::json!({"status": 200}));
    for token in [&new_refresh, &new_access] {
        let info = ok_json(&tw(
            &[
                "introspect",
                "--issuer",
                &issuer,
                "--client-id",
                "rs",
                token,
            ],
            "",
            &rs_env,
        ));
        assert_eq!(info["active"], false, "{token} still active");
    }

    // Failures: non-zero exit, one line on stderr, no secret echoed.
    let out = tw(
        &[
            "revoke",
            "--issuer",
            &issuer,
            "--client-id",
            "app",
            &cc_token,
        ],
        "",
        &[("TOKENWARDEN_CLIENT_SECRET", "wrong")],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("401") && stderr.contains("invalid_client"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    let out = tw(
        &[
            "introspect",
            "--issuer",
            &issuer,
            "--client-id",
            "rs",
            &cc_token,
        ],
        "",
        &[],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("TOKENWARDEN_CLIENT_SECRET"));
    let out = tw(
        &[
            "revoke",
            "--endpoint",
            "http://example.com/revoke",
            "--client-id",
            "rs",
            "x",
        ],
        "",
        &rs_env,
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("https"));
}
