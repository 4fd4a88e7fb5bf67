//! Fixtures: a schema of its own per test on the server named by `TOKENWARDEN_TEST_POSTGRES_URL`,
//! and records.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU32, Ordering};

use futures_util::FutureExt as _;
use sqlx::{Connection as _, PgConnection};
use tokenwarden_postgres::{PoolSettings, PostgresStore};

/// The variable naming the test server.
pub const URL_VAR: &str = "TOKENWARDEN_TEST_POSTGRES_URL";

/// The test server's URL. Every PostgreSQL test starts here, so running the ignored tests without
/// a server fails every one of them instead of passing silently.
pub fn base_url() -> String {
    match std::env::var(URL_VAR) {
        Ok(url) if !url.trim().is_empty() => url,
        _ => panic!(
            "{URL_VAR} is not set: the PostgreSQL tests need a server. Run scripts/test, or \
             start one with `scripts/postgres.sh start DIR` and export {URL_VAR}=<the URL it \
             prints>."
        ),
    }
}

/// `url` with `-c search_path=<schema>` added to its startup options, so every connection made
/// from it (the store's pool, the migrator's connection) works inside `schema`.
fn with_search_path(url: &str, schema: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-c%20search_path%3D{schema}")
}

/// A schema of its own on the test server: what a fresh, empty database is to a test, without the
/// cost of `CREATE DATABASE`. Dropped (with everything in it) by [`TestSchema::drop`].
#[derive(Clone)]
pub struct TestSchema {
    pub name: String,
    url: String,
}

impl TestSchema {
    pub async fn new(label: &str) -> Self {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let base = base_url();
        let label: String = label
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .take(32)
            .collect();
        // Unique across test threads and concurrent test processes; at most 63 bytes.
        let name = format!(
            "tw_{label}_{}_{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let mut admin = PgConnection::connect(&base).await.unwrap_or_else(|e| {
            panic!("cannot connect to {URL_VAR} (is the server running?): {e}")
        });
        sqlx::raw_sql(&format!("CREATE SCHEMA \"{name}\""))
            .execute(&mut admin)
            .await
            .unwrap();
        admin.close().await.unwrap();
        let url = with_search_path(&base, &name);
        Self { name, url }
    }

    /// The URL of a database whose search path is this schema.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub async fn open(&self) -> PostgresStore {
        PostgresStore::open(&self.url).await.unwrap()
    }

    pub async fn open_with(&self, settings: PoolSettings) -> PostgresStore {
        PostgresStore::open_with(&self.url, settings).await.unwrap()
    }

    /// A raw connection inside the schema, for looking under the store.
    pub async fn raw(&self) -> PgConnection {
        PgConnection::connect(&self.url).await.unwrap()
    }

    /// Drops the schema and everything in it. Stores using it should be closed first.
    pub async fn drop(self) {
        let mut admin = PgConnection::connect(&base_url()).await.unwrap();
        sqlx::raw_sql(&format!("DROP SCHEMA \"{}\" CASCADE", self.name))
            .execute(&mut admin)
            .await
            .unwrap();
        admin.close().await.unwrap();
    }
}

/// Runs `body` with a fresh schema, and drops the schema afterwards even when `body` panicked
/// (then re-raises the panic, so the test still fails).
pub async fn with_schema<F, Fut>(label: &str, body: F)
where
    F: FnOnce(TestSchema) -> Fut,
    Fut: Future<Output = ()>,
{
    let schema = TestSchema::new(label).await;
    let outcome = AssertUnwindSafe(body(schema.clone())).catch_unwind().await;
    schema.drop().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// The conformance runner: every case gets a fresh store in a schema of its own, closed and
/// dropped after the case, pass or fail.
pub async fn in_fresh_schema<F, Fut>(case: &'static str, run: F)
where
    F: FnOnce(PostgresStore) -> Fut,
    Fut: Future<Output = ()>,
{
    with_schema(case, |schema| async move {
        let store = schema.open().await;
        // A clone shares the pool; ours closes it before the schema is dropped.
        let outcome = AssertUnwindSafe(run(store.clone())).catch_unwind().await;
        store.close().await;
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    })
    .await;
}

/// Waits until `n` sessions of this database are blocked on a lock (a statement of ours queued
/// behind a lock held on purpose), polling `pg_stat_activity`; panics after 30 s.
pub async fn wait_for_lock_waiters(schema: &TestSchema, n: i64) {
    let mut conn = schema.raw().await;
    for _ in 0..3_000 {
        let waiting = count(
            &mut conn,
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .await;
        if waiting >= n {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("no session of {} started waiting on a lock", schema.name);
}

/// `SELECT count(*) …` on a raw connection.
pub async fn count(conn: &mut PgConnection, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(conn).await.unwrap()
}

pub use tokenwarden_conformance::fixtures::*;
