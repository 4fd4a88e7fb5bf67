//! The revocation endpoint (RFC 7009), shaped like oauthlib's `RevocationEndpoint`:
//! [`AuthorizationServer::validate_revocation_request`] checks a request without acting on it, and
//! [`AuthorizationServer::create_revocation_response`] validates, revokes and answers.

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, PRAGMA};
use http::{HeaderValue, Request, Response, StatusCode};

use crate::client_auth::{authenticate_client, AuthenticatedClient};
use crate::config::TokenTypeHint;
use crate::crypto::TokenDigest;
use crate::error::{ErrorCode, OAuthError};
use crate::secret::PresentedToken;
use crate::server::{with_outcome, AuthorizationServer, Outcome};
use crate::store::{FoundToken, Store};
use crate::wire::{error_response, parse_post_form, WireError};

/// A revocation request that passed validation.
#[derive(Debug)]
pub struct RevocationRequest {
    /// The token to revoke (RFC 7009 §2.1 `token`).
    pub token: PresentedToken,
    /// The hint, when it names a known type (other values are ignored).
    pub token_type_hint: Option<TokenTypeHint>,
    /// The authenticated client.
    pub client: AuthenticatedClient,
    /// The JSONP callback, when JSONP is enabled and one was given.
    pub callback: Option<String>,
}

/// A revocation request that failed validation: the error and, when one was given and valid, the
/// JSONP callback to wrap it in.
#[derive(Debug)]
pub struct RevocationError {
    /// What is wrong.
    pub error: WireError,
    /// The JSONP callback to answer through.
    pub callback: Option<String>,
}

/// RFC 7009 §2.3 leaves the callback syntax open; we accept a dotted JavaScript identifier path
/// only — `^[A-Za-z_$][A-Za-z0-9_$]*(\.[A-Za-z_$][A-Za-z0-9_$]*)*$` — so nothing but a function
/// name can be injected into the script.
pub fn is_valid_callback(name: &str) -> bool {
    name.len() <= 128
        && name.split('.').all(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
        })
}

impl<S: Store> AuthorizationServer<S> {
    /// Validates a revocation request (wire rules, `token` present, client authentication,
    /// `token_type_hint` support) without revoking anything.
    pub async fn validate_revocation_request(
        &self,
        request: &Request<Bytes>,
    ) -> Result<RevocationRequest, RevocationError> {
        let options = &self.config.revocation;
        let allowed_query: &[&str] = if options.enable_jsonp {
            &["callback"]
        } else {
            &[]
        };
        let (form, query) =
            parse_post_form(request, allowed_query).map_err(|error| RevocationError {
                error,
                callback: None,
            })?;
        // The callback may come in the query (RFC 7009 §2.3's example) or, as oauthlib clients
        // send it, in the body; both at once is a parameter sent twice.
        let body_callback = if options.enable_jsonp {
            form.get("callback")
        } else {
            None
        };
        if body_callback.is_some() && query.get("callback").is_some() {
            return Err(RevocationError {
                error: OAuthError::invalid_request("parameter `callback` sent more than once")
                    .into(),
                callback: None,
            });
        }
        let callback = match query.get("callback").or(body_callback) {
            Some(cb) if is_valid_callback(cb) => Some(cb.to_owned()),
            Some(_) => {
                return Err(RevocationError {
                    error: OAuthError::invalid_request(
                        "callback must be a JavaScript identifier path",
                    )
                    .into(),
                    callback: None,
                })
            }
            None => None,
        };
        let fail = |error: OAuthError| RevocationError {
            error: error.into(),
            callback: callback.clone(),
        };
        // RFC 7009 §2.1: token REQUIRED.
        let token = form
            .get("token")
            .ok_or_else(|| fail(OAuthError::invalid_request("missing token")))?;
        let client = authenticate_client(&self.store, request.headers(), &form, true)
            .await
            .map_err(fail)?;
        let token_type_hint = form.get("token_type_hint").and_then(TokenTypeHint::parse);
        // RFC 7009 §2.2.1 unsupported_token_type: "The authorization server does not support the
        // revocation of the presented token type."
        if let Some(hint) = token_type_hint {
            if !options.supported_token_types.contains(&hint) {
                return Err(fail(OAuthError::new(
                    StatusCode::BAD_REQUEST,
                    ErrorCode::UnsupportedTokenType,
                    format!("revocation of {} is not supported", hint.as_str()),
                )));
            }
        }
        Ok(RevocationRequest {
            token: PresentedToken::new(token.to_owned()),
            token_type_hint,
            client,
            callback,
        })
    }

