//! Purge run by several nodes at once: batches taken with `FOR UPDATE SKIP LOCKED` are disjoint,
//! so every dead row is deleted — and counted — exactly once, and live rows survive.

use tokenwarden_core::store::{AdminStore as _, PurgeCounts, PurgePolicy};
use tokenwarden_postgres::PostgresStore;

use crate::support::*;

/// Rows of every kind, bulk-inserted with `generate_series` (`sha256` makes the 32-byte digests):
/// `dead` of each kind past their end at `NOW` with a retention of `RETENTION`, and a few live
/// ones of each kind.
const NOW: i64 = 1_000_000;
const RETENTION: i64 = 1_000;

async fn seed(raw: &mut sqlx::PgConnection, dead: i64) {
    let statements = [
        // Grants 1..=dead: every token expired or long revoked, so the grant goes too.
        // Grants live1..live20: a live access token each.
        "INSERT INTO grants (grant_id, client_id, username, scope, created_at) \
         SELECT 'g' || i, 'c1', 'alice', 'read', 1 FROM generate_series(1, $1) i",
        "INSERT INTO grants (grant_id, client_id, username, scope, created_at) \
         SELECT 'live' || i, 'c1', 'alice', 'read', 1 FROM generate_series(1, 20) i",
        // Per dead grant: an expired access token, an access token revoked before the cutoff,
        // an expired used refresh token and a refresh token revoked before the cutoff.
        "INSERT INTO access_tokens (digest, grant_id, client_id, username, scope, issued_at, \
                                    expires_at, revoked_at) \
         SELECT sha256(('a-exp-' || i)::bytea), 'g' || i, 'c1', 'alice', 'read', 1, $2, NULL \
         FROM generate_series(1, $1) i \
         UNION ALL \
         SELECT sha256(('a-rev-' || i)::bytea), 'g' || i, 'c1', 'alice', 'read', 1, $2 + 9999999, $2 - $3 \
         FROM generate_series(1, $1) i",
        "INSERT INTO refresh_tokens (digest, grant_id, client_id, username, scope, issued_at, \
                                     expires_at, used_at, sealed_successor, revoked_at) \
         SELECT sha256(('r-exp-' || i)::bytea), 'g' || i, 'c1', 'alice', 'read', 1, $2 - 1, 5, \
                '\\x00'::bytea, NULL \
         FROM generate_series(1, $1) i \
         UNION ALL \
         SELECT sha256(('r-rev-' || i)::bytea), 'g' || i, 'c1', 'alice', 'read', 1, $2 + 9999999, \
                NULL, NULL, $2 - $3 - 1 \
         FROM generate_series(1, $1) i",
        // Grant-less (client_credentials) access tokens: `dead` expired, 20 live.
        "INSERT INTO access_tokens (digest, grant_id, client_id, username, scope, issued_at, \
                                    expires_at) \
         SELECT sha256(('cc-exp-' || i)::bytea), NULL, 'c1', NULL, 'read', 1, $2 - 5 \
         FROM generate_series(1, $1) i",
        "INSERT INTO access_tokens (digest, grant_id, client_id, username, scope, issued_at, \
                                    expires_at, revoked_at) \
         SELECT sha256(('live-' || i)::bytea), 'live' || i, 'c1', 'alice', 'read', 1, $2 + 1, \
                $2 - $3 + 1 \
         FROM generate_series(1, 20) i",
        // Codes past expiry by the retention, and 20 within it.
        "INSERT INTO authorization_codes (digest, client_id, username, redirect_uri, \
                                          redirect_uri_given, scope, issued_at, expires_at) \
         SELECT sha256(('code-' || i)::bytea), 'c1', 'alice', 'https://c1.example/cb', true, \
                'read', 1, CASE WHEN i <= $1 THEN $2 - $3 ELSE $2 - $3 + 1 END \
         FROM generate_series(1, $1 + 20) i",
        // Sessions from their expiry on, and 20 live ones.
        "INSERT INTO sessions (digest, username, created_at, expires_at) \
         SELECT sha256(('session-' || i)::bytea), 'alice', 1, \
                CASE WHEN i <= $1 THEN $2 ELSE $2 + 1 END \
         FROM generate_series(1, $1 + 20) i",
    ];
    for sql in statements {
        sqlx::query(sql)
            .bind(dead)
            .bind(NOW)
            .bind(RETENTION)
            .execute(&mut *raw)
            .await
            .unwrap_or_else(|e| panic!("{e}: {sql}"));
    }
}

