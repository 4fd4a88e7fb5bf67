//! The revocation feed across nodes: sequence numbers handed out by the counter row are gapless
//! and in commit order however many nodes revoke at once, a reader polling meanwhile never sees
//! a hole, the feed row taken last keeps revocation and rotation deadlock-free, a failed
//! revocation takes its numbers back, and purge from several nodes counts each event once.

use std::sync::Arc;
use std::time::Duration;

use tokenwarden_core::feed::{FeedPage, RevocationEvent, RevocationKind};
use tokenwarden_core::store::{
    AdminStore as _, GrantFilter, PurgePolicy, Rotation, Store as _, StoreError,
};
use tokenwarden_postgres::{PoolSettings, PostgresStore};
use tokio::sync::Barrier;

use crate::support::*;

/// Two nodes, each with a pool big enough that every task has its own connection.
async fn two_nodes(schema: &TestSchema) -> (PostgresStore, PostgresStore) {
    let settings = PoolSettings {
        max_connections: 24,
        ..PoolSettings::default()
    };
    (
        schema.open_with(settings.clone()).await,
        schema.open_with(settings).await,
    )
}

/// Every event in the feed, read in pages of `page` from the start.
async fn all_events(store: &PostgresStore, page: u32) -> (Vec<RevocationEvent>, FeedPage) {
    let mut events = Vec::new();
    let mut cursor = 0;
    loop {
        let p = store.revocation_events(cursor, page).await.unwrap();
        let Some(last) = p.events.last() else {
            return (events, p);
        };
        cursor = last.seq;
        events.extend(p.events);
    }
}

/// The feed's invariant on one page read after `cursor`: the events are exactly `cursor + 1`,
/// `cursor + 2`, … (no hole, nothing out of order), none past `head`, and a page that is not
/// full ends at `head` — in a snapshot that shows event `n`, every event up to `head` is there.
fn check_page(page: &FeedPage, cursor: u64, limit: u32) {
    for (i, e) in page.events.iter().enumerate() {
        assert_eq!(
            e.seq,
            cursor + 1 + i as u64,
            "after {cursor}: {:?}",
            page.events.iter().map(|e| e.seq).collect::<Vec<_>>()
        );
    }
    let last = page.events.last().map_or(cursor, |e| e.seq);
    assert!(last <= page.head, "event {last} past head {}", page.head);
    if page.events.len() < limit as usize {
        assert_eq!(last, page.head, "a short page must end at the head");
    }
}

