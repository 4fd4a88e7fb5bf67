//! Group commit: concurrent writes share one transaction (one fsync), every one of them is
//! durable once answered, and an operation that fails inside a shared transaction is rolled back
//! alone.
//!
//! To make the batching deterministic, each test holds the database's write lock from a second
//! connection while it queues its writes: the writer thread blocks in `BEGIN IMMEDIATE` (inside
//! `busy_timeout`) with at most the first few operations in hand, so everything queued after them
//! has to go into the next transaction together.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use tokenwarden_core::model::AccessTokenRecord;
use tokenwarden_core::store::{AdminStore as _, GrantFilter, Rotation, Store as _, StoreError};
use tokenwarden_sqlite::SqliteStore;

use crate::support::*;

type Write<'a> = Pin<Box<dyn Future<Output = Result<(), StoreError>> + 'a>>;

/// Takes the write lock of the database at `db` on a connection of its own.
fn hold_write_lock(db: &TempDb) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(&db.path).unwrap();
    conn.execute_batch("BEGIN IMMEDIATE").unwrap();
    conn
}

/// Polls every write once: each hands its operation to the writer thread, which cannot answer
/// while the lock is held, so every one is pending and queued in order when this returns.
async fn queue_all(writes: &mut [Write<'_>]) {
    std::future::poll_fn(|cx| {
        for w in writes.iter_mut() {
            assert!(w.as_mut().poll(cx).is_pending(), "answered under the lock");
        }
        Poll::Ready(())
    })
    .await;
}

async fn finish_all(writes: Vec<Write<'_>>) -> Vec<Result<(), StoreError>> {
    let mut results = Vec::new();
    for w in writes {
        results.push(w.await);
    }
    results
}

#[tokio::test]
async fn concurrent_writes_are_committed_in_fewer_transactions_and_all_survive() {
    const N: usize = 64;
    let db = TempDb::new("group-commit");
    let tokens: Vec<_> = (0..N)
        .map(|i| access(&format!("twa_gc{i}"), None, "c1", 1_000, 9_000))
        .collect();
    {
        let store = db.open().await;
        let before = store.write_stats();
        let lock = hold_write_lock(&db);
        let mut writes: Vec<Write<'_>> = tokens
            .iter()
            .map(|t| Box::pin(store.insert_access_token(t)) as Write<'_>)
            .collect();
        queue_all(&mut writes).await;
        lock.execute_batch("COMMIT").unwrap();
        for (i, r) in finish_all(writes).await.into_iter().enumerate() {
            r.unwrap_or_else(|e| panic!("write {i}: {e:?}"));
        }

        let after = store.write_stats();
        assert_eq!(after.operations - before.operations, N as u64);
        let transactions = after.transactions - before.transactions;
        // At most the operations the writer held when it blocked, then everyone else at once.
        assert!(
            transactions <= 2,
            "{N} writes took {transactions} transactions"
        );
        // Dropped without close(): each answered write must already be on disk.
    }
    let store = db.open().await;
    for t in &tokens {
        let found = store.find_access_token(&t.digest).await.unwrap().unwrap();
        assert_eq!(&found.record, t);
    }
    store.close().await;
}

/// Queues `ok[0]`, `ok[1]`, `failing`, `ok[2]`, `ok[3]` behind the write lock, so that they share at
/// most two transactions (what the writer held when it blocked, then the rest) and `failing`
/// shares one with a successful write; then checks that `failing` alone got `Conflict`, every
/// other token is stored, and `taken` (the digest `failing` collides with) is untouched.
async fn fails_alone_in_its_batch(
    db: &TempDb,
    store: &SqliteStore,
    ok: &[AccessTokenRecord],
    taken: &AccessTokenRecord,
    failing: Write<'_>,
) {
    let before = store.write_stats();
    let lock = hold_write_lock(db);
    let mut writes: Vec<Write<'_>> = vec![
        Box::pin(store.insert_access_token(&ok[0])),
        Box::pin(store.insert_access_token(&ok[1])),
        failing,
        Box::pin(store.insert_access_token(&ok[2])),
        Box::pin(store.insert_access_token(&ok[3])),
    ];
    queue_all(&mut writes).await;
    lock.execute_batch("COMMIT").unwrap();
    let results = finish_all(writes).await;
    let transactions = store.write_stats().transactions - before.transactions;
    assert!(transactions <= 2, "{transactions} transactions");
    assert!(
        matches!(results[2], Err(StoreError::Conflict)),
        "{:?}",
        results[2]
    );
    for i in [0, 1, 3, 4] {
        assert!(results[i].is_ok(), "write {i}: {:?}", results[i]);
    }
    for t in ok {
        assert!(store.find_access_token(&t.digest).await.unwrap().is_some());
    }
    let still = store
        .find_access_token(&taken.digest)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(still.record, *taken, "the first token is untouched");
}

#[tokio::test]
async fn a_failing_write_is_rolled_back_alone_within_its_transaction() {
    let db = TempDb::new("group-savepoint");
    let store = db.open().await;
    let taken = access("twa_taken", None, "c1", 1_000, 9_000);
    store.insert_access_token(&taken).await.unwrap();

    // The grant's access token collides, after the grant row is already inserted: its savepoint
    // must take the grant back, and only the grant.
    let g = grant("g1", "c1", "alice", 1_000);
    let colliding = access("twa_taken", Some(&g), "c1", 1_000, 9_000);
    let g_refresh = refresh("twr_g1", &g, 1_000, 9_000);
    let ok: Vec<_> = (0..4)
        .map(|i| access(&format!("twa_ok{i}"), None, "c1", 1_000, 9_000))
        .collect();

    let failing = Box::pin(store.create_grant(&g, &colliding, Some(&g_refresh)));
    fails_alone_in_its_batch(&db, &store, &ok, &taken, failing).await;
    assert!(store
        .list_grants(&GrantFilter::default())
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .find_refresh_token(&g_refresh.digest)
        .await
        .unwrap()
        .is_none());
    store.close().await;
}

/// A batch runs without savepoints first; a write that fails makes the writer roll the whole
/// transaction back and run the batch again, each write in its own savepoint. The other writes of
/// that batch — a rotation (compare-and-set), a revocation (feed numbers, cache) — must then have
/// done exactly what they would have done alone: once, with their answers from the run that
/// committed.
#[tokio::test]
async fn a_batch_with_a_failed_write_is_run_again_and_the_others_take_effect_once() {
    let db = TempDb::new("group-rerun");
    let store = db.open().await;
    let g1 = grant("g1", "c1", "alice", 1_000);
    store
        .create_grant(
            &g1,
            &access("twa_0", Some(&g1), "c1", 1_000, 4_600),
            Some(&refresh("twr_0", &g1, 1_000, 90_000)),
        )
        .await
        .unwrap();
    let doomed = access("twa_doomed", None, "c1", 1_000, 9_000);
    let taken = access("twa_taken", None, "c1", 1_000, 9_000);
    for t in [&doomed, &taken] {
        store.insert_access_token(t).await.unwrap();
    }
    // Cached as active: the revocation below must empty the cache when its batch commits.
    assert!(
        !store
            .find_access_token(&doomed.digest)
            .await
            .unwrap()
            .unwrap()
            .revoked
    );
    let before = store.write_stats();

    // Inserts its grant, then collides on the access token: fails after having written.
    let g2 = grant("g2", "c1", "bob", 1_000);
    let colliding = access("twa_taken", Some(&g2), "c1", 1_000, 9_000);
    let g2_refresh = refresh("twr_g2", &g2, 1_000, 9_000);
    let next = successor(&g1, "1", 2_000);
    let first = access("twa_first", None, "c1", 1_000, 9_000);

    let lock = hold_write_lock(&db);
    let rotated = std::cell::Cell::new(None);
    let mut writes: Vec<Write<'_>> = vec![
        Box::pin(store.insert_access_token(&first)),
        Box::pin(async {
            let r = store
                .rotate_refresh_token(&d("twr_0"), &next, 2_000)
                .await?;
            rotated.set(Some(matches!(r, Rotation::Rotated)));
            Ok(())
        }),
        Box::pin(store.revoke_access_token(&doomed.digest, 2_000)),
        Box::pin(store.create_grant(&g2, &colliding, Some(&g2_refresh))),
        Box::pin(async { store.revoke_grant("g1", 2_500).await.map(|_| ()) }),
    ];
    queue_all(&mut writes).await;
    lock.execute_batch("COMMIT").unwrap();
    let results = finish_all(writes).await;

    assert!(
        matches!(results[3], Err(StoreError::Conflict)),
        "{:?}",
        results[3]
    );
    for i in [0, 1, 2, 4] {
        assert!(results[i].is_ok(), "write {i}: {:?}", results[i]);
    }
    let after = store.write_stats();
    assert_eq!(after.reruns - before.reruns, 1, "one batch ran again");
    assert_eq!(after.operations - before.operations, 5);

    // The rotation: won once, its successor stored once, the old token used by it.
    assert_eq!(rotated.get(), Some(true));
    let old = store
        .find_refresh_token(&d("twr_0"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(old.used_at, Some(2_000));
    assert_eq!(old.sealed_successor, Some(b"sealed-1".to_vec()));
    assert!(store
        .find_refresh_token(&d("twr_1"))
        .await
        .unwrap()
        .is_some());
    // ...and then the grant revoked behind it, in the same transaction.
    assert!(
        store
            .find_access_token(&d("twa_1"))
            .await
            .unwrap()
            .unwrap()
            .revoked
    );

    // The revocation: the token is revoked (not served from the cache), and the feed holds
    // exactly one event for it and one for the grant, numbered 1 and 2 without a gap.
    assert!(
        store
            .find_access_token(&doomed.digest)
            .await
            .unwrap()
            .unwrap()
            .revoked
    );
    let page = store.revocation_events(0, u32::MAX).await.unwrap();
    assert_eq!(page.head, 2);
    let seqs: Vec<u64> = page.events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [1, 2]);
    assert_eq!(page.events[0].token, Some(doomed.digest));
    assert_eq!(page.events[1].grant_id.as_deref(), Some("g1"));

    // The failed write left nothing; the issuance before it is stored.
    let grants = store.list_grants(&GrantFilter::default()).await.unwrap();
    assert_eq!(
        grants
            .iter()
            .map(|g| g.grant_id.as_str())
            .collect::<Vec<_>>(),
        ["g1"]
    );
    assert!(store
        .find_refresh_token(&g2_refresh.digest)
        .await
        .unwrap()
        .is_none());
    assert!(store
        .find_access_token(&first.digest)
        .await
        .unwrap()
        .is_some());
    let still = store
        .find_access_token(&taken.digest)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(still.record, taken);
    store.close().await;
}

#[tokio::test]
async fn writes_queued_before_close_are_committed_and_later_ones_refused() {
    let db = TempDb::new("group-close");
    let store = db.open().await;
    let tokens: Vec<_> = (0..8)
        .map(|i| access(&format!("twa_cl{i}"), None, "c1", 1_000, 9_000))
        .collect();
    let lock = hold_write_lock(&db);
    let mut writes: Vec<Write<'_>> = tokens
        .iter()
        .map(|t| Box::pin(store.insert_access_token(t)) as Write<'_>)
        .collect();
    queue_all(&mut writes).await;
    // The close request queues behind the writes: it cannot finish while they are blocked.
    let mut closing = Box::pin(store.close());
    std::future::poll_fn(|cx| {
        assert!(
            closing.as_mut().poll(cx).is_pending(),
            "closed under the lock"
        );
        Poll::Ready(())
    })
    .await;
    lock.execute_batch("COMMIT").unwrap();
    closing.await;
    for r in finish_all(writes).await {
        r.unwrap();
    }
    assert!(matches!(
        store
            .insert_access_token(&access("twa_late", None, "c1", 1_000, 9_000))
            .await,
        Err(StoreError::Unavailable(_))
    ));

    let store = db.open().await;
    for t in &tokens {
        assert!(store.find_access_token(&t.digest).await.unwrap().is_some());
    }
    store.close().await;
}

#[tokio::test]
async fn issuance_alone_commits_without_fsync_and_everything_else_with_it() {
    let db = TempDb::new("fsync-classes");
    let store = db.open().await;
    store.create_client(&client("c1")).await.unwrap();
    let fsynced = |s: &tokenwarden_sqlite::SqliteStore| {
        let w = s.write_stats();
        (w.transactions, w.fsynced)
    };

    // A client-credentials token alone: a transaction, no fsync.
    let (t0, f0) = fsynced(&store);
    store
        .insert_access_token(&access("twa_a", None, "c1", 1_000, 4_600))
        .await
        .unwrap();
    assert_eq!(fsynced(&store), (t0 + 1, f0));

    // Its revocation: fsynced.
    store.revoke_access_token(&d("twa_a"), 1_100).await.unwrap();
    assert_eq!(fsynced(&store), (t0 + 2, f0 + 1));

    // An issuance and a revocation in one batch: the batch is fsynced whole.
    store
        .insert_access_token(&access("twa_b", None, "c1", 1_000, 4_600))
        .await
        .unwrap();
    let lock = hold_write_lock(&db);
    let (t1, f1) = fsynced(&store);
    let (x, c) = (
        access("twa_x", None, "c1", 1_000, 4_600),
        access("twa_c", None, "c1", 1_000, 4_600),
    );
    let mut writes: Vec<Write<'_>> = vec![
        // Takes the writer into `BEGIN IMMEDIATE`, where it waits for the lock...
        Box::pin(store.insert_access_token(&x)),
        // ...while these two queue up behind it.
        Box::pin(store.insert_access_token(&c)),
        Box::pin(async {
            store
                .revoke_access_token(&d("twa_b"), 1_200)
                .await
                .map(|_| ())
        }),
    ];
    queue_all(&mut writes).await;
    drop(lock);
    for r in finish_all(writes).await {
        r.unwrap();
    }
    let (t2, f2) = fsynced(&store);
    // However the three were split into batches, the one holding the revocation was fsynced
    // (whole, issuance included) and at most the lone first issuance was not.
    assert_eq!(f2 - f1, 1, "the revocation's batch was fsynced");
    assert!(t2 - t1 - (f2 - f1) <= 1);
    assert!(
        store
            .find_access_token(&d("twa_b"))
            .await
            .unwrap()
            .unwrap()
            .revoked
    );

    // With --fsync-issuance every commit is fsynced.
    store.set_fsync_issuance(true);
    store
        .insert_access_token(&access("twa_d", None, "c1", 1_000, 4_600))
        .await
        .unwrap();
    let (t3, f3) = fsynced(&store);
    assert_eq!((t3 - t2, f3 - f2), (1, 1));
    store.close().await;
}

#[tokio::test]
async fn a_colliding_issuance_without_a_savepoint_fails_alone() {
    let db = TempDb::new("group-no-savepoint");
    let store = db.open().await;
    let taken = access("twa_taken", None, "c1", 1_000, 9_000);
    store.insert_access_token(&taken).await.unwrap();
    let colliding = access("twa_taken", None, "c2", 2_000, 8_000);
    let ok: Vec<_> = (0..4)
        .map(|i| access(&format!("twa_ok{i}"), None, "c1", 1_000, 9_000))
        .collect();
    let failing = Box::pin(store.insert_access_token(&colliding));
    fails_alone_in_its_batch(&db, &store, &ok, &taken, failing).await;
    store.close().await;
}