    /// `POST /oauth2/revoke`: validates, revokes, answers (RFC 7009 §2.2: `200` whether or not the
    /// token was known, since "the purpose of the revocation request, invalidating the particular
    /// token, is already achieved").
    pub async fn create_revocation_response(&self, request: Request<Bytes>) -> Response<Bytes> {
        let validated = match self.validate_revocation_request(&request).await {
            Ok(v) => v,
            Err(e) => {
                return with_outcome(
                    self.revocation_error(&e.error, e.callback.as_deref()),
                    Outcome::Rejected,
                )
            }
        };
        match self.revoke_validated(&validated).await {
            Ok(outcome) => with_outcome(revocation_ok(validated.callback.as_deref()), outcome),
            Err(error) => with_outcome(
                self.revocation_error(&error.into(), validated.callback.as_deref()),
                Outcome::Rejected,
            ),
        }
    }

    /// Alias of [`Self::create_revocation_response`].
    pub async fn revoke(&self, request: Request<Bytes>) -> Response<Bytes> {
        self.create_revocation_response(request).await
    }

    /// Revokes the token of a validated request. Hints order the lookup; every supported type is
    /// searched (RFC 7009 §2.1: "the authorization server … MUST extend its search across all of
    /// its supported token types").
    pub async fn revoke_validated(
        &self,
        request: &RevocationRequest,
    ) -> Result<Outcome, OAuthError> {
        let digest = TokenDigest::of(request.token.secret());
        let now = self.clock.now();
        let supported = &self.config.revocation.supported_token_types;
        let order = match request.token_type_hint {
            Some(TokenTypeHint::RefreshToken) => {
                [TokenTypeHint::RefreshToken, TokenTypeHint::AccessToken]
            }
            _ => [TokenTypeHint::AccessToken, TokenTypeHint::RefreshToken],
        };
        // RFC 7009 §2.1: the server "first validates the client credentials … and then verifies
        // whether the token was issued to the client making the revocation request. If this
        // validation fails, the request is refused".
        let not_yours = || OAuthError::invalid_request("the token was not issued to this client");
        let caller = &request.client.client.client_id;
        // Every type is searched; finding the token among a type this endpoint does not revoke is
        // RFC 7009 §2.2.1 `unsupported_token_type`, not a silent success.
        let unsupported = |kind: TokenTypeHint| {
            OAuthError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::UnsupportedTokenType,
                format!("revocation of {} is not supported", kind.as_str()),
            )
        };
        // Both types in one lookup; a digest names at most one token (the type is in the token's
        // prefix), so the hint's order decides nothing more than which type is reported first.
        let mut any = Some(self.store.find_any_token(&digest).await?);
        for kind in order {
            // (owner, already revoked, the grant to end with it)
            let found = match (kind, any.take()) {
                (TokenTypeHint::AccessToken, Some(FoundToken::Access(t))) => {
                    let cascade = t
                        .record
                        .grant_id
                        .filter(|_| self.config.revocation.revoke_access_cascades);
                    (t.record.client_id, t.revoked, cascade)
                }
                // Revoking a refresh token ends its grant: every access and refresh token
                // descended from the same authorization (RFC 7009 §2.1 "SHOULD").
                (TokenTypeHint::RefreshToken, Some(FoundToken::Refresh(t))) => {
                    (t.record.client_id, t.revoked, Some(t.record.grant_id))
                }
                (_, other) => {
                    any = other;
                    continue;
                }
            };
            let (owner, revoked, grant_id) = found;
            if &owner != caller {
                return Err(not_yours());
            }
            if !supported.contains(&kind) {
                return Err(unsupported(kind));
            }
            if revoked {
                return Ok(Outcome::NothingToRevoke);
            }
            if kind == TokenTypeHint::AccessToken {
                self.store.revoke_access_token(&digest, now).await?;
            }
            if let Some(grant_id) = grant_id {
                self.store.revoke_grant(&grant_id, now).await?;
            }
            return Ok(Outcome::Revoked);
        }
        Ok(Outcome::NothingToRevoke)
    }

    fn revocation_error(&self, error: &WireError, callback: Option<&str>) -> Response<Bytes> {
        match callback {
            // RFC 7009 §2.3: JSONP errors are delivered in a 200 so the script runs.
            Some(cb) => javascript(format!("{cb}({});", error.error.to_json())),
            None => error_response(error),
        }
    }
}

fn revocation_ok(callback: Option<&str>) -> Response<Bytes> {
    match callback {
        Some(cb) => javascript(format!("{cb}();")),
        None => {
            let mut response = Response::new(Bytes::new());
            response
                .headers_mut()
                .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
                .headers_mut()
                .insert(PRAGMA, HeaderValue::from_static("no-cache"));
            response
        }
    }
}

fn javascript(body: String) -> Response<Bytes> {
    let mut response = Response::new(Bytes::from(body));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/javascript"),
    );
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
        .headers_mut()
        .insert(PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

#[cfg(test)]
mod tests {
    use super::is_valid_callback;

    #[test]
    fn callback_names_are_identifier_paths() {
        assert!(is_valid_callback("cb"));
        assert!(is_valid_callback("$.app_1.done"));
        assert!(!is_valid_callback("1cb"));
        assert!(!is_valid_callback("a..b"));
        assert!(!is_valid_callback("alert(1)"));
        assert!(!is_valid_callback("a-b"));
        assert!(!is_valid_callback(""));
    }
}
