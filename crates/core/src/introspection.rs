//! The introspection endpoint (RFC 7662).

use bytes::Bytes;
use http::{Request, Response, StatusCode};

use crate::client_auth::authenticate_client;
use crate::config::TokenTypeHint;
use crate::crypto::{TokenDigest, JTI_LEN};
use crate::error::OAuthError;
use crate::model::Scope;
use crate::server::{with_outcome, AuthorizationServer, Outcome};
use crate::store::Store;
use crate::token::Failure;
use crate::wire::{error_response, json_response, parse_post_form};

impl<S: Store> AuthorizationServer<S> {
    /// `POST /oauth2/introspect`. The caller must authenticate as a confidential client (RFC 7662
    /// §2.1: "the endpoint MUST also require some form of authorization"). A client sees its own
    /// tokens; a client registered with `introspect` (a resource server) sees any. Anything else —
    /// unknown, expired, revoked, used, or not the caller's — is `{"active": false}` (§2.2).
    pub async fn introspect(&self, request: Request<Bytes>) -> Response<Bytes> {
        match self.introspect_inner(&request).await {
            Ok(Some(claims)) => {
                with_outcome(json_response(StatusCode::OK, claims), Outcome::Active)
            }
            Ok(None) => with_outcome(
                json_response(StatusCode::OK, Bytes::from_static(b"{\"active\":false}")),
                Outcome::Inactive,
            ),
            Err(f) => with_outcome(error_response(&f.error), f.outcome),
        }
    }

    async fn introspect_inner(&self, request: &Request<Bytes>) -> Result<Option<Bytes>, Failure> {
        let (form, _) = parse_post_form(request, &[])?;
        let token = form
            .get("token")
            .ok_or_else(|| OAuthError::invalid_request("missing token"))?;
        let caller = authenticate_client(&self.store, request.headers(), &form, false)
            .await?
            .client;
        let digest = TokenDigest::of(token);
        let now = self.clock.now();
        let may_see = |owner: &str| caller.introspect || owner == caller.client_id;
        let order = match form.get("token_type_hint").and_then(TokenTypeHint::parse) {
            Some(TokenTypeHint::RefreshToken) => {
                [TokenTypeHint::RefreshToken, TokenTypeHint::AccessToken]
            }
            _ => [TokenTypeHint::AccessToken, TokenTypeHint::RefreshToken],
        };
        for kind in order {
            match kind {
                TokenTypeHint::AccessToken => {
                    if let Some(t) = self.store.find_access_token(&digest).await? {
                        if !t.is_active(now) || !may_see(&t.record.client_id) {
                            return Ok(None);
                        }
                        let r = &t.record;
                        return Ok(Some(self.claims(
                            "Bearer",
                            &r.scope,
                            &r.client_id,
                            r.username.as_deref(),
                            r.issued_at,
                            r.expires_at,
                            &digest,
                        )?));
                    }
                }
                TokenTypeHint::RefreshToken => {
                    if let Some(t) = self.store.find_refresh_token(&digest).await? {
                        if !t.is_active(now) || !may_see(&t.record.client_id) {
                            return Ok(None);
                        }
                        let r = &t.record;
                        return Ok(Some(self.claims(
                            "refresh_token",
                            &r.scope,
                            &r.client_id,
                            Some(&r.username),
                            r.issued_at,
                            r.expires_at,
                            &digest,
                        )?));
                    }
                }
            }
        }
        Ok(None)
    }

    #[allow(clippy::too_many_arguments)]
    fn claims(
        &self,
        token_type: &str,
        scope: &Scope,
        client_id: &str,
        username: Option<&str>,
        iat: i64,
        exp: i64,
        digest: &TokenDigest,
    ) -> Result<Bytes, OAuthError> {
        // RFC 7662 §2.2 members. `sub` is the user, or the client itself for client credentials.
        let mut jti = [0u8; JTI_LEN];
        let claims = Claims {
            active: true,
            scope: AsDisplay(scope),
            client_id,
            username,
            token_type,
            exp,
            iat,
            sub: username.unwrap_or(client_id),
            aud: client_id,
            iss: &self.config.issuer,
            jti: digest.jti_into(&mut jti),
        };
        // One buffer, sized for a typical answer, so serializing does not grow it.
        let mut body = Vec::with_capacity(CLAIMS_CAPACITY);
        serde_json::to_writer(&mut body, &claims).map_err(|_| OAuthError::server_error())?;
        Ok(Bytes::from(body))
    }
}

/// Room for an active answer with a long issuer and scope; a longer one just grows the buffer.
const CLAIMS_CAPACITY: usize = 512;

/// Serializes a value through its `Display`, as a JSON string, without an intermediate `String`.
struct AsDisplay<'a, T>(&'a T);

impl<T: std::fmt::Display> serde::Serialize for AsDisplay<'_, T> {
    fn serialize<Z: serde::Serializer>(&self, serializer: Z) -> Result<Z::Ok, Z::Error> {
        serializer.collect_str(self.0)
    }
}

/// An active introspection answer (RFC 7662 §2.2), serialized without an intermediate map.
#[derive(serde::Serialize)]
struct Claims<'a> {
    active: bool,
    scope: AsDisplay<'a, Scope>,
    client_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<&'a str>,
    token_type: &'a str,
    exp: i64,
    iat: i64,
    sub: &'a str,
    aud: &'a str,
    iss: &'a str,
    jti: &'a str,
}
