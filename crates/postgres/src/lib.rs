//! # tokenwarden-postgres
//!
//! The PostgreSQL storage backend (`--database postgres://user@host/db`), for several stateless
//! `tokenwarden serve` nodes behind a load balancer on one database. [`PostgresStore`] implements
//! [`Store`](tokenwarden_core::store::Store), [`AdminStore`](tokenwarden_core::store::AdminStore)
//! and [`AccountStore`](tokenwarden_core::store::AccountStore) with the semantics of the reference
//! [`MemoryStore`](tokenwarden_core::store::memory::MemoryStore); the `tokenwarden-conformance`
//! suite runs against all three backends.
//!
//! Nothing is kept in the node's memory: every answer comes from the database, so a revocation
//! committed through one node is seen by every node's next statement.
//!
//! ## Atomic across nodes, at READ COMMITTED
//!
//! Every transaction runs at `READ COMMITTED`, PostgreSQL's default, asked for explicitly (`BEGIN
//! ISOLATION LEVEL READ COMMITTED`, and `default_transaction_isolation` on every connection, so a
//! database whose default was raised to `SERIALIZABLE` cannot turn a race into a serialization
//! failure). That level is enough because each operation's decision is a compare-and-set on the
//! row it consumes, and PostgreSQL re-checks such a condition against the newest committed row:
//!
//! * **Refresh rotation** (RFC 9700 §4.14.2) is the single statement `UPDATE refresh_tokens SET
//!   used_at = $now, sealed_successor = … WHERE digest = $old AND used_at IS NULL AND revoked_at
//!   IS NULL AND $now < expires_at AND <the grant is not revoked> RETURNING grant_id`, followed in
//!   the same transaction by the inserts of the successor tokens. Of two nodes rotating the same
//!   token, the first `UPDATE` takes the row lock; the second blocks on it until the first
//!   commits, then re-evaluates its `WHERE` on the row the winner committed (`EvalPlanQual`), finds
//!   `used_at` set and matches 0 rows. It then reads the token's state — a new statement, so a new
//!   snapshot that includes the winner's commit — and reports `NotRotated` with the winner's
//!   `used_at` and sealed response, which the grace window needs. (With the family lock below,
//!   the loser usually waits earlier, on the grant row, and its `UPDATE` then starts from a
//!   snapshot that already shows `used_at`; either way it matches 0 rows.) No snapshot is ever
//!   trusted for the decision, so `REPEATABLE READ` or `SERIALIZABLE` would add nothing but
//!   serialization failures to retry.
//! * **Code redemption** (RFC 6749 §4.1.2) is the same compare-and-set on `authorization_codes`
//!   (`… WHERE used_at IS NULL AND $now < expires_at`), then the grant and its tokens are inserted
//!   in that transaction. A failed insert rolls the marking back: the code stays redeemable.
//! * **The grant row is the token family's lock.** Rotation locks its grant (`SELECT … FOR NO
//!   KEY UPDATE`) before the compare-and-set; revoking grants (one grant, by filter, or of a
//!   deleted client) locks them first, in `grant_id` order, then stamps `revoked_at` on the grant
//!   and on every unrevoked token in it, all in one transaction. Every writer of a family thus
//!   takes its locks in the same order — grant, then tokens — so rotation and revocation never
//!   deadlock (a rotation locking its token first and its grant last would: PostgreSQL detects
//!   it and aborts one of them), and they serialize: a revocation that waited for a rotation runs its token
//!   `UPDATE`s after the rotation committed, with fresh snapshots, and stamps the successor
//!   tokens too. (One statement with data-modifying CTEs would share one snapshot and miss them;
//!   reads would still fold in the grant's revocation, but the rows would keep `revoked_at` NULL
//!   and outlive the purge retention.)
//! * **The revocation feed** (`revocation_feed`, one counter row, and `revocation_events`) is
//!   written by the revoking transaction itself, as its last write: `UPDATE revocation_feed SET
//!   head = head + n … RETURNING head` numbers its events after every committed one, and the row
//!   lock, held to commit, lines up event writers across nodes, so sequence numbers are gapless
//!   and increase in commit order (details in the `feed` module). The full lock order is thus
//!   grants, then tokens, then the feed row; `revoke_access_token` follows it too (its token's
//!   grant `FOR SHARE`, then the token, then the feed), so a token revoked while its grant is
//!   being revoked is announced before the grant or not at all, as in the memory store.
//!   A page of events is read in one statement together with `head` and `floor`: one snapshot.
//! * **Purge** deletes in batches of `batch_size` rows, each batch one statement that picks its
//!   rows with `FOR UPDATE SKIP LOCKED` in a CTE and deletes them. Nodes purging at once take
//!   disjoint batches, so each row is deleted (and counted) exactly once, nobody waits for anybody,
//!   and a row some request is writing right now is skipped and left for the next purge. Grants
//!   left without tokens are deleted window by window over `grant_id`, the same way.
//! * Single-statement writes (inserts, the consent upsert) are atomic on their own.
//!
//! ## Connection settings, and why
//!
//! | setting | value | why |
//! |---|---|---|
//! | `default_transaction_isolation` | `read committed` | see above; set on every connection so it holds whatever the database default is. |
//! | `synchronous_commit` | at least `on` | a `COMMIT` returns once the WAL is flushed, so a `200` survives a database crash. Raised from `off` only: a stronger setting chosen by the operator (`remote_apply` with replicas) is kept. |
//! | `statement_timeout` | [`PoolSettings::statement_timeout`], 30 s | a statement stuck behind a lock answers `503` instead of hanging the request. |
//! | `idle_in_transaction_session_timeout` | 15 s | our transactions never wait for anything but the database; a node frozen mid-transaction (SIGSTOP, a partition) must not hold a grant lock for longer than this. |
//! | `application_name` | `tokenwarden` (unless the URL names one) | shows in `pg_stat_activity`. |
//!
//! ## Pool sizing
//!
//! Each store keeps a pool of at most [`PoolSettings::max_connections`] connections (default
//! [`DEFAULT_MAX_CONNECTIONS`] = 16). A request holds a connection for one short transaction, so
//! the pool bounds the node's concurrent database work, not its concurrent requests; past
//! roughly twice to four times the database's cores more connections add contention, not
//! throughput. Budget `nodes × max_connections` + a few for the admin CLI and `psql` below the
//! server's `max_connections` (default 100, of which 3 are reserved for superusers): five nodes
//! at 16 fit. A request that cannot get a connection within [`PoolSettings::acquire_timeout`]
//! (default 5 s) fails with `StoreError::Unavailable`, a `503`. Connections are checked before use
//! (one round trip), so a connection broken by a database restart is replaced instead of failing
//! a request.
//!
//! ## Migrations
//!
//! The schema (`migrations/postgres`) is embedded and applied by [`PostgresStore::open`], on a
//! connection of its own: sqlx's migrator takes a session-level advisory lock
//! (`pg_advisory_lock`, keyed by the database name) before it creates `_sqlx_migrations` or reads
//! which versions are applied, so nodes starting together apply each migration once — the others
//! wait for the lock, then find nothing to do. Each migration runs in its own transaction. The
//! connection is closed afterwards, success or not, which also releases the lock if a migration
//! failed half-way (sqlx only unlocks on success).
//!
//! ## TLS
//!
//! With the crate feature `tls` (rustls, ring provider, webpki roots), `sslmode=require`,
//! `verify-ca` and `verify-full` in the URL work (`sslrootcert=` for a private CA). Without it,
//! the default `sslmode=prefer` connects in plain text and `sslmode=require` fails at `open`.
#![warn(missing_docs)]

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection as _, PgPool, Row as _};
use tokenwarden_core::store::StoreError;

