//! Authorization server metadata (RFC 8414).

use bytes::Bytes;
use http::header::{HeaderValue, ACCEPT};
use serde::Deserialize;

use crate::endpoint::{EndpointUrl, IssuerUrl};
use crate::error::Error;
use crate::http::HttpClient;
use crate::token::{error_from_response, parse_json, uri_of};

/// The metadata fields this client uses (RFC 8414 §2); others are ignored.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct AuthorizationServerMetadata {
    /// `issuer` (REQUIRED).
    pub issuer: String,
    /// `authorization_endpoint`
    #[serde(default)]
    pub authorization_endpoint: Option<String>,
    /// `token_endpoint`
    #[serde(default)]
    pub token_endpoint: Option<String>,
    /// `revocation_endpoint` (RFC 8414 §2, RFC 7009)
    #[serde(default)]
    pub revocation_endpoint: Option<String>,
    /// `introspection_endpoint` (RFC 8414 §2, RFC 7662)
    #[serde(default)]
    pub introspection_endpoint: Option<String>,
    /// `scopes_supported`
    #[serde(default)]
    pub scopes_supported: Option<Vec<String>>,
    /// `grant_types_supported`
    #[serde(default)]
    pub grant_types_supported: Option<Vec<String>>,
    /// `token_endpoint_auth_methods_supported` (default `client_secret_basic`)
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Option<Vec<String>>,
    /// `revocation_endpoint_auth_methods_supported`
    #[serde(default)]
    pub revocation_endpoint_auth_methods_supported: Option<Vec<String>>,
    /// `introspection_endpoint_auth_methods_supported`
    #[serde(default)]
    pub introspection_endpoint_auth_methods_supported: Option<Vec<String>>,
    /// `code_challenge_methods_supported` (RFC 7636)
    #[serde(default)]
    pub code_challenge_methods_supported: Option<Vec<String>>,
}

impl AuthorizationServerMetadata {
    fn endpoint(value: Option<&String>) -> Result<Option<EndpointUrl>, Error> {
        value
            .map(|url| EndpointUrl::parse(url))
            .transpose()
            .map_err(Error::from)
    }

    /// `token_endpoint`, checked (https or loopback http).
    pub fn token_endpoint(&self) -> Result<Option<EndpointUrl>, Error> {
        Self::endpoint(self.token_endpoint.as_ref())
    }

    /// `revocation_endpoint`, checked.
    pub fn revocation_endpoint(&self) -> Result<Option<EndpointUrl>, Error> {
        Self::endpoint(self.revocation_endpoint.as_ref())
    }

    /// `introspection_endpoint`, checked.
    pub fn introspection_endpoint(&self) -> Result<Option<EndpointUrl>, Error> {
        Self::endpoint(self.introspection_endpoint.as_ref())
    }
}

/// `GET {metadata URL}` (RFC 8414 §3.1).
pub fn metadata_request(issuer: &IssuerUrl) -> Result<http::Request<Bytes>, Error> {
    let mut request = http::Request::new(Bytes::new());
    *request.uri_mut() = uri_of(&issuer.metadata_url()?)?;
    request
        .headers_mut()
        .insert(ACCEPT, HeaderValue::from_static("application/json"));
    Ok(request)
}

/// Reads the metadata and checks its issuer (RFC 8414 §3.3: "The "issuer" value returned MUST be
/// identical to the authorization server's issuer identifier value into which the well-known URI
/// string was inserted to create the URL used to retrieve the metadata. If these values are not
/// identical, the data contained in the response MUST NOT be used.").
pub fn parse_metadata_response(
    issuer: &IssuerUrl,
    response: &http::Response<Bytes>,
) -> Result<AuthorizationServerMetadata, Error> {
    if response.status() != http::StatusCode::OK {
        return Err(error_from_response(response));
    }
    let metadata: AuthorizationServerMetadata =
        parse_json(response, "authorization server metadata")?;
    if metadata.issuer != issuer.as_str() {
        return Err(Error::Discovery(format!(
            "metadata names issuer `{}`, expected `{}`",
            metadata.issuer,
            issuer.as_str()
        )));
    }
    Ok(metadata)
}

/// Fetches and checks the metadata of `issuer`.
pub async fn discover(
    http: &dyn HttpClient,
    issuer: &IssuerUrl,
) -> Result<AuthorizationServerMetadata, Error> {
    let response = http.execute(metadata_request(issuer)?).await?;
    parse_metadata_response(issuer, &response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_for_another_issuer_must_not_be_used() {
        let issuer = IssuerUrl::parse("https://auth.example.com").unwrap();
        let body = r#"{"issuer":"https://evil.example.com","token_endpoint":"https://evil.example.com/token"}"#;
        let response = http::Response::new(Bytes::from(body));
        assert!(matches!(
            parse_metadata_response(&issuer, &response),
            Err(Error::Discovery(_))
        ));
        let body = r#"{"issuer":"https://auth.example.com","token_endpoint":"http://auth.example.com/token"}"#;
        let metadata =
            parse_metadata_response(&issuer, &http::Response::new(Bytes::from(body))).unwrap();
        // A plain-http endpoint off loopback is refused when used.
        assert!(metadata.token_endpoint().is_err());
    }
}
