//! Rows as PostgreSQL returns them, and their checked conversion into the domain types.
//!
//! Columns are read into plain types first and parsed afterwards (CONVENTIONS §6), so a corrupt
//! row — a digest that is not 32 bytes, a scope that is not RFC 6749 §3.3 syntax, an unknown grant
//! type — becomes `StoreError::Unavailable` naming the column, never a panic and never a
//! half-valid value. (The schema's CHECKs already refuse short digests; the conversion does not
//! rely on them.)

use tokenwarden_core::crypto::TokenDigest;
use tokenwarden_core::feed::{FeedPage, RevocationEvent, RevocationKind};
use tokenwarden_core::model::{
    AccessTokenRecord, AccessTokenState, AuthorizationCodeRecord, AuthorizationCodeState, Client,
    Consent, Grant, GrantType, RefreshTokenRecord, RefreshTokenState, Scope, Session, User,
};
use tokenwarden_core::store::StoreError;

pub(crate) fn corrupt(what: &str) -> StoreError {
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

/// A client's grant types as their `TEXT[]` column value (RFC 6749 wire names).
pub(crate) fn grant_type_names(client: &Client) -> Vec<&'static str> {
    client.grant_types.iter().map(|g| g.as_str()).collect()
}

fn grant_types(names: Vec<String>, column: &str) -> Result<Vec<GrantType>, StoreError> {
    names
        .iter()
        .map(|n| {
            GrantType::parse(n)
                .ok_or_else(|| corrupt(&format!("{column} names an unknown grant type")))
        })
        .collect()
}

/// `clients` as stored.
#[derive(sqlx::FromRow)]
pub(crate) struct ClientRow {
    client_id: String,
    name: String,
    secret_digest: Option<Vec<u8>>,
    grant_types: Vec<String>,
    redirect_uris: Vec<String>,
    scope: String,
    introspect: bool,
    cors_origins: Vec<String>,
    created_at: i64,
}

/// The columns of [`ClientRow`], for `SELECT`s (never `*`: a column added by a later migration
/// must not change what an older binary reads).
pub(crate) const CLIENT_COLUMNS: &str = "client_id, name, secret_digest, grant_types, \
     redirect_uris, scope, introspect, cors_origins, created_at";

impl TryFrom<ClientRow> for Client {
    type Error = StoreError;
    fn try_from(r: ClientRow) -> Result<Self, StoreError> {
        Ok(Client {
            secret_digest: r
                .secret_digest
                .as_deref()
                .map(|d| digest(d, "clients.secret_digest"))
                .transpose()?,
            grant_types: grant_types(r.grant_types, "clients.grant_types")?,
            redirect_uris: r.redirect_uris,
            scope: scope(&r.scope, "clients.scope")?,
            introspect: r.introspect,
            cors_origins: r.cors_origins,
            created_at: r.created_at,
            client_id: r.client_id,
            name: r.name,
        })
    }
}

/// `users` as stored.
#[derive(sqlx::FromRow)]
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
#[derive(sqlx::FromRow)]
pub(crate) struct GrantRow {
    grant_id: String,
    client_id: String,
    username: String,
    scope: String,
    created_at: i64,
    last_refreshed_at: Option<i64>,
    revoked_at: Option<i64>,
}

/// The columns of [`GrantRow`].
pub(crate) const GRANT_COLUMNS: &str =
    "grant_id, client_id, username, scope, created_at, last_refreshed_at, revoked_at";

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

/// An `access_tokens` row joined with its grant's revocation ([`ACCESS_STATE_SELECT`]).
#[derive(sqlx::FromRow)]
pub(crate) struct AccessStateRow {
    digest: Vec<u8>,
    grant_id: Option<String>,
    client_id: String,
    username: Option<String>,
    scope: String,
    issued_at: i64,
    expires_at: i64,
    revoked: bool,
}

