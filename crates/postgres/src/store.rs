//! [`Store`], [`AdminStore`] and [`AccountStore`] for [`PostgresStore`]: one method per atomic
//! operation, each one statement or one `READ COMMITTED` transaction (the crate docs explain why
//! that level suffices and the lock order). The semantics are the memory store's, which is the
//! reference; the comments point out where SQL needs care to match it.

use sqlx::{PgConnection, PgExecutor, Postgres, Transaction};
use tokenwarden_core::clock::Timestamp;
use tokenwarden_core::crypto::TokenDigest;
use tokenwarden_core::feed::{FeedPage, NewRevocation, RevocationKind};
use tokenwarden_core::model::{
    AccessTokenRecord, AccessTokenState, AuthorizationCodeRecord, AuthorizationCodeState, Client,
    Consent, Grant, RefreshTokenRecord, RefreshTokenState, Session, User,
};
use tokenwarden_core::store::{
    AccountStore, AdminStore, GrantFilter, PurgeCounts, PurgePolicy, Redemption, Rotation,
    RotationInput, Store, StoreError,
};

use crate::feed::{append_events, count_purgeable_sql, purge_events, read_page};
use crate::rows::{
    grant_type_names, AccessStateRow, AuthorizationCodeRow, ClientRow, ConsentRow, GrantRow,
    RefreshStateRow, SessionRow, UserRow, ACCESS_STATE_SELECT, CLIENT_COLUMNS, CODE_SELECT,
    GRANT_COLUMNS, REFRESH_STATE_SELECT,
};
use crate::{db_err, PostgresStore};

impl PostgresStore {
    /// Opens a transaction at `READ COMMITTED`, named explicitly (the crate docs say why it is
    /// the right level). Dropping it without `commit` rolls it back.
    async fn begin(&self) -> Result<Transaction<'static, Postgres>, StoreError> {
        self.pool
            .begin_with("BEGIN ISOLATION LEVEL READ COMMITTED")
            .await
            .map_err(db_err)
    }
}

async fn insert_access<'c>(
    conn: impl PgExecutor<'c>,
    t: &AccessTokenRecord,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO access_tokens \
             (digest, grant_id, client_id, username, scope, issued_at, expires_at, revoked_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, NULL)",
    )
    .bind(t.digest.as_bytes().as_slice())
    .bind(t.grant_id.as_deref())
    .bind(t.client_id.as_str())
    .bind(t.username.as_deref())
    .bind(t.scope.to_string())
    .bind(t.issued_at)
    .bind(t.expires_at)
    .execute(conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

async fn insert_refresh<'c>(
    conn: impl PgExecutor<'c>,
    t: &RefreshTokenRecord,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO refresh_tokens \
             (digest, grant_id, client_id, username, scope, issued_at, expires_at, \
              used_at, sealed_successor, revoked_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, NULL, NULL)",
    )
    .bind(t.digest.as_bytes().as_slice())
    .bind(t.grant_id.as_str())
    .bind(t.client_id.as_str())
    .bind(t.username.as_str())
    .bind(t.scope.to_string())
    .bind(t.issued_at)
    .bind(t.expires_at)
    .execute(conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// Inserts a grant with its first access token and optional refresh token, inside the caller's
/// transaction (`create_grant`, `redeem_authorization_code`). The grant goes first: the tokens'
/// foreign keys name it. A digest or grant id that exists fails with `Conflict`; PostgreSQL then
/// aborts the transaction, and the caller's dropped transaction rolls back whatever was inserted.
async fn insert_grant_with_tokens(
    conn: &mut PgConnection,
    grant: &Grant,
    access: &AccessTokenRecord,
    refresh: Option<&RefreshTokenRecord>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO grants \
             (grant_id, client_id, username, scope, created_at, last_refreshed_at, revoked_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(grant.grant_id.as_str())
    .bind(grant.client_id.as_str())
    .bind(grant.username.as_str())
    .bind(grant.scope.to_string())
    .bind(grant.created_at)
    .bind(grant.last_refreshed_at)
    .bind(grant.revoked_at)
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    insert_access(&mut *conn, access).await?;
    if let Some(r) = refresh {
        insert_refresh(&mut *conn, r).await?;
    }
    Ok(())
}

async fn authorization_code<'c>(
    conn: impl PgExecutor<'c>,
    digest: &TokenDigest,
) -> Result<Option<AuthorizationCodeState>, StoreError> {
    sqlx::query_as::<_, AuthorizationCodeRow>(CODE_SELECT)
        .bind(digest.as_bytes().as_slice())
        .fetch_optional(conn)
        .await
        .map_err(db_err)?
        .map(AuthorizationCodeState::try_from)
        .transpose()
}

async fn refresh_state<'c>(
    conn: impl PgExecutor<'c>,
    digest: &TokenDigest,
) -> Result<Option<RefreshTokenState>, StoreError> {
    sqlx::query_as::<_, RefreshStateRow>(REFRESH_STATE_SELECT)
        .bind(digest.as_bytes().as_slice())
        .fetch_optional(conn)
        .await
        .map_err(db_err)?
        .map(RefreshTokenState::try_from)
        .transpose()
}