mod feed;
mod rows;
mod store;

/// The default [`PoolSettings::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: u32 = 16;

/// The schema, embedded at build time from `migrations/postgres` (CONVENTIONS "Storage").
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/postgres");

/// How a [`PostgresStore`] sizes and tunes its connection pool (see the crate docs, "Pool
/// sizing").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSettings {
    /// Most connections open at once. Default [`DEFAULT_MAX_CONNECTIONS`].
    pub max_connections: u32,
    /// Connections kept open while idle. Default 0: an idle node holds nothing.
    pub min_connections: u32,
    /// How long an operation waits for a free connection (or a new one to open) before failing
    /// with `StoreError::Unavailable`. Default 5 s.
    pub acquire_timeout: Duration,
    /// An idle connection is closed after this long. Default 10 minutes.
    pub idle_timeout: Option<Duration>,
    /// A connection is replaced after this long, so server-side memory does not grow forever and a
    /// failover behind a DNS name is picked up. Default 30 minutes.
    pub max_lifetime: Option<Duration>,
    /// `statement_timeout` on every connection; zero disables it. Default 30 s.
    pub statement_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            min_connections: 0,
            acquire_timeout: Duration::from_secs(5),
            idle_timeout: Some(Duration::from_secs(600)),
            max_lifetime: Some(Duration::from_secs(1800)),
            statement_timeout: Duration::from_secs(30),
        }
    }
}

