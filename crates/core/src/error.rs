//! OAuth error responses (RFC 6749 §5.2, RFC 7009 §2.2.1) — what goes on the wire is the RFC code
//! and a safe description; internal causes are logged by the caller, never serialized.

use std::borrow::Cow;

use http::StatusCode;

/// The error codes this server sends (RFC 6749 §5.2, RFC 7009 §2.2.1, RFC 6749 §4.1.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// `invalid_request`
    InvalidRequest,
    /// `invalid_client`
    InvalidClient,
    /// `invalid_grant`
    InvalidGrant,
    /// `unauthorized_client`
    UnauthorizedClient,
    /// `unsupported_grant_type`
    UnsupportedGrantType,
    /// `invalid_scope`
    InvalidScope,
    /// `unsupported_token_type` (RFC 7009 §2.2.1)
    UnsupportedTokenType,
    /// `temporarily_unavailable`
    TemporarilyUnavailable,
    /// `unsupported_response_type` (RFC 6749 §4.1.2.1)
    UnsupportedResponseType,
    /// `access_denied` (RFC 6749 §4.1.2.1): the resource owner denied the request.
    AccessDenied,
    /// `server_error`
    ServerError,
}

impl ErrorCode {
    /// The code as written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::UnsupportedTokenType => "unsupported_token_type",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::AccessDenied => "access_denied",
            Self::ServerError => "server_error",
        }
    }
}

/// An error answer: status, RFC code, safe description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    /// HTTP status.
    pub status: StatusCode,
    /// RFC error code.
    pub code: ErrorCode,
    /// Human-readable, safe to show to the client (RFC 6749 §5.2 `error_description`).
    pub description: Cow<'static, str>,
}

impl OAuthError {
    /// Any error with an explicit status.
    pub fn new(
        status: StatusCode,
        code: ErrorCode,
        description: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            status,
            code,
            description: description.into(),
        }
    }
    /// `400 invalid_request`.
    pub fn invalid_request(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidRequest,
            description,
        )
    }
    /// `401 invalid_client` (the response adds `WWW-Authenticate: Basic`).
    pub fn invalid_client(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::InvalidClient,
            description,
        )
    }
    /// `400 invalid_grant`.
    pub fn invalid_grant(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidGrant,
            description,
        )
    }
    /// `400 unauthorized_client`.
    pub fn unauthorized_client(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::UnauthorizedClient,
            description,
        )
    }
    /// `400 invalid_scope`.
    pub fn invalid_scope(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidScope,
            description,
        )
    }
    /// `503 temporarily_unavailable`: storage failed; never a silent success.
    pub fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::TemporarilyUnavailable,
            "the authorization server cannot complete the request right now; retry later",
        )
    }
    /// `500 server_error` for failures that are not storage (e.g. no randomness).
    pub fn server_error() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::ServerError,
            "internal error",
        )
    }
    /// The JSON body `{"error": …, "error_description": …}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({ "error": self.code.as_str(), "error_description": self.description })
    }
}

impl From<crate::store::StoreError> for OAuthError {
    fn from(_: crate::store::StoreError) -> Self {
        Self::unavailable()
    }
}

impl From<crate::random::RandomError> for OAuthError {
    fn from(_: crate::random::RandomError) -> Self {
        Self::server_error()
    }
}
