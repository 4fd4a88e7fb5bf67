//! The revocation feed on database files: events are durable and survive reopening, numbers stay
//! gapless under concurrent revocations from many tasks, from a shared group-commit batch and
//! from a second store on the same file (another process's writer), a reader following the feed
//! page by page never misses one, and migration 0003 applies to a database that already has data.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use tokenwarden_core::crypto::TokenDigest;
use tokenwarden_core::feed::{FeedPage, RevocationEvent, RevocationKind};
use tokenwarden_core::model::AccessTokenRecord;
use tokenwarden_core::store::{AdminStore as _, GrantFilter, PurgePolicy, Store as _, StoreError};
use tokenwarden_sqlite::SqliteStore;

use crate::support::*;

type Revocation<'a> = Pin<Box<dyn Future<Output = Result<(), StoreError>> + 'a>>;

async fn all_events(store: &SqliteStore) -> FeedPage {
    store.revocation_events(0, u32::MAX).await.unwrap()
}

fn seqs(events: &[RevocationEvent]) -> Vec<u64> {
    events.iter().map(|e| e.seq).collect()
}

/// `n` grant-less access tokens of client `c1`, named `{prefix}{i}`.
fn cc_tokens(prefix: &str, n: usize) -> Vec<AccessTokenRecord> {
    (0..n)
        .map(|i| access(&format!("{prefix}{i}"), None, "c1", 1_000, 90_000))
        .collect()
}

#[tokio::test]
async fn feed_events_survive_drop_and_reopen_and_numbering_continues() {
    let db = TempDb::new("feed-reopen");
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
        store
            .insert_access_token(&access("twa_cc", None, "c1", 1_000, 4_600))
            .await
            .unwrap();
        store.revoke_access_token(&d("twa_1"), 1_100).await.unwrap();
        assert!(store.revoke_grant("g1", 1_200).await.unwrap());
        assert_eq!(store.delete_client("c1", 1_300).await.unwrap(), Some(0));
        // Dropped without close(): every `Ok` above was already durable.
    }

    let store = db.open().await;
    let page = all_events(&store).await;
    assert_eq!((page.head, page.floor), (3, 0));
    assert_eq!(
        page.events,
        vec![
            RevocationEvent {
                seq: 1,
                at: 1_100,
                kind: RevocationKind::Token,
                client_id: "c1".into(),
                token: Some(d("twa_1")),
                grant_id: Some("g1".into()),
                subject: None,
            },
            RevocationEvent {
                seq: 2,
                at: 1_200,
                kind: RevocationKind::Grant,
                client_id: "c1".into(),
                token: None,
                grant_id: Some("g1".into()),
                subject: Some("alice".into()),
            },
            RevocationEvent {
                seq: 3,
                at: 1_300,
                kind: RevocationKind::Client,
                client_id: "c1".into(),
                token: None,
                grant_id: None,
                subject: None,
            },
        ]
    );

    // The counter lives in the file: the next event follows the head, not a fresh count.
    store
        .insert_access_token(&access("twa_next", None, "c2", 1_400, 4_600))
        .await
        .unwrap();
    store
        .revoke_access_token(&d("twa_next"), 1_400)
        .await
        .unwrap();
    let page = store.revocation_events(3, 10).await.unwrap();
    assert_eq!(seqs(&page.events), [4]);
    assert_eq!(page.head, 4);
    store.close().await;
}

