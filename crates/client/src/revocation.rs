//! Token revocation (RFC 7009).

use bytes::Bytes;

use crate::client_auth::ClientCredentials;
use crate::endpoint::EndpointUrl;
use crate::error::Error;
use crate::token::{error_from_response, form_post};

/// `token_type_hint` (RFC 7009 §2.1, RFC 7662 §2.1): helps the server find the token faster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenTypeHint {
    /// `access_token`
    AccessToken,
    /// `refresh_token`
    RefreshToken,
}

impl TokenTypeHint {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AccessToken => "access_token",
            Self::RefreshToken => "refresh_token",
        }
    }
}

/// A revocation request (RFC 7009 §2.1).
#[derive(Debug)]
pub struct RevocationRequest<'a> {
    /// `token` (REQUIRED). A `&str` so any token can be revoked; callers holding an
    /// [`crate::AccessToken`] pass `.secret()`.
    pub token: &'a str,
    /// `token_type_hint` (OPTIONAL).
    pub token_type_hint: Option<TokenTypeHint>,
}

impl RevocationRequest<'_> {
    /// The HTTP request to the revocation endpoint.
    pub fn to_http(
        &self,
        revocation_endpoint: &EndpointUrl,
        credentials: &ClientCredentials,
    ) -> Result<http::Request<Bytes>, Error> {
        let mut params = vec![("token", self.token)];
        if let Some(hint) = self.token_type_hint {
            params.push(("token_type_hint", hint.as_str()));
        }
        form_post(revocation_endpoint, credentials, &params)
    }
}

/// Reads the answer. RFC 7009 §2.2: "The authorization server responds with HTTP status code 200
/// if the token has been revoked successfully or if the client submitted an invalid token"; "The
/// content of the response body is ignored by the client". Anything else is an error (§2.2.1),
/// including `503` with `Retry-After`.
pub fn parse_revocation_response(response: &http::Response<Bytes>) -> Result<(), Error> {
    if response.status() == http::StatusCode::OK {
        Ok(())
    } else {
        Err(error_from_response(response))
    }
}
