//! The compare-and-sets across nodes: two `PostgresStore`s on one database, each with its own
//! connection pool — what two `tokenwarden serve` processes are to the database.

use std::sync::Arc;

use tokenwarden_core::store::{AdminStore as _, Redemption, Rotation, Store as _};
use tokenwarden_postgres::{PoolSettings, PostgresStore};
use tokio::sync::Barrier;

use crate::support::*;

/// Two nodes, each with a pool big enough that every task has its own connection.
async fn two_nodes(schema: &TestSchema) -> (PostgresStore, PostgresStore) {
    let settings = PoolSettings {
        max_connections: 20,
        ..PoolSettings::default()
    };
    (
        schema.open_with(settings.clone()).await,
        schema.open_with(settings).await,
    )
}

/// 40 concurrent rotations of one refresh token, spread over two pools, five times down a chain
/// (each round rotates the previous round's winner): every round exactly one `Rotated`, every
/// loser `NotRotated` with the winner's `used_at` and sealed response, and exactly the winner's
/// successors stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL (scripts/test starts it)"]
async fn forty_concurrent_rotations_across_two_pools_rotate_exactly_once() {
    with_schema("rotation_race", |schema| async move {
        let (a, b) = two_nodes(&schema).await;
        let g = grant("g1", "c1", "alice", 1_000);
        a.create_grant(
            &g,
            &access("twa_0", Some(&g), "c1", 1_000, 4_600),
            Some(&refresh("twr_0", &g, 1_000, 900_000)),
        )
        .await
        .unwrap();

        let mut current = "twr_0".to_owned();
        for round in 0..5i64 {
            let now = 2_000 + round;
            let barrier = Arc::new(Barrier::new(40));
            let tasks: Vec<_> = (0..40)
                .map(|i| {
                    let store = if i % 2 == 0 { a.clone() } else { b.clone() };
                    let barrier = Arc::clone(&barrier);
                    let input = successor(&g, &format!("r{round}n{i}"), now);
                    let old = d(&current);
                    tokio::spawn(async move {
                        barrier.wait().await;
                        store.rotate_refresh_token(&old, &input, now).await.unwrap()
                    })
                })
                .collect();
            let mut winners = Vec::new();
            let mut losers = Vec::new();
            for (i, t) in tasks.into_iter().enumerate() {
                match t.await.unwrap() {
                    Rotation::Rotated => winners.push(i),
                    Rotation::NotRotated(state) => losers.push(state),
                    Rotation::Unknown => panic!("round {round}: the token exists"),
                }
            }
            assert_eq!(winners.len(), 1, "round {round}: winners {winners:?}");
            let w = winners[0];
            let sealed = format!("sealed-r{round}n{w}").into_bytes();
            assert_eq!(losers.len(), 39);
            for s in &losers {
                // The state the loser read already shows the winner's commit: the grace window
                // can replay the winner's response on either node.
                assert_eq!(s.used_at, Some(now), "round {round}");
                assert!(!s.revoked, "round {round}");
                assert_eq!(s.sealed_successor.as_ref(), Some(&sealed), "round {round}");
            }
            for (store, node) in [(&a, "a"), (&b, "b")] {
                for i in 0..40 {
                    let r = store
                        .find_refresh_token(&d(&format!("twr_r{round}n{i}")))
                        .await
                        .unwrap();
                    assert_eq!(
                        r.is_some(),
                        i == w,
                        "node {node} round {round} successor {i}"
                    );
                    let t = store
                        .find_access_token(&d(&format!("twa_r{round}n{i}")))
                        .await
                        .unwrap();
                    assert_eq!(t.is_some(), i == w, "node {node} round {round} access {i}");
                }
            }
            current = format!("twr_r{round}n{w}");
        }

        let mut raw = schema.raw().await;
        // The first pair plus one successor pair per round; nothing else was written.
        assert_eq!(
            count(&mut raw, "SELECT count(*) FROM refresh_tokens").await,
            6
        );
        assert_eq!(
            count(&mut raw, "SELECT count(*) FROM access_tokens").await,
            6
        );
        assert_eq!(
            count(
                &mut raw,
                "SELECT count(*) FROM refresh_tokens WHERE used_at IS NULL"
            )
            .await,
            1
        );
        let grants = a.list_grants(&Default::default()).await.unwrap();
        assert_eq!(grants.len(), 1);
        assert_eq!(grants[0].last_refreshed_at, Some(2_004));
        a.close().await;
        b.close().await;
    })
    .await;
}

