//! Storage traits: one method per atomic operation, each backend owning its transaction
//! (CONVENTIONS "Shape"). [`Store`] is what the endpoints need on the request path; [`AdminStore`]
//! adds what the admin CLI needs. Backends: [`memory::MemoryStore`] here, SQLite and PostgreSQL in
//! their own crates; the `tokenwarden-conformance` suite runs against each.
//!
//! Methods return `impl Future + Send` so a store can be used from any executor; this crate
//! depends on no async runtime.

use std::future::Future;
use std::sync::Arc;

use serde::Serialize;

use crate::clock::Timestamp;
use crate::crypto::TokenDigest;
use crate::feed::FeedPage;
use crate::model::{
    AccessTokenRecord, AccessTokenState, AuthorizationCodeRecord, AuthorizationCodeState, Client,
    Consent, Grant, RefreshTokenRecord, RefreshTokenState, Session, User,
};

pub mod memory;

/// A storage failure. The endpoints turn it into `503 temporarily_unavailable` (never a silent
/// success); the cause is for logs only.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend could not complete the operation (I/O, connection, corrupt row…).
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// A uniqueness constraint failed (client id or username taken).
    #[error("already exists")]
    Conflict,
}

/// The tokens minted for one successful refresh: stored together with the marking of the old
/// refresh token as used, in one atomic step.
#[derive(Debug, Clone)]
pub struct RotationInput {
    /// The new access token.
    pub access: AccessTokenRecord,
    /// The new refresh token (the old one's successor in the same grant).
    pub refresh: RefreshTokenRecord,
    /// The full token response, sealed under a key derived from the old refresh token.
    pub sealed_response: Vec<u8>,
}

/// Outcome of [`Store::rotate_refresh_token`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// The old token was current, unexpired and unrevoked; it is now used and the successor stored.
    Rotated,
    /// The compare-and-set failed: the old token was already used, revoked or expired. Carries the
    /// state read in the same transaction so the caller can tell a grace-window retry from reuse.
    NotRotated(RefreshTokenState),
    /// No such refresh token.
    Unknown,
}

/// Outcome of [`Store::redeem_authorization_code`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redemption {
    /// The code was unused and unexpired; it is now used and the grant with its tokens stored.
    Redeemed,
    /// The code was already used (or expired meanwhile); carries the grant created at its first
    /// use, if any, so the caller can revoke it.
    AlreadyUsed {
        /// Grant issued from the code's first use.
        grant_id: Option<String>,
    },
    /// No such code.
    Unknown,
}

/// Which grants an admin operation concerns. An empty filter matches every grant.
#[derive(Debug, Clone, Default)]
pub struct GrantFilter {
    /// Only this user's grants.
    pub username: Option<String>,
    /// Only this client's grants.
    pub client_id: Option<String>,
}

/// How long revoked rows are kept, and the batch size for deletions.
#[derive(Debug, Clone, Copy)]
pub struct PurgePolicy {
    /// Rows revoked longer ago than this are deleted (seconds).
    pub revoked_retention: i64,
    /// Rows deleted per statement, so a purge never holds the write lock for long. `0` is
    /// treated as `1`.
    pub batch_size: u32,
    /// Revocation-feed events older than this are deleted (seconds) and the feed's floor raised
    /// to the last one deleted. The server uses its longest token lifetime: a subscriber whose
    /// cursor is older holds nothing cached that could still be valid.
    pub event_retention: i64,
}

impl Default for PurgePolicy {
    fn default() -> Self {
        Self {
            revoked_retention: 24 * 3600,
            batch_size: 1000,
            event_retention: 60 * 24 * 3600,
        }
    }
}

/// What a purge deleted (or would delete, on a dry run).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PurgeCounts {
    /// Access tokens deleted.
    pub access_tokens: u64,
    /// Refresh tokens deleted.
    pub refresh_tokens: u64,
    /// Grants deleted.
    pub grants: u64,
    /// Authorization codes deleted (kept past expiry for the retention period, so a late second
    /// use is still detected as reuse).
    pub authorization_codes: u64,
    /// Expired browser sessions deleted.
    pub sessions: u64,
    /// Revocation-feed events deleted (older than the event retention).
    pub revocation_events: u64,
}

/// What [`Store::find_any_token`] found under a digest.
#[derive(Debug, Clone, PartialEq)]
pub enum FoundToken {
    /// An access token (revoked or not).
    Access(AccessTokenState),
    /// A refresh token (used, revoked or not).
    Refresh(RefreshTokenState),
    /// No token has that digest.
    Neither,
}

/// The request-path storage operations.
pub trait Store: Send + Sync {
    /// A client by `client_id`.
    fn find_client(
        &self,
        client_id: &str,
    ) -> impl Future<Output = Result<Option<Client>, StoreError>> + Send;

