//! [`Store`], [`AdminStore`] and [`AccountStore`] for [`SqliteStore`]: one method per atomic
//! operation. A read runs on a read connection on the calling task; a write is one operation on
//! the writer thread, inside a group-commit transaction that rolls back whatever a failed
//! operation wrote (see the crate docs), so a multi-statement write is all-or-nothing exactly as
//! its own transaction was. The
//! semantics are the memory store's, which is the reference; the comments point out where SQL
//! needs care to match it.
//!
//! A write operation runs on another thread, after this call has returned to its executor, so it
//! owns what it binds: the records are turned into their column values (`*Columns`) here, on the
//! caller's thread, which also keeps that work off the single writer thread.

use std::sync::Arc;

use rusqlite::{params, Connection, OptionalExtension as _, ToSql};
use tokenwarden_core::clock::Timestamp;
use tokenwarden_core::crypto::TokenDigest;
use tokenwarden_core::feed::{FeedPage, NewRevocation, RevocationKind};
use tokenwarden_core::model::{
    AccessTokenRecord, AccessTokenState, AuthorizationCodeRecord, AuthorizationCodeState, Client,
    Consent, Grant, RefreshTokenRecord, RefreshTokenState, Session, User,
};
use tokenwarden_core::store::{
    AccountStore, AdminStore, FoundToken, GrantFilter, PurgeCounts, PurgePolicy, Redemption,
    Rotation, RotationInput, Store, StoreError,
};

use crate::rows::{
    client_json, AccessStateRow, AnyTokenRow, AuthorizationCodeRow, ClientRow, ConsentRow,
    GrantRow, RefreshStateRow, RevocationEventRow, SessionRow, UserRow, ACCESS_STATE_SELECT,
    ANY_TOKEN_SELECT, AUTHORIZATION_CODE_SELECT, CLIENT_LIST, CONSENT_SELECT, GRANT_COLUMNS,
    REFRESH_STATE_SELECT, REVOCATION_EVENTS_AFTER, SESSION_SELECT, USER_SELECT,
};
use crate::{db_err, SqliteStore};

/// Runs a statement that returns no rows; the number of rows it changed.
fn execute(c: &Connection, sql: &str, params: impl rusqlite::Params) -> Result<usize, StoreError> {
    c.prepare_cached(sql)
        .and_then(|mut s| s.execute(params))
        .map_err(db_err)
}

/// Runs `f`'s reads in one read transaction (one snapshot). `BEGIN` and `COMMIT` go through the
/// statement cache: rusqlite's `Transaction` parses both anew each time, which was a tenth of the
/// server's CPU for a revocation of an unknown token (two lookups in one transaction). On an
/// error the transaction is rolled back; should that fail too, the connection is still in it,
/// and the read pool closes such a connection instead of keeping it.
fn read_transaction<T>(
    c: &Connection,
    f: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    execute(c, "BEGIN", [])?;
    match f(c) {
        Ok(value) => {
            execute(c, "COMMIT", [])?;
            Ok(value)
        }
        Err(e) => {
            let _ = execute(c, "ROLLBACK", []);
            Err(e)
        }
    }
}

