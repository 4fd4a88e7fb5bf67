//! Rows as SQLite returns them, and their checked conversion into the domain types.
//!
//! Columns are read into plain types first and parsed afterwards (CONVENTIONS §6), so a corrupt
//! row — a digest that is not 32 bytes, a scope that is not RFC 6749 §3.3 syntax, unreadable JSON,
//! a column of the wrong SQLite type — becomes `StoreError::Unavailable`, never a panic and never a
//! half-valid value. Each row type names its columns once, in its `COLUMNS` list, and reads them by
//! position in that order (`Row::get` checks the type and never panics).

use rusqlite::Row;
use tokenwarden_core::crypto::TokenDigest;
use tokenwarden_core::feed::{RevocationEvent, RevocationKind};
use tokenwarden_core::model::{
    AccessTokenRecord, AccessTokenState, AuthorizationCodeRecord, AuthorizationCodeState, Client,
    Consent, Grant, GrantType, RefreshTokenRecord, RefreshTokenState, Scope, Session, User,
};
use tokenwarden_core::store::StoreError;

fn corrupt(what: &str) -> StoreError {
    StoreError::Unavailable(format!("corrupt row: {what}"))
}

/// A stored digest back into a [`TokenDigest`].
pub(crate) fn digest(bytes: &[u8], column: &str) -> Result<TokenDigest, StoreError> {
    TokenDigest::from_slice(bytes).ok_or_else(|| corrupt(&format!("{column} is not 32 bytes")))
}

/// A stored scope string back into a [`Scope`].
pub(crate) fn scope(s: &str, column: &str) -> Result<Scope, StoreError> {
    Scope::parse(s).map_err(|_| corrupt(&format!("{column} is not a valid scope")))
}

/// A client's list fields as their JSON column values: `(grant_types, redirect_uris,
/// cors_origins)`.
pub(crate) fn client_json(client: &Client) -> Result<(String, String, String), StoreError> {
    let encode = |r: serde_json::Result<String>| {
        r.map_err(|e| StoreError::Unavailable(format!("cannot encode client lists: {e}")))
    };
    Ok((
        encode(serde_json::to_string(&client.grant_types))?,
        encode(serde_json::to_string(&client.redirect_uris))?,
        encode(serde_json::to_string(&client.cors_origins))?,
    ))
}

fn strings_from_json(s: &str, column: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(s).map_err(|_| corrupt(&format!("{column} is not a JSON string array")))
}

fn grant_types_from_json(s: &str, column: &str) -> Result<Vec<GrantType>, StoreError> {
    serde_json::from_str(s)
        .map_err(|_| corrupt(&format!("{column} is not a JSON grant type array")))
}

/// `clients` as stored.
pub(crate) struct ClientRow {
    client_id: String,
    name: String,
    secret_digest: Option<Vec<u8>>,
    grant_types: String,
    redirect_uris: String,
    scope: String,
    introspect: bool,
    cors_origins: String,
    created_at: i64,
}

impl TryFrom<ClientRow> for Client {
    type Error = StoreError;
    fn try_from(r: ClientRow) -> Result<Self, StoreError> {
        Ok(Client {
            secret_digest: r
                .secret_digest
                .as_deref()
                .map(|d| digest(d, "clients.secret_digest"))
                .transpose()?,
            grant_types: grant_types_from_json(&r.grant_types, "clients.grant_types")?,
            redirect_uris: strings_from_json(&r.redirect_uris, "clients.redirect_uris")?,
            scope: scope(&r.scope, "clients.scope")?,
            introspect: r.introspect,
            cors_origins: strings_from_json(&r.cors_origins, "clients.cors_origins")?,
            created_at: r.created_at,
            client_id: r.client_id,
            name: r.name,
        })
    }
}

/// `users` as stored.
pub(crate) struct UserRow {
    username: String,
    password_hash: String,
    created_at: i64,
}

impl From<UserRow> for User {
    fn from(r: UserRow) -> Self {
        User {
            username: r.username,
            password_hash: r.password_hash,
            created_at: r.created_at,
        }
    }
}

/// `grants` as stored.
pub(crate) struct GrantRow {
    grant_id: String,
    client_id: String,
    username: String,
    scope: String,
    created_at: i64,
    last_refreshed_at: Option<i64>,
    revoked_at: Option<i64>,
}

