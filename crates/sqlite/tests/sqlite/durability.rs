//! What a committed write leaves on disk: it is there after the store is dropped, closed, or the
//! process is killed with SIGKILL.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};

use tokenwarden_core::model::{AuthorizationCodeRecord, Consent, Session};
use tokenwarden_core::store::{
    AccountStore as _, AdminStore as _, GrantFilter, Redemption, Rotation, Store as _, StoreError,
};
use tokenwarden_sqlite::SqliteStore;

use crate::support::*;

#[tokio::test]
async fn data_survives_drop_and_reopen() {
    let db = TempDb::new("reopen");
    let g = grant("g1", "c1", "alice", 1_000);
    {
        let store = db.open().await;
        store.create_client(&client("c1")).await.unwrap();
        store.create_user(&user("alice")).await.unwrap();
        store
            .create_grant(
                &g,
                &access("twa_1", Some(&g), "c1", 1_000, 4_600),
                Some(&refresh("twr_1", &g, 1_000, 90_000)),
            )
            .await
            .unwrap();
        let rotated = store
            .rotate_refresh_token(&d("twr_1"), &successor(&g, "2", 1_100), 1_100)
            .await
            .unwrap();
        assert!(matches!(rotated, Rotation::Rotated));
        store.revoke_access_token(&d("twa_1"), 1_200).await.unwrap();
        // Dropped without close(): nothing is flushed on the way out.
    }

    let store = db.open().await;
    assert_eq!(store.find_client("c1").await.unwrap(), Some(client("c1")));
    assert_eq!(store.find_user("alice").await.unwrap(), Some(user("alice")));
    let grants = store.list_grants(&GrantFilter::default()).await.unwrap();
    assert_eq!(grants.len(), 1);
    assert_eq!(grants[0].last_refreshed_at, Some(1_100));
    let old = store
        .find_refresh_token(&d("twr_1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(old.used_at, Some(1_100));
    assert_eq!(old.sealed_successor.as_deref(), Some(&b"sealed-2"[..]));
    let new = store
        .find_refresh_token(&d("twr_2"))
        .await
        .unwrap()
        .unwrap();
    assert!(new.is_active(1_200));
    assert!(
        store
            .find_access_token(&d("twa_1"))
            .await
            .unwrap()
            .unwrap()
            .revoked
    );
    assert!(store
        .find_access_token(&d("twa_2"))
        .await
        .unwrap()
        .unwrap()
        .is_active(1_200));
    store.close().await;
}

#[tokio::test]
async fn close_leaves_one_self_contained_file() {
    let db = TempDb::new("close");
    let store = db.open().await;
    store.create_client(&client("c1")).await.unwrap();
    store.close().await;
    store.close().await; // idempotent
    assert!(matches!(
        store.find_client("c1").await,
        Err(StoreError::Unavailable(_))
    ));
    // The WAL was checkpointed into the database file: a copy of that file alone has the data.
    let wal = db.sidecar("-wal");
    assert!(
        !wal.exists() || std::fs::metadata(&wal).unwrap().len() == 0,
        "WAL not checkpointed on close"
    );
    let copy = TempDb::new("close-copy");
    std::fs::copy(&db.path, &copy.path).unwrap();
    let store = copy.open().await;
    assert_eq!(store.find_client("c1").await.unwrap(), Some(client("c1")));
    store.close().await;
}

/// What the child prints once its writes have returned `Ok`.
const COMMITTED: &str = "tokenwarden-sqlite-test: committed";

/// Set in the child process of `committed_writes_survive_kill_9`.
const CHILD_DB: &str = "TOKENWARDEN_SQLITE_TEST_CHILD_DB";

/// The child half of `committed_writes_survive_kill_9`: writes, reports, then waits to be killed.
/// Does nothing in a normal test run.
#[tokio::test]
async fn kill_9_child_writer() {
    let Ok(url) = std::env::var(CHILD_DB) else {
        return;
    };
    let store = SqliteStore::open(&url).await.unwrap();
    store.create_client(&client("c1")).await.unwrap();
    let g = grant("g1", "c1", "alice", 1_000);
    store
        .create_grant(
            &g,
            &access("twa_1", Some(&g), "c1", 1_000, 4_600),
            Some(&refresh("twr_1", &g, 1_000, 90_000)),
        )
        .await
        .unwrap();
    store.revoke_grant("g1", 1_100).await.unwrap();
    // The authorization-code flow's writes: the code, its redemption, the session, the consent.
    store
        .insert_authorization_code(&child_code())
        .await
        .unwrap();
    let g2 = grant("g2", "c1", "alice", 1_200);
    let redeemed = store
        .redeem_authorization_code(
            &child_code().digest,
            &g2,
            &access("twa_2", Some(&g2), "c1", 1_200, 4_800),
            Some(&refresh("twr_2", &g2, 1_200, 90_000)),
            1_200,
        )
        .await
        .unwrap();
    assert_eq!(redeemed, Redemption::Redeemed);
    store.create_session(&child_session()).await.unwrap();
    store.save_consent(&child_consent()).await.unwrap();
    // A client-credentials token, alone in its batch: committed without an fsync, which a
    // process crash must not lose either.
    store
        .insert_access_token(&access("twa_cc", None, "c1", 1_300, 4_900))
        .await
        .unwrap();
    assert_eq!(
        store.write_stats().transactions,
        store.write_stats().fsynced + 1,
        "the issuance batch alone went without an fsync"
    );
    // Every write above returned Ok: in the server this is where the 200 goes out.
    println!("\n{COMMITTED}");
    tokio::time::sleep(std::time::Duration::from_secs(120)).await;
}

#[tokio::test]
async fn committed_writes_survive_kill_9() {
    let db = TempDb::new("kill9");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "durability::kill_9_child_writer",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DB, db.url())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let committed = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        // libtest prints "test <name> ... " before the test body runs; look for the marker anywhere.
        .any(|line| line.contains(COMMITTED));
    // SIGKILL: no destructor, no close, no checkpoint.
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(committed, "child did not report its writes");

    let store = db.open().await;
    assert_eq!(store.find_client("c1").await.unwrap(), Some(client("c1")));
    let grants = store.list_grants(&GrantFilter::default()).await.unwrap();
    assert_eq!(grants.len(), 2, "g1, and g2 from the code");
    assert_eq!(grants[0].revoked_at, Some(1_100));
    assert_eq!(grants[1].grant_id, "g2");
    let access = store.find_access_token(&d("twa_1")).await.unwrap().unwrap();
    assert!(access.revoked);
    let refresh = store
        .find_refresh_token(&d("twr_1"))
        .await
        .unwrap()
        .unwrap();
    assert!(refresh.revoked);
    let code = store
        .find_authorization_code(&child_code().digest)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(code.used_at, Some(1_200), "the redemption survived");
    assert_eq!(code.grant_id.as_deref(), Some("g2"));
    assert!(store
        .find_refresh_token(&d("twr_2"))
        .await
        .unwrap()
        .unwrap()
        .is_active(1_300));
    assert_eq!(
        store.find_session(&child_session().digest).await.unwrap(),
        Some(child_session())
    );
    assert_eq!(
        store.find_consent("alice", "c1").await.unwrap(),
        Some(child_consent())
    );
    let cc = store
        .find_access_token(&d("twa_cc"))
        .await
        .unwrap()
        .expect("the unfsynced issuance survived SIGKILL");
    assert!(!cc.revoked);
    store.close().await;
}

fn child_code() -> AuthorizationCodeRecord {
    AuthorizationCodeRecord {
        digest: d("twc_1"),
        client_id: "c1".into(),
        username: "alice".into(),
        redirect_uri: "https://c1.example/cb".into(),
        redirect_uri_given: true,
        scope: scope("read"),
        code_challenge: None,
        issued_at: 1_150,
        expires_at: 1_750,
    }
}

fn child_session() -> Session {
    Session {
        digest: d("tws_1"),
        username: "alice".into(),
        created_at: 1_150,
        expires_at: 30_000,
    }
}

fn child_consent() -> Consent {
    Consent {
        username: "alice".into(),
        client_id: "c1".into(),
        scope: scope("read"),
        granted_at: 1_150,
    }
}

#[tokio::test]
async fn open_accepts_every_url_form_and_creates_the_file() {
    let a = TempDb::new("url-a");
    let b = TempDb::new("url-b");
    assert!(!a.path.exists());
    for url in [
        format!("sqlite://{}", a.path.display()),
        format!("sqlite:{}", b.path.display()),
    ] {
        let store = SqliteStore::open(&url).await.unwrap();
        store.create_user(&user("alice")).await.unwrap();
        store.ping().await.unwrap();
        store.close().await;
    }
    assert!(a.path.exists());
    assert!(b.path.exists());

    let memory = SqliteStore::open("sqlite::memory:").await.unwrap();
    memory.create_user(&user("alice")).await.unwrap();
    assert_eq!(
        memory.find_user("alice").await.unwrap(),
        Some(user("alice"))
    );
    // Two in-memory stores are two databases.
    let other = SqliteStore::open("sqlite::memory:").await.unwrap();
    assert_eq!(other.find_user("alice").await.unwrap(), None);
}

#[tokio::test]
async fn open_rejects_other_urls() {
    for url in ["postgres://localhost/tokenwarden", "tokenwarden.db", ""] {
        assert!(
            matches!(
                SqliteStore::open(url).await,
                Err(StoreError::Unavailable(_))
            ),
            "{url}"
        );
    }
    let missing_dir = std::env::temp_dir().join("tokenwarden-no-such-dir/x/y.db");
    assert!(matches!(
        SqliteStore::open(&format!("sqlite://{}", missing_dir.display())).await,
        Err(StoreError::Unavailable(_))
    ));
}