/// `idle_in_transaction_session_timeout` on every connection (see the crate docs).
pub const IDLE_IN_TRANSACTION_TIMEOUT: Duration = Duration::from_secs(15);

/// The PostgreSQL-backed store. Cloning is cheap and shares the pool.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

/// The session settings in effect on a pooled connection, as PostgreSQL reports them (`SHOW`), so
/// an operator (or a test) can check them instead of trusting them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSettings {
    /// `transaction_isolation` (`read committed`).
    pub transaction_isolation: String,
    /// `synchronous_commit` (`on` unless the operator chose something stronger).
    pub synchronous_commit: String,
    /// `statement_timeout`, as PostgreSQL prints it (`30s`; `0` when disabled).
    pub statement_timeout: String,
    /// `idle_in_transaction_session_timeout` (`15s`).
    pub idle_in_transaction_session_timeout: String,
    /// `server_version_num`, e.g. 150018.
    pub server_version_num: i64,
    /// Whether the connection is encrypted (`pg_stat_ssl.ssl`).
    pub ssl: bool,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://…` or `postgresql://…`, libpq URL parameters such as
    /// `sslmode` and `options` honoured) with the default [`PoolSettings`], and applies pending
    /// migrations before returning.
    pub async fn open(url: &str) -> Result<PostgresStore, StoreError> {
        Self::open_with(url, PoolSettings::default()).await
    }

    /// [`open`](Self::open) with explicit pool settings.
    pub async fn open_with(url: &str, settings: PoolSettings) -> Result<PostgresStore, StoreError> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            // The URL is not echoed: it may carry a password.
            return Err(StoreError::Unavailable(
                "not a PostgreSQL database URL (expected postgres://… or postgresql://…)".into(),
            ));
        }
        let mut options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Unavailable(format!("invalid PostgreSQL URL: {e}")))?;
        if options.get_application_name().is_none() {
            options = options.application_name("tokenwarden");
        }
        let timeouts = SessionTimeouts::from(&settings);
        let max_connections = settings.max_connections.max(1);
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .min_connections(settings.min_connections.min(max_connections))
            .acquire_timeout(settings.acquire_timeout)
            .idle_timeout(settings.idle_timeout)
            .max_lifetime(settings.max_lifetime)
            .after_connect(move |conn, _meta| {
                let timeouts = timeouts.clone();
                Box::pin(async move {
                    sqlx::query(SESSION_SETTINGS_SQL)
                        .bind(timeouts.statement_timeout_ms)
                        .bind(timeouts.idle_in_transaction_ms)
                        .execute(&mut *conn)
                        .await?;
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(db_err)?;
        migrate(&pool).await?;
        tracing::debug!(max_connections, "opened PostgreSQL store");
        Ok(PostgresStore { pool })
    }

    /// Checks that the database answers (for `GET /healthz`): one `SELECT 1` through the pool.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    /// Closes the pool, waiting for connections in use to be returned; each connection ends its
    /// session cleanly (`Terminate`), so no transaction is left open on the server. Further
    /// operations fail with `StoreError::Unavailable`. Safe to call more than once.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Calls `wake` whenever any node commits revocation events (PostgreSQL `LISTEN` on the
    /// `tokenwarden_revocations` channel), until the store is closed. Runs on its own connection, outside
    /// the pool; reconnects after a failure (events committed meanwhile are still read by the
    /// feed's periodic poll). Needs a Tokio runtime.
    pub fn watch_revocations(&self, wake: std::sync::Arc<dyn Fn() + Send + Sync>) {
        let pool = self.pool.clone();
        tokio::spawn(async move {
            loop {
                if pool.is_closed() {
                    return;
                }
                match sqlx::postgres::PgListener::connect_with(&pool).await {
                    Ok(mut listener) => {
                        if let Err(e) = listener.listen(feed::NOTIFY_CHANNEL).await {
                            tracing::warn!(error = %e, "LISTEN for revocation events failed");
                        } else {
                            // A notification can have been missed while (re)connecting.
                            wake();
                            while let Ok(notification) = listener.recv().await {
                                let _ = notification;
                                wake();
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "LISTEN connection for revocation events failed")
                    }
                }
                if pool.is_closed() {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        });
    }

    /// The settings in effect on a pooled connection.
    pub async fn session_settings(&self) -> Result<SessionSettings, StoreError> {
        let row = sqlx::query(
            "SELECT current_setting('transaction_isolation'), \
                    current_setting('synchronous_commit'), \
                    current_setting('statement_timeout'), \
                    current_setting('idle_in_transaction_session_timeout'), \
                    current_setting('server_version_num')::bigint, \
                    coalesce((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false)",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)?;
        let get = |i: usize| row.try_get::<String, _>(i).map_err(db_err);
        Ok(SessionSettings {
            transaction_isolation: get(0)?,
            synchronous_commit: get(1)?,
            statement_timeout: get(2)?,
            idle_in_transaction_session_timeout: get(3)?,
            server_version_num: row.try_get(4).map_err(db_err)?,
            ssl: row.try_get(5).map_err(db_err)?,
        })
    }
}

/// The statement run on every new pooled connection (see the crate docs' table), with `$1` =
/// `statement_timeout` and `$2` = `idle_in_transaction_session_timeout` in milliseconds.
/// `set_config(…, false)` sets the session value, as `SET` does; `synchronous_commit` is only
/// raised from `off`, never lowered.
const SESSION_SETTINGS_SQL: &str = "\
    SELECT set_config('default_transaction_isolation', 'read committed', false), \
           set_config('statement_timeout', $1, false), \
           set_config('idle_in_transaction_session_timeout', $2, false), \
           CASE WHEN current_setting('synchronous_commit') = 'off' \
                THEN set_config('synchronous_commit', 'on', false) END";

/// The per-connection timeouts, as the strings `set_config` takes.
#[derive(Debug, Clone)]
struct SessionTimeouts {
    statement_timeout_ms: String,
    idle_in_transaction_ms: String,
}

impl From<&PoolSettings> for SessionTimeouts {
    fn from(settings: &PoolSettings) -> Self {
        Self {
            statement_timeout_ms: settings.statement_timeout.as_millis().to_string(),
            idle_in_transaction_ms: IDLE_IN_TRANSACTION_TIMEOUT.as_millis().to_string(),
        }
    }
}

/// Applies pending migrations on a connection taken out of the pool and closed afterwards (see
/// the crate docs, "Migrations").
async fn migrate(pool: &PgPool) -> Result<(), StoreError> {
    let mut conn = pool.acquire().await.map_err(db_err)?.detach();
    // Waiting for another node's migrations (the advisory lock), or a long DDL statement, is
    // expected here: no statement timeout.
    let result = match sqlx::query("SET statement_timeout = 0")
        .execute(&mut conn)
        .await
    {
        Ok(_) => MIGRATOR
            .run(&mut conn)
            .await
            .map_err(|e| StoreError::Unavailable(format!("migration failed: {e}"))),
        Err(e) => Err(db_err(e)),
    };
    if let Err(e) = conn.close().await {
        tracing::warn!(error = %e, "closing the migration connection failed");
    }
    result
}

/// Maps a driver error: a uniqueness violation is the caller's `Conflict` (id, name or digest
/// taken); anything else means the store could not do its job. PostgreSQL's error message (the
/// `Display` form) carries no bound values — the offending key is only in the error's detail,
/// which is not printed — so no token digest or secret reaches the logs.
pub(crate) fn db_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict,
        _ => StoreError::Unavailable(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn other_urls_are_refused_without_echoing_them() {
        for url in [
            "sqlite://tokenwarden.db",
            "mysql://u:hunter2@db/x",
            "postgres:/x",
        ] {
            let err = PostgresStore::open(url).await.unwrap_err();
            match err {
                StoreError::Unavailable(m) => {
                    assert!(m.contains("not a PostgreSQL database URL"), "{m}");
                    assert!(!m.contains("hunter2"), "{m}");
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn session_timeouts_are_milliseconds() {
        let t = SessionTimeouts::from(&PoolSettings::default());
        assert_eq!(t.statement_timeout_ms, "30000");
        assert_eq!(t.idle_in_transaction_ms, "15000");
    }
}