impl TryFrom<GrantRow> for Grant {
    type Error = StoreError;
    fn try_from(r: GrantRow) -> Result<Self, StoreError> {
        Ok(Grant {
            scope: scope(&r.scope, "grants.scope")?,
            grant_id: r.grant_id,
            client_id: r.client_id,
            username: r.username,
            created_at: r.created_at,
            last_refreshed_at: r.last_refreshed_at,
            revoked_at: r.revoked_at,
        })
    }
}

/// An `access_tokens` row joined with its grant's revocation ([`ACCESS_STATE_SELECT`]). The
/// digest is not read back: the row was found by it.
pub(crate) struct AccessStateRow {
    grant_id: Option<String>,
    client_id: String,
    username: Option<String>,
    scope: String,
    issued_at: i64,
    expires_at: i64,
    revoked: bool,
}

/// Selects an access token with `revoked` folding in its grant's revocation, as the memory store
/// does: revoked itself, or it belongs to a grant that is revoked or no longer exists.
pub(crate) const ACCESS_STATE_SELECT: &str = "\
    SELECT a.grant_id, a.client_id, a.username, a.scope, a.issued_at, a.expires_at, \
           (a.revoked_at IS NOT NULL \
            OR (a.grant_id IS NOT NULL AND (g.grant_id IS NULL OR g.revoked_at IS NOT NULL))) \
           AS revoked \
    FROM access_tokens a LEFT JOIN grants g ON g.grant_id = a.grant_id \
    WHERE a.digest = ?1";

impl AccessStateRow {
    /// The state of the token whose digest is `digest` (the key it was selected by).
    pub(crate) fn into_state(self, digest: TokenDigest) -> Result<AccessTokenState, StoreError> {
        let r = self;
        Ok(AccessTokenState {
            record: AccessTokenRecord {
                digest,
                scope: scope(&r.scope, "access_tokens.scope")?,
                grant_id: r.grant_id,
                client_id: r.client_id,
                username: r.username,
                issued_at: r.issued_at,
                expires_at: r.expires_at,
            },
            revoked: r.revoked,
        })
    }
}

/// A `refresh_tokens` row joined with its grant's revocation ([`REFRESH_STATE_SELECT`]).
pub(crate) struct RefreshStateRow {
    digest: Vec<u8>,
    grant_id: String,
    client_id: String,
    username: String,
    scope: String,
    issued_at: i64,
    expires_at: i64,
    used_at: Option<i64>,
    sealed_successor: Option<Vec<u8>>,
    revoked: bool,
}

/// Selects a refresh token with `revoked` folding in its grant's revocation (a missing grant
/// counts as revoked, as in the memory store).
pub(crate) const REFRESH_STATE_SELECT: &str = "\
    SELECT r.digest, r.grant_id, r.client_id, r.username, r.scope, r.issued_at, r.expires_at, \
           r.used_at, r.sealed_successor, \
           (r.revoked_at IS NOT NULL OR g.grant_id IS NULL OR g.revoked_at IS NOT NULL) AS revoked \
    FROM refresh_tokens r LEFT JOIN grants g ON g.grant_id = r.grant_id \
    WHERE r.digest = ?1";

impl TryFrom<RefreshStateRow> for RefreshTokenState {
    type Error = StoreError;
    fn try_from(r: RefreshStateRow) -> Result<Self, StoreError> {
        Ok(RefreshTokenState {
            record: RefreshTokenRecord {
                digest: digest(&r.digest, "refresh_tokens.digest")?,
                scope: scope(&r.scope, "refresh_tokens.scope")?,
                grant_id: r.grant_id,
                client_id: r.client_id,
                username: r.username,
                issued_at: r.issued_at,
                expires_at: r.expires_at,
            },
            used_at: r.used_at,
            sealed_successor: r.sealed_successor,
            revoked: r.revoked,
        })
    }
}

/// `authorization_codes` as stored.
pub(crate) struct AuthorizationCodeRow {
    digest: Vec<u8>,
    client_id: String,
    username: String,
    redirect_uri: String,
    redirect_uri_given: bool,
    scope: String,
    code_challenge: Option<String>,
    issued_at: i64,
    expires_at: i64,
    used_at: Option<i64>,
    grant_id: Option<String>,
}

