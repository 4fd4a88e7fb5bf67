//! Server configuration: issuer, lifetimes, and the revocation endpoint's options.

/// A `token_type_hint` value this server knows (RFC 7009 §2.1, RFC 7662 §2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenTypeHint {
    /// `access_token`
    AccessToken,
    /// `refresh_token`
    RefreshToken,
}

impl TokenTypeHint {
    /// Parses a hint; any other value is `None` and is ignored (RFC 7009 §2.1: the server
    /// "MAY ignore" the hint and extends its search to all supported types).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "access_token" => Some(Self::AccessToken),
            "refresh_token" => Some(Self::RefreshToken),
            _ => None,
        }
    }
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AccessToken => "access_token",
            Self::RefreshToken => "refresh_token",
        }
    }
}

/// Options of the revocation endpoint (RFC 7009), as in oauthlib's `RevocationEndpoint`.
#[derive(Debug, Clone)]
pub struct RevocationOptions {
    /// Token types this endpoint revokes. A request hinting a known type outside this list gets
    /// `400 unsupported_token_type` (RFC 7009 §2.2.1).
    pub supported_token_types: Vec<TokenTypeHint>,
    /// Enables the RFC 7009 §2.3 JSONP `callback` query parameter.
    pub enable_jsonp: bool,
    /// Revoking an access token also revokes its grant (RFC 7009 §2.1: "MAY").
    pub revoke_access_cascades: bool,
}

impl Default for RevocationOptions {
    fn default() -> Self {
        Self {
            supported_token_types: vec![TokenTypeHint::AccessToken, TokenTypeHint::RefreshToken],
            enable_jsonp: false,
            revoke_access_cascades: false,
        }
    }
}

/// Server configuration. Lifetimes are in seconds.
#[derive(Debug, Clone)]
pub struct Config {
    /// The issuer identifier (RFC 8414 §2): endpoints are published under it.
    pub issuer: String,
    /// Access-token lifetime (`expires_in`). Default 1 h.
    pub access_token_ttl: i64,
    /// Refresh-token lifetime; every rotation issues a successor with a fresh lifetime. Default 60 d.
    pub refresh_token_ttl: i64,
    /// Authorization-code lifetime. Default 60 s.
    pub auth_code_ttl: i64,
    /// How long after a refresh the previous refresh token may be re-presented and get the same
    /// response again. `0` makes rotation strict. Default 30 s.
    pub refresh_grace: i64,
    /// Revocation endpoint options.
    pub revocation: RevocationOptions,
}

impl Config {
    /// Defaults for `issuer`. A trailing `/` is dropped so endpoint URLs join cleanly.
    pub fn new(issuer: impl Into<String>) -> Self {
        let mut issuer = issuer.into();
        while issuer.ends_with('/') {
            issuer.pop();
        }
        Self {
            issuer,
            access_token_ttl: 3600,
            refresh_token_ttl: 60 * 24 * 3600,
            auth_code_ttl: 60,
            refresh_grace: 30,
            revocation: RevocationOptions::default(),
        }
    }
}
