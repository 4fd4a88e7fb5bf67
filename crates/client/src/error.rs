//! Errors. What a server answers is kept as its RFC 6749 §5.2 error code (an open enum: servers
//! and extensions define more codes than the RFC lists) plus the HTTP status and `Retry-After`.
//! Nothing here ever holds a token or a secret, so errors can be logged freely.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::endpoint::UrlError;
use crate::http::HttpError;
use crate::store::StoreError;

/// An OAuth 2.0 error code as received (RFC 6749 §5.2, RFC 7009 §2.2.1, RFC 6749 §4.1.2.1).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// `invalid_request`
    InvalidRequest,
    /// `invalid_client`
    InvalidClient,
    /// `invalid_grant`: the grant or refresh token is invalid, expired or revoked.
    InvalidGrant,
    /// `unauthorized_client`
    UnauthorizedClient,
    /// `unsupported_grant_type`
    UnsupportedGrantType,
    /// `invalid_scope`
    InvalidScope,
    /// `unsupported_token_type` (RFC 7009 §2.2.1)
    UnsupportedTokenType,
    /// `server_error`
    ServerError,
    /// `temporarily_unavailable`
    TemporarilyUnavailable,
    /// Any other code, verbatim.
    Extension(String),
}

impl ErrorCode {
    /// Maps a received code; unknown codes become [`ErrorCode::Extension`].
    pub fn parse(code: &str) -> Self {
        match code {
            "invalid_request" => Self::InvalidRequest,
            "invalid_client" => Self::InvalidClient,
            "invalid_grant" => Self::InvalidGrant,
            "unauthorized_client" => Self::UnauthorizedClient,
            "unsupported_grant_type" => Self::UnsupportedGrantType,
            "invalid_scope" => Self::InvalidScope,
            "unsupported_token_type" => Self::UnsupportedTokenType,
            "server_error" => Self::ServerError,
            "temporarily_unavailable" => Self::TemporarilyUnavailable,
            other => Self::Extension(other.to_owned()),
        }
    }

    /// The code as sent on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::UnsupportedTokenType => "unsupported_token_type",
            Self::ServerError => "server_error",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
            Self::Extension(code) => code,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(|s| Self::parse(&s))
    }
}

/// An error response body (RFC 6749 §5.2).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct ErrorResponse {
    /// `error`
    pub error: ErrorCode,
    /// `error_description`
    #[serde(default)]
    pub error_description: Option<String>,
    /// `error_uri`
    #[serde(default)]
    pub error_uri: Option<String>,
}

/// Everything that can go wrong. Cheap to clone: one refresh result is shared by every task that
/// waited for it.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The grant is gone (`invalid_grant` on refresh, logout, or no tokens were ever stored): the
    /// store has been wiped and the user must authorize again. Answered without network until new
    /// tokens are stored ([`crate::TokenManager::set_tokens`]).
    #[error("reconnect required: no usable grant; the user must authorize again")]
    ReconnectRequired,
    /// The request could not be sent or no response arrived (transient).
    #[error("HTTP transport: {0}")]
    Transport(#[source] Arc<HttpError>),
    /// The server answered with an OAuth error body.
    #[error("the server answered {status}: {}", .response.error)]
    OAuth {
        /// HTTP status.
        status: u16,
        /// The body.
        response: ErrorResponse,
        /// `Retry-After` in seconds, if sent.
        retry_after: Option<Duration>,
    },
    /// The server answered something that is not the protocol's response.
    #[error("unexpected response (HTTP {status}): {reason}")]
    UnexpectedResponse {
        /// HTTP status.
        status: u16,
        /// What was wrong (never the body itself).
        reason: String,
        /// `Retry-After` in seconds, if sent.
        retry_after: Option<Duration>,
    },
    /// A previous answer asked us to wait (`Retry-After`, or backoff after repeated failures) and
    /// there is no valid token to fall back on.
    #[error("the token endpoint asked to wait; retry in {retry_after:?}")]
    Backoff {
        /// How long until the next attempt is allowed.
        retry_after: Duration,
    },
    /// The API answered 401, the token was renewed, but the request's body was a stream and
    /// cannot be sent again: send a new request.
    #[error("the resource server rejected the token and the request cannot be replayed (streaming body); the token was renewed, send the request again")]
    NotReplayable,
    /// The token store failed. After a refresh this fails closed: the new tokens are not handed
    /// out until they are persisted.
    #[error("token store: {0}")]
    Store(#[source] Arc<StoreError>),
    /// A URL was refused.
    #[error(transparent)]
    Url(#[from] UrlError),
    /// Authorization server metadata unusable (RFC 8414).
    #[error("discovery: {0}")]
    Discovery(String),
    /// An endpoint this operation needs is not configured.
    #[error("no {0} configured")]
    MissingEndpoint(&'static str),
    /// The token type is not `Bearer` (RFC 6749 §7.1: "The client MUST NOT use an access token
    /// if it does not understand the token type").
    #[error("unsupported token type `{0}`")]
    UnsupportedTokenType(String),
    /// A bug or a panicked task; never expected.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// Worth retrying later: network failures, 5xx, 429 and `temporarily_unavailable`.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Transport(_) | Self::Backoff { .. } => true,
            Self::OAuth {
                status, response, ..
            } => transient_status(*status) || response.error == ErrorCode::TemporarilyUnavailable,
            Self::UnexpectedResponse { status, .. } => transient_status(*status),
            _ => false,
        }
    }

    /// The server's `Retry-After`, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::OAuth { retry_after, .. } | Self::UnexpectedResponse { retry_after, .. } => {
                *retry_after
            }
            Self::Backoff { retry_after } => Some(*retry_after),
            _ => None,
        }
    }

    /// The OAuth error code, when the server sent one.
    pub fn code(&self) -> Option<&ErrorCode> {
        match self {
            Self::OAuth { response, .. } => Some(&response.error),
            _ => None,
        }
    }

    pub(crate) fn store(error: StoreError) -> Self {
        Self::Store(Arc::new(error))
    }
}

fn transient_status(status: u16) -> bool {
    status == 429 || (500..600).contains(&status)
}

impl From<HttpError> for Error {
    fn from(error: HttpError) -> Self {
        Self::Transport(Arc::new(error))
    }
}

impl From<StoreError> for Error {
    fn from(error: StoreError) -> Self {
        Self::store(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_codes_are_kept_verbatim() {
        assert_eq!(ErrorCode::parse("invalid_grant"), ErrorCode::InvalidGrant);
        let code = ErrorCode::parse("authorization_pending");
        assert_eq!(code, ErrorCode::Extension("authorization_pending".into()));
        assert_eq!(code.as_str(), "authorization_pending");
        let body: ErrorResponse =
            serde_json::from_str(r#"{"error":"slow_down","error_description":"x"}"#).unwrap();
        assert_eq!(body.error, ErrorCode::Extension("slow_down".into()));
    }

    #[test]
    fn transient_means_network_5xx_429_or_temporarily_unavailable() {
        let oauth = |status, code: &str| Error::OAuth {
            status,
            response: ErrorResponse {
                error: ErrorCode::parse(code),
                error_description: None,
                error_uri: None,
            },
            retry_after: None,
        };
        assert!(oauth(503, "temporarily_unavailable").is_transient());
        assert!(oauth(429, "slow_down").is_transient());
        assert!(oauth(400, "temporarily_unavailable").is_transient());
        assert!(!oauth(400, "invalid_grant").is_transient());
        assert!(!oauth(401, "invalid_client").is_transient());
        assert!(!Error::ReconnectRequired.is_transient());
    }
}