impl TryFrom<AuthorizationCodeRow> for AuthorizationCodeState {
    type Error = StoreError;
    fn try_from(r: AuthorizationCodeRow) -> Result<Self, StoreError> {
        Ok(AuthorizationCodeState {
            record: AuthorizationCodeRecord {
                digest: digest(&r.digest, "authorization_codes.digest")?,
                scope: scope(&r.scope, "authorization_codes.scope")?,
                client_id: r.client_id,
                username: r.username,
                redirect_uri: r.redirect_uri,
                redirect_uri_given: r.redirect_uri_given,
                code_challenge: r.code_challenge,
                issued_at: r.issued_at,
                expires_at: r.expires_at,
            },
            used_at: r.used_at,
            grant_id: r.grant_id,
        })
    }
}

/// `sessions` as stored.
pub(crate) struct SessionRow {
    digest: Vec<u8>,
    username: String,
    created_at: i64,
    expires_at: i64,
}

impl TryFrom<SessionRow> for Session {
    type Error = StoreError;
    fn try_from(r: SessionRow) -> Result<Self, StoreError> {
        Ok(Session {
            digest: digest(&r.digest, "sessions.digest")?,
            username: r.username,
            created_at: r.created_at,
            expires_at: r.expires_at,
        })
    }
}

/// `consents` as stored.
pub(crate) struct ConsentRow {
    username: String,
    client_id: String,
    scope: String,
    granted_at: i64,
}

impl TryFrom<ConsentRow> for Consent {
    type Error = StoreError;
    fn try_from(r: ConsentRow) -> Result<Self, StoreError> {
        Ok(Consent {
            scope: scope(&r.scope, "consents.scope")?,
            username: r.username,
            client_id: r.client_id,
            granted_at: r.granted_at,
        })
    }
}

/// `revocation_events` as stored.
pub(crate) struct RevocationEventRow {
    seq: i64,
    at: i64,
    kind: String,
    client_id: String,
    token_digest: Option<Vec<u8>>,
    grant_id: Option<String>,
    subject: Option<String>,
}

impl TryFrom<RevocationEventRow> for RevocationEvent {
    type Error = StoreError;
    fn try_from(r: RevocationEventRow) -> Result<Self, StoreError> {
        Ok(RevocationEvent {
            seq: u64::try_from(r.seq).map_err(|_| corrupt("revocation_events.seq is negative"))?,
            at: r.at,
            kind: RevocationKind::parse(&r.kind)
                .ok_or_else(|| corrupt("revocation_events.kind is not a known kind"))?,
            client_id: r.client_id,
            token: r
                .token_digest
                .as_deref()
                .map(|d| digest(d, "revocation_events.token_digest"))
                .transpose()?,
            grant_id: r.grant_id,
            subject: r.subject,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Reading rows. Every `SELECT` that feeds a row type lists the columns in the order `from_row`
// reads them; `Row::get` fails (never panics) on a missing column or a value of the wrong type.
// ---------------------------------------------------------------------------------------------

/// The columns of [`ClientRow`], in `from_row` order (a macro, so the statements below are
/// `concat!`-ed constants rather than strings formatted on every call).
macro_rules! client_columns {
    () => {
        "client_id, name, secret_digest, grant_types, redirect_uris, scope, introspect, \
         cors_origins, created_at"
    };
}

/// Selects every client, ordered by id. BINARY collation compares UTF-8 bytes, the order of
/// Rust's `str::cmp`.
pub(crate) const CLIENT_LIST: &str = concat!(
    "SELECT ",
    client_columns!(),
    " FROM clients ORDER BY client_id"
);

/// The generation of `clients` (migration 0004) and the client `?1`, in one statement so both
/// come from one snapshot; the client columns follow the generation, in [`ClientRow::from_row`]
/// order, and are all NULL when there is no such client.
pub(crate) const CLIENT_SELECT_WITH_GENERATION: &str = concat!(
    "SELECT g.generation, ",
    client_columns!(),
    " FROM client_changes g LEFT JOIN clients ON client_id = ?1 WHERE g.id = 1"
);

impl ClientRow {
    pub(crate) fn from_row(r: &Row<'_>) -> rusqlite::Result<Self> {
        Self::from_row_at(r, 0)
    }

    /// Reads the client columns starting at column `at`.
    pub(crate) fn from_row_at(r: &Row<'_>, at: usize) -> rusqlite::Result<Self> {
        Ok(Self {
            client_id: r.get(at)?,
            name: r.get(at + 1)?,
            secret_digest: r.get(at + 2)?,
            grant_types: r.get(at + 3)?,
            redirect_uris: r.get(at + 4)?,
            scope: r.get(at + 5)?,
            introspect: r.get(at + 6)?,
            cors_origins: r.get(at + 7)?,
            created_at: r.get(at + 8)?,
        })
    }
}

/// Selects a user by name (`?1`), in [`UserRow::from_row`] order.
pub(crate) const USER_SELECT: &str =
    "SELECT username, password_hash, created_at FROM users WHERE username = ?1";

impl UserRow {
    pub(crate) fn from_row(r: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            username: r.get(0)?,
            password_hash: r.get(1)?,
            created_at: r.get(2)?,
        })
    }
}

/// The columns of [`GrantRow`], in `from_row` order.
pub(crate) const GRANT_COLUMNS: &str =
    "grant_id, client_id, username, scope, created_at, last_refreshed_at, revoked_at";

impl GrantRow {
    pub(crate) fn from_row(r: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            grant_id: r.get(0)?,
            client_id: r.get(1)?,
            username: r.get(2)?,
            scope: r.get(3)?,
            created_at: r.get(4)?,
            last_refreshed_at: r.get(5)?,
            revoked_at: r.get(6)?,
        })
    }
}

