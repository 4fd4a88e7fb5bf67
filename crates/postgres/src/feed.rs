//! The revocation feed on PostgreSQL (`migrations/postgres/0003_revocation_feed.sql`; wire format
//! in `docs/revocation-feed.md`): appending a transaction's events, reading a page, purging.
//!
//! ## Gapless, in commit order, across nodes
//!
//! A revoking transaction appends its `n` events as its **last write**, once:
//! `UPDATE revocation_feed SET head = head + n WHERE id = 1 RETURNING head`, then one `INSERT` of
//! the events numbered `head - n + 1 ..= head`. The `UPDATE` takes the feed row's lock and holds
//! it until commit, so the event writers of every node line up on it: a writer that waited
//! re-reads the row the previous one committed (READ COMMITTED re-evaluates an `UPDATE` on the
//! newest row version) and numbers its events after them. Hence
//!
//! * the numbers have no gaps: a transaction that rolls back rolls its `head + n` back too, and the
//!   next writer takes the same numbers;
//! * the numbers increase in commit order: writer B gets the row only after writer A committed,
//!   and A leaves PostgreSQL's list of running transactions before it releases its locks, so any
//!   snapshot that shows B's events shows A's. A reader that has seen event `k` has seen every
//!   event before it, which is what lets a subscriber resume from a cursor.
//!
//! Holding the feed row is the last thing a transaction does before `COMMIT`: it never waits for
//! another lock while holding it, so the feed row cannot take part in a deadlock with the grant
//! and token locks taken before it (the crate docs' lock order: grants, then tokens, then the
//! feed). A transaction that revoked nothing never touches the row.
//!
//! ## Reading
//!
//! [`read_page`] is one statement — the counter row joined with the events after the cursor — so
//! the events, `head` and `floor` come from one snapshot and agree with each other.
//!
//! ## Purging
//!
//! [`purge_events`] finds the newest event older than the retention, raises `floor` to it, then
//! deletes everything up to it in batches. The floor goes first: a reader may see the floor
//! raised and the events still there (harmless: the cursor check already answers `resync`), but
//! never events missing above the floor, which would let a subscriber skip them silently.

use sqlx::PgConnection;
use tokenwarden_core::clock::Timestamp;
use tokenwarden_core::feed::{FeedPage, NewRevocation};
use tokenwarden_core::store::StoreError;

use crate::db_err;
use crate::rows::{corrupt, FeedRow};

/// Appends `events` to the feed, numbered after the current head, inside the caller's
/// transaction; nothing at all when `events` is empty. Must be the transaction's last write (see
/// the module docs): the feed row stays locked until the caller commits.
pub(crate) async fn append_events(
    conn: &mut PgConnection,
    events: &[NewRevocation],
    now: Timestamp,
) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    let n = i64::try_from(events.len())
        .map_err(|_| StoreError::Unavailable("too many revocation events".into()))?;
    let head: i64 = sqlx::query_scalar(
        "UPDATE revocation_feed SET head = head + $1 WHERE id = 1 RETURNING head",
    )
    .bind(n)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_err)?
    .ok_or_else(|| corrupt("the revocation_feed row is missing"))?;

    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    let client_ids: Vec<&str> = events.iter().map(|e| e.client_id.as_str()).collect();
    let tokens: Vec<Option<&[u8]>> = events
        .iter()
        .map(|e| e.token.as_ref().map(|t| t.as_bytes().as_slice()))
        .collect();
    let grant_ids: Vec<Option<&str>> = events.iter().map(|e| e.grant_id.as_deref()).collect();
    let subjects: Vec<Option<&str>> = events.iter().map(|e| e.subject.as_deref()).collect();
    // One statement for all n events: `WITH ORDINALITY` numbers them 1..=n in the order given.
    sqlx::query(
        "INSERT INTO revocation_events \
             (seq, at, kind, client_id, token_digest, grant_id, subject) \
         SELECT $1 + e.ord, $2, e.kind, e.client_id, e.token_digest, e.grant_id, e.subject \
         FROM UNNEST($3::text[], $4::text[], $5::bytea[], $6::text[], $7::text[]) \
              WITH ORDINALITY AS e (kind, client_id, token_digest, grant_id, subject, ord)",
    )
    .bind(head - n)
    .bind(now)
    .bind(kinds)
    .bind(client_ids)
    .bind(tokens)
    .bind(grant_ids)
    .bind(subjects)
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    // Delivered at commit (never for a rolled-back transaction), to every node LISTENing: their
    // feeds read the new events at once instead of at their next poll.
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(NOTIFY_CHANNEL)
        .bind(head.to_string())
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    Ok(())
}