/// 40 concurrent redemptions of one authorization code over two pools, each with its own grant:
/// exactly one `Redeemed`, every other `AlreadyUsed` naming the winner's grant, and only the
/// winner's grant and tokens stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL (scripts/test starts it)"]
async fn forty_concurrent_redemptions_across_two_pools_redeem_exactly_once() {
    with_schema("redeem_race", |schema| async move {
        let (a, b) = two_nodes(&schema).await;
        a.insert_authorization_code(&code("twc_1", "c1", "alice", 1_000))
            .await
            .unwrap();
        let now = 1_010;
        let barrier = Arc::new(Barrier::new(40));
        let tasks: Vec<_> = (0..40)
            .map(|i| {
                let store = if i % 2 == 0 { a.clone() } else { b.clone() };
                let barrier = Arc::clone(&barrier);
                let g = grant(&format!("g{i}"), "c1", "alice", now);
                tokio::spawn(async move {
                    barrier.wait().await;
                    let at = access(&format!("twa_{i}"), Some(&g), "c1", now, now + 3_600);
                    let rt = refresh(&format!("twr_{i}"), &g, now, now + 86_400);
                    store
                        .redeem_authorization_code(&d("twc_1"), &g, &at, Some(&rt), now)
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut outcomes = Vec::new();
        for t in tasks {
            outcomes.push(t.await.unwrap());
        }
        let winners: Vec<usize> = outcomes
            .iter()
            .enumerate()
            .filter(|(_, o)| **o == Redemption::Redeemed)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(winners.len(), 1, "winners {winners:?}");
        let w = winners[0];
        for (i, o) in outcomes.iter().enumerate() {
            if i != w {
                assert_eq!(
                    *o,
                    Redemption::AlreadyUsed {
                        grant_id: Some(format!("g{w}"))
                    },
                    "caller {i}"
                );
            }
        }
        let grants = b.list_grants(&Default::default()).await.unwrap();
        assert_eq!(grants.len(), 1);
        assert_eq!(grants[0].grant_id, format!("g{w}"));
        let mut raw = schema.raw().await;
        assert_eq!(
            count(&mut raw, "SELECT count(*) FROM access_tokens").await,
            1
        );
        assert_eq!(
            count(&mut raw, "SELECT count(*) FROM refresh_tokens").await,
            1
        );
        let state = a
            .find_authorization_code(&d("twc_1"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(state.used_at, Some(now));
        assert_eq!(state.grant_id, Some(format!("g{w}")));
        a.close().await;
        b.close().await;
    })
    .await;
}

/// A rotation on one node racing the revocation of its grant on the other, 30 times: neither
/// fails (no deadlock, no serialization error), the revocation reports the grant as revoked, and
/// afterwards every token row of the grant — including the successor a rotation that won the
/// race committed — carries `revoked_at`, not just reads as revoked through its grant.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL (scripts/test starts it)"]
async fn rotation_racing_revocation_leaves_every_token_of_the_grant_stamped() {
    with_schema("rotate_vs_revoke", |schema| async move {
        let (a, b) = two_nodes(&schema).await;
        let mut raw = schema.raw().await;
        let mut rotated_first = 0;
        for k in 0..30 {
            let g = grant(&format!("g{k}"), "c1", "alice", 1_000);
            a.create_grant(
                &g,
                &access(&format!("twa_{k}"), Some(&g), "c1", 1_000, 9_000),
                Some(&refresh(&format!("twr_{k}"), &g, 1_000, 90_000)),
            )
            .await
            .unwrap();
            let barrier = Arc::new(Barrier::new(2));
            let rotate = {
                let (a, barrier, g) = (a.clone(), Arc::clone(&barrier), g.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    let input = successor(&g, &format!("{k}_next"), 2_000);
                    a.rotate_refresh_token(&d(&format!("twr_{k}")), &input, 2_000)
                        .await
                        .unwrap()
                })
            };
            let revoke = {
                let (b, barrier, id) = (b.clone(), Arc::clone(&barrier), g.grant_id.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    b.revoke_grant(&id, 2_000).await.unwrap()
                })
            };
            let (rotation, revoked) = (rotate.await.unwrap(), revoke.await.unwrap());
            assert!(revoked, "round {k}: the grant was active");
            match rotation {
                Rotation::Rotated => rotated_first += 1,
                Rotation::NotRotated(s) => assert!(s.revoked, "round {k}: {s:?}"),
                Rotation::Unknown => panic!("round {k}: the token exists"),
            }
            for table in ["access_tokens", "refresh_tokens"] {
                let unstamped: i64 = sqlx::query_scalar(&format!(
                    "SELECT count(*) FROM {table} WHERE grant_id = $1 AND revoked_at IS NULL"
                ))
                .bind(&g.grant_id)
                .fetch_one(&mut raw)
                .await
                .unwrap();
                assert_eq!(unstamped, 0, "round {k}: {table} of a revoked grant");
            }
            for t in [format!("twr_{k}"), format!("twr_{k}_next")] {
                if let Some(s) = b.find_refresh_token(&d(&t)).await.unwrap() {
                    assert!(s.revoked, "round {k}: {t}");
                }
            }
        }
        // Not asserted (scheduling decides), but shown with --nocapture: how often each side won.
        println!("rotation committed before the revocation in {rotated_first} of 30 rounds");
        a.close().await;
        b.close().await;
    })
    .await;
}

/// Deleting a client on one node while the other redeems the client's code, 30 times: either
/// the redemption came first and its grant is revoked with the client, or the deletion came
/// first and the code is gone (`Unknown`). Never a live grant of a deleted client.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL (scripts/test starts it)"]
async fn deleting_a_client_racing_its_code_redemption_leaves_no_live_grant() {
    with_schema("delete_vs_redeem", |schema| async move {
        let (a, b) = two_nodes(&schema).await;
        for k in 0..30 {
            let client_id = format!("c{k}");
            a.create_client(&client(&client_id)).await.unwrap();
            a.insert_authorization_code(&code(&format!("twc_{k}"), &client_id, "alice", 1_000))
                .await
                .unwrap();
            let g = grant(&format!("g{k}"), &client_id, "alice", 1_010);
            let barrier = Arc::new(Barrier::new(2));
            let redeem = {
                let (a, barrier, g) = (a.clone(), Arc::clone(&barrier), g.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    let at = access(&format!("twa_{k}"), Some(&g), &g.client_id, 1_010, 5_000);
                    a.redeem_authorization_code(&d(&format!("twc_{k}")), &g, &at, None, 1_010)
                        .await
                        .unwrap()
                })
            };
            let delete = {
                let (b, barrier, id) = (b.clone(), Arc::clone(&barrier), client_id.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    b.delete_client(&id, 1_010).await.unwrap()
                })
            };
            let (redemption, deleted) = (redeem.await.unwrap(), delete.await.unwrap());
            let grants = b
                .list_grants(&tokenwarden_core::store::GrantFilter {
                    username: None,
                    client_id: Some(client_id.clone()),
                })
                .await
                .unwrap();
            match redemption {
                Redemption::Redeemed => {
                    assert_eq!(deleted, Some(1), "round {k}: the new grant was revoked");
                    assert_eq!(grants.len(), 1);
                    assert_eq!(grants[0].revoked_at, Some(1_010), "round {k}");
                    let t = b
                        .find_access_token(&d(&format!("twa_{k}")))
                        .await
                        .unwrap()
                        .unwrap();
                    assert!(t.revoked, "round {k}");
                }
                Redemption::Unknown => {
                    assert_eq!(deleted, Some(0), "round {k}");
                    assert!(grants.is_empty(), "round {k}: {grants:?}");
                }
                other => panic!("round {k}: {other:?}"),
            }
        }
        a.close().await;
        b.close().await;
    })
    .await;
}

/// A revocation committed through one node is what the other node reads on its very next
/// statement: nothing is cached in a store.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL (scripts/test starts it)"]
async fn revocation_on_one_node_is_read_by_the_other_at_once() {
    with_schema("visibility", |schema| async move {
        let (a, b) = two_nodes(&schema).await;
        let g = grant("g1", "c1", "alice", 1_000);
        a.create_grant(
            &g,
            &access("twa_1", Some(&g), "c1", 1_000, 9_000),
            Some(&refresh("twr_1", &g, 1_000, 90_000)),
        )
        .await
        .unwrap();
        a.insert_access_token(&access("twa_cc", None, "c1", 1_000, 9_000))
            .await
            .unwrap();
        // Both nodes have read the tokens as active.
        for s in [&a, &b] {
            assert!(
                !s.find_access_token(&d("twa_1"))
                    .await
                    .unwrap()
                    .unwrap()
                    .revoked
            );
            assert!(
                !s.find_access_token(&d("twa_cc"))
                    .await
                    .unwrap()
                    .unwrap()
                    .revoked
            );
        }
        a.revoke_access_token(&d("twa_cc"), 1_100).await.unwrap();
        assert!(
            b.find_access_token(&d("twa_cc"))
                .await
                .unwrap()
                .unwrap()
                .revoked
        );
        assert!(b.revoke_grant("g1", 1_100).await.unwrap());
        assert!(
            a.find_access_token(&d("twa_1"))
                .await
                .unwrap()
                .unwrap()
                .revoked
        );
        assert!(
            a.find_refresh_token(&d("twr_1"))
                .await
                .unwrap()
                .unwrap()
                .revoked
        );
        a.close().await;
        b.close().await;
    })
    .await;
}
