//! Refreshing an access token (RFC 6749 §6).

use bytes::Bytes;

use crate::client_auth::ClientCredentials;
use crate::endpoint::EndpointUrl;
use crate::error::Error;
use crate::secret::RefreshToken;
use crate::token::form_post;

/// `grant_type=refresh_token` (RFC 6749 §6).
#[derive(Debug)]
pub struct RefreshTokenRequest<'a> {
    /// `refresh_token` (REQUIRED).
    pub refresh_token: &'a RefreshToken,
    /// `scope` (OPTIONAL): "MUST NOT include any scope not originally granted".
    pub scope: Option<&'a str>,
}

impl RefreshTokenRequest<'_> {
    /// The HTTP request to the token endpoint.
    pub fn to_http(
        &self,
        token_endpoint: &EndpointUrl,
        credentials: &ClientCredentials,
    ) -> Result<http::Request<Bytes>, Error> {
        let mut params = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", self.refresh_token.secret()),
        ];
        if let Some(scope) = self.scope {
            params.push(("scope", scope));
        }
        form_post(token_endpoint, credentials, &params)
    }
}
