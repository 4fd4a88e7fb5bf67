//! Token introspection (RFC 7662).

use bytes::Bytes;
use serde::Deserialize;

use crate::client_auth::ClientCredentials;
use crate::endpoint::EndpointUrl;
use crate::error::Error;
use crate::revocation::TokenTypeHint;
use crate::token::{error_from_response, form_post, parse_json};

/// An introspection request (RFC 7662 §2.1).
#[derive(Debug)]
pub struct IntrospectionRequest<'a> {
    /// `token` (REQUIRED).
    pub token: &'a str,
    /// `token_type_hint` (OPTIONAL).
    pub token_type_hint: Option<TokenTypeHint>,
}

impl IntrospectionRequest<'_> {
    /// The HTTP request to the introspection endpoint.
    pub fn to_http(
        &self,
        introspection_endpoint: &EndpointUrl,
        credentials: &ClientCredentials,
    ) -> Result<http::Request<Bytes>, Error> {
        let mut params = vec![("token", self.token)];
        if let Some(hint) = self.token_type_hint {
            params.push(("token_type_hint", hint.as_str()));
        }
        form_post(introspection_endpoint, credentials, &params)
    }
}

/// `aud`: one audience or several (RFC 7662 §2.2, RFC 7519 §4.1.3).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    /// A single string.
    One(String),
    /// An array.
    Many(Vec<String>),
}

/// An introspection response (RFC 7662 §2.2). Only `active` is required.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct IntrospectionResponse {
    /// `active` (REQUIRED).
    pub active: bool,
    /// `scope`
    #[serde(default)]
    pub scope: Option<String>,
    /// `client_id`
    #[serde(default)]
    pub client_id: Option<String>,
    /// `username`
    #[serde(default)]
    pub username: Option<String>,
    /// `token_type`
    #[serde(default)]
    pub token_type: Option<String>,
    /// `exp` (seconds since the epoch)
    #[serde(default)]
    pub exp: Option<i64>,
    /// `iat`
    #[serde(default)]
    pub iat: Option<i64>,
    /// `nbf`
    #[serde(default)]
    pub nbf: Option<i64>,
    /// `sub`
    #[serde(default)]
    pub sub: Option<String>,
    /// `aud`
    #[serde(default)]
    pub aud: Option<Audience>,
    /// `iss`
    #[serde(default)]
    pub iss: Option<String>,
    /// `jti`
    #[serde(default)]
    pub jti: Option<String>,
}

/// Reads the answer: 200 with a JSON body, or an error.
pub fn parse_introspection_response(
    response: &http::Response<Bytes>,
) -> Result<IntrospectionResponse, Error> {
    if response.status() != http::StatusCode::OK {
        return Err(error_from_response(response));
    }
    parse_json(response, "introspection response")
}