/// The `NOTIFY` channel of committed revocation events; the payload is the new head.
pub const NOTIFY_CHANNEL: &str = "tokenwarden_revocations";

/// Events with `seq > after`, oldest first, at most `limit`, with the feed's `head` and `floor`:
/// one statement, so one snapshot.
pub(crate) async fn read_page(
    pool: &sqlx::PgPool,
    after: u64,
    limit: u32,
) -> Result<FeedPage, StoreError> {
    // A cursor past what a BIGINT holds is past the head as well: no events (the caller's cursor
    // check answers `resync`).
    let after = i64::try_from(after).unwrap_or(i64::MAX);
    // The counter row always comes back, with NULL event columns when no event follows the
    // cursor.
    let rows: Vec<FeedRow> = sqlx::query_as(
        "SELECT f.head, f.floor, \
                e.seq, e.at, e.kind, e.client_id, e.token_digest, e.grant_id, e.subject \
         FROM revocation_feed f \
         LEFT JOIN LATERAL (SELECT seq, at, kind, client_id, token_digest, grant_id, subject \
                            FROM revocation_events WHERE seq > $1 \
                            ORDER BY seq LIMIT $2) e ON TRUE \
         WHERE f.id = 1 \
         ORDER BY e.seq",
    )
    .bind(after)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
    .map_err(db_err)?;
    FeedRow::into_page(rows)
}

/// The newest event at or before `cutoff` (`None`: nothing is old enough). Everything up to it
/// goes, even a later-numbered event stamped earlier by a node whose clock lags, so the floor is
/// exact.
const PURGE_THROUGH: &str = "SELECT max(seq) FROM revocation_events WHERE at <= $1";

/// Counts what [`purge_events`] would delete, as a scalar subquery with the cutoff as `$n`.
pub(crate) fn count_purgeable_sql(param: usize) -> String {
    format!(
        "(SELECT count(*) FROM revocation_events \
          WHERE seq <= (SELECT max(seq) FROM revocation_events WHERE at <= ${param}))"
    )
}

/// Deletes the events up to the newest one at or before `cutoff`, after raising the floor to it
/// (see the module docs for the order), `batch` rows per statement. Returns how many this call
/// deleted: nodes purging at once take disjoint batches (`SKIP LOCKED`), so each event is counted
/// once.
pub(crate) async fn purge_events(
    pool: &sqlx::PgPool,
    cutoff: Timestamp,
    batch: u32,
) -> Result<u64, StoreError> {
    let through: Option<i64> = sqlx::query_scalar(PURGE_THROUGH)
        .bind(cutoff)
        .fetch_one(pool)
        .await
        .map_err(db_err)?;
    let Some(through) = through else {
        return Ok(0);
    };
    // Never lowered: another node may have purged further already.
    sqlx::query("UPDATE revocation_feed SET floor = $1 WHERE id = 1 AND floor < $1")
        .bind(through)
        .execute(pool)
        .await
        .map_err(db_err)?;
    let mut total = 0u64;
    loop {
        let deleted = sqlx::query(
            "WITH batch AS (SELECT seq FROM revocation_events WHERE seq <= $1 \
                            ORDER BY seq LIMIT $2 FOR UPDATE SKIP LOCKED) \
             DELETE FROM revocation_events e USING batch WHERE e.seq = batch.seq",
        )
        .bind(through)
        .bind(i64::from(batch))
        .execute(pool)
        .await
        .map_err(db_err)?
        .rows_affected();
        total = total.saturating_add(deleted);
        if deleted < u64::from(batch) {
            return Ok(total);
        }
    }
}