/// Many tasks on a multi-threaded runtime revoke tokens (each one twice) and grants while a
/// reader follows the feed page by page: the numbers are exactly 1..=N, one event per newly
/// revoked token or grant, and the follower, which only ever asks for what comes after the last
/// event it saw, ends up with the very same list — no event ever shows up behind one already
/// read.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_revocations_from_many_tasks_number_events_without_gaps() {
    const TOKENS: usize = 120;
    const GRANTS: usize = 20;
    let db = TempDb::new("feed-concurrent");
    let store = db.open().await;
    let tokens = cc_tokens("twa_c", TOKENS);
    for t in &tokens {
        store.insert_access_token(t).await.unwrap();
    }
    for i in 0..GRANTS {
        let g = grant(&format!("g{i}"), "c1", "alice", 1_000);
        store
            .create_grant(
                &g,
                &access(&format!("twa_g{i}"), Some(&g), "c1", 1_000, 90_000),
                None,
            )
            .await
            .unwrap();
    }

    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let follower = {
        let store = store.clone();
        let done = Arc::clone(&done);
        tokio::spawn(async move {
            let mut seen: Vec<RevocationEvent> = Vec::new();
            loop {
                let finished = done.load(std::sync::atomic::Ordering::Acquire);
                let cursor = seen.last().map_or(0, |e| e.seq);
                let page = store.revocation_events(cursor, 7).await.unwrap();
                // One snapshot: the head covers every event returned, and the page continues
                // exactly where the cursor left off.
                assert!(page.events.iter().all(|e| e.seq <= page.head), "{page:?}");
                for (i, e) in page.events.iter().enumerate() {
                    assert_eq!(e.seq, cursor + 1 + i as u64, "gap after cursor {cursor}");
                }
                let caught_up = page.events.is_empty() && cursor == page.head;
                seen.extend(page.events);
                if finished && caught_up {
                    return seen;
                }
                tokio::task::yield_now().await;
            }
        })
    };

    let mut tasks = Vec::new();
    for (i, t) in tokens.iter().chain(tokens.iter()).enumerate() {
        let store = store.clone();
        let digest = t.digest;
        tasks.push(tokio::spawn(async move {
            store
                .revoke_access_token(&digest, 2_000 + i as i64)
                .await
                .unwrap();
        }));
    }
    for i in 0..GRANTS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            // Twice as well: only the first revokes (and announces) it.
            let first = store.revoke_grant(&format!("g{i}"), 3_000).await.unwrap();
            let second = store.revoke_grant(&format!("g{i}"), 3_001).await.unwrap();
            assert!(first && !second);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::Release);
    let followed = follower.await.unwrap();

    let page = all_events(&store).await;
    let n = (TOKENS + GRANTS) as u64;
    assert_eq!(page.head, n);
    assert_eq!(seqs(&page.events), (1..=n).collect::<Vec<_>>());
    let revoked_tokens: HashSet<TokenDigest> = page.events.iter().filter_map(|e| e.token).collect();
    assert_eq!(revoked_tokens.len(), TOKENS, "one event per token");
    assert_eq!(
        revoked_tokens,
        tokens.iter().map(|t| t.digest).collect::<HashSet<_>>()
    );
    let revoked_grants: HashSet<&str> = page
        .events
        .iter()
        .filter(|e| e.kind == RevocationKind::Grant)
        .filter_map(|e| e.grant_id.as_deref())
        .collect();
    assert_eq!(revoked_grants.len(), GRANTS, "one event per grant");
    assert_eq!(followed, page.events);
    store.close().await;
}

/// Revocations queued while another connection holds the write lock all run in one group-commit
/// transaction, each in its own savepoint: each one sees the head the one before it raised.
#[tokio::test]
async fn revocations_sharing_one_transaction_are_numbered_in_order() {
    let db = TempDb::new("feed-batch");
    let store = db.open().await;
    let tokens = cc_tokens("twa_b", 16);
    for t in &tokens {
        store.insert_access_token(t).await.unwrap();
    }
    let before = store.write_stats();
    let lock = rusqlite::Connection::open(&db.path).unwrap();
    lock.execute_batch("BEGIN IMMEDIATE").unwrap();
    let mut revocations: Vec<Revocation<'_>> = tokens
        .iter()
        .map(|t| Box::pin(store.revoke_access_token(&t.digest, 2_000)) as Pin<Box<_>>)
        .collect();
    // Poll each once, in order: each hands its operation to the writer thread, which cannot
    // answer while the lock is held.
    std::future::poll_fn(|cx| {
        for r in revocations.iter_mut() {
            assert!(r.as_mut().poll(cx).is_pending(), "answered under the lock");
        }
        Poll::Ready(())
    })
    .await;
    lock.execute_batch("COMMIT").unwrap();
    for r in revocations {
        r.await.unwrap();
    }
    let after = store.write_stats();
    assert_eq!(after.operations - before.operations, 16);
    assert!(
        after.transactions - before.transactions < 16,
        "the revocations were not batched: {before:?} → {after:?}"
    );
    let page = all_events(&store).await;
    assert_eq!(seqs(&page.events), (1..=16).collect::<Vec<_>>());
    // Queued in order, so run, and numbered, in order.
    let order: Vec<TokenDigest> = page.events.iter().filter_map(|e| e.token).collect();
    assert_eq!(order, tokens.iter().map(|t| t.digest).collect::<Vec<_>>());
    store.close().await;
}

