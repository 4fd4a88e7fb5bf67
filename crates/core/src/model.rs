//! The domain: clients, users, grants (token families), token records, scopes.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::crypto::TokenDigest;

/// A scope (RFC 6749 §3.3): a set of space-delimited scope-tokens, each `1*NQCHAR`.
/// Kept sorted and deduplicated so equal sets compare and print equal.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Scope(BTreeSet<String>);

/// A scope string that is not RFC 6749 §3.3 syntax.
#[derive(Debug, thiserror::Error)]
#[error("scope must be space-delimited tokens of %x21 / %x23-5B / %x5D-7E")]
pub struct ScopeError;

impl Scope {
    /// Parses `scope = scope-token *( SP scope-token )`, `scope-token = 1*NQCHAR`
    /// (RFC 6749 §3.3). Runs of spaces are tolerated; an empty string is the empty scope.
    pub fn parse(s: &str) -> Result<Self, ScopeError> {
        let mut set = BTreeSet::new();
        for token in s.split(' ').filter(|t| !t.is_empty()) {
            // NQCHAR = %x21 / %x23-5B / %x5D-7E
            if !token
                .bytes()
                .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
            {
                return Err(ScopeError);
            }
            set.insert(token.to_owned());
        }
        Ok(Self(set))
    }
    /// True when every scope-token of `self` is in `other`.
    pub fn is_subset(&self, other: &Scope) -> bool {
        self.0.is_subset(&other.0)
    }
    /// Every scope-token of either scope.
    pub fn union(&self, other: &Scope) -> Scope {
        Scope(self.0.union(&other.0).cloned().collect())
    }
    /// True when the scope has no tokens.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// The scope-tokens, sorted.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for t in &self.0 {
            if !first {
                f.write_str(" ")?;
            }
            f.write_str(t)?;
            first = false;
        }
        Ok(())
    }
}
impl fmt::Debug for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Scope({self})")
    }
}
impl TryFrom<String> for Scope {
    type Error = ScopeError;
    fn try_from(s: String) -> Result<Self, ScopeError> {
        Self::parse(&s)
    }
}
impl From<Scope> for String {
    fn from(s: Scope) -> String {
        s.to_string()
    }
}

/// The grant types a client may use (RFC 6749 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    /// `authorization_code` (RFC 6749 §4.1)
    AuthorizationCode,
    /// `refresh_token` (RFC 6749 §6)
    RefreshToken,
    /// `client_credentials` (RFC 6749 §4.4)
    ClientCredentials,
}

impl GrantType {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AuthorizationCode => "authorization_code",
            Self::RefreshToken => "refresh_token",
            Self::ClientCredentials => "client_credentials",
        }
    }
    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "authorization_code" => Some(Self::AuthorizationCode),
            "refresh_token" => Some(Self::RefreshToken),
            "client_credentials" => Some(Self::ClientCredentials),
            _ => None,
        }
    }
}

/// A registered client (RFC 6749 §2).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Client {
    /// `client_id` (RFC 6749 §2.2).
    pub client_id: String,
    /// Display name.
    pub name: String,
    /// SHA-256 of the client secret; `None` for a public client (RFC 6749 §2.1).
    #[serde(skip)]
    pub secret_digest: Option<TokenDigest>,
    /// Grant types this client may use.
    pub grant_types: Vec<GrantType>,
    /// Registered redirect URIs, compared exactly.
    pub redirect_uris: Vec<String>,
    /// The widest scope the client may be granted.
    pub scope: Scope,
    /// A resource server: may introspect any token and read the revocation feed.
    pub introspect: bool,
    /// Origins allowed for CORS.
    pub cors_origins: Vec<String>,
    /// Registration time.
    pub created_at: Timestamp,
}

impl Client {
    /// A public client has no secret (RFC 6749 §2.1) and authenticates with `none`.
    pub fn is_public(&self) -> bool {
        self.secret_digest.is_none()
    }
    /// Whether the client is registered for `grant_type`.
    pub fn allows(&self, grant_type: GrantType) -> bool {
        self.grant_types.contains(&grant_type)
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("client_id", &self.client_id)
            .field("name", &self.name)
            .field("public", &self.is_public())
            .field("grant_types", &self.grant_types)
            .field("scope", &self.scope)
            .field("introspect", &self.introspect)
            .finish_non_exhaustive()
    }
}

/// A resource owner.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    /// Login name; also the `sub` and `username` of the tokens issued for this user.
    pub username: String,
    /// PHC-format argon2id hash of the password.
    pub password_hash: String,
    /// Creation time.
    pub created_at: Timestamp,
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// A grant: the family of tokens descending from one authorization (RFC 9700 §4.14.2). Rotation
/// and reuse detection work on the family; revoking the grant ends every token in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Grant {
    /// Grant id.
    pub grant_id: String,
    /// The client the grant was issued to.
    pub client_id: String,
    /// The user who authorized it.
    pub username: String,
    /// The scope authorized.
    pub scope: Scope,
    /// When the authorization happened.
    pub created_at: Timestamp,
    /// Last successful refresh.
    pub last_refreshed_at: Option<Timestamp>,
    /// When the grant was revoked.
    pub revoked_at: Option<Timestamp>,
}