/// 40 revocations at once over two pools — grants revoked on one node, grant-less access tokens
/// on the other — while a reader on a third pool polls the feed in pages of 3: the events are
/// numbered 1..=40 without a gap, each revocation has exactly one, and no page the reader got
/// ever showed event n + 1 without event n.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL (scripts/test starts it)"]
async fn forty_concurrent_revocations_across_two_pools_are_numbered_without_gaps() {
    with_schema("feed_gapless", |schema| async move {
        let (a, b) = two_nodes(&schema).await;
        let reader_node = schema.open().await;
        for i in 0..20 {
            let g = grant(&format!("g{i:02}"), "c1", &format!("user{i}"), 1_000);
            a.create_grant(
                &g,
                &access(&format!("twa_g{i}"), Some(&g), "c1", 1_000, 9_000),
                Some(&refresh(&format!("twr_g{i}"), &g, 1_000, 90_000)),
            )
            .await
            .unwrap();
            a.insert_access_token(&access(&format!("twa_cc{i}"), None, "c2", 1_000, 9_000))
                .await
                .unwrap();
        }
        assert_eq!(
            a.revocation_events(0, 10).await.unwrap(),
            FeedPage::default()
        );

        // The reader: polls from its cursor until it has seen all 40, checking every page.
        let reader = tokio::spawn(async move {
            let mut cursor = 0u64;
            let mut polls = 0u64;
            while cursor < 40 {
                let page = reader_node.revocation_events(cursor, 3).await.unwrap();
                check_page(&page, cursor, 3);
                assert_eq!(page.floor, 0);
                if let Some(last) = page.events.last() {
                    cursor = last.seq;
                }
                polls += 1;
                assert!(polls < 200_000, "the reader never reached event 40");
                tokio::task::yield_now().await;
            }
            reader_node.close().await;
            polls
        });

        let barrier = Arc::new(Barrier::new(40));
        let tasks: Vec<_> = (0..40)
            .map(|i| {
                let barrier = Arc::clone(&barrier);
                let (a, b) = (a.clone(), b.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    if i % 2 == 0 {
                        assert!(a
                            .revoke_grant(&format!("g{:02}", i / 2), 2_000)
                            .await
                            .unwrap());
                    } else {
                        b.revoke_access_token(&d(&format!("twa_cc{}", i / 2)), 2_000)
                            .await
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let polls = reader.await.unwrap();
        println!("the reader polled {polls} times");

        for node in [&a, &b] {
            let (events, last) = all_events(node, 7).await;
            assert_eq!(
                events.iter().map(|e| e.seq).collect::<Vec<_>>(),
                (1..=40).collect::<Vec<u64>>()
            );
            assert_eq!((last.head, last.floor), (40, 0));
            let mut grants: Vec<&str> = events
                .iter()
                .filter(|e| e.kind == RevocationKind::Grant)
                .map(|e| e.grant_id.as_deref().unwrap())
                .collect();
            grants.sort_unstable();
            let expected: Vec<String> = (0..20).map(|i| format!("g{i:02}")).collect();
            assert_eq!(grants, expected);
            let mut tokens: Vec<_> = events
                .iter()
                .filter(|e| e.kind == RevocationKind::Token)
                .map(|e| e.token.unwrap())
                .collect();
            tokens.sort_unstable_by_key(|t| t.to_hex());
            let mut expected: Vec<_> = (0..20).map(|i| d(&format!("twa_cc{i}"))).collect();
            expected.sort_unstable_by_key(|t| t.to_hex());
            assert_eq!(tokens, expected);
            for e in &events {
                assert_eq!(e.at, 2_000);
                match e.kind {
                    RevocationKind::Grant => {
                        assert_eq!(e.client_id, "c1");
                        let n: u32 = e.grant_id.as_deref().unwrap()[1..].parse().unwrap();
                        assert_eq!(e.subject.as_deref(), Some(format!("user{n}").as_str()));
                        assert_eq!(e.token, None);
                    }
                    RevocationKind::Token => {
                        assert_eq!(e.client_id, "c2");
                        assert_eq!((e.grant_id.as_deref(), e.subject.as_deref()), (None, None));
                    }
                    RevocationKind::Client => panic!("no client was deleted: {e:?}"),
                }
            }
        }
        let mut raw = schema.raw().await;
        assert_eq!(
            count(&mut raw, "SELECT head FROM revocation_feed").await,
            40
        );
        // Revoking again announces nothing.
        assert!(!a.revoke_grant("g00", 3_000).await.unwrap());
        b.revoke_access_token(&d("twa_cc0"), 3_000).await.unwrap();
        b.revoke_access_token(&d("twa_g1"), 3_000).await.unwrap();
        b.revoke_access_token(&d("twa_unknown"), 3_000)
            .await
            .unwrap();
        assert_eq!(a.revocation_events(40, 10).await.unwrap().head, 40);
        a.close().await;
        b.close().await;
    })
    .await;
}

/// Per round, on one grant: a rotation, the grant's revocation and its access token's
/// revocation, on two nodes at once, plus the revocation by filter of the user's other grant
/// while its client is deleted. Nothing fails (no deadlock: every transaction takes the feed row
/// last), and the events agree with some serial order: one `Grant` event for the grant, a
/// `Token` event only if the token's revocation came first (and then numbered before it), one
/// `Client` event, after any `Grant` event of that client. The whole feed stays gapless.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL (scripts/test starts it)"]
async fn revocations_racing_rotation_and_client_deletion_stay_deadlock_free() {
    with_schema("feed_races", |schema| async move {
        let (a, b) = two_nodes(&schema).await;
        let (mut token_first, mut filter_first) = (0, 0);
        for k in 0..25 {
            let g = grant(&format!("g{k}"), "c1", &format!("u{k}"), 1_000);
            a.create_grant(
                &g,
                &access(&format!("twa_{k}"), Some(&g), "c1", 1_000, 9_000),
                Some(&refresh(&format!("twr_{k}"), &g, 1_000, 90_000)),
            )
            .await
            .unwrap();
            let doomed = format!("d{k}");
            a.create_client(&client(&doomed)).await.unwrap();
            let h = grant(&format!("h{k}"), &doomed, &format!("u{k}"), 1_000);
            a.create_grant(
                &h,
                &access(&format!("twa_h{k}"), Some(&h), &doomed, 1_000, 9_000),
                Some(&refresh(&format!("twr_h{k}"), &h, 1_000, 90_000)),
            )
            .await
            .unwrap();
            let head_before = a.revocation_events(0, 0).await.unwrap().head;

            let barrier = Arc::new(Barrier::new(5));
            let spawn = |store: &PostgresStore, job: u8| {
                let (store, barrier, g) = (store.clone(), Arc::clone(&barrier), g.clone());
                let doomed = doomed.clone();
                tokio::spawn(async move {
                    barrier.wait().await;
                    match job {
                        0 => {
                            let input = successor(&g, &format!("{k}_next"), 2_000);
                            match store
                                .rotate_refresh_token(&d(&format!("twr_{k}")), &input, 2_000)
                                .await?
                            {
                                Rotation::Rotated => {}
                                Rotation::NotRotated(s) => assert!(s.revoked, "{s:?}"),
                                Rotation::Unknown => panic!("the token exists"),
                            }
                        }
                        1 => assert!(store.revoke_grant(&g.grant_id, 2_000).await?),
                        2 => {
                            store
                                .revoke_access_token(&d(&format!("twa_{k}")), 2_000)
                                .await?
                        }
                        3 => {
                            let filter = GrantFilter {
                                username: Some(format!("u{k}")),
                                client_id: Some(doomed),
                            };
                            let n = store.revoke_grants(&filter, 2_000).await?;
                            assert!(n <= 1, "{n}");
                        }
                        _ => {
                            let n = store.delete_client(&doomed, 2_000).await?;
                            assert!(matches!(n, Some(0 | 1)), "{n:?}");
                        }
                    }
                    Ok::<(), StoreError>(())
                })
            };
            let jobs = [
                spawn(&a, 0),
                spawn(&b, 1),
                spawn(&a, 2),
                spawn(&b, 3),
                spawn(&a, 4),
            ];
            for (i, job) in jobs.into_iter().enumerate() {
                job.await
                    .unwrap()
                    .unwrap_or_else(|e| panic!("round {k}, job {i}: {e}"));
            }

            let page = b.revocation_events(head_before, 100).await.unwrap();
            check_page(&page, head_before, 100);
            let of = |kind: RevocationKind, grant_id: Option<&str>, client_id: &str| {
                page.events
                    .iter()
                    .filter(|e| {
                        e.kind == kind
                            && e.grant_id.as_deref() == grant_id
                            && e.client_id == client_id
                    })
                    .map(|e| e.seq)
                    .collect::<Vec<_>>()
            };
            let grant_events = of(RevocationKind::Grant, Some(&g.grant_id), "c1");
            assert_eq!(grant_events.len(), 1, "round {k}: {page:?}");
            let token_events = of(RevocationKind::Token, Some(&g.grant_id), "c1");
            if let [t] = token_events.as_slice() {
                assert!(*t < grant_events[0], "round {k}: {page:?}");
                token_first += 1;
            } else {
                assert!(token_events.is_empty(), "round {k}: {page:?}");
            }
            let client_events = of(RevocationKind::Client, None, &doomed);
            assert_eq!(client_events.len(), 1, "round {k}: {page:?}");
            let filter_events = of(RevocationKind::Grant, Some(&h.grant_id), &doomed);
            if let [f] = filter_events.as_slice() {
                assert!(*f < client_events[0], "round {k}: {page:?}");
                filter_first += 1;
            } else {
                assert!(filter_events.is_empty(), "round {k}: {page:?}");
            }
            assert_eq!(
                page.events.len(),
                2 + token_events.len() + filter_events.len(),
                "round {k}: {page:?}"
            );
            // Every token of both grants is stamped, the rotation's successor included.
            let mut raw = schema.raw().await;
            for table in ["access_tokens", "refresh_tokens"] {
                let unstamped: i64 = sqlx::query_scalar(&format!(
                    "SELECT count(*) FROM {table} \
                     WHERE grant_id IN ($1, $2) AND revoked_at IS NULL"
                ))
                .bind(&g.grant_id)
                .bind(&h.grant_id)
                .fetch_one(&mut raw)
                .await
                .unwrap();
                assert_eq!(unstamped, 0, "round {k}: {table}");
            }
        }
        let (events, last) = all_events(&a, 50).await;
        assert_eq!(
            events.iter().map(|e| e.seq).collect::<Vec<_>>(),
            (1..=last.head).collect::<Vec<u64>>()
        );
        println!(
            "of 25 rounds, the token's revocation came first in {token_first}, the filter's \
             in {filter_first}"
        );
        a.close().await;
        b.close().await;
    })
    .await;
}

/// What one node revokes, another node reads, field for field: a token of a grant, a grant-less
/// token, a grant, a deleted client; a page starts after its cursor and holds at most `limit`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL (scripts/test starts it)"]
async fn events_written_through_one_node_are_read_through_the_other() {
    with_schema("feed_nodes", |schema| async move {
        let (a, b) = two_nodes(&schema).await;
        a.create_client(&client("c1")).await.unwrap();
        let g = grant("g1", "c1", "alice", 1_000);
        a.create_grant(
            &g,
            &access("twa_1", Some(&g), "c1", 1_000, 9_000),
            Some(&refresh("twr_1", &g, 1_000, 90_000)),
        )
        .await
        .unwrap();
        let g2 = grant("g2", "c1", "bob", 1_000);
        a.create_grant(&g2, &access("twa_2", Some(&g2), "c1", 1_000, 9_000), None)
            .await
            .unwrap();
        a.insert_access_token(&access("twa_cc", None, "c1", 1_000, 9_000))
            .await
            .unwrap();

        a.revoke_access_token(&d("twa_1"), 1_100).await.unwrap();
        a.revoke_access_token(&d("twa_cc"), 1_101).await.unwrap();
        assert!(a.revoke_grant("g1", 1_102).await.unwrap());
        // The client's one live grant (g2) is revoked with it, announced by the client event.
        assert_eq!(a.delete_client("c1", 1_103).await.unwrap(), Some(1));

        let page = b.revocation_events(0, 100).await.unwrap();
        let expected = vec![
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
                at: 1_101,
                kind: RevocationKind::Token,
                client_id: "c1".into(),
                token: Some(d("twa_cc")),
                grant_id: None,
                subject: None,
            },
            RevocationEvent {
                seq: 3,
                at: 1_102,
                kind: RevocationKind::Grant,
                client_id: "c1".into(),
                token: None,
                grant_id: Some("g1".into()),
                subject: Some("alice".into()),
            },
            RevocationEvent {
                seq: 4,
                at: 1_103,
                kind: RevocationKind::Client,
                client_id: "c1".into(),
                token: None,
                grant_id: None,
                subject: None,
            },
        ];
        assert_eq!(
            page,
            FeedPage {
                events: expected.clone(),
                head: 4,
                floor: 0
            }
        );
        let page = b.revocation_events(1, 2).await.unwrap();
        assert_eq!(page.events, expected[1..3]);
        assert_eq!((page.head, page.floor), (4, 0));
        let page = b.revocation_events(4, 2).await.unwrap();
        assert!(page.events.is_empty());
        assert_eq!(page.head, 4);
        // A cursor past the head (or past what a BIGINT holds) reads nothing, and fails nothing.
        for cursor in [5, u64::MAX] {
            let page = b.revocation_events(cursor, 10).await.unwrap();
            assert!(page.events.is_empty(), "{cursor}");
            assert_eq!(page.head, 4);
        }
        assert!(b.revocation_events(0, 0).await.unwrap().events.is_empty());
        // Deleting a client that is gone announces nothing.
        assert_eq!(b.delete_client("c1", 1_200).await.unwrap(), None);
        assert_eq!(a.revocation_events(0, 0).await.unwrap().head, 4);
        a.close().await;
        b.close().await;
    })
    .await;
}

/// A revocation that fails at its last step — here, its wait for the feed row, held by another
/// session, outlasts the statement timeout — rolls back whole: the grant stays active, the head
/// stays put, and the next revocations take the numbers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL (scripts/test starts it)"]
async fn a_revocation_that_fails_at_the_feed_rolls_back_without_a_gap() {
    with_schema("feed_rollback", |schema| async move {
        let store = schema
            .open_with(PoolSettings {
                statement_timeout: Duration::from_millis(500),
                ..PoolSettings::default()
            })
            .await;
        let g = grant("g1", "c1", "alice", 1_000);
        store
            .create_grant(
                &g,
                &access("twa_1", Some(&g), "c1", 1_000, 9_000),
                Some(&refresh("twr_1", &g, 1_000, 90_000)),
            )
            .await
            .unwrap();
        store
            .insert_access_token(&access("twa_cc", None, "c1", 1_000, 9_000))
            .await
            .unwrap();

        let mut holder = schema.raw().await;
        sqlx::raw_sql("BEGIN; SELECT head FROM revocation_feed WHERE id = 1 FOR UPDATE;")
            .execute(&mut holder)
            .await
            .unwrap();
        let err = store.revoke_grant("g1", 2_000).await.unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
        let err = store
            .revoke_access_token(&d("twa_cc"), 2_000)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
        sqlx::raw_sql("COMMIT").execute(&mut holder).await.unwrap();

        // Nothing of either stayed.
        assert!(
            !store
                .find_access_token(&d("twa_1"))
                .await
                .unwrap()
                .unwrap()
                .revoked
        );
        assert!(
            !store
                .find_access_token(&d("twa_cc"))
                .await
                .unwrap()
                .unwrap()
                .revoked
        );
        assert_eq!(
            store.list_grants(&GrantFilter::default()).await.unwrap()[0].revoked_at,
            None
        );
        assert_eq!(
            store.revocation_events(0, 10).await.unwrap(),
            FeedPage::default()
        );

        store
            .revoke_access_token(&d("twa_cc"), 2_001)
            .await
            .unwrap();
        assert!(store.revoke_grant("g1", 2_002).await.unwrap());
        let page = store.revocation_events(0, 10).await.unwrap();
        assert_eq!(
            page.events
                .iter()
                .map(|e| (e.seq, e.kind, e.at))
                .collect::<Vec<_>>(),
            [
                (1, RevocationKind::Token, 2_001),
                (2, RevocationKind::Grant, 2_002)
            ]
        );
        assert_eq!(page.head, 2);
        store.close().await;
    })
    .await;
}

/// Three nodes purge a feed of 500 events at once, in batches of 7: each event is deleted and
/// counted once, the floor is the newest event old enough (even when a later event carries an
/// earlier time, everything numbered up to it goes), a reader sees the floor and only the events
/// after it, and a dry run first counts the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL (scripts/test starts it)"]
async fn purge_from_three_nodes_deletes_each_event_once_and_raises_the_floor() {
    with_schema("feed_purge", |schema| async move {
        let nodes: Vec<PostgresStore> = vec![
            schema.open().await,
            schema.open().await,
            schema.open().await,
        ];
        let mut raw = schema.raw().await;
        // Events 1..=500 at 10_000 + seq, except event 400 stamped 5_000 (a node whose clock
        // lagged): with the cutoff at 10_300, everything through 400 goes.
        sqlx::raw_sql(
            "INSERT INTO revocation_events (seq, at, kind, client_id, grant_id, subject) \
             SELECT i, CASE WHEN i = 400 THEN 5000 ELSE 10000 + i END, 'grant', 'c1', \
                    'g' || i, 'alice' \
             FROM generate_series(1, 500) i; \
             UPDATE revocation_feed SET head = 500;",
        )
        .execute(&mut raw)
        .await
        .unwrap();
        let now = 20_000;
        let policy = PurgePolicy {
            batch_size: 7,
            event_retention: now - 10_300,
            ..PurgePolicy::default()
        };
        let dry = nodes[0].purge(now, policy, true).await.unwrap();
        assert_eq!(dry.revocation_events, 400);
        assert_eq!(nodes[0].revocation_events(0, 1).await.unwrap().floor, 0);

        let runs =
            futures_util::future::join_all(nodes.iter().map(|n| n.purge(now, policy, false))).await;
        let counts: Vec<u64> = runs
            .into_iter()
            .map(|r| r.unwrap().revocation_events)
            .collect();
        assert_eq!(counts.iter().sum::<u64>(), 400, "per node: {counts:?}");
        println!("events purged per node: {counts:?}");

        let page = nodes[1].revocation_events(0, 3).await.unwrap();
        assert_eq!((page.head, page.floor), (500, 400));
        assert_eq!(
            page.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
            [401, 402, 403]
        );
        assert_eq!(
            count(&mut raw, "SELECT count(*) FROM revocation_events").await,
            100
        );
        // Nothing more is old enough; the floor never goes down.
        let again = nodes[2].purge(now, policy, false).await.unwrap();
        assert_eq!(again.revocation_events, 0);
        let earlier = PurgePolicy {
            event_retention: now - 10_100,
            ..policy
        };
        assert_eq!(
            nodes[2]
                .purge(now, earlier, true)
                .await
                .unwrap()
                .revocation_events,
            0
        );
        nodes[2].purge(now, earlier, false).await.unwrap();
        assert_eq!(nodes[0].revocation_events(0, 0).await.unwrap().floor, 400);
        for n in &nodes {
            n.close().await;
        }
    })
    .await;
}