/// Two stores on one file — the server and the admin CLI, each with its own writer — revoke at
/// once: SQLite's write lock serializes them, and the counter row keeps the numbers gapless.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_stores_on_one_file_share_one_gapless_sequence() {
    let db = TempDb::new("feed-two-writers");
    let a = db.open().await;
    let b = db.open().await;
    let tokens = cc_tokens("twa_2w", 40);
    for t in &tokens {
        a.insert_access_token(t).await.unwrap();
    }
    let mut tasks = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        // Each token from both stores: one of them revokes it, the other finds it revoked.
        for store in [a.clone(), b.clone()] {
            let digest = t.digest;
            tasks.push(tokio::spawn(async move {
                store
                    .revoke_access_token(&digest, 2_000 + i as i64)
                    .await
                    .unwrap();
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    for store in [&a, &b] {
        let page = all_events(store).await;
        assert_eq!(page.head, 40);
        assert_eq!(seqs(&page.events), (1..=40).collect::<Vec<_>>());
        let distinct: HashSet<TokenDigest> = page.events.iter().filter_map(|e| e.token).collect();
        assert_eq!(distinct.len(), 40);
    }
    a.close().await;
    b.close().await;
}

/// Purge deletes old events in batches smaller than the work, raises the floor to the last one
/// deleted, and leaves the counter row's head alone (checked under the store, in the file).
#[tokio::test]
async fn purge_deletes_old_events_in_batches_and_raises_the_floor() {
    let db = TempDb::new("feed-purge");
    let store = db.open().await;
    let tokens = cc_tokens("twa_p", 10);
    for (i, t) in tokens.iter().enumerate() {
        store.insert_access_token(t).await.unwrap();
        store
            .revoke_access_token(&t.digest, 1_000 + i as i64)
            .await
            .unwrap();
    }
    let policy = PurgePolicy {
        revoked_retention: 1_000_000,
        batch_size: 3,
        event_retention: 100,
    };
    // Events at 1_000..=1_006 are at or before the cutoff (1_006).
    let now = 1_106;
    assert_eq!(
        store
            .purge(now, policy, true)
            .await
            .unwrap()
            .revocation_events,
        7
    );
    assert_eq!(all_events(&store).await.events.len(), 10);
    assert_eq!(
        store
            .purge(now, policy, false)
            .await
            .unwrap()
            .revocation_events,
        7
    );
    let page = all_events(&store).await;
    assert_eq!((page.head, page.floor), (10, 7));
    assert_eq!(seqs(&page.events), [8, 9, 10]);

    let mut conn = raw(&db.path).await;
    let (head, floor): (i64, i64) =
        sqlx::query_as("SELECT head, floor FROM revocation_feed WHERE id = 1")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!((head, floor), (10, 7));
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM revocation_events")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(left, 3);
    store.close().await;
}

/// A database at schema version 2 with data in it (as the previous release left it) gets the
/// feed on open: its rows stay, the feed starts empty at 0, and revoking a token issued before
/// the upgrade announces it as event 1.
#[tokio::test]
async fn migration_0003_applies_to_a_version_2_database_with_data() {
    let db = TempDb::new("feed-upgrade");
    let v2 = std::env::temp_dir().join(format!(
        "tokenwarden-sqlite-migrations-v2-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&v2);
    std::fs::create_dir_all(&v2).unwrap();
    for file in ["0001_initial.sql", "0002_authorization.sql"] {
        std::fs::copy(
            format!(
                "{}/../../migrations/sqlite/{file}",
                env!("CARGO_MANIFEST_DIR")
            ),
            v2.join(file),
        )
        .unwrap();
    }
    {
        use sqlx::Connection as _;
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&db.path)
            .create_if_missing(true);
        let mut conn = sqlx::SqliteConnection::connect_with(&options)
            .await
            .unwrap();
        sqlx::migrate::Migrator::new(v2.as_path())
            .await
            .unwrap()
            .run(&mut conn)
            .await
            .unwrap();
        for sql in [
            "INSERT INTO users (username, password_hash, created_at) VALUES ('alice', 'h', 1000)",
            "INSERT INTO grants (grant_id, client_id, username, scope, created_at) \
             VALUES ('g-old', 'c1', 'alice', 'read', 1000)",
            "INSERT INTO sessions (digest, username, created_at, expires_at) \
             VALUES (zeroblob(32), 'alice', 1000, 90000)",
        ] {
            sqlx::query(sql).execute(&mut conn).await.unwrap();
        }
        sqlx::query(
            "INSERT INTO access_tokens \
                 (digest, grant_id, client_id, username, scope, issued_at, expires_at) \
             VALUES (?1, 'g-old', 'c1', 'alice', 'read', 1000, 90000)",
        )
        .bind(d("twa_old").as_bytes().to_vec())
        .execute(&mut conn)
        .await
        .unwrap();
    }
    std::fs::remove_dir_all(&v2).unwrap();

    let store = db.open().await;
    assert_eq!(all_events(&store).await, FeedPage::default());
    assert!(store.find_user("alice").await.unwrap().is_some());
    assert_eq!(
        store
            .list_grants(&GrantFilter::default())
            .await
            .unwrap()
            .len(),
        1
    );
    store
        .revoke_access_token(&d("twa_old"), 2_000)
        .await
        .unwrap();
    assert!(store.revoke_grant("g-old", 2_001).await.unwrap());
    let page = all_events(&store).await;
    assert_eq!(page.head, 2);
    assert_eq!(
        page.events
            .first()
            .map(|e| (e.kind, e.token, e.grant_id.clone())),
        Some((
            RevocationKind::Token,
            Some(d("twa_old")),
            Some("g-old".to_owned())
        ))
    );
    assert_eq!(
        page.events
            .get(1)
            .and_then(|e| e.subject.clone())
            .as_deref(),
        Some("alice")
    );

    let mut conn = raw(&db.path).await;
    let versions: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert_eq!(versions, [1, 2, 3, 4]);
    store.close().await;
}