/// Selects an access token with `revoked` folding in its grant's revocation, as the memory store
/// does: revoked itself, or it belongs to a grant that is revoked or no longer exists. One
/// statement, so one snapshot: the token and its grant are read as of the same instant.
pub(crate) const ACCESS_STATE_SELECT: &str = "\
    SELECT a.digest, a.grant_id, a.client_id, a.username, a.scope, a.issued_at, a.expires_at, \
           (a.revoked_at IS NOT NULL \
            OR (a.grant_id IS NOT NULL AND (g.grant_id IS NULL OR g.revoked_at IS NOT NULL))) \
           AS revoked \
    FROM access_tokens a LEFT JOIN grants g ON g.grant_id = a.grant_id \
    WHERE a.digest = $1";

impl TryFrom<AccessStateRow> for AccessTokenState {
    type Error = StoreError;
    fn try_from(r: AccessStateRow) -> Result<Self, StoreError> {
        Ok(AccessTokenState {
            record: AccessTokenRecord {
                digest: digest(&r.digest, "access_tokens.digest")?,
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
#[derive(sqlx::FromRow)]
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
    WHERE r.digest = $1";

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
#[derive(sqlx::FromRow)]
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

/// Selects an authorization code by digest (`$1`) as an [`AuthorizationCodeRow`].
pub(crate) const CODE_SELECT: &str = "\
    SELECT digest, client_id, username, redirect_uri, redirect_uri_given, scope, \
           code_challenge, issued_at, expires_at, used_at, grant_id \
    FROM authorization_codes WHERE digest = $1";

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
#[derive(sqlx::FromRow)]
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
#[derive(sqlx::FromRow)]
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

/// The feed's counter row joined with one event after the cursor (`feed::read_page`); the event
/// columns are NULL on the single row returned when no event follows the cursor.
#[derive(sqlx::FromRow)]
pub(crate) struct FeedRow {
    head: i64,
    floor: i64,
    seq: Option<i64>,
    at: Option<i64>,
    kind: Option<String>,
    client_id: Option<String>,
    token_digest: Option<Vec<u8>>,
    grant_id: Option<String>,
    subject: Option<String>,
}

fn feed_number(n: i64, column: &str) -> Result<u64, StoreError> {
    u64::try_from(n).map_err(|_| corrupt(&format!("{column} is negative")))
}

impl FeedRow {
    /// The rows of one `read_page` statement (ordered by `seq`) as a [`FeedPage`].
    pub(crate) fn into_page(rows: Vec<FeedRow>) -> Result<FeedPage, StoreError> {
        let Some(first) = rows.first() else {
            return Err(corrupt("the revocation_feed row is missing"));
        };
        let head = feed_number(first.head, "revocation_feed.head")?;
        let floor = feed_number(first.floor, "revocation_feed.floor")?;
        let mut events = Vec::with_capacity(rows.len());
        for row in rows {
            if let Some(event) = row.event()? {
                events.push(event);
            }
        }
        Ok(FeedPage {
            events,
            head,
            floor,
        })
    }

    fn event(self) -> Result<Option<RevocationEvent>, StoreError> {
        let Some(seq) = self.seq else {
            return Ok(None);
        };
        let missing = |column: &str| corrupt(&format!("revocation_events.{column} is NULL"));
        let kind = self.kind.ok_or_else(|| missing("kind"))?;
        Ok(Some(RevocationEvent {
            seq: feed_number(seq, "revocation_events.seq")?,
            at: self.at.ok_or_else(|| missing("at"))?,
            kind: RevocationKind::parse(&kind)
                .ok_or_else(|| corrupt("revocation_events.kind is not a known kind"))?,
            client_id: self.client_id.ok_or_else(|| missing("client_id"))?,
            token: self
                .token_digest
                .as_deref()
                .map(|d| digest(d, "revocation_events.token_digest"))
                .transpose()?,
            grant_id: self.grant_id,
            subject: self.subject,
        }))
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

    fn client_row(grant_types: &[&str]) -> ClientRow {
        ClientRow {
            client_id: "c".into(),
            name: "n".into(),
            secret_digest: Some(vec![1; 32]),
            grant_types: grant_types.iter().map(|s| (*s).to_owned()).collect(),
            redirect_uris: vec!["https://c.example/cb".into()],
            scope: "read".into(),
            introspect: true,
            cors_origins: vec![],
            created_at: 0,
        }
    }

    #[test]
    fn unknown_grant_type_is_unavailable() {
        let err = Client::try_from(client_row(&["password"])).unwrap_err();
        assert!(
            matches!(&err, StoreError::Unavailable(m) if m.contains("clients.grant_types")),
            "{err:?}"
        );
    }

    #[test]
    fn grant_types_round_trip_by_wire_name() {
        let client =
            Client::try_from(client_row(&["refresh_token", "authorization_code"])).unwrap();
        assert_eq!(
            client.grant_types,
            [GrantType::RefreshToken, GrantType::AuthorizationCode]
        );
        assert_eq!(
            grant_type_names(&client),
            ["refresh_token", "authorization_code"]
        );
        assert_eq!(client.secret_digest, Some(TokenDigest([1; 32])));
    }

    #[test]
    fn corrupt_code_session_and_consent_rows_are_unavailable() {
        let code = AuthorizationCodeRow {
            digest: vec![0; 33],
            client_id: "c".into(),
            username: "u".into(),
            redirect_uri: "https://c.example/cb".into(),
            redirect_uri_given: true,
            scope: "read".into(),
            code_challenge: None,
            issued_at: 1,
            expires_at: 2,
            used_at: None,
            grant_id: None,
        };
        let err = AuthorizationCodeState::try_from(code).unwrap_err();
        assert!(
            matches!(&err, StoreError::Unavailable(m) if m.contains("authorization_codes.digest")),
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

    fn feed_row(seq: Option<i64>, kind: Option<&str>, token: Option<Vec<u8>>) -> FeedRow {
        FeedRow {
            head: 9,
            floor: 2,
            seq,
            at: seq.map(|s| 100 + s),
            kind: kind.map(str::to_owned),
            client_id: seq.map(|_| "app".to_owned()),
            token_digest: token,
            grant_id: None,
            subject: None,
        }
    }

    #[test]
    fn feed_rows_become_a_page() {
        let page = FeedRow::into_page(vec![feed_row(None, None, None)]).unwrap();
        assert_eq!(
            page,
            FeedPage {
                events: vec![],
                head: 9,
                floor: 2
            }
        );
        let page = FeedRow::into_page(vec![
            feed_row(Some(3), Some("token"), Some(vec![5; 32])),
            feed_row(Some(4), Some("client"), None),
        ])
        .unwrap();
        assert_eq!((page.head, page.floor), (9, 2));
        assert_eq!(page.events.len(), 2);
        assert_eq!(page.events[0].seq, 3);
        assert_eq!(page.events[0].at, 103);
        assert_eq!(page.events[0].kind, RevocationKind::Token);
        assert_eq!(page.events[0].token, Some(TokenDigest([5; 32])));
        assert_eq!(page.events[1].kind, RevocationKind::Client);
        assert_eq!(page.events[1].client_id, "app");
    }

    #[test]
    fn corrupt_feed_rows_are_unavailable() {
        let err = FeedRow::into_page(vec![]).unwrap_err();
        assert!(matches!(&err, StoreError::Unavailable(m) if m.contains("revocation_feed")));
        let err = FeedRow::into_page(vec![feed_row(Some(1), Some("user"), None)]).unwrap_err();
        assert!(matches!(&err, StoreError::Unavailable(m) if m.contains("revocation_events.kind")));
        let err = FeedRow::into_page(vec![feed_row(Some(1), Some("token"), Some(vec![1; 3]))])
            .unwrap_err();
        assert!(
            matches!(&err, StoreError::Unavailable(m) if m.contains("revocation_events.token_digest"))
        );
        let err = FeedRow::into_page(vec![feed_row(Some(-1), Some("grant"), None)]).unwrap_err();
        assert!(matches!(&err, StoreError::Unavailable(m) if m.contains("revocation_events.seq")));
    }
}
