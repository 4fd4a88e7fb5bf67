//! Authorization server metadata (RFC 8414).

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use serde_json::json;

use crate::error::{ErrorCode, OAuthError};
use crate::server::{with_outcome, AuthorizationServer, Outcome};
use crate::wire::{error_response, WireError};

/// Path of the metadata document (RFC 8414 §3).
pub const WELL_KNOWN_PATH: &str = "/.well-known/oauth-authorization-server";
/// Authorization endpoint path.
pub const AUTHORIZATION_PATH: &str = "/oauth2/authorize";
/// Token endpoint path.
pub const TOKEN_PATH: &str = "/oauth2/token";
/// Revocation endpoint path.
pub const REVOCATION_PATH: &str = "/oauth2/revoke";
/// Introspection endpoint path.
pub const INTROSPECTION_PATH: &str = "/oauth2/introspect";

impl<S> AuthorizationServer<S> {
    /// The metadata document (RFC 8414 §2). Only what this server implements is listed.
    pub fn metadata_document(&self) -> serde_json::Value {
        let issuer = &self.config.issuer;
        json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}{AUTHORIZATION_PATH}"),
            "token_endpoint": format!("{issuer}{TOKEN_PATH}"),
            "revocation_endpoint": format!("{issuer}{REVOCATION_PATH}"),
            "introspection_endpoint": format!("{issuer}{INTROSPECTION_PATH}"),
            // Extension (docs/revocation-feed.md): where resource servers follow revocations.
            "revocation_feed_endpoint": format!("{issuer}{}", crate::feed::REVOCATION_FEED_PATH),
            "grant_types_supported": ["authorization_code", "client_credentials", "refresh_token"],
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            // RFC 9207: authorization responses carry `iss`.
            "authorization_response_iss_parameter_supported": true,
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "code_challenge_methods_supported": ["S256"],
        })
    }

    /// `GET /.well-known/oauth-authorization-server`.
    pub fn metadata(&self, request: &Request<Bytes>) -> Response<Bytes> {
        if request.method() != Method::GET && request.method() != Method::HEAD {
            let mut response = error_response(&WireError {
                error: OAuthError::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    ErrorCode::InvalidRequest,
                    "use GET",
                ),
                allow_post: false,
            });
            response
                .headers_mut()
                .insert(http::header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return with_outcome(response, Outcome::Rejected);
        }
        let mut response = Response::new(Bytes::from(self.metadata_document().to_string()));
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        response.headers_mut().insert(
            CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=300"),
        );
        with_outcome(response, Outcome::Metadata)
    }
}
