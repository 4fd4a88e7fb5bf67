//! The client credentials grant (RFC 6749 §4.4).

use bytes::Bytes;

use crate::client_auth::ClientCredentials;
use crate::endpoint::EndpointUrl;
use crate::error::Error;
use crate::token::form_post;

/// `grant_type=client_credentials` (RFC 6749 §4.4.2). "The client credentials grant type MUST
/// only be used by confidential clients."
#[derive(Debug, Default)]
pub struct ClientCredentialsRequest<'a> {
    /// `scope` (OPTIONAL).
    pub scope: Option<&'a str>,
}

impl ClientCredentialsRequest<'_> {
    /// The HTTP request to the token endpoint.
    pub fn to_http(
        &self,
        token_endpoint: &EndpointUrl,
        credentials: &ClientCredentials,
    ) -> Result<http::Request<Bytes>, Error> {
        let mut params = vec![("grant_type", "client_credentials")];
        if let Some(scope) = self.scope {
            params.push(("scope", scope));
        }
        form_post(token_endpoint, credentials, &params)
    }
}