impl AccessStateRow {
    /// Reads a row of [`ACCESS_STATE_SELECT`].
    pub(crate) fn from_row(r: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            grant_id: r.get(0)?,
            client_id: r.get(1)?,
            username: r.get(2)?,
            scope: r.get(3)?,
            issued_at: r.get(4)?,
            expires_at: r.get(5)?,
            revoked: r.get(6)?,
        })
    }
}

impl RefreshStateRow {
    /// Reads a row of [`REFRESH_STATE_SELECT`].
    pub(crate) fn from_row(r: &Row<'_>) -> rusqlite::Result<Self> {
        Self::from_row_at(r, 0)
    }

    /// Reads the [`REFRESH_STATE_SELECT`] columns starting at column `at`.
    fn from_row_at(r: &Row<'_>, at: usize) -> rusqlite::Result<Self> {
        Ok(Self {
            digest: r.get(at)?,
            grant_id: r.get(at + 1)?,
            client_id: r.get(at + 2)?,
            username: r.get(at + 3)?,
            scope: r.get(at + 4)?,
            issued_at: r.get(at + 5)?,
            expires_at: r.get(at + 6)?,
            used_at: r.get(at + 7)?,
            sealed_successor: r.get(at + 8)?,
            revoked: r.get(at + 9)?,
        })
    }
}

/// Selects the access token **or** refresh token whose digest is `?1`, as one statement: one
/// statement is one snapshot, so no `BEGIN`/`COMMIT` around two lookups (each of those is a
/// statement too, a quarter of the work of revoking an unknown token). The access token comes
/// first and, when found, the refresh table is not searched. Rows are `kind` (0 access, 1
/// refresh) followed by [`REFRESH_STATE_SELECT`]'s columns; an access token has no `used_at` and
/// no `sealed_successor`. Read with [`AnyTokenRow::from_row`].
pub(crate) const ANY_TOKEN_SELECT: &str = "\
    SELECT 0, a.digest, a.grant_id, a.client_id, a.username, a.scope, a.issued_at, \
           a.expires_at, NULL, NULL, \
           (a.revoked_at IS NOT NULL \
            OR (a.grant_id IS NOT NULL AND (g.grant_id IS NULL OR g.revoked_at IS NOT NULL))) \
    FROM access_tokens a LEFT JOIN grants g ON g.grant_id = a.grant_id \
    WHERE a.digest = ?1 \
    UNION ALL \
    SELECT 1, r.digest, r.grant_id, r.client_id, r.username, r.scope, r.issued_at, \
           r.expires_at, r.used_at, r.sealed_successor, \
           (r.revoked_at IS NOT NULL OR g.grant_id IS NULL OR g.revoked_at IS NOT NULL) \
    FROM refresh_tokens r LEFT JOIN grants g ON g.grant_id = r.grant_id \
    WHERE r.digest = ?1";

/// A row of [`ANY_TOKEN_SELECT`].
pub(crate) enum AnyTokenRow {
    Access(AccessStateRow),
    Refresh(RefreshStateRow),
}

