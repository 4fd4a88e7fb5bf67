//! Scenario 10: a full run at TRACE level never logs a token or a secret.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokenwarden_client::{Error, TokenTypeHint};

use crate::mock::*;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs in a child process of its own: a global TRACE subscriber in a process where no other test
/// runs (tracing's per-thread subscribers can miss events while other threads register callsites).
#[test]
fn s10_a_full_run_at_trace_level_logs_no_token_and_no_secret() {
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args([
            "--ignored",
            "--exact",
            "logging::full_run_at_trace_level",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("TW_LOG_CHILD", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "child failed:\n{stdout}\n{stderr}");
    let logs = stdout
        .split("=== LOGS ===")
        .nth(1)
        .unwrap_or_else(|| panic!("no logs in the child's output: {stdout}"));
    for expected in [
        "tokens renewed",
        "backing off",
        "invalid_grant",
        "logged out",
        "revocation failed",
        "401",
        "TRACE",
    ] {
        assert!(
            logs.contains(expected),
            "expected `{expected}` in the logs:\n{logs}"
        );
    }
    assert!(logs.lines().count() > 30, "{logs}");
    // Every mock token and the client secret carry MARK.
    assert!(
        !logs.contains(MARK),
        "a secret leaked into the logs:\n{logs}"
    );
    assert!(
        !stderr.contains(MARK),
        "a secret leaked into stderr:\n{stderr}"
    );
}

#[test]
#[ignore = "run as a child process by s10_a_full_run_at_trace_level_logs_no_token_and_no_secret"]
fn full_run_at_trace_level() {
    if std::env::var("TW_LOG_CHILD").is_err() {
        return;
    }
    let capture = Capture::default();
    let writer = capture.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::FULL)
        .with_writer(move || writer.clone())
        .init();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    let secrets = runtime.block_on(full_run());
    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(secrets.len() > 8);
    for secret in &secrets {
        assert!(
            !logs.contains(secret.as_str()),
            "`{secret}` leaked into the logs"
        );
    }
    println!("=== LOGS ===\n{logs}");
}

async fn full_run() -> Vec<String> {
    // Client credentials: fetch, introspect, revoke.
    let s = Setup::with_tokens(None);
    let cc = s.manager_with(|b| b.client_credentials(Some("read")));
    let token = cc.access_token().await.unwrap();
    let client = cc.client();
    assert!(
        client
            .introspect(token.secret(), None)
            .await
            .unwrap()
            .active
    );
    client
        .revoke(token.secret(), Some(TokenTypeHint::AccessToken))
        .await
        .unwrap();

    // User tokens: early refresh with rotation, a 401 and its replay, a transient failure.
    let s = Setup::new();
    let api = s.api();
    s.advance_to(at(9, 56, 0, 0)).await;
    assert_eq!(
        api.get(s.mock.url("/api")).send().await.unwrap().status(),
        200
    );
    s.mock.invalidate_access(&at_n(1));
    assert_eq!(
        api.get(s.mock.url("/api")).send().await.unwrap().status(),
        200
    );
    s.advance_to(at(11, 0, 0, 0)).await;
    s.mock
        .script_token(503, Some(3), r#"{"error":"temporarily_unavailable"}"#);
    assert_eq!(
        api.get(s.mock.url("/api")).send().await.unwrap().status(),
        200
    );
    // invalid_grant, reconnect, then logout with a failing revocation endpoint.
    s.advance_to(at(12, 30, 0, 0)).await;
    s.mock.set_current_refresh("gone");
    assert!(matches!(
        s.manager.access_token().await,
        Err(Error::ReconnectRequired)
    ));
    s.mock.seed(&at_n(90), &rt_n(90));
    s.manager
        .set_tokens(token_set(
            &at_n(90),
            Some(&rt_n(90)),
            at(12, 30, 0, 0),
            at(12, 30, 0, 0) + Duration::from_secs(3600),
        ))
        .await
        .unwrap();
    s.mock.set_revoke_status(500);
    assert!(s.manager.logout().await.is_err());
    // Debug output of the manager and its errors, as an application might log them.
    tracing::debug!(manager = ?s.manager, "state");
    tracing::debug!(tokens = ?token_set(&at_n(90), Some(&rt_n(90)), at(9, 0, 0, 0), at(10, 0, 0, 0)), "tokens");

    let mut secrets = s.mock.issued();
    secrets.extend([CLIENT_SECRET.to_owned(), token.secret().to_owned()]);
    secrets
}