    /// Stores a grant-less access token (`client_credentials`). When this returns `Ok` the write
    /// is durable. Every token that names a grant must name an existing one.
    fn insert_access_token(
        &self,
        token: &AccessTokenRecord,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Creates a grant with its first access token and, optionally, its first refresh token —
    /// atomically.
    fn create_grant(
        &self,
        grant: &Grant,
        access: &AccessTokenRecord,
        refresh: Option<&RefreshTokenRecord>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// An access token by digest, with its revocation state (its own or its grant's).
    fn find_access_token(
        &self,
        digest: &TokenDigest,
    ) -> impl Future<Output = Result<Option<AccessTokenState>, StoreError>> + Send;

    /// A refresh token by digest, with its lifecycle state.
    fn find_refresh_token(
        &self,
        digest: &TokenDigest,
    ) -> impl Future<Output = Result<Option<RefreshTokenState>, StoreError>> + Send;

    /// A token of unknown type by digest, for revocation, which must search every type (RFC 7009
    /// §2.1): the access token with that digest, else the refresh token. A store that can reads
    /// both in one go (SQLite: one read transaction instead of two); the default asks one after
    /// the other.
    fn find_any_token(
        &self,
        digest: &TokenDigest,
    ) -> impl Future<Output = Result<FoundToken, StoreError>> + Send {
        async move {
            if let Some(access) = self.find_access_token(digest).await? {
                return Ok(FoundToken::Access(access));
            }
            Ok(match self.find_refresh_token(digest).await? {
                Some(refresh) => FoundToken::Refresh(refresh),
                None => FoundToken::Neither,
            })
        }
    }

    /// The refresh compare-and-set (RFC 9700 §4.14.2): if `old` is unused, unrevoked, its grant
    /// unrevoked and `now < expires_at`, mark it used at `now` with the sealed response, insert
    /// the new access and refresh tokens and stamp the grant's `last_refreshed_at` — all in one
    /// transaction. Of N concurrent calls with the same `old`, exactly one gets `Rotated`.
    fn rotate_refresh_token(
        &self,
        old: &TokenDigest,
        new: &RotationInput,
        now: Timestamp,
    ) -> impl Future<Output = Result<Rotation, StoreError>> + Send;

    /// Stores a new authorization code.
    fn insert_authorization_code(
        &self,
        code: &AuthorizationCodeRecord,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// An authorization code by digest, with its redemption state.
    fn find_authorization_code(
        &self,
        digest: &TokenDigest,
    ) -> impl Future<Output = Result<Option<AuthorizationCodeState>, StoreError>> + Send;

    /// The code compare-and-set: if the code is unused and `now < expires_at`, mark it used at
    /// `now`, record `grant.grant_id` on it and create the grant with its tokens — one
    /// transaction. Of N concurrent calls with the same code, exactly one gets `Redeemed`.
    fn redeem_authorization_code(
        &self,
        code: &TokenDigest,
        grant: &Grant,
        access: &AccessTokenRecord,
        refresh: Option<&RefreshTokenRecord>,
        now: Timestamp,
    ) -> impl Future<Output = Result<Redemption, StoreError>> + Send;

    /// Revokes one access token. Idempotent. When the token was not revoked before (neither it
    /// nor its grant), appends a `Token` event to the revocation feed in the same transaction.
    fn revoke_access_token(
        &self,
        digest: &TokenDigest,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Revokes a grant and with it every access and refresh token in it. Returns `true` when
    /// the grant was active before, and then appends a `Grant` event to the revocation feed in
    /// the same transaction. Idempotent.
    fn revoke_grant(
        &self,
        grant_id: &str,
        now: Timestamp,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// The revocation feed: events with `seq > after`, oldest first, at most `limit`, read in one
    /// snapshot together with the feed's `head` and `floor`.
    ///
    /// Every store assigns sequence numbers without gaps and in commit order (a counter row
    /// updated in the revoking transaction, which also serializes event writers), so a reader
    /// that has seen event `n` has seen every event before it. A transaction appends its events
    /// once, as its last write.
    fn revocation_events(
        &self,
        after: u64,
        limit: u32,
    ) -> impl Future<Output = Result<FeedPage, StoreError>> + Send;
}

/// Administration operations (the `tokenwarden client|user|grant|purge` commands).
pub trait AdminStore: Store {
    /// Registers a client; `Conflict` when the id is taken.
    fn create_client(&self, client: &Client)
        -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Every client, ordered by `client_id`.
    fn list_clients(&self) -> impl Future<Output = Result<Vec<Client>, StoreError>> + Send;
    /// Replaces a client's secret digest; `false` when there is no such client.
    fn set_client_secret(
        &self,
        client_id: &str,
        digest: &TokenDigest,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Deletes a client after revoking all its grants and tokens, deleting its unused
    /// authorization codes and its remembered consents, atomically, and appends one `Client`
    /// event to the revocation feed. Returns the number of grants revoked, or `None` when there
    /// is no such client.
    fn delete_client(
        &self,
        client_id: &str,
        now: Timestamp,
    ) -> impl Future<Output = Result<Option<u64>, StoreError>> + Send;
    /// Creates a user; `Conflict` when the name is taken.
    fn create_user(&self, user: &User) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// A user by name.
    fn find_user(
        &self,
        username: &str,
    ) -> impl Future<Output = Result<Option<User>, StoreError>> + Send;
    /// Grants matching the filter, oldest first.
    fn list_grants(
        &self,
        filter: &GrantFilter,
    ) -> impl Future<Output = Result<Vec<Grant>, StoreError>> + Send;
    /// Revokes every active grant matching the filter; returns how many. Appends one `Grant`
    /// event per grant revoked, in the same transaction.
    fn revoke_grants(
        &self,
        filter: &GrantFilter,
        now: Timestamp,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
    /// Deletes, in batches, access tokens past expiry, refresh tokens past expiry (a used refresh
    /// token is kept until then: reuse detection needs it), rows revoked longer ago than the
    /// retention, grants left without tokens, authorization codes whose expiry is older than the
    /// retention (kept that long so a late second use is still detected as reuse) and sessions
    /// past expiry, and revocation-feed events older than `policy.event_retention` (raising the
    /// feed's floor). `dry_run` counts without deleting.
    fn purge(
        &self,
        now: Timestamp,
        policy: PurgePolicy,
        dry_run: bool,
    ) -> impl Future<Output = Result<PurgeCounts, StoreError>> + Send;
}

/// Browser sessions and remembered consents (the login, consent and account pages).
pub trait AccountStore: AdminStore {
    /// Stores a new session.
    fn create_session(
        &self,
        session: &Session,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// A session by digest (expired ones too; the caller checks `expires_at`).
    fn find_session(
        &self,
        digest: &TokenDigest,
    ) -> impl Future<Output = Result<Option<Session>, StoreError>> + Send;
    /// Ends a session. Idempotent.
    fn delete_session(
        &self,
        digest: &TokenDigest,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The consent a user gave a client, if any.
    fn find_consent(
        &self,
        username: &str,
        client_id: &str,
    ) -> impl Future<Output = Result<Option<Consent>, StoreError>> + Send;
    /// Records (or replaces) a consent.
    fn save_consent(
        &self,
        consent: &Consent,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Forgets a consent (after "Revoke access", the next authorization asks again). Idempotent.
    fn delete_consent(
        &self,
        username: &str,
        client_id: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

impl<S: Store + ?Sized> Store for Arc<S> {
    fn find_client(
        &self,
        client_id: &str,
    ) -> impl Future<Output = Result<Option<Client>, StoreError>> + Send {
        (**self).find_client(client_id)
    }
    fn insert_access_token(
        &self,
        token: &AccessTokenRecord,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).insert_access_token(token)
    }
    fn create_grant(
        &self,
        grant: &Grant,
        access: &AccessTokenRecord,
        refresh: Option<&RefreshTokenRecord>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).create_grant(grant, access, refresh)
    }
    fn find_access_token(
        &self,
        digest: &TokenDigest,
    ) -> impl Future<Output = Result<Option<AccessTokenState>, StoreError>> + Send {
        (**self).find_access_token(digest)
    }
    fn find_refresh_token(
        &self,
        digest: &TokenDigest,
    ) -> impl Future<Output = Result<Option<RefreshTokenState>, StoreError>> + Send {
        (**self).find_refresh_token(digest)
    }
    fn find_any_token(
        &self,
        digest: &TokenDigest,
    ) -> impl Future<Output = Result<FoundToken, StoreError>> + Send {
        (**self).find_any_token(digest)
    }
    fn rotate_refresh_token(
        &self,
        old: &TokenDigest,
        new: &RotationInput,
        now: Timestamp,
    ) -> impl Future<Output = Result<Rotation, StoreError>> + Send {
        (**self).rotate_refresh_token(old, new, now)
    }
    fn insert_authorization_code(
        &self,
        code: &AuthorizationCodeRecord,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).insert_authorization_code(code)
    }
    fn find_authorization_code(
        &self,
        digest: &TokenDigest,
    ) -> impl Future<Output = Result<Option<AuthorizationCodeState>, StoreError>> + Send {
        (**self).find_authorization_code(digest)
    }
    fn redeem_authorization_code(
        &self,
        code: &TokenDigest,
        grant: &Grant,
        access: &AccessTokenRecord,
        refresh: Option<&RefreshTokenRecord>,
        now: Timestamp,
    ) -> impl Future<Output = Result<Redemption, StoreError>> + Send {
        (**self).redeem_authorization_code(code, grant, access, refresh, now)
    }
    fn revoke_access_token(
        &self,
        digest: &TokenDigest,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).revoke_access_token(digest, now)
    }
    fn revoke_grant(
        &self,
        grant_id: &str,
        now: Timestamp,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        (**self).revoke_grant(grant_id, now)
    }
    fn revocation_events(
        &self,
        after: u64,
        limit: u32,
    ) -> impl Future<Output = Result<FeedPage, StoreError>> + Send {
        (**self).revocation_events(after, limit)
    }
}