impl AnyTokenRow {
    pub(crate) fn from_row(r: &Row<'_>) -> rusqlite::Result<Self> {
        let kind: i64 = r.get(0)?;
        if kind == 1 {
            return RefreshStateRow::from_row_at(r, 1).map(AnyTokenRow::Refresh);
        }
        Ok(AnyTokenRow::Access(AccessStateRow {
            grant_id: r.get(2)?,
            client_id: r.get(3)?,
            username: r.get(4)?,
            scope: r.get(5)?,
            issued_at: r.get(6)?,
            expires_at: r.get(7)?,
            revoked: r.get(10)?,
        }))
    }
}

/// Selects an authorization code by digest (`?1`), in [`AuthorizationCodeRow::from_row`] order.
pub(crate) const AUTHORIZATION_CODE_SELECT: &str = "\
    SELECT digest, client_id, username, redirect_uri, redirect_uri_given, scope, \
           code_challenge, issued_at, expires_at, used_at, grant_id \
    FROM authorization_codes WHERE digest = ?1";

impl AuthorizationCodeRow {
    pub(crate) fn from_row(r: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            digest: r.get(0)?,
            client_id: r.get(1)?,
            username: r.get(2)?,
            redirect_uri: r.get(3)?,
            redirect_uri_given: r.get(4)?,
            scope: r.get(5)?,
            code_challenge: r.get(6)?,
            issued_at: r.get(7)?,
            expires_at: r.get(8)?,
            used_at: r.get(9)?,
            grant_id: r.get(10)?,
        })
    }
}

/// Selects a session by digest (`?1`), in [`SessionRow::from_row`] order.
pub(crate) const SESSION_SELECT: &str =
    "SELECT digest, username, created_at, expires_at FROM sessions WHERE digest = ?1";

impl SessionRow {
    pub(crate) fn from_row(r: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            digest: r.get(0)?,
            username: r.get(1)?,
            created_at: r.get(2)?,
            expires_at: r.get(3)?,
        })
    }
}

/// Selects a consent by user (`?1`) and client (`?2`), in [`ConsentRow::from_row`] order.
pub(crate) const CONSENT_SELECT: &str = "SELECT username, client_id, scope, granted_at \
    FROM consents WHERE username = ?1 AND client_id = ?2";

impl ConsentRow {
    pub(crate) fn from_row(r: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            username: r.get(0)?,
            client_id: r.get(1)?,
            scope: r.get(2)?,
            granted_at: r.get(3)?,
        })
    }
}

/// Selects the events after a cursor (`seq > ?1`), oldest first, at most `?2`, in
/// [`RevocationEventRow::from_row`] order: one range of the table's rowid B-tree.
pub(crate) const REVOCATION_EVENTS_AFTER: &str = "\
    SELECT seq, at, kind, client_id, token_digest, grant_id, subject \
    FROM revocation_events WHERE seq > ?1 ORDER BY seq LIMIT ?2";