/// PostgreSQL `text` cannot hold U+0000, so no stored identifier contains it: a lookup by such a
/// key matches nothing — as in the memory store, where no such key was stored either (the
/// endpoints never store one) — and is answered without the round trip, which would fail with
/// "invalid byte sequence" and turn a login attempt with `%00` in the username into a `503`.
fn unstorable(key: &str) -> bool {
    key.contains('\0')
}

/// [`unstorable`] for a filter: no stored grant matches it.
fn filter_unstorable(filter: &GrantFilter) -> bool {
    [&filter.username, &filter.client_id]
        .into_iter()
        .flatten()
        .any(|v| unstorable(v))
}

/// A `WHERE` fragment over `grants` selecting what `filter` asks for, with its parameters numbered
/// from `$first`, and the values to bind in that order. Specific SQL per filter shape (rather than
/// `$n IS NULL OR column = $n`) keeps the `grants_by_client`/`grants_by_user` indexes usable by
/// a generic plan of the prepared statement.
fn grant_filter_sql(filter: &GrantFilter, first: usize) -> (String, Vec<&str>) {
    let mut conds = Vec::new();
    let mut args = Vec::new();
    for (column, value) in [
        ("username", &filter.username),
        ("client_id", &filter.client_id),
    ] {
        if let Some(v) = value {
            conds.push(format!("{column} = ${}", first + args.len()));
            args.push(v.as_str());
        }
    }
    let sql = if conds.is_empty() {
        "TRUE".to_owned()
    } else {
        conds.join(" AND ")
    };
    (sql, args)
}

/// Revokes the active grants selected by `cond` (a `WHERE` fragment over `grants` whose
/// parameters `$1`… are bound from `args`) and every unrevoked token in them, stamping `now`.
/// Returns the `Grant` event of each grant that was active before (in `grant_id` order), for the
/// caller to append — or not: a deleted client is announced by one `Client` event instead. Runs
/// inside the caller's transaction and leaves the feed to it, so the feed row stays its last lock.
///
/// The grants are locked first, in `grant_id` order (`FOR NO KEY UPDATE`, the lock rotation takes
/// on its grant): concurrent revocations and rotations of a family take their locks in the same
/// order and cannot deadlock. The token `UPDATE`s come after, as new statements with new
/// snapshots, so they also stamp the tokens a rotation committed while we waited for its grant.
async fn revoke_grants_where(
    conn: &mut PgConnection,
    cond: &str,
    args: &[&str],
    now: Timestamp,
) -> Result<Vec<NewRevocation>, StoreError> {
    let sql = format!(
        "SELECT grant_id FROM grants WHERE revoked_at IS NULL AND {cond} \
         ORDER BY grant_id FOR NO KEY UPDATE"
    );
    let mut q = sqlx::query_scalar::<_, String>(&sql);
    for a in args {
        q = q.bind(*a);
    }
    let ids: Vec<String> = q.fetch_all(&mut *conn).await.map_err(db_err)?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    // The locked rows cannot have changed since: each of these matches exactly what it names.
    let mut revoked: Vec<(String, String, String)> = sqlx::query_as(
        "UPDATE grants SET revoked_at = $1 WHERE grant_id = ANY($2) AND revoked_at IS NULL \
         RETURNING grant_id, client_id, username",
    )
    .bind(now)
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await
    .map_err(db_err)?;
    // `RETURNING` comes in no particular order; the feed gets the grants in key order.
    revoked.sort_unstable();
    for table in ["access_tokens", "refresh_tokens"] {
        let sql = format!(
            "UPDATE {table} SET revoked_at = $1 WHERE grant_id = ANY($2) AND revoked_at IS NULL"
        );
        sqlx::query(&sql)
            .bind(now)
            .bind(&ids)
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
    }
    Ok(revoked
        .into_iter()
        .map(|(grant_id, client_id, username)| NewRevocation {
            kind: RevocationKind::Grant,
            client_id,
            token: None,
            grant_id: Some(grant_id),
            subject: Some(username),
        })
        .collect())
}

