//! Exchanging an authorization code (RFC 6749 §4.1.3, with RFC 7636 §4.5 PKCE).

use bytes::Bytes;

use crate::client_auth::ClientCredentials;
use crate::endpoint::EndpointUrl;
use crate::error::Error;
use crate::token::form_post;

/// `grant_type=authorization_code` (RFC 6749 §4.1.3).
#[derive(Debug)]
pub struct AuthorizationCodeRequest<'a> {
    /// `code` (REQUIRED).
    pub code: &'a str,
    /// `redirect_uri`: REQUIRED if it was included in the authorization request, identical to it.
    pub redirect_uri: Option<&'a str>,
    /// `code_verifier` (RFC 7636 §4.5).
    pub code_verifier: Option<&'a str>,
}

impl AuthorizationCodeRequest<'_> {
    /// The HTTP request to the token endpoint.
    pub fn to_http(
        &self,
        token_endpoint: &EndpointUrl,
        credentials: &ClientCredentials,
    ) -> Result<http::Request<Bytes>, Error> {
        let mut params = vec![("grant_type", "authorization_code"), ("code", self.code)];
        if let Some(uri) = self.redirect_uri {
            params.push(("redirect_uri", uri));
        }
        if let Some(verifier) = self.code_verifier {
            params.push(("code_verifier", verifier));
        }
        form_post(token_endpoint, credentials, &params)
    }
}