fn sum(counts: &[PurgeCounts]) -> PurgeCounts {
    counts
        .iter()
        .fold(PurgeCounts::default(), |acc, c| PurgeCounts {
            access_tokens: acc.access_tokens + c.access_tokens,
            refresh_tokens: acc.refresh_tokens + c.refresh_tokens,
            grants: acc.grants + c.grants,
            authorization_codes: acc.authorization_codes + c.authorization_codes,
            sessions: acc.sessions + c.sessions,
            revocation_events: acc.revocation_events + c.revocation_events,
        })
}

/// Three nodes purge the same database at the same time, in batches of 7: the counts they report
/// add up to exactly what there was to delete (nothing deleted twice, nothing missed), a dry run
/// afterwards finds nothing, and every live row is still there.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL (scripts/test starts it)"]
async fn purge_from_three_nodes_at_once_deletes_each_row_once() {
    with_schema("purge_race", |schema| async move {
        const DEAD: i64 = 700;
        let nodes: Vec<PostgresStore> = vec![
            schema.open().await,
            schema.open().await,
            schema.open().await,
        ];
        let mut raw = schema.raw().await;
        seed(&mut raw, DEAD).await;
        let policy = PurgePolicy {
            revoked_retention: RETENTION,
            batch_size: 7,
            ..PurgePolicy::default()
        };
        let expected = PurgeCounts {
            access_tokens: 3 * DEAD as u64,
            refresh_tokens: 2 * DEAD as u64,
            grants: DEAD as u64,
            authorization_codes: DEAD as u64,
            sessions: DEAD as u64,
            revocation_events: 0,
        };
        assert_eq!(
            nodes[0].purge(NOW, policy, true).await.unwrap(),
            expected,
            "dry run"
        );

        let runs =
            futures_util::future::join_all(nodes.iter().map(|n| n.purge(NOW, policy, false))).await;
        let counts: Vec<PurgeCounts> = runs.into_iter().map(Result::unwrap).collect();
        assert_eq!(sum(&counts), expected, "per node: {counts:?}");
        println!("purge counts per node: {counts:?}");

        assert_eq!(
            nodes[1].purge(NOW, policy, true).await.unwrap(),
            PurgeCounts::default()
        );
        assert_eq!(count(&mut raw, "SELECT count(*) FROM grants").await, 20);
        assert_eq!(
            count(&mut raw, "SELECT count(*) FROM access_tokens").await,
            20
        );
        assert_eq!(
            count(&mut raw, "SELECT count(*) FROM refresh_tokens").await,
            0
        );
        assert_eq!(
            count(&mut raw, "SELECT count(*) FROM authorization_codes").await,
            20
        );
        assert_eq!(count(&mut raw, "SELECT count(*) FROM sessions").await, 20);
        for n in &nodes {
            n.close().await;
        }
    })
    .await;
}

/// A row locked by a request in flight is skipped, not waited for, and left for the next purge.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL (scripts/test starts it)"]
async fn purge_skips_rows_locked_by_a_transaction_in_flight() {
    with_schema("purge_skip_locked", |schema| async move {
        let store = schema.open().await;
        let mut raw = schema.raw().await;
        seed(&mut raw, 5).await;
        let policy = PurgePolicy {
            revoked_retention: RETENTION,
            batch_size: 2,
            ..PurgePolicy::default()
        };
        // Another node's transaction holds one dead session (and one dead grant-less token).
        let mut holder = schema.raw().await;
        sqlx::raw_sql(
            "BEGIN; \
             SELECT 1 FROM sessions WHERE digest = sha256('session-1'::bytea) FOR UPDATE; \
             SELECT 1 FROM access_tokens WHERE digest = sha256('cc-exp-1'::bytea) FOR UPDATE;",
        )
        .execute(&mut holder)
        .await
        .unwrap();
        let first = tokio::time::timeout(
            std::time::Duration::from_secs(20),
            store.purge(NOW, policy, false),
        )
        .await
        .expect("purge waited for a locked row")
        .unwrap();
        assert_eq!(first.sessions, 4);
        assert_eq!(first.access_tokens, 14);
        sqlx::raw_sql("COMMIT").execute(&mut holder).await.unwrap();
        let second = store.purge(NOW, policy, false).await.unwrap();
        assert_eq!(second.sessions, 1);
        assert_eq!(second.access_tokens, 1);
        store.close().await;
    })
    .await;
}
