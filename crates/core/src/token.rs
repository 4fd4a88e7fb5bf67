//! The token endpoint (RFC 6749 §3.2): wire rules, client authentication, then dispatch to one
//! module per grant in [`crate::grant`].

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use serde::Serialize;

use crate::client_auth::authenticate_client;
use crate::error::{ErrorCode, OAuthError};
use crate::grant::{self, TokenGrant};
use crate::server::{with_outcome, AuthorizationServer, Outcome};
use crate::store::Store;
use crate::wire::{error_response, json_response, parse_post_form, WireError};

/// A successful token response (RFC 6749 §5.1).
#[derive(Serialize)]
pub struct TokenResponse<'a> {
    /// `access_token`
    pub access_token: &'a str,
    /// `token_type`: always `Bearer` (RFC 6750).
    pub token_type: &'static str,
    /// `expires_in`, seconds.
    pub expires_in: i64,
    /// `refresh_token`, when one is issued.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<&'a str>,
    /// `scope`: always sent, so clients never have to guess what they got (RFC 6749 §5.1
    /// requires it only when it differs from the request).
    pub scope: String,
}

/// An endpoint failure: the error to send and the outcome to record.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) error: WireError,
    pub(crate) outcome: Outcome,
}

impl From<WireError> for Failure {
    fn from(error: WireError) -> Self {
        Self {
            error,
            outcome: Outcome::Rejected,
        }
    }
}
impl From<OAuthError> for Failure {
    fn from(error: OAuthError) -> Self {
        WireError::from(error).into()
    }
}
impl From<crate::store::StoreError> for Failure {
    fn from(error: crate::store::StoreError) -> Self {
        OAuthError::from(error).into()
    }
}
impl From<crate::random::RandomError> for Failure {
    fn from(error: crate::random::RandomError) -> Self {
        OAuthError::from(error).into()
    }
}

impl<S: Store> AuthorizationServer<S> {
    /// `POST /oauth2/token`.
    pub async fn token(&self, request: Request<Bytes>) -> Response<Bytes> {
        match self.token_inner(&request).await {
            Ok((body, outcome)) => with_outcome(json_response(StatusCode::OK, body), outcome),
            Err(f) => with_outcome(error_response(&f.error), f.outcome),
        }
    }

    async fn token_inner(&self, request: &Request<Bytes>) -> Result<(Bytes, Outcome), Failure> {
        let (form, _) = parse_post_form(request, &[])?;
        // RFC 6749 §4.4.2 / §6: grant_type is REQUIRED.
        let grant_type = form
            .get("grant_type")
            .ok_or_else(|| OAuthError::invalid_request("missing grant_type"))?;
        let grant = TokenGrant::parse(grant_type).ok_or_else(|| {
            OAuthError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::UnsupportedGrantType,
                "grant_type is not supported by this server",
            )
        })?;
        let client = authenticate_client(
            &self.store,
            request.headers(),
            &form,
            grant.allows_public_clients(),
        )
        .await?;
        // RFC 6749 §5.2 unauthorized_client: "The authenticated client is not authorized to use
        // this authorization grant type."
        if !client.client.allows(grant.grant_type()) {
            return Err(OAuthError::unauthorized_client(
                "client is not registered for this grant_type",
            )
            .into());
        }
        match grant {
            TokenGrant::AuthorizationCode => {
                grant::authorization_code::exchange(self, &client.client, &form).await
            }
            TokenGrant::ClientCredentials => {
                grant::client_credentials::exchange(self, &client.client, &form).await
            }
            TokenGrant::RefreshToken => {
                grant::refresh_token::exchange(self, &client.client, &form).await
            }
        }
    }
}