impl Store for PostgresStore {
    async fn find_client(&self, client_id: &str) -> Result<Option<Client>, StoreError> {
        if unstorable(client_id) {
            return Ok(None);
        }
        let sql = format!("SELECT {CLIENT_COLUMNS} FROM clients WHERE client_id = $1");
        sqlx::query_as::<_, ClientRow>(&sql)
            .bind(client_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?
            .map(Client::try_from)
            .transpose()
    }

    async fn insert_access_token(&self, token: &AccessTokenRecord) -> Result<(), StoreError> {
        // One statement in autocommit mode: atomic, and durable once `Ok` (synchronous_commit).
        insert_access(&self.pool, token).await
    }

    async fn create_grant(
        &self,
        grant: &Grant,
        access: &AccessTokenRecord,
        refresh: Option<&RefreshTokenRecord>,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        insert_grant_with_tokens(&mut tx, grant, access, refresh).await?;
        // Dropping `tx` on an error above rolls everything back: a grant is never half-created.
        tx.commit().await.map_err(db_err)
    }

    async fn find_access_token(
        &self,
        digest: &TokenDigest,
    ) -> Result<Option<AccessTokenState>, StoreError> {
        sqlx::query_as::<_, AccessStateRow>(ACCESS_STATE_SELECT)
            .bind(digest.as_bytes().as_slice())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?
            .map(AccessTokenState::try_from)
            .transpose()
    }

    async fn find_refresh_token(
        &self,
        digest: &TokenDigest,
    ) -> Result<Option<RefreshTokenState>, StoreError> {
        refresh_state(&self.pool, digest).await
    }

    async fn rotate_refresh_token(
        &self,
        old: &TokenDigest,
        new: &RotationInput,
        now: Timestamp,
    ) -> Result<Rotation, StoreError> {
        let mut tx = self.begin().await?;
        // The family lock: the grant row, locked before any token of it (the crate docs' lock
        // order). A concurrent rotation or revocation of this family waits here, or we wait for
        // it. No row (unknown token) locks nothing; the compare-and-set below then matches
        // nothing either.
        sqlx::query(
            "SELECT grant_id FROM grants \
             WHERE grant_id = (SELECT grant_id FROM refresh_tokens WHERE digest = $1) \
             FOR NO KEY UPDATE",
        )
        .bind(old.as_bytes().as_slice())
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?;

        // The compare-and-set (RFC 9700 §4.14.2: a refresh token is exchanged at most once). Its
        // WHERE is exactly `RefreshTokenState::is_active` with the grant folded in, so "no row
        // updated" means the state read below is inactive. Were the family lock ever bypassed,
        // this UPDATE alone would still let exactly one of N concurrent callers through: the
        // losers block on the row lock and re-check the WHERE against the winner's commit.
        let grant_id: Option<String> = sqlx::query_scalar(
            "UPDATE refresh_tokens SET used_at = $2, sealed_successor = $3 \
             WHERE digest = $1 AND used_at IS NULL AND revoked_at IS NULL AND $2 < expires_at \
               AND EXISTS (SELECT 1 FROM grants g \
                           WHERE g.grant_id = refresh_tokens.grant_id AND g.revoked_at IS NULL) \
             RETURNING grant_id",
        )
        .bind(old.as_bytes().as_slice())
        .bind(now)
        .bind(new.sealed_response.as_slice())
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?;

        let Some(grant_id) = grant_id else {
            // Lost the race, or never eligible: report the state as committed now (a new
            // statement sees the winner's commit), so the caller can tell a grace-window retry
            // from reuse.
            let state = refresh_state(&mut *tx, old).await?;
            tx.rollback().await.map_err(db_err)?;
            return Ok(state.map_or(Rotation::Unknown, Rotation::NotRotated));
        };

        // A successor digest that exists is `Conflict`; dropping `tx` then rolls back the
        // marking too, so the old token stays current, as in the memory store.
        insert_refresh(&mut *tx, &new.refresh).await?;
        insert_access(&mut *tx, &new.access).await?;
        sqlx::query("UPDATE grants SET last_refreshed_at = $1 WHERE grant_id = $2")
            .bind(now)
            .bind(grant_id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(Rotation::Rotated)
    }

    async fn insert_authorization_code(
        &self,
        code: &AuthorizationCodeRecord,
    ) -> Result<(), StoreError> {
        // One statement in autocommit mode; a digest that exists is `Conflict`.
        sqlx::query(
            "INSERT INTO authorization_codes \
                 (digest, client_id, username, redirect_uri, redirect_uri_given, scope, \
                  code_challenge, issued_at, expires_at, used_at, grant_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL, NULL)",
        )
        .bind(code.digest.as_bytes().as_slice())
        .bind(code.client_id.as_str())
        .bind(code.username.as_str())
        .bind(code.redirect_uri.as_str())
        .bind(code.redirect_uri_given)
        .bind(code.scope.to_string())
        .bind(code.code_challenge.as_deref())
        .bind(code.issued_at)
        .bind(code.expires_at)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn find_authorization_code(
        &self,
        digest: &TokenDigest,
    ) -> Result<Option<AuthorizationCodeState>, StoreError> {
        authorization_code(&self.pool, digest).await
    }

    async fn redeem_authorization_code(
        &self,
        code: &TokenDigest,
        grant: &Grant,
        access: &AccessTokenRecord,
        refresh: Option<&RefreshTokenRecord>,
        now: Timestamp,
    ) -> Result<Redemption, StoreError> {
        let mut tx = self.begin().await?;
        // The compare-and-set is the first statement (RFC 6749 §4.1.2: "The client MUST NOT use
        // the authorization code more than once"). Of concurrent redemptions on any nodes, the
        // first takes the row lock; the others wait for its commit, re-check `used_at IS NULL`
        // against it and match nothing.
        let marked = sqlx::query(
            "UPDATE authorization_codes SET used_at = $2, grant_id = $3 \
             WHERE digest = $1 AND used_at IS NULL AND $2 < expires_at",
        )
        .bind(code.as_bytes().as_slice())
        .bind(now)
        .bind(grant.grant_id.as_str())
        .execute(&mut *tx)
        .await
        .map_err(db_err)?
        .rows_affected();

        if marked == 0 {
            // Used already (or expired): report the grant of the first use, as committed now, so
            // the caller can revoke it.
            let state = authorization_code(&mut *tx, code).await?;
            tx.rollback().await.map_err(db_err)?;
            return Ok(
                state.map_or(Redemption::Unknown, |s| Redemption::AlreadyUsed {
                    grant_id: s.grant_id,
                }),
            );
        }

        // A colliding grant id or token digest is `Conflict`; dropping `tx` then rolls back the
        // marking too, so the code stays redeemable, as in the memory store.
        insert_grant_with_tokens(&mut tx, grant, access, refresh).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(Redemption::Redeemed)
    }

    async fn revoke_access_token(
        &self,
        digest: &TokenDigest,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        // The token's grant first, if it has one (the crate docs' lock order: grants, tokens,
        // the feed). `FOR SHARE` conflicts with the `FOR NO KEY UPDATE` that revocation and
        // rotation take on it, not with other token revocations: a revocation of the grant in
        // flight finishes first (and the `UPDATE` below, a new statement, sees it), or waits for
        // this transaction's commit (and its `Grant` event follows our `Token` event), as one
        // after the other in the memory store.
        sqlx::query(
            "SELECT 1 FROM grants \
             WHERE grant_id = (SELECT grant_id FROM access_tokens WHERE digest = $1) \
             FOR SHARE",
        )
        .bind(digest.as_bytes().as_slice())
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?;
        // As in the memory store, only a token that is not revoked yet — neither itself nor
        // through its grant (revoked, or gone) — is stamped and announced; the first revocation
        // time is kept (retention counts from it). A client deletion stamping this row
        // concurrently makes this `UPDATE` wait for it, re-check `revoked_at IS NULL` and match
        // nothing.
        let revoked: Option<(String, Option<String>)> = sqlx::query_as(
            "UPDATE access_tokens a SET revoked_at = $2 \
             WHERE a.digest = $1 AND a.revoked_at IS NULL \
               AND (a.grant_id IS NULL \
                    OR EXISTS (SELECT 1 FROM grants g \
                               WHERE g.grant_id = a.grant_id AND g.revoked_at IS NULL)) \
             RETURNING a.client_id, a.grant_id",
        )
        .bind(digest.as_bytes().as_slice())
        .bind(now)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?;
        let Some((client_id, grant_id)) = revoked else {
            // Unknown or already revoked: nothing written, nothing announced.
            tx.rollback().await.map_err(db_err)?;
            return Ok(());
        };
        let event = NewRevocation {
            kind: RevocationKind::Token,
            client_id,
            token: Some(*digest),
            grant_id,
            subject: None,
        };
        append_events(&mut tx, &[event], now).await?;
        tx.commit().await.map_err(db_err)
    }

    async fn revoke_grant(&self, grant_id: &str, now: Timestamp) -> Result<bool, StoreError> {
        if unstorable(grant_id) {
            return Ok(false);
        }
        let mut tx = self.begin().await?;
        let events = revoke_grants_where(&mut tx, "grant_id = $1", &[grant_id], now).await?;
        // The feed last: the grant and its tokens are locked and stamped already.
        append_events(&mut tx, &events, now).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(!events.is_empty())
    }

    async fn revocation_events(&self, after: u64, limit: u32) -> Result<FeedPage, StoreError> {
        read_page(&self.pool, after, limit).await
    }
}

impl AdminStore for PostgresStore {
    async fn create_client(&self, client: &Client) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO clients \
                 (client_id, name, secret_digest, grant_types, redirect_uris, scope, introspect, \
                  cors_origins, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(client.client_id.as_str())
        .bind(client.name.as_str())
        .bind(
            client
                .secret_digest
                .as_ref()
                .map(|d| d.as_bytes().as_slice()),
        )
        .bind(grant_type_names(client))
        .bind(client.redirect_uris.as_slice())
        .bind(client.scope.to_string())
        .bind(client.introspect)
        .bind(client.cors_origins.as_slice())
        .bind(client.created_at)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn list_clients(&self) -> Result<Vec<Client>, StoreError> {
        // `client_id` has the "C" collation: byte order, the order of Rust's `str::cmp`.
        let sql = format!("SELECT {CLIENT_COLUMNS} FROM clients ORDER BY client_id");
        sqlx::query_as::<_, ClientRow>(&sql)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?
            .into_iter()
            .map(Client::try_from)
            .collect()
    }

    async fn set_client_secret(
        &self,
        client_id: &str,
        digest: &TokenDigest,
    ) -> Result<bool, StoreError> {
        if unstorable(client_id) {
            return Ok(false);
        }
        let done = sqlx::query("UPDATE clients SET secret_digest = $2 WHERE client_id = $1")
            .bind(client_id)
            .bind(digest.as_bytes().as_slice())
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_client(
        &self,
        client_id: &str,
        now: Timestamp,
    ) -> Result<Option<u64>, StoreError> {
        if unstorable(client_id) {
            return Ok(None);
        }
        let mut tx = self.begin().await?;
        // Deleting the row locks it: a concurrent delete of the same id waits, then finds nothing.
        let deleted = sqlx::query("DELETE FROM clients WHERE client_id = $1")
            .bind(client_id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        if deleted.rows_affected() == 0 {
            tx.rollback().await.map_err(db_err)?;
            return Ok(None);
        }
        // Its remembered consents go with it: a client later registered under the same id must
        // ask the user again.
        sqlx::query("DELETE FROM consents WHERE client_id = $1")
            .bind(client_id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        // Its outstanding codes die with it: a client later registered under the same id must
        // not redeem them. (Used codes stay for reuse detection until purge.) This comes before
        // the grants: a redemption in flight holds its code's row lock, so we wait for it here,
        // and the grant it creates is committed — and revoked below — by the time we look for
        // the client's grants. Otherwise that grant could outlive its deleted client.
        sqlx::query("DELETE FROM authorization_codes WHERE client_id = $1 AND used_at IS NULL")
            .bind(client_id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        // The grants' own events are not announced: the one `Client` event below covers every
        // token issued to the client.
        let revoked = revoke_grants_where(&mut tx, "client_id = $1", &[client_id], now)
            .await?
            .len() as u64;
        // Its grant-less (client_credentials) access tokens end with it too.
        sqlx::query(
            "UPDATE access_tokens SET revoked_at = $1 WHERE client_id = $2 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(client_id)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        let event = NewRevocation {
            kind: RevocationKind::Client,
            client_id: client_id.to_owned(),
            token: None,
            grant_id: None,
            subject: None,
        };
        append_events(&mut tx, &[event], now).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(Some(revoked))
    }

    async fn create_user(&self, user: &User) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO users (username, password_hash, created_at) VALUES ($1, $2, $3)")
            .bind(user.username.as_str())
            .bind(user.password_hash.as_str())
            .bind(user.created_at)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn find_user(&self, username: &str) -> Result<Option<User>, StoreError> {
        if unstorable(username) {
            return Ok(None);
        }
        Ok(sqlx::query_as::<_, UserRow>(
            "SELECT username, password_hash, created_at FROM users WHERE username = $1",
        )
        .bind(username)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?
        .map(User::from))
    }

    async fn list_grants(&self, filter: &GrantFilter) -> Result<Vec<Grant>, StoreError> {
        if filter_unstorable(filter) {
            return Ok(Vec::new());
        }
        let (cond, args) = grant_filter_sql(filter, 1);
        let sql = format!(
            "SELECT {GRANT_COLUMNS} FROM grants WHERE {cond} ORDER BY created_at, grant_id"
        );
        let mut q = sqlx::query_as::<_, GrantRow>(&sql);
        for a in args {
            q = q.bind(a);
        }
        q.fetch_all(&self.pool)
            .await
            .map_err(db_err)?
            .into_iter()
            .map(Grant::try_from)
            .collect()
    }

    async fn revoke_grants(&self, filter: &GrantFilter, now: Timestamp) -> Result<u64, StoreError> {
        if filter_unstorable(filter) {
            return Ok(0);
        }
        let (cond, args) = grant_filter_sql(filter, 1);
        let mut tx = self.begin().await?;
        let events = revoke_grants_where(&mut tx, &cond, &args, now).await?;
        // One append for all of them, last: one `Grant` event per grant this call revoked.
        append_events(&mut tx, &events, now).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(events.len() as u64)
    }

    async fn purge(
        &self,
        now: Timestamp,
        policy: PurgePolicy,
        dry_run: bool,
    ) -> Result<PurgeCounts, StoreError> {
        let cutoff = now.saturating_sub(policy.revoked_retention);
        let event_cutoff = now.saturating_sub(policy.event_retention);
        if dry_run {
            return purge_counts(&self.pool, now, cutoff, event_cutoff).await;
        }
        // A batch of 0 would never finish; treat it as 1.
        let batch = policy.batch_size.max(1);
        let mut counts = PurgeCounts::default();
        // Every statement binds `$1` = now, `$2` = the retention cutoff, `$3` = the batch size;
        // each condition uses what it needs.
        for (table, dead, count) in [
            ("access_tokens", DEAD_TOKEN, &mut counts.access_tokens),
            // A used refresh token has no special case: it stays until it expires (or its
            // revocation ages out), since reuse detection needs it.
            ("refresh_tokens", DEAD_TOKEN, &mut counts.refresh_tokens),
            (
                "authorization_codes",
                DEAD_CODE,
                &mut counts.authorization_codes,
            ),
            ("sessions", DEAD_SESSION, &mut counts.sessions),
        ] {
            // SKIP LOCKED: another node purging takes other rows, never the same ones, and a
            // row a request is updating right now is left for the next purge. Dead rows never
            // come back to life, so a locked row is still dead when deleted.
            let sql = format!(
                "WITH batch AS (SELECT digest FROM {table} WHERE {dead} \
                                LIMIT $3 FOR UPDATE SKIP LOCKED) \
                 DELETE FROM {table} t USING batch WHERE t.digest = batch.digest"
            );
            *count = delete_in_batches(&self.pool, &sql, now, cutoff, batch).await?;
        }
        counts.grants = delete_tokenless_grants(&self.pool, batch).await?;
        counts.revocation_events = purge_events(&self.pool, event_cutoff, batch).await?;
        Ok(counts)
    }
}

/// A token row past its expiry (`$1` = now), or revoked before the retention cutoff (`$2`). A NULL
/// `revoked_at` makes the second comparison NULL, which `WHERE` treats as false.
const DEAD_TOKEN: &str = "(expires_at <= $1 OR revoked_at <= $2)";

/// An authorization code past its expiry by the retention (`$2` = the cutoff). A code is kept
/// that long after it expires, used or not, so that a late second use is still recognised as
/// reuse and revokes the grant of the first (RFC 6749 §4.1.2).
const DEAD_CODE: &str = "(expires_at <= $2)";

/// A browser session past its expiry (`$1` = now).
const DEAD_SESSION: &str = "(expires_at <= $1)";

/// Runs a batch `DELETE` (`$1` = now, `$2` = cutoff, `$3` = batch size) until it deletes fewer
/// than a full batch. Each batch is its own autocommit transaction, so locks are held for one
/// batch only and request-path writes interleave with a long purge.
async fn delete_in_batches(
    pool: &sqlx::PgPool,
    sql: &str,
    now: Timestamp,
    cutoff: Timestamp,
    batch: u32,
) -> Result<u64, StoreError> {
    let mut total = 0u64;
    loop {
        let deleted = sqlx::query(sql)
            .bind(now)
            .bind(cutoff)
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

/// Deletes the grants left without any token row, walking `grants` in key order one window of
/// `batch` grants per statement. A grant has no index saying "tokenless", so a `LIMIT` on the
/// matches could scan every live grant to fill one batch; a window bounds each statement's work
/// to `batch` grants and the whole walk to one pass. Within a window, the tokenless grants are
/// locked `FOR UPDATE SKIP LOCKED` before they are deleted: a grant another node is deleting, or
/// that a request has locked (a rotation, or the foreign-key check of a token being inserted into
/// it), is skipped.
async fn delete_tokenless_grants(pool: &sqlx::PgPool, batch: u32) -> Result<u64, StoreError> {
    // The first window starts at the smallest key inclusively (`>= ''`), the next ones after the
    // previous window's last key. Each statement returns where its window ended (NULL when it
    // was empty: the walk is over) and how many grants it deleted.
    let statement = |op: &str| {
        format!(
            "WITH w AS (SELECT grant_id FROM grants WHERE grant_id {op} $1 \
                        ORDER BY grant_id LIMIT $2), \
                  doomed AS (SELECT g.grant_id FROM grants g \
                             WHERE g.grant_id IN (SELECT grant_id FROM w) \
                               AND NOT EXISTS (SELECT 1 FROM access_tokens a \
                                               WHERE a.grant_id = g.grant_id) \
                               AND NOT EXISTS (SELECT 1 FROM refresh_tokens r \
                                               WHERE r.grant_id = g.grant_id) \
                             FOR UPDATE SKIP LOCKED), \
                  deleted AS (DELETE FROM grants USING doomed \
                              WHERE grants.grant_id = doomed.grant_id RETURNING 1) \
             SELECT (SELECT max(grant_id) FROM w), (SELECT count(*) FROM deleted)"
        )
    };
    let first = statement(">=");
    let next = statement(">");
    let mut cursor = String::new();
    let mut total = 0u64;
    for sql in std::iter::once(&first).chain(std::iter::repeat(&next)) {
        let (end, deleted): (Option<String>, i64) = sqlx::query_as(sql)
            .bind(cursor.as_str())
            .bind(i64::from(batch))
            .fetch_one(pool)
            .await
            .map_err(db_err)?;
        total = total.saturating_add(u64::try_from(deleted).unwrap_or(0));
        let Some(end) = end else {
            break;
        };
        cursor = end;
    }
    Ok(total)
}

/// What a purge would delete, counted in one statement (one snapshot) so the counts agree with
/// each other. A grant counts when none of its tokens would survive.
async fn purge_counts(
    pool: &sqlx::PgPool,
    now: Timestamp,
    cutoff: Timestamp,
    event_cutoff: Timestamp,
) -> Result<PurgeCounts, StoreError> {
    // The negation of DEAD_TOKEN written out, because NOT of a NULL comparison is NULL too.
    let live = |t: &str| {
        format!("{t}.expires_at > $1 AND ({t}.revoked_at IS NULL OR {t}.revoked_at > $2)")
    };
    let sql = format!(
        "SELECT \
           (SELECT count(*) FROM access_tokens WHERE {DEAD_TOKEN}), \
           (SELECT count(*) FROM refresh_tokens WHERE {DEAD_TOKEN}), \
           (SELECT count(*) FROM grants g \
            WHERE NOT EXISTS (SELECT 1 FROM access_tokens a WHERE a.grant_id = g.grant_id AND {}) \
              AND NOT EXISTS (SELECT 1 FROM refresh_tokens r WHERE r.grant_id = g.grant_id AND {})), \
           (SELECT count(*) FROM authorization_codes WHERE {DEAD_CODE}), \
           (SELECT count(*) FROM sessions WHERE {DEAD_SESSION}), \
           {}",
        live("a"),
        live("r"),
        count_purgeable_sql(3),
    );
    let (access, refresh, grants, codes, sessions, events): (i64, i64, i64, i64, i64, i64) =
        sqlx::query_as(&sql)
            .bind(now)
            .bind(cutoff)
            .bind(event_cutoff)
            .fetch_one(pool)
            .await
            .map_err(db_err)?;
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    Ok(PurgeCounts {
        access_tokens: count(access),
        refresh_tokens: count(refresh),
        grants: count(grants),
        authorization_codes: count(codes),
        sessions: count(sessions),
        revocation_events: count(events),
    })
}

impl AccountStore for PostgresStore {
    async fn create_session(&self, session: &Session) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sessions (digest, username, created_at, expires_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(session.digest.as_bytes().as_slice())
        .bind(session.username.as_str())
        .bind(session.created_at)
        .bind(session.expires_at)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn find_session(&self, digest: &TokenDigest) -> Result<Option<Session>, StoreError> {
        sqlx::query_as::<_, SessionRow>(
            "SELECT digest, username, created_at, expires_at FROM sessions WHERE digest = $1",
        )
        .bind(digest.as_bytes().as_slice())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?
        .map(Session::try_from)
        .transpose()
    }

    async fn delete_session(&self, digest: &TokenDigest) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sessions WHERE digest = $1")
            .bind(digest.as_bytes().as_slice())
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn find_consent(
        &self,
        username: &str,
        client_id: &str,
    ) -> Result<Option<Consent>, StoreError> {
        if unstorable(username) || unstorable(client_id) {
            return Ok(None);
        }
        sqlx::query_as::<_, ConsentRow>(
            "SELECT username, client_id, scope, granted_at FROM consents \
             WHERE username = $1 AND client_id = $2",
        )
        .bind(username)
        .bind(client_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?
        .map(Consent::try_from)
        .transpose()
    }

    async fn save_consent(&self, consent: &Consent) -> Result<(), StoreError> {
        // One upsert statement: a second consent for the same user and client replaces the first
        // (scope and time), as the memory store's map insert does; concurrent upserts from two
        // nodes do not fail, the last one wins.
        sqlx::query(
            "INSERT INTO consents (username, client_id, scope, granted_at) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (username, client_id) \
             DO UPDATE SET scope = EXCLUDED.scope, granted_at = EXCLUDED.granted_at",
        )
        .bind(consent.username.as_str())
        .bind(consent.client_id.as_str())
        .bind(consent.scope.to_string())
        .bind(consent.granted_at)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn delete_consent(&self, username: &str, client_id: &str) -> Result<(), StoreError> {
        if unstorable(username) || unstorable(client_id) {
            return Ok(());
        }
        sqlx::query("DELETE FROM consents WHERE username = $1 AND client_id = $2")
            .bind(username)
            .bind(client_id)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grant_filter_numbers_parameters_from_first() {
        let all = GrantFilter::default();
        let (sql, args) = grant_filter_sql(&all, 1);
        assert_eq!((sql.as_str(), args.len()), ("TRUE", 0));
        let f = GrantFilter {
            username: Some("alice".into()),
            client_id: Some("app".into()),
        };
        let (sql, args) = grant_filter_sql(&f, 2);
        assert_eq!(sql, "username = $2 AND client_id = $3");
        assert_eq!(args, ["alice", "app"]);
    }
}