/// Reads at most one row with `from_row` and converts it to its domain type.
fn query_one<R, T>(
    c: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    from_row: fn(&rusqlite::Row<'_>) -> rusqlite::Result<R>,
) -> Result<Option<T>, StoreError>
where
    T: TryFrom<R, Error = StoreError>,
{
    c.prepare_cached(sql)
        .and_then(|mut s| s.query_row(params, from_row).optional())
        .map_err(db_err)?
        .map(T::try_from)
        .transpose()
}

/// Reads every row with `from_row` and converts them to their domain type.
fn query_all<R, T>(
    c: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    from_row: fn(&rusqlite::Row<'_>) -> rusqlite::Result<R>,
) -> Result<Vec<T>, StoreError>
where
    T: TryFrom<R, Error = StoreError>,
{
    c.prepare_cached(sql)
        .and_then(|mut s| {
            s.query_map(params, from_row)?
                .collect::<rusqlite::Result<Vec<R>>>()
        })
        .map_err(db_err)?
        .into_iter()
        .map(T::try_from)
        .collect()
}

/// An access token's column values.
struct AccessColumns {
    digest: TokenDigest,
    grant_id: Option<String>,
    client_id: String,
    username: Option<String>,
    scope: String,
    issued_at: Timestamp,
    expires_at: Timestamp,
}

impl From<&AccessTokenRecord> for AccessColumns {
    fn from(t: &AccessTokenRecord) -> Self {
        AccessColumns {
            digest: t.digest,
            grant_id: t.grant_id.clone(),
            client_id: t.client_id.clone(),
            username: t.username.clone(),
            scope: t.scope.to_string(),
            issued_at: t.issued_at,
            expires_at: t.expires_at,
        }
    }
}

fn insert_access(c: &Connection, t: &AccessColumns) -> Result<(), StoreError> {
    execute(
        c,
        "INSERT INTO access_tokens \
             (digest, grant_id, client_id, username, scope, issued_at, expires_at, revoked_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, NULL)",
        params![
            t.digest.as_bytes(),
            t.grant_id,
            t.client_id,
            t.username,
            t.scope,
            t.issued_at,
            t.expires_at
        ],
    )
    .map(|_| ())
}

/// A refresh token's column values.
struct RefreshColumns {
    digest: TokenDigest,
    grant_id: String,
    client_id: String,
    username: String,
    scope: String,
    issued_at: Timestamp,
    expires_at: Timestamp,
}

impl From<&RefreshTokenRecord> for RefreshColumns {
    fn from(t: &RefreshTokenRecord) -> Self {
        RefreshColumns {
            digest: t.digest,
            grant_id: t.grant_id.clone(),
            client_id: t.client_id.clone(),
            username: t.username.clone(),
            scope: t.scope.to_string(),
            issued_at: t.issued_at,
            expires_at: t.expires_at,
        }
    }
}

fn insert_refresh(c: &Connection, t: &RefreshColumns) -> Result<(), StoreError> {
    execute(
        c,
        "INSERT INTO refresh_tokens \
             (digest, grant_id, client_id, username, scope, issued_at, expires_at, \
              used_at, sealed_successor, revoked_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, NULL, NULL, NULL)",
        params![
            t.digest.as_bytes(),
            t.grant_id,
            t.client_id,
            t.username,
            t.scope,
            t.issued_at,
            t.expires_at
        ],
    )
    .map(|_| ())
}

/// A grant's column values.
struct GrantColumns {
    grant_id: String,
    client_id: String,
    username: String,
    scope: String,
    created_at: Timestamp,
    last_refreshed_at: Option<Timestamp>,
    revoked_at: Option<Timestamp>,
}

impl From<&Grant> for GrantColumns {
    fn from(g: &Grant) -> Self {
        GrantColumns {
            grant_id: g.grant_id.clone(),
            client_id: g.client_id.clone(),
            username: g.username.clone(),
            scope: g.scope.to_string(),
            created_at: g.created_at,
            last_refreshed_at: g.last_refreshed_at,
            revoked_at: g.revoked_at,
        }
    }
}

/// A grant with its first tokens, as `create_grant` and `redeem_authorization_code` store it.
struct NewGrant {
    grant: GrantColumns,
    access: AccessColumns,
    refresh: Option<RefreshColumns>,
}

impl NewGrant {
    fn new(
        grant: &Grant,
        access: &AccessTokenRecord,
        refresh: Option<&RefreshTokenRecord>,
    ) -> Self {
        NewGrant {
            grant: grant.into(),
            access: access.into(),
            refresh: refresh.map(RefreshColumns::from),
        }
    }
}

/// Inserts a grant with its first access token and optional refresh token. The grant goes first:
/// the tokens' foreign keys name it. A digest or grant id that exists fails with `Conflict`, and
/// the writer's rollback of the failed operation takes back whatever was inserted.
fn insert_grant_with_tokens(c: &Connection, new: &NewGrant) -> Result<(), StoreError> {
    let g = &new.grant;
    execute(
        c,
        "INSERT INTO grants \
             (grant_id, client_id, username, scope, created_at, last_refreshed_at, revoked_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            g.grant_id,
            g.client_id,
            g.username,
            g.scope,
            g.created_at,
            g.last_refreshed_at,
            g.revoked_at
        ],
    )?;
    insert_access(c, &new.access)?;
    if let Some(r) = &new.refresh {
        insert_refresh(c, r)?;
    }
    Ok(())
}

fn authorization_code(
    c: &Connection,
    digest: &TokenDigest,
) -> Result<Option<AuthorizationCodeState>, StoreError> {
    query_one(
        c,
        AUTHORIZATION_CODE_SELECT,
        [digest.as_bytes()],
        AuthorizationCodeRow::from_row,
    )
}

/// An access token's state, straight from the database (the cache in `tokens.rs` is for
/// `find_access_token`).
pub(crate) fn access_state(
    c: &Connection,
    digest: &TokenDigest,
) -> Result<Option<AccessTokenState>, StoreError> {
    c.prepare_cached(ACCESS_STATE_SELECT)
        .and_then(|mut s| {
            s.query_row([digest.as_bytes()], AccessStateRow::from_row)
                .optional()
        })
        .map_err(db_err)?
        .map(|row| row.into_state(*digest))
        .transpose()
}

fn refresh_state(
    c: &Connection,
    digest: &TokenDigest,
) -> Result<Option<RefreshTokenState>, StoreError> {
    query_one(
        c,
        REFRESH_STATE_SELECT,
        [digest.as_bytes()],
        RefreshStateRow::from_row,
    )
}

/// A `WHERE` fragment over `grants` selecting what `filter` asks for, with its parameters numbered
/// from `?first`, and the values to bind in that order. Specific SQL per filter shape (rather than
/// `?n IS NULL OR column = ?n`) lets SQLite plan with the `grants_by_client`/`grants_by_user`
/// indexes: it plans before parameters are bound. (Each shape is one cached statement.)
fn grant_filter_sql(filter: &GrantFilter, first: usize) -> (String, Vec<String>) {
    let mut conds = Vec::new();
    let mut args = Vec::new();
    for (column, value) in [
        ("username", &filter.username),
        ("client_id", &filter.client_id),
    ] {
        if let Some(v) = value {
            conds.push(format!("{column} = ?{}", first + args.len()));
            args.push(v.clone());
        }
    }
    let sql = if conds.is_empty() {
        "1".to_owned()
    } else {
        conds.join(" AND ")
    };
    (sql, args)
}

/// A grant that [`revoke_grants_where`] found active and revoked: what its feed event names.
struct RevokedGrant {
    grant_id: String,
    client_id: String,
    username: String,
    created_at: Timestamp,
}

impl RevokedGrant {
    /// The grant's `Grant` event, as the memory store words it.
    fn event(self) -> NewRevocation {
        NewRevocation {
            kind: RevocationKind::Grant,
            client_id: self.client_id,
            token: None,
            grant_id: Some(self.grant_id),
            subject: Some(self.username),
        }
    }
}

/// Revokes the active grants selected by `cond` (a `WHERE` fragment over `grants` whose
/// parameters are `?2`… bound from `args`; `?1` is `now`) and every unrevoked token in them.
/// Returns the grants that were active before, oldest first (as `list_grants` orders them), so
/// the caller can announce them — or not: a deleted client is announced as one `Client` event.
/// Runs inside the caller's operation, and appends no event itself.
///
/// Tokens first, grants last: the token updates select the grants by `revoked_at IS NULL`, which
/// the final statement then makes false.
fn revoke_grants_where(
    c: &Connection,
    cond: &str,
    args: &[String],
    now: Timestamp,
) -> Result<Vec<RevokedGrant>, StoreError> {
    let mut bind: Vec<&dyn ToSql> = Vec::with_capacity(args.len() + 1);
    bind.push(&now);
    bind.extend(args.iter().map(|a| a as &dyn ToSql));
    let in_active_grants = format!(
        "grant_id IS NOT NULL AND grant_id IN \
         (SELECT grant_id FROM grants WHERE revoked_at IS NULL AND {cond})"
    );
    for table in ["access_tokens", "refresh_tokens"] {
        let sql = format!(
            "UPDATE {table} SET revoked_at = ?1 WHERE revoked_at IS NULL AND {in_active_grants}"
        );
        execute(c, &sql, bind.as_slice())?;
    }
    let sql = format!(
        "UPDATE grants SET revoked_at = ?1 WHERE revoked_at IS NULL AND {cond} \
         RETURNING grant_id, client_id, username, created_at"
    );
    let mut revoked = c
        .prepare_cached(&sql)
        .and_then(|mut s| {
            s.query_map(bind.as_slice(), |r| {
                Ok(RevokedGrant {
                    grant_id: r.get(0)?,
                    client_id: r.get(1)?,
                    username: r.get(2)?,
                    created_at: r.get(3)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(db_err)?;
    // RETURNING yields rows in no specified order; the feed gets them in a stable one.
    revoked.sort_by(|a, b| (a.created_at, &a.grant_id).cmp(&(b.created_at, &b.grant_id)));
    Ok(revoked)
}

/// A failure to write the feed is never the caller's `Conflict`: the counter row hands out each
/// number once, so a duplicate `seq` would mean a damaged database.
fn feed_err(e: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(format!("revocation feed: {e}"))
}

/// Appends `events` to the revocation feed, inside the revoking operation (so they commit, or
/// roll back, with the revocation itself). Called once per operation, as its last write, and
/// writes nothing when there is nothing to announce.
///
/// The counter row is raised by `n` and the events take the numbers `head - n + 1 ..= head`.
/// SQLite has one writer at a time (this store's writer thread, or another process holding the
/// write lock), so numbers are handed out in commit order; an operation or transaction that is
/// rolled back takes its numbers back with it. The sequence therefore has no gaps, and a reader
/// that has seen event `n` has seen every event before it.
fn append_events(
    c: &Connection,
    events: Vec<NewRevocation>,
    now: Timestamp,
) -> Result<(), StoreError> {
    let n = i64::try_from(events.len())
        .map_err(|_| StoreError::Unavailable("revocation feed: too many events".into()))?;
    if n == 0 {
        return Ok(());
    }
    let head: i64 = c
        .prepare_cached("UPDATE revocation_feed SET head = head + ?1 WHERE id = 1 RETURNING head")
        .and_then(|mut s| s.query_row([n], |r| r.get(0)))
        .map_err(feed_err)?;
    let mut insert = c
        .prepare_cached(
            "INSERT INTO revocation_events \
                 (seq, at, kind, client_id, token_digest, grant_id, subject) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .map_err(feed_err)?;
    for (seq, e) in (head - n + 1..).zip(events) {
        insert
            .execute(params![
                seq,
                now,
                e.kind.as_str(),
                e.client_id,
                e.token.as_ref().map(TokenDigest::as_bytes),
                e.grant_id,
                e.subject
            ])
            .map_err(feed_err)?;
    }
    Ok(())
}

/// Revokes the grants selected as by [`revoke_grants_where`] and announces each with a `Grant`
/// event; returns how many there were.
fn revoke_and_announce_grants(
    c: &Connection,
    cond: &str,
    args: &[String],
    now: Timestamp,
) -> Result<usize, StoreError> {
    let revoked = revoke_grants_where(c, cond, args, now)?;
    let n = revoked.len();
    append_events(
        c,
        revoked.into_iter().map(RevokedGrant::event).collect(),
        now,
    )?;
    Ok(n)
}

fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

impl Store for SqliteStore {
    async fn find_client(&self, client_id: &str) -> Result<Option<Client>, StoreError> {
        // From memory (`clients.rs`): a change made through this store is seen at once, one made
        // by another process within `CLIENT_CACHE_WINDOW`.
        self.check_open()?;
        self.inner
            .clients
            .find(client_id, |load| self.read(|c| load(c)))
    }

    async fn insert_access_token(&self, token: &AccessTokenRecord) -> Result<(), StoreError> {
        let row = AccessColumns::from(token);
        // A client-credentials token: losing it to a power cut fails closed (see "Durability").
        self.write_issuance(move |c| insert_access(c, &row)).await
    }

    async fn create_grant(
        &self,
        grant: &Grant,
        access: &AccessTokenRecord,
        refresh: Option<&RefreshTokenRecord>,
    ) -> Result<(), StoreError> {
        let new = NewGrant::new(grant, access, refresh);
        // On an error the writer rolls the operation back: a grant is never half-created.
        self.write(move |c| insert_grant_with_tokens(c, &new)).await
    }

    async fn find_access_token(
        &self,
        digest: &TokenDigest,
    ) -> Result<Option<AccessTokenState>, StoreError> {
        // From memory while no revocation came (`tokens.rs`): one made through this store is
        // seen at once, one made by another process within the window.
        self.check_open()?;
        self.inner
            .tokens
            .find(digest, |load| self.read(|c| load(c)))
    }

    async fn find_refresh_token(
        &self,
        digest: &TokenDigest,
    ) -> Result<Option<RefreshTokenState>, StoreError> {
        self.read(|c| refresh_state(c, digest))
    }

    async fn find_any_token(&self, digest: &TokenDigest) -> Result<FoundToken, StoreError> {
        // Both lookups in one statement (`ANY_TOKEN_SELECT`), so in one read transaction: each
        // transaction costs two `fcntl` calls (a shared lock taken and released), as much as the
        // lookups themselves.
        let row = self.read(|c| {
            c.prepare_cached(ANY_TOKEN_SELECT)
                .and_then(|mut s| {
                    s.query_row([digest.as_bytes()], AnyTokenRow::from_row)
                        .optional()
                })
                .map_err(db_err)
        })?;
        Ok(match row {
            Some(AnyTokenRow::Access(row)) => FoundToken::Access(row.into_state(*digest)?),
            Some(AnyTokenRow::Refresh(row)) => FoundToken::Refresh(row.try_into()?),
            None => FoundToken::Neither,
        })
    }

    async fn rotate_refresh_token(
        &self,
        old: &TokenDigest,
        new: &RotationInput,
        now: Timestamp,
    ) -> Result<Rotation, StoreError> {
        let old = *old;
        let access = AccessColumns::from(&new.access);
        let refresh = RefreshColumns::from(&new.refresh);
        let sealed = new.sealed_response.clone();
        self.write(move |c| {
            // The compare-and-set (RFC 9700 §4.14.2: a refresh token is exchanged at most once).
            // Its WHERE is exactly `RefreshTokenState::is_active` with the grant folded in, so "no
            // row updated" means the state read below is inactive.
            let grant_id: Option<String> = c
                .prepare_cached(
                    "UPDATE refresh_tokens SET used_at = ?2, sealed_successor = ?3 \
                     WHERE digest = ?1 AND used_at IS NULL AND revoked_at IS NULL \
                       AND ?2 < expires_at \
                       AND EXISTS (SELECT 1 FROM grants g WHERE g.grant_id = refresh_tokens.grant_id \
                                   AND g.revoked_at IS NULL) \
                     RETURNING grant_id",
                )
                .and_then(|mut s| {
                    s.query_row(params![old.as_bytes(), now, sealed], |r| r.get(0))
                        .optional()
                })
                .map_err(db_err)?;

            let Some(grant_id) = grant_id else {
                // Lost the race, or never eligible: report the state as the writer sees it, so
                // the caller can tell a grace-window retry from reuse.
                let state = refresh_state(c, &old)?;
                return Ok(state.map_or(Rotation::Unknown, Rotation::NotRotated));
            };

            insert_refresh(c, &refresh)?;
            insert_access(c, &access)?;
            execute(
                c,
                "UPDATE grants SET last_refreshed_at = ?1 WHERE grant_id = ?2",
                params![now, grant_id],
            )?;
            Ok(Rotation::Rotated)
        })
        .await
    }

    async fn insert_authorization_code(
        &self,
        code: &AuthorizationCodeRecord,
    ) -> Result<(), StoreError> {
        let digest = code.digest;
        let client_id = code.client_id.clone();
        let username = code.username.clone();
        let redirect_uri = code.redirect_uri.clone();
        let redirect_uri_given = code.redirect_uri_given;
        let scope = code.scope.to_string();
        let code_challenge = code.code_challenge.clone();
        let (issued_at, expires_at) = (code.issued_at, code.expires_at);
        // One statement; a digest that exists is `Conflict`.
        self.write(move |c| {
            execute(
                c,
                "INSERT INTO authorization_codes \
                     (digest, client_id, username, redirect_uri, redirect_uri_given, scope, \
                      code_challenge, issued_at, expires_at, used_at, grant_id) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, NULL, NULL)",
                params![
                    digest.as_bytes(),
                    client_id,
                    username,
                    redirect_uri,
                    redirect_uri_given,
                    scope,
                    code_challenge,
                    issued_at,
                    expires_at
                ],
            )
            .map(|_| ())
        })
        .await
    }

    async fn find_authorization_code(
        &self,
        digest: &TokenDigest,
    ) -> Result<Option<AuthorizationCodeState>, StoreError> {
        self.read(|c| authorization_code(c, digest))
    }

    async fn redeem_authorization_code(
        &self,
        code: &TokenDigest,
        grant: &Grant,
        access: &AccessTokenRecord,
        refresh: Option<&RefreshTokenRecord>,
        now: Timestamp,
    ) -> Result<Redemption, StoreError> {
        let code = *code;
        let new = NewGrant::new(grant, access, refresh);
        self.write(move |c| {
            // The compare-and-set (RFC 6749 §4.1.2: "The client MUST NOT use the authorization
            // code more than once"). Of concurrent redemptions only the first the writer runs
            // matches `used_at IS NULL`.
            let marked = execute(
                c,
                "UPDATE authorization_codes SET used_at = ?2, grant_id = ?3 \
                 WHERE digest = ?1 AND used_at IS NULL AND ?2 < expires_at",
                params![code.as_bytes(), now, new.grant.grant_id],
            )?;
            if marked == 0 {
                // Used already (or expired): report the grant of the first use, as the writer
                // sees it, so the caller can revoke it.
                let state = authorization_code(c, &code)?;
                return Ok(
                    state.map_or(Redemption::Unknown, |s| Redemption::AlreadyUsed {
                        grant_id: s.grant_id,
                    }),
                );
            }
            // A colliding grant id or token digest is `Conflict`; the rollback of the failed
            // operation then takes back the marking too, so the code stays redeemable, as in the memory store.
            insert_grant_with_tokens(c, &new)?;
            Ok(Redemption::Redeemed)
        })
        .await
    }

    async fn revoke_access_token(
        &self,
        digest: &TokenDigest,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let digest = *digest;
        self.write_revoking(move |c| {
            // Only a token still valid changes, and only then is there something to announce:
            // one revoked already (it keeps its first revocation time, which retention counts
            // from) or through its grant (revoked or gone) is left as it is, as in the memory
            // store, and an unknown digest matches nothing.
            let revoked: Option<(String, Option<String>)> = c
                .prepare_cached(
                    "UPDATE access_tokens SET revoked_at = ?2 \
                     WHERE digest = ?1 AND revoked_at IS NULL \
                       AND (grant_id IS NULL \
                            OR EXISTS (SELECT 1 FROM grants g \
                                       WHERE g.grant_id = access_tokens.grant_id \
                                         AND g.revoked_at IS NULL)) \
                     RETURNING client_id, grant_id",
                )
                .and_then(|mut s| {
                    s.query_row(params![digest.as_bytes(), now], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })
                    .optional()
                })
                .map_err(db_err)?;
            let events = revoked.map(|(client_id, grant_id)| NewRevocation {
                kind: RevocationKind::Token,
                client_id,
                token: Some(digest),
                grant_id,
                subject: None,
            });
            append_events(c, events.into_iter().collect(), now)
        })
        .await
    }

    async fn revoke_grant(&self, grant_id: &str, now: Timestamp) -> Result<bool, StoreError> {
        let args = [grant_id.to_owned()];
        self.write_revoking(move |c| {
            revoke_and_announce_grants(c, "grant_id = ?2", &args, now).map(|n| n > 0)
        })
        .await
    }

    async fn revocation_events(&self, after: u64, limit: u32) -> Result<FeedPage, StoreError> {
        // Sequence numbers are SQLite integers; a cursor past them has nothing after it.
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        self.read(|c| {
            // One read transaction: the events and the bounds come from the same snapshot (WAL
            // snapshot isolation), so `head` is never behind the events returned and `floor`
            // never ahead of a purge they miss. On the in-memory store's shared connection the
            // writer cannot run in between (it holds the connection for a whole batch).
            let ((head, floor), events): ((i64, i64), Vec<_>) = read_transaction(c, |c| {
                let bounds = c
                    .prepare_cached("SELECT head, floor FROM revocation_feed WHERE id = 1")
                    .and_then(|mut s| s.query_row([], |r| Ok((r.get(0)?, r.get(1)?))))
                    .map_err(db_err)?;
                let events = query_all(
                    c,
                    REVOCATION_EVENTS_AFTER,
                    params![after, i64::from(limit)],
                    RevocationEventRow::from_row,
                )?;
                Ok((bounds, events))
            })?;
            // Nobody may hear of a revocation (the feed publishes these events) while the token
            // cache could still answer "active" for it: a head newer than the cache's empties it
            // first. (A revocation by another process is otherwise seen by the cache only when
            // it next re-reads the head, up to its window later.)
            self.inner.tokens.observe_generation(head);
            let bound = |v: i64, column: &str| {
                u64::try_from(v).map_err(|_| {
                    StoreError::Unavailable(format!("corrupt row: revocation_feed.{column}"))
                })
            };
            Ok(FeedPage {
                events,
                head: bound(head, "head")?,
                floor: bound(floor, "floor")?,
            })
        })
    }
}

impl AdminStore for SqliteStore {
    async fn create_client(&self, client: &Client) -> Result<(), StoreError> {
        let (grant_types, redirect_uris, cors_origins) = client_json(client)?;
        let client_id = client.client_id.clone();
        let name = client.name.clone();
        let secret_digest = client.secret_digest;
        let scope = client.scope.to_string();
        let (introspect, created_at) = (client.introspect, client.created_at);
        let result = self
            .write(move |c| {
                execute(
                    c,
                    "INSERT INTO clients \
                     (client_id, name, secret_digest, grant_types, redirect_uris, scope, \
                      introspect, cors_origins, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    params![
                        client_id,
                        name,
                        secret_digest.as_ref().map(TokenDigest::as_bytes),
                        grant_types,
                        redirect_uris,
                        scope,
                        introspect,
                        cors_origins,
                        created_at
                    ],
                )
                .map(|_| ())
            })
            .await;
        self.inner.clients.invalidate();
        result
    }

    async fn list_clients(&self) -> Result<Vec<Client>, StoreError> {
        self.read(|c| query_all(c, CLIENT_LIST, [], ClientRow::from_row))
    }

    async fn set_client_secret(
        &self,
        client_id: &str,
        digest: &TokenDigest,
    ) -> Result<bool, StoreError> {
        let client_id = client_id.to_owned();
        let digest = *digest;
        let result = self
            .write(move |c| {
                execute(
                    c,
                    "UPDATE clients SET secret_digest = ?2 WHERE client_id = ?1",
                    params![client_id, digest.as_bytes()],
                )
                .map(|n| n > 0)
            })
            .await;
        self.inner.clients.invalidate();
        result
    }

    async fn delete_client(
        &self,
        client_id: &str,
        now: Timestamp,
    ) -> Result<Option<u64>, StoreError> {
        let args = [client_id.to_owned()];
        let result = self
            .write_revoking(move |c| {
                let [client_id] = &args;
                let deleted = execute(c, "DELETE FROM clients WHERE client_id = ?1", [client_id])?;
                if deleted == 0 {
                    return Ok(None);
                }
                // Its grants are revoked unannounced: the one `Client` event below covers them.
                let revoked = revoke_grants_where(c, "client_id = ?2", &args, now)?.len();
                // Its remembered consents go with it: a client later registered under the same id
                // must ask the user again.
                execute(c, "DELETE FROM consents WHERE client_id = ?1", [client_id])?;
                // Its outstanding codes die with it: a client later registered under the same id
                // must not redeem them. (Used codes stay for reuse detection until purge.)
                execute(
                    c,
                    "DELETE FROM authorization_codes WHERE client_id = ?1 AND used_at IS NULL",
                    [client_id],
                )?;
                // Its grant-less (client_credentials) access tokens end with it too.
                execute(
                    c,
                    "UPDATE access_tokens SET revoked_at = ?1 \
                 WHERE client_id = ?2 AND revoked_at IS NULL",
                    params![now, client_id],
                )?;
                let event = NewRevocation {
                    kind: RevocationKind::Client,
                    client_id: client_id.clone(),
                    token: None,
                    grant_id: None,
                    subject: None,
                };
                append_events(c, vec![event], now)?;
                Ok(Some(count(revoked)))
            })
            .await;
        // Cached clients are read again: this one is gone. (Its tokens left the token cache
        // on the writer thread, at the commit.)
        self.inner.clients.invalidate();
        result
    }

    async fn create_user(&self, user: &User) -> Result<(), StoreError> {
        let username = user.username.clone();
        let password_hash = user.password_hash.clone();
        let created_at = user.created_at;
        self.write(move |c| {
            execute(
                c,
                "INSERT INTO users (username, password_hash, created_at) VALUES (?1, ?2, ?3)",
                params![username, password_hash, created_at],
            )
            .map(|_| ())
        })
        .await
    }

    async fn find_user(&self, username: &str) -> Result<Option<User>, StoreError> {
        self.read(|c| {
            c.prepare_cached(USER_SELECT)
                .and_then(|mut s| s.query_row([username], UserRow::from_row).optional())
                .map_err(db_err)
        })
        .map(|row| row.map(User::from))
    }

    async fn list_grants(&self, filter: &GrantFilter) -> Result<Vec<Grant>, StoreError> {
        let (cond, args) = grant_filter_sql(filter, 1);
        let sql = format!(
            "SELECT {GRANT_COLUMNS} FROM grants WHERE {cond} ORDER BY created_at, grant_id"
        );
        self.read(|c| {
            query_all(
                c,
                &sql,
                rusqlite::params_from_iter(args.iter()),
                GrantRow::from_row,
            )
        })
    }

    async fn revoke_grants(&self, filter: &GrantFilter, now: Timestamp) -> Result<u64, StoreError> {
        let (cond, args) = grant_filter_sql(filter, 2);
        self.write_revoking(move |c| revoke_and_announce_grants(c, &cond, &args, now).map(count))
            .await
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
            return self.read(|c| purge_counts(c, now, cutoff, event_cutoff));
        }
        // A batch of 0 would never finish; treat it as 1.
        let batch = policy.batch_size.max(1);
        let mut counts = PurgeCounts::default();
        // Every statement binds `?1` = now, `?2` = the retention cutoff, `?3` = the batch size;
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
            let sql: Arc<str> = format!(
                "DELETE FROM {table} WHERE digest IN \
                 (SELECT digest FROM {table} WHERE {dead} LIMIT ?3)"
            )
            .into();
            *count = self.delete_in_batches(&sql, now, cutoff, batch).await?;
        }
        counts.grants = self.delete_tokenless_grants(batch).await?;
        counts.revocation_events = self.purge_revocation_events(event_cutoff, batch).await?;
        // Deleted tokens are unknown from now on, not "expired" from memory.
        self.inner.tokens.invalidate();
        Ok(counts)
    }
}

/// A token row past its expiry (`?1` = now), or revoked before the retention cutoff (`?2`). A NULL
/// `revoked_at` makes the second comparison NULL, which `WHERE` treats as false.
const DEAD_TOKEN: &str = "(expires_at <= ?1 OR revoked_at <= ?2)";

/// An authorization code past its expiry by the retention (`?2` = the cutoff). A code is kept
/// that long after it expires, used or not, so that a late second use is still recognised as
/// reuse and revokes the grant of the first (RFC 6749 §4.1.2).
const DEAD_CODE: &str = "(expires_at <= ?2)";

/// A browser session past its expiry (`?1` = now).
const DEAD_SESSION: &str = "(expires_at <= ?1)";

impl SqliteStore {
    /// Runs a `DELETE … LIMIT ?3` until it deletes fewer than a full batch, binding `?1` = `now`
    /// and `?2` = `bound` (the retention cutoff for rows, the last number to delete for feed
    /// events). Each batch is its own write operation, so the write lock is held for one batch at
    /// a time and request-path writes queued meanwhile go in between.
    async fn delete_in_batches(
        &self,
        sql: &Arc<str>,
        now: Timestamp,
        bound: i64,
        batch: u32,
    ) -> Result<u64, StoreError> {
        let mut total = 0u64;
        loop {
            let sql = Arc::clone(sql);
            let deleted = self
                .write(move |c| execute(c, &sql, params![now, bound, batch]))
                .await?;
            total = total.saturating_add(count(deleted));
            if count(deleted) < u64::from(batch) {
                return Ok(total);
            }
        }
    }

    /// Deletes the feed events older than `event_cutoff`: everything up to the newest event that
    /// old (so the floor is exact, as in the memory store), and raises the floor to it. Returns
    /// how many events went.
    ///
    /// The floor is raised first, in one operation with finding the bound, and the events are
    /// deleted after it in batches. A subscriber resuming meanwhile is therefore told to resync
    /// rather than resumed past events that are being deleted under it; one resuming at or above
    /// the floor still finds every event after its cursor. An interrupted purge leaves events
    /// at or below the floor, which nothing reads, and the next purge deletes them.
    async fn purge_revocation_events(
        &self,
        event_cutoff: Timestamp,
        batch: u32,
    ) -> Result<u64, StoreError> {
        let floor = self
            .write(move |c| {
                let through: Option<i64> = c
                    .prepare_cached("SELECT max(seq) FROM revocation_events WHERE at <= ?1")
                    .and_then(|mut s| s.query_row([event_cutoff], |r| r.get(0)))
                    .map_err(db_err)?;
                let Some(through) = through else {
                    return Ok(None);
                };
                c.prepare_cached(
                    "UPDATE revocation_feed SET floor = max(floor, ?1) WHERE id = 1 \
                     RETURNING floor",
                )
                .and_then(|mut s| s.query_row([through], |r| r.get(0)))
                .map(Some)
                .map_err(feed_err)
            })
            .await?;
        let Some(floor) = floor else {
            return Ok(0);
        };
        let sql: Arc<str> = "DELETE FROM revocation_events WHERE seq IN \
             (SELECT seq FROM revocation_events WHERE seq <= ?2 ORDER BY seq LIMIT ?3)"
            .into();
        // `?1` (now) is bound but unused here.
        self.delete_in_batches(&sql, 0, floor, batch).await
    }

    /// Deletes the grants left without any token row, walking `grants` in key order one window
    /// of `batch` grants per operation. A grant has no index saying "tokenless", so a `LIMIT` on
    /// the matches could scan every live grant, under the write lock, to fill one batch; a window
    /// bounds each operation's work to `batch` grants and the whole walk to one pass.
    async fn delete_tokenless_grants(&self, batch: u32) -> Result<u64, StoreError> {
        let mut cursor: Option<String> = None;
        let mut total = 0u64;
        loop {
            let after = cursor.clone();
            // Where this window ends, and the delete of exactly (cursor, end], in one operation.
            // The first window starts at the smallest key inclusively (`>= ''`).
            let step = self
                .write(move |c| {
                    let (op, from) = match &after {
                        Some(key) => (">", key.as_str()),
                        None => (">=", ""),
                    };
                    let end: Option<String> = c
                        .prepare_cached(&format!(
                            "SELECT max(grant_id) FROM (SELECT grant_id FROM grants \
                             WHERE grant_id {op} ?1 ORDER BY grant_id LIMIT ?2)"
                        ))
                        .and_then(|mut s| s.query_row(params![from, batch], |r| r.get(0)))
                        .map_err(db_err)?;
                    let Some(end) = end else {
                        return Ok(None);
                    };
                    let deleted = execute(
                        c,
                        &format!(
                            "DELETE FROM grants WHERE grant_id {op} ?1 AND grant_id <= ?2 \
                             AND NOT EXISTS (SELECT 1 FROM access_tokens a \
                                             WHERE a.grant_id = grants.grant_id) \
                             AND NOT EXISTS (SELECT 1 FROM refresh_tokens r \
                                             WHERE r.grant_id = grants.grant_id)"
                        ),
                        params![from, end],
                    )?;
                    Ok(Some((end, deleted)))
                })
                .await?;
            let Some((end, deleted)) = step else {
                return Ok(total);
            };
            total = total.saturating_add(count(deleted));
            cursor = Some(end);
        }
    }
}

/// What a purge would delete, counted in one statement (one read transaction) so the counts agree
/// with each other. A grant counts when none of its tokens would survive; a feed event when its
/// number is at most that of the newest event older than `event_cutoff`.
fn purge_counts(
    c: &Connection,
    now: Timestamp,
    cutoff: Timestamp,
    event_cutoff: Timestamp,
) -> Result<PurgeCounts, StoreError> {
    // The negation of DEAD_TOKEN written out, because NOT of a NULL comparison is NULL too.
    let live = |t: &str| {
        format!("{t}.expires_at > ?1 AND ({t}.revoked_at IS NULL OR {t}.revoked_at > ?2)")
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
           (SELECT count(*) FROM revocation_events \
            WHERE seq <= (SELECT max(seq) FROM revocation_events WHERE at <= ?3))",
        live("a"),
        live("r"),
    );
    let counts = c
        .prepare_cached(&sql)
        .and_then(|mut s| {
            s.query_row(params![now, cutoff, event_cutoff], |r| {
                Ok([
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ])
            })
        })
        .map_err(db_err)?;
    let [access, refresh, grants, codes, sessions, events] =
        counts.map(|n: i64| u64::try_from(n).unwrap_or(0));
    Ok(PurgeCounts {
        access_tokens: access,
        refresh_tokens: refresh,
        grants,
        authorization_codes: codes,
        sessions,
        revocation_events: events,
    })
}

impl AccountStore for SqliteStore {
    async fn create_session(&self, session: &Session) -> Result<(), StoreError> {
        let digest = session.digest;
        let username = session.username.clone();
        let (created_at, expires_at) = (session.created_at, session.expires_at);
        self.write(move |c| {
            execute(
                c,
                "INSERT INTO sessions (digest, username, created_at, expires_at) \
                 VALUES (?1, ?2, ?3, ?4)",
                params![digest.as_bytes(), username, created_at, expires_at],
            )
            .map(|_| ())
        })
        .await
    }

    async fn find_session(&self, digest: &TokenDigest) -> Result<Option<Session>, StoreError> {
        self.read(|c| query_one(c, SESSION_SELECT, [digest.as_bytes()], SessionRow::from_row))
    }

    async fn delete_session(&self, digest: &TokenDigest) -> Result<(), StoreError> {
        let digest = *digest;
        self.write(move |c| {
            execute(
                c,
                "DELETE FROM sessions WHERE digest = ?1",
                [digest.as_bytes()],
            )
            .map(|_| ())
        })
        .await
    }

    async fn find_consent(
        &self,
        username: &str,
        client_id: &str,
    ) -> Result<Option<Consent>, StoreError> {
        self.read(|c| {
            query_one(
                c,
                CONSENT_SELECT,
                [username, client_id],
                ConsentRow::from_row,
            )
        })
    }

    async fn save_consent(&self, consent: &Consent) -> Result<(), StoreError> {
        let username = consent.username.clone();
        let client_id = consent.client_id.clone();
        let scope = consent.scope.to_string();
        let granted_at = consent.granted_at;
        // One upsert statement: a second consent for the same user and client replaces the first
        // (scope and time), as the memory store's map insert does.
        self.write(move |c| {
            execute(
                c,
                "INSERT INTO consents (username, client_id, scope, granted_at) \
                 VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (username, client_id) \
                 DO UPDATE SET scope = excluded.scope, granted_at = excluded.granted_at",
                params![username, client_id, scope, granted_at],
            )
            .map(|_| ())
        })
        .await
    }

    async fn delete_consent(&self, username: &str, client_id: &str) -> Result<(), StoreError> {
        let username = username.to_owned();
        let client_id = client_id.to_owned();
        self.write(move |c| {
            execute(
                c,
                "DELETE FROM consents WHERE username = ?1 AND client_id = ?2",
                [&username, &client_id],
            )
            .map(|_| ())
        })
        .await
    }
}