/// An access token as stored (by digest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessTokenRecord {
    /// SHA-256 of the token.
    pub digest: TokenDigest,
    /// The grant the token belongs to; `None` for `client_credentials` tokens, which have no
    /// user and no refresh token.
    pub grant_id: Option<String>,
    /// The client it was issued to.
    pub client_id: String,
    /// The user, for user grants.
    pub username: Option<String>,
    /// Granted scope.
    pub scope: Scope,
    /// Issue time (`iat`).
    pub issued_at: Timestamp,
    /// Expiry (`exp`).
    pub expires_at: Timestamp,
}

/// An access token with its revocation state as read from the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessTokenState {
    /// The token.
    pub record: AccessTokenRecord,
    /// Revoked itself, or its grant is revoked.
    pub revoked: bool,
}

impl AccessTokenState {
    /// Active per RFC 7662 §2.2: not revoked, not expired.
    pub fn is_active(&self, now: Timestamp) -> bool {
        !self.revoked && now < self.record.expires_at
    }
}

/// A refresh token as stored (by digest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshTokenRecord {
    /// SHA-256 of the token.
    pub digest: TokenDigest,
    /// The grant (token family).
    pub grant_id: String,
    /// The client it was issued to.
    pub client_id: String,
    /// The user.
    pub username: String,
    /// The scope of the grant: a refresh may narrow, never widen it (RFC 6749 §6).
    pub scope: Scope,
    /// Issue time.
    pub issued_at: Timestamp,
    /// Expiry.
    pub expires_at: Timestamp,
}

/// A refresh token with its lifecycle state as read from the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshTokenState {
    /// The token.
    pub record: RefreshTokenRecord,
    /// When it was exchanged (rotated); `None` while it is the grant's current refresh token.
    pub used_at: Option<Timestamp>,
    /// The successor token response, sealed under a key derived from this token
    /// ([`crate::crypto::seal_successor`]); present once used.
    pub sealed_successor: Option<Vec<u8>>,
    /// Revoked itself, or its grant is revoked.
    pub revoked: bool,
}

impl RefreshTokenState {
    /// Can be exchanged now.
    pub fn is_active(&self, now: Timestamp) -> bool {
        !self.revoked && self.used_at.is_none() && now < self.record.expires_at
    }
}

/// An authorization code as stored (by digest), bound to its client, redirect URI and PKCE
/// challenge (RFC 6749 §4.1.2, RFC 7636 §4.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationCodeRecord {
    /// SHA-256 of the code.
    pub digest: TokenDigest,
    /// The client it was issued to.
    pub client_id: String,
    /// The user who authorized.
    pub username: String,
    /// The redirect URI the code was sent to.
    pub redirect_uri: String,
    /// Whether the authorization request named the redirect URI (then the token request must).
    pub redirect_uri_given: bool,
    /// The authorized scope.
    pub scope: Scope,
    /// PKCE S256 challenge.
    pub code_challenge: Option<String>,
    /// Issue time.
    pub issued_at: Timestamp,
    /// Expiry (`--auth-code-ttl`).
    pub expires_at: Timestamp,
}

/// An authorization code with its redemption state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationCodeState {
    /// The code.
    pub record: AuthorizationCodeRecord,
    /// When it was exchanged.
    pub used_at: Option<Timestamp>,
    /// The grant created from it, so a second use can revoke it (RFC 6749 §4.1.2).
    pub grant_id: Option<String>,
}

/// A signed-in browser session (stored by the digest of the cookie value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// SHA-256 of the session token.
    pub digest: TokenDigest,
    /// The user.
    pub username: String,
    /// Sign-in time.
    pub created_at: Timestamp,
    /// Expiry.
    pub expires_at: Timestamp,
}

/// A remembered consent: the user approved `scope` for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consent {
    /// The user.
    pub username: String,
    /// The client.
    pub client_id: String,
    /// The approved scope; a later request within it skips the consent page.
    pub scope: Scope,
    /// When it was given (or last widened).
    pub granted_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_parses_and_normalizes() {
        let s = Scope::parse("write  read read").unwrap();
        assert_eq!(s.to_string(), "read write");
        assert!(Scope::parse("read").unwrap().is_subset(&s));
        assert!(!Scope::parse("admin").unwrap().is_subset(&s));
        assert!(Scope::parse("bad\"quote").is_err());
        assert!(Scope::parse("back\\slash").is_err());
        assert!(Scope::parse("").unwrap().is_empty());
        assert_eq!(
            s.union(&Scope::parse("admin read").unwrap()).to_string(),
            "admin read write"
        );
    }
}
