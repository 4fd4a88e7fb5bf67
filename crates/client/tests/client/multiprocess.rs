//! Scenario 9: eight processes share one expired file store; one refresh POST in all.
//!
//! The children are this test binary again, running the ignored `file_store_worker` test with the
//! store and endpoint in its environment: real processes, no extra binary to build.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use tokenwarden_client::{
    ClientCredentials, ClientSecret, Clock as _, EndpointUrl, Endpoints, FileStore, OAuthClient,
    ReqwestClient, SystemClock, TokenManager, TokenStore,
};

use crate::mock::*;
use crate::store::TempDir;

const WORKERS: usize = 8;

#[test]
fn s9_eight_processes_sharing_one_expired_file_store_refresh_once() {
    let mock = MockServer::start();
    mock.seed(&at0(), &rt0());
    // Hold each refresh answer a while so the processes really overlap.
    mock.set_token_delay(Duration::from_millis(300));
    let dir = TempDir::new();
    let path = dir.0.join("tokens.json");
    let now = SystemClock.now();
    let expired = token_set(
        &at0(),
        Some(&rt0()),
        now - Duration::from_secs(7200),
        now - Duration::from_secs(3600),
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime
        .block_on(FileStore::new(&path).save(&expired))
        .unwrap();

    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..WORKERS)
        .map(|_| {
            Command::new(&exe)
                .args([
                    "--ignored",
                    "--exact",
                    "multiprocess::file_store_worker",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env("TW_WORKER_STORE", &path)
                .env("TW_WORKER_TOKEN_ENDPOINT", mock.url("/token"))
                .env("TOKENWARDEN_CLIENT_SECRET", CLIENT_SECRET)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut tokens = Vec::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "worker failed: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let token = stdout
            .lines()
            .find_map(|l| l.split("WORKER_TOKEN=").nth(1))
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no token in worker output: {stdout}"))
            .to_owned();
        tokens.push(token);
    }
    assert_eq!(tokens.len(), WORKERS);
    assert!(tokens.iter().all(|t| *t == at_n(1)), "{tokens:?}");
    assert_eq!(mock.token_posts(), 1, "exactly one refresh POST");
    let stored = runtime
        .block_on(FileStore::new(&path).load())
        .unwrap()
        .unwrap();
    assert_eq!(stored.access_token.secret(), at_n(1));
    assert_eq!(stored.refresh_token.unwrap().secret(), rt_n(1));
}

/// The child process of scenario 9 (does nothing unless started by it).
#[test]
#[ignore = "run as a child process by s9_eight_processes_sharing_one_expired_file_store_refresh_once"]
fn file_store_worker() {
    let Ok(path) = std::env::var("TW_WORKER_STORE") else {
        return;
    };
    let endpoint = std::env::var("TW_WORKER_TOKEN_ENDPOINT").unwrap();
    let secret = std::env::var("TOKENWARDEN_CLIENT_SECRET").unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = OAuthClient::new(
            Arc::new(ReqwestClient::from_client(test_reqwest())),
            ClientCredentials::basic(CLIENT_ID, ClientSecret::new(secret)),
            Endpoints {
                token: Some(EndpointUrl::parse(&endpoint).unwrap()),
                ..Endpoints::default()
            },
        );
        let manager = TokenManager::builder(client)
            .store(Arc::new(FileStore::new(path)))
            .build();
        let token = manager.access_token().await.unwrap();
        println!("WORKER_TOKEN={}", token.secret());
    });
}