impl RevocationEventRow {
    pub(crate) fn from_row(r: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            seq: r.get(0)?,
            at: r.get(1)?,
            kind: r.get(2)?,
            client_id: r.get(3)?,
            token_digest: r.get(4)?,
            grant_id: r.get(5)?,
            subject: r.get(6)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refresh_row(digest: Vec<u8>, scope: &str) -> RefreshStateRow {
        RefreshStateRow {
            digest,
            grant_id: "g".into(),
            client_id: "c".into(),
            username: "u".into(),
            scope: scope.into(),
            issued_at: 1,
            expires_at: 2,
            used_at: None,
            sealed_successor: None,
            revoked: false,
        }
    }

    #[test]
    fn short_digest_is_unavailable_not_a_panic() {
        let err = RefreshTokenState::try_from(refresh_row(vec![0; 31], "read")).unwrap_err();
        assert!(
            matches!(&err, StoreError::Unavailable(m) if m.contains("refresh_tokens.digest")),
            "{err:?}"
        );
    }

    #[test]
    fn invalid_scope_is_unavailable() {
        let err = RefreshTokenState::try_from(refresh_row(vec![0; 32], "bad\"quote")).unwrap_err();
        assert!(
            matches!(&err, StoreError::Unavailable(m) if m.contains("refresh_tokens.scope")),
            "{err:?}"
        );
    }

    #[test]
    fn valid_row_round_trips() {
        let state = RefreshTokenState::try_from(refresh_row(vec![7; 32], "write read")).unwrap();
        assert_eq!(state.record.digest, TokenDigest([7; 32]));
        assert_eq!(state.record.scope.to_string(), "read write");
    }

    #[test]
    fn corrupt_client_json_is_unavailable() {
        let row = ClientRow {
            client_id: "c".into(),
            name: "n".into(),
            secret_digest: None,
            grant_types: "[\"password\"]".into(),
            redirect_uris: "[]".into(),
            scope: String::new(),
            introspect: false,
            cors_origins: "[]".into(),
            created_at: 0,
        };
        let err = Client::try_from(row).unwrap_err();
        assert!(
            matches!(&err, StoreError::Unavailable(m) if m.contains("clients.grant_types")),
            "{err:?}"
        );
    }

    fn code_row(digest: Vec<u8>, scope: &str) -> AuthorizationCodeRow {
        AuthorizationCodeRow {
            digest,
            client_id: "c".into(),
            username: "u".into(),
            redirect_uri: "https://c.example/cb".into(),
            redirect_uri_given: true,
            scope: scope.into(),
            code_challenge: Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into()),
            issued_at: 1,
            expires_at: 2,
            used_at: Some(1),
            grant_id: Some("g".into()),
        }
    }

    #[test]
    fn corrupt_code_session_and_consent_rows_are_unavailable() {
        let err = AuthorizationCodeState::try_from(code_row(vec![0; 33], "read")).unwrap_err();
        assert!(
            matches!(&err, StoreError::Unavailable(m) if m.contains("authorization_codes.digest")),
            "{err:?}"
        );
        let err = AuthorizationCodeState::try_from(code_row(vec![0; 32], "a\\b")).unwrap_err();
        assert!(
            matches!(&err, StoreError::Unavailable(m) if m.contains("authorization_codes.scope")),
            "{err:?}"
        );
        let session = SessionRow {
            digest: vec![],
            username: "u".into(),
            created_at: 1,
            expires_at: 2,
        };
        let err = Session::try_from(session).unwrap_err();
        assert!(
            matches!(&err, StoreError::Unavailable(m) if m.contains("sessions.digest")),
            "{err:?}"
        );
        let consent = ConsentRow {
            username: "u".into(),
            client_id: "c".into(),
            scope: "bad\"quote".into(),
            granted_at: 1,
        };
        let err = Consent::try_from(consent).unwrap_err();
        assert!(
            matches!(&err, StoreError::Unavailable(m) if m.contains("consents.scope")),
            "{err:?}"
        );
    }

    #[test]
    fn valid_code_row_round_trips() {
        let state = AuthorizationCodeState::try_from(code_row(vec![9; 32], "write read")).unwrap();
        assert_eq!(state.record.digest, TokenDigest([9; 32]));
        assert_eq!(state.record.scope.to_string(), "read write");
        assert!(state.record.redirect_uri_given);
        assert_eq!(state.used_at, Some(1));
        assert_eq!(state.grant_id.as_deref(), Some("g"));
    }

    fn event_row(kind: &str, token_digest: Option<Vec<u8>>) -> RevocationEventRow {
        RevocationEventRow {
            seq: 3,
            at: 100,
            kind: kind.into(),
            client_id: "c".into(),
            token_digest,
            grant_id: Some("g".into()),
            subject: None,
        }
    }

    #[test]
    fn corrupt_event_rows_are_unavailable() {
        let err = RevocationEvent::try_from(event_row("session", None)).unwrap_err();
        assert!(
            matches!(&err, StoreError::Unavailable(m) if m.contains("revocation_events.kind")),
            "{err:?}"
        );
        let err = RevocationEvent::try_from(event_row("token", Some(vec![1; 31]))).unwrap_err();
        assert!(
            matches!(&err, StoreError::Unavailable(m) if m.contains("revocation_events.token_digest")),
            "{err:?}"
        );
        let event = RevocationEvent::try_from(event_row("token", Some(vec![1; 32]))).unwrap();
        assert_eq!(event.seq, 3);
        assert_eq!(event.kind, RevocationKind::Token);
        assert_eq!(event.token, Some(TokenDigest([1; 32])));
    }
}
