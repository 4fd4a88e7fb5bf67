//! One module per grant type (fosite's `flow_*`, oauth2-rs's per-flow modules). The token endpoint
//! parses `grant_type` into [`TokenGrant`] and hands the authenticated client and form to the
//! grant's `exchange`. Adding `authorization_code` means a variant here and a module beside these.

use bytes::Bytes;

use crate::crypto::TokenDigest;
use crate::error::OAuthError;
use crate::model::{AccessTokenRecord, Client, Grant, GrantType, RefreshTokenRecord, Scope};
use crate::random::{new_access_token, new_id, new_refresh_token};
use crate::server::AuthorizationServer;
use crate::store::Store;
use crate::token::TokenResponse;

pub mod authorization_code;
pub mod client_credentials;
pub mod refresh_token;

/// The grants the token endpoint accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenGrant {
    /// RFC 6749 §4.1.3 with RFC 7636
    AuthorizationCode,
    /// RFC 6749 §4.4
    ClientCredentials,
    /// RFC 6749 §6
    RefreshToken,
}

impl TokenGrant {
    /// From the `grant_type` parameter; `None` → `unsupported_grant_type`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "authorization_code" => Some(Self::AuthorizationCode),
            "client_credentials" => Some(Self::ClientCredentials),
            "refresh_token" => Some(Self::RefreshToken),
            _ => None,
        }
    }
    /// The registered grant type a client needs for this grant.
    pub fn grant_type(self) -> GrantType {
        match self {
            Self::AuthorizationCode => GrantType::AuthorizationCode,
            Self::ClientCredentials => GrantType::ClientCredentials,
            Self::RefreshToken => GrantType::RefreshToken,
        }
    }
    /// RFC 6749 §4.4: "The client credentials grant type MUST only be used by confidential
    /// clients." Public clients may exchange codes (with PKCE) and refresh (RFC 6749 §6, RFC 9700
    /// §4.14.2 with rotation).
    pub fn allows_public_clients(self) -> bool {
        matches!(self, Self::AuthorizationCode | Self::RefreshToken)
    }
}

/// The scope to grant: the requested one if it is within `allowed`, else `invalid_scope`;
/// all of `allowed` when none is requested (RFC 6749 §3.3: the server "MUST either process the
/// request using a pre-defined default value or fail").
pub(crate) fn resolve_scope(requested: Option<&str>, allowed: &Scope) -> Result<Scope, OAuthError> {
    match requested {
        None => Ok(allowed.clone()),
        Some(raw) => {
            let scope =
                Scope::parse(raw).map_err(|_| OAuthError::invalid_scope("malformed scope"))?;
            if scope.is_subset(allowed) {
                Ok(scope)
            } else {
                Err(OAuthError::invalid_scope(
                    "requested scope exceeds what the client or grant allows",
                ))
            }
        }
    }
}

/// A new user grant with its first tokens and the token response, not yet stored.
pub(crate) struct MintedGrant {
    pub(crate) grant: Grant,
    pub(crate) access: AccessTokenRecord,
    pub(crate) refresh: Option<RefreshTokenRecord>,
    pub(crate) body: Bytes,
}

impl<S> AuthorizationServer<S> {
    /// Mints (without storing) a grant for `username` with an access token and, when the client
    /// is registered for `refresh_token`, a refresh token.
    pub(crate) fn mint_user_grant(
        &self,
        client: &Client,
        username: &str,
        scope: &Scope,
    ) -> Result<MintedGrant, OAuthError> {
        let now = self.clock.now();
        let millis = self.clock.now_millis();
        let random = self.random.as_ref();
        let grant = Grant {
            grant_id: new_id(random)?,
            client_id: client.client_id.clone(),
            username: username.to_owned(),
            scope: scope.clone(),
            created_at: now,
            last_refreshed_at: None,
            revoked_at: None,
        };
        let access_token = new_access_token(random, millis)?;
        let access = AccessTokenRecord {
            digest: TokenDigest::of(access_token.secret()),
            grant_id: Some(grant.grant_id.clone()),
            client_id: client.client_id.clone(),
            username: Some(username.to_owned()),
            scope: scope.clone(),
            issued_at: now,
            expires_at: now + self.config.access_token_ttl,
        };
        let refresh_token = if client.allows(GrantType::RefreshToken) {
            Some(new_refresh_token(random, millis)?)
        } else {
            None
        };
        let refresh = refresh_token.as_ref().map(|t| RefreshTokenRecord {
            digest: TokenDigest::of(t.secret()),
            grant_id: grant.grant_id.clone(),
            client_id: client.client_id.clone(),
            username: username.to_owned(),
            scope: scope.clone(),
            issued_at: now,
            expires_at: now + self.config.refresh_token_ttl,
        });
        let body = token_response_body(&TokenResponse {
            access_token: access_token.secret(),
            token_type: "Bearer",
            expires_in: self.config.access_token_ttl,
            refresh_token: refresh_token.as_ref().map(|t| t.secret()),
            scope: scope.to_string(),
        })?;
        Ok(MintedGrant {
            grant,
            access,
            refresh,
            body,
        })
    }
}

impl<S: Store> AuthorizationServer<S> {
    /// Mints and stores a new user grant for `client` — an access token and, when the client is
    /// registered for `refresh_token`, a refresh token — and returns the RFC 6749 §5.1 response
    /// body. The authorization-code exchange produces exactly this kind of grant; `tokenwarden
    /// token issue` calls this directly.
    pub async fn issue_user_grant(
        &self,
        client: &Client,
        username: &str,
        scope: Option<&str>,
    ) -> Result<Bytes, OAuthError> {
        let scope = resolve_scope(scope, &client.scope)?;
        let minted = self.mint_user_grant(client, username, &scope)?;
        self.store
            .create_grant(&minted.grant, &minted.access, minted.refresh.as_ref())
            .await?;
        Ok(minted.body)
    }
}

pub(crate) fn token_response_body(response: &TokenResponse<'_>) -> Result<Bytes, OAuthError> {
    serde_json::to_vec(response)
        .map(Bytes::from)
        .map_err(|_| OAuthError::server_error())
}
