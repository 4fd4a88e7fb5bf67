//! [`OAuthClient`]: the protocol requests of this crate sent through an [`HttpClient`], one call
//! per RFC operation, without any token management (see [`crate::TokenManager`] for that).

use std::sync::Arc;

use tracing::{debug, instrument};

use crate::client_auth::ClientCredentials;
use crate::discovery::{discover, AuthorizationServerMetadata};
use crate::endpoint::{EndpointUrl, IssuerUrl};
use crate::error::Error;
use crate::grant::authorization_code::AuthorizationCodeRequest;
use crate::grant::client_credentials::ClientCredentialsRequest;
use crate::grant::refresh_token::RefreshTokenRequest;
use crate::http::HttpClient;
use crate::introspection::{
    parse_introspection_response, IntrospectionRequest, IntrospectionResponse,
};
use crate::revocation::{parse_revocation_response, RevocationRequest, TokenTypeHint};
use crate::secret::RefreshToken;
use crate::token::{parse_token_response, TokenResponse};

/// The endpoints a client talks to.
#[derive(Clone, Debug, Default)]
pub struct Endpoints {
    /// RFC 6749 §3.2 token endpoint.
    pub token: Option<EndpointUrl>,
    /// RFC 7009 revocation endpoint.
    pub revocation: Option<EndpointUrl>,
    /// RFC 7662 introspection endpoint.
    pub introspection: Option<EndpointUrl>,
}

impl Endpoints {
    /// The endpoints listed in RFC 8414 metadata.
    pub fn from_metadata(metadata: &AuthorizationServerMetadata) -> Result<Self, Error> {
        Ok(Self {
            token: metadata.token_endpoint()?,
            revocation: metadata.revocation_endpoint()?,
            introspection: metadata.introspection_endpoint()?,
        })
    }
}

/// An OAuth 2.0 client: credentials, endpoints and an HTTP client.
#[derive(Clone, Debug)]
pub struct OAuthClient {
    http: Arc<dyn HttpClient>,
    credentials: ClientCredentials,
    endpoints: Endpoints,
}

impl OAuthClient {
    /// A client over `http`.
    pub fn new(
        http: Arc<dyn HttpClient>,
        credentials: ClientCredentials,
        endpoints: Endpoints,
    ) -> Self {
        Self {
            http,
            credentials,
            endpoints,
        }
    }

    /// A client over [`crate::ReqwestClient`].
    #[cfg(feature = "reqwest")]
    pub fn with_reqwest(
        credentials: ClientCredentials,
        endpoints: Endpoints,
    ) -> Result<Self, Error> {
        Ok(Self::new(
            Arc::new(crate::http::ReqwestClient::new()?),
            credentials,
            endpoints,
        ))
    }

    /// A client whose endpoints come from the issuer's RFC 8414 metadata.
    pub async fn discover(
        http: Arc<dyn HttpClient>,
        issuer: &IssuerUrl,
        credentials: ClientCredentials,
    ) -> Result<Self, Error> {
        let metadata = discover(http.as_ref(), issuer).await?;
        let endpoints = Endpoints::from_metadata(&metadata)?;
        Ok(Self::new(http, credentials, endpoints))
    }

    /// The HTTP client.
    pub fn http(&self) -> &Arc<dyn HttpClient> {
        &self.http
    }

    /// The credentials.
    pub fn credentials(&self) -> &ClientCredentials {
        &self.credentials
    }

    /// The endpoints.
    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    fn token_endpoint(&self) -> Result<&EndpointUrl, Error> {
        self.endpoints
            .token
            .as_ref()
            .ok_or(Error::MissingEndpoint("token_endpoint"))
    }

    async fn token_request(
        &self,
        request: http::Request<bytes::Bytes>,
    ) -> Result<TokenResponse, Error> {
        let response = self.http.execute(request).await?;
        debug!(
            status = response.status().as_u16(),
            "token endpoint answered"
        );
        parse_token_response(&response)
    }

    /// The client credentials grant (RFC 6749 §4.4).
    #[instrument(level = "debug", skip_all, fields(client_id = %self.credentials.client_id()))]
    pub async fn exchange_client_credentials(
        &self,
        scope: Option<&str>,
    ) -> Result<TokenResponse, Error> {
        let request = ClientCredentialsRequest { scope }
            .to_http(self.token_endpoint()?, &self.credentials)?;
        self.token_request(request).await
    }

    /// The refresh grant (RFC 6749 §6).
    #[instrument(level = "debug", skip_all, fields(client_id = %self.credentials.client_id()))]
    pub async fn exchange_refresh_token(
        &self,
        refresh_token: &RefreshToken,
        scope: Option<&str>,
    ) -> Result<TokenResponse, Error> {
        let request = RefreshTokenRequest {
            refresh_token,
            scope,
        }
        .to_http(self.token_endpoint()?, &self.credentials)?;
        self.token_request(request).await
    }

    /// The authorization code grant's token request (RFC 6749 §4.1.3, RFC 7636 §4.5).
    #[instrument(level = "debug", skip_all, fields(client_id = %self.credentials.client_id()))]
    pub async fn exchange_code(
        &self,
        code: &str,
        redirect_uri: Option<&str>,
        code_verifier: Option<&str>,
    ) -> Result<TokenResponse, Error> {
        let request = AuthorizationCodeRequest {
            code,
            redirect_uri,
            code_verifier,
        }
        .to_http(self.token_endpoint()?, &self.credentials)?;
        self.token_request(request).await
    }

    /// Revokes a token (RFC 7009).
    #[instrument(level = "debug", skip_all, fields(client_id = %self.credentials.client_id(), hint = ?token_type_hint))]
    pub async fn revoke(
        &self,
        token: &str,
        token_type_hint: Option<TokenTypeHint>,
    ) -> Result<(), Error> {
        let endpoint = self
            .endpoints
            .revocation
            .as_ref()
            .ok_or(Error::MissingEndpoint("revocation_endpoint"))?;
        let request = RevocationRequest {
            token,
            token_type_hint,
        }
        .to_http(endpoint, &self.credentials)?;
        let response = self.http.execute(request).await?;
        debug!(
            status = response.status().as_u16(),
            "revocation endpoint answered"
        );
        parse_revocation_response(&response)
    }

    /// Introspects a token (RFC 7662).
    #[instrument(level = "debug", skip_all, fields(client_id = %self.credentials.client_id()))]
    pub async fn introspect(
        &self,
        token: &str,
        token_type_hint: Option<TokenTypeHint>,
    ) -> Result<IntrospectionResponse, Error> {
        let endpoint = self
            .endpoints
            .introspection
            .as_ref()
            .ok_or(Error::MissingEndpoint("introspection_endpoint"))?;
        let request = IntrospectionRequest {
            token,
            token_type_hint,
        }
        .to_http(endpoint, &self.credentials)?;
        let response = self.http.execute(request).await?;
        debug!(
            status = response.status().as_u16(),
            "introspection endpoint answered"
        );
        parse_introspection_response(&response)
    }
}
