//! The authorization endpoint (RFC 6749 §4.1.1, §4.1.2; RFC 7636 §4.3).
//!
//! The core validates the request and mints the code; logging the user in and asking for consent
//! are the embedding server's job (they need pages and sessions). The flow:
//! [`AuthorizationServer::validate_authorization_request`] → (login, consent) →
//! [`AuthorizationServer::issue_authorization_code`] or [`AuthorizationRequest::error_location`]
//! with `access_denied`.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::crypto::TokenDigest;
use crate::error::{ErrorCode, OAuthError};
use crate::grant::resolve_scope;
use crate::model::{AuthorizationCodeRecord, Client, GrantType, Scope};
use crate::pkce::is_valid_verifier_syntax_chars;
use crate::random::new_authorization_code;
use crate::server::AuthorizationServer;
use crate::store::Store;
use crate::wire::parse_form;

/// Characters left unencoded in a query component: RFC 3986 unreserved.
const QUERY_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Appends `params` to `uri`'s query (RFC 6749 §3.1.2: the redirection URI "MAY include an
/// application/x-www-form-urlencoded formatted … query component, which MUST be retained when
/// adding additional query parameters").
pub fn append_query(uri: &str, params: &[(&str, &str)]) -> String {
    let mut out = uri.to_owned();
    let mut sep = if uri.contains('?') {
        if uri.ends_with(['?', '&']) {
            ""
        } else {
            "&"
        }
    } else {
        "?"
    };
    for (k, v) in params {
        out.push_str(sep);
        out.extend(utf8_percent_encode(k, QUERY_COMPONENT));
        out.push('=');
        out.extend(utf8_percent_encode(v, QUERY_COMPONENT));
        sep = "&";
    }
    out
}

/// A validated authorization request (RFC 6749 §4.1.1).
#[derive(Debug, Clone)]
pub struct AuthorizationRequest {
    /// The client.
    pub client: Client,
    /// The redirect URI the response goes to (exactly one of the registered ones).
    pub redirect_uri: String,
    /// Whether the request named `redirect_uri` (then the token request must repeat it, §4.1.3).
    pub redirect_uri_given: bool,
    /// The scope to grant.
    pub scope: Scope,
    /// `state`, echoed back.
    pub state: Option<String>,
    /// The PKCE S256 `code_challenge`.
    pub code_challenge: Option<String>,
    /// The issuer, echoed as `iss` (RFC 9207).
    pub issuer: String,
}

impl AuthorizationRequest {
    /// The error redirect (RFC 6749 §4.1.2.1): `error`, `error_description`, `state`, `iss`.
    pub fn error_location(&self, code: ErrorCode, description: &str) -> String {
        let mut params = vec![("error", code.as_str()), ("error_description", description)];
        if let Some(state) = &self.state {
            params.push(("state", state));
        }
        params.push(("iss", &self.issuer));
        append_query(&self.redirect_uri, &params)
    }
}

/// Why an authorization request failed, and how to tell the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizationError {
    /// The client or redirect URI is missing, unknown or mismatched. RFC 6749 §4.1.2.1: the
    /// server "SHOULD inform the resource owner of the error and MUST NOT automatically redirect
    /// the user-agent to the invalid redirection URI" — show a page.
    Page(String),
    /// Anything else: redirect back to the client with the error.
    Redirect(String),
}

impl<S: Store> AuthorizationServer<S> {
    /// Validates `GET /oauth2/authorize`'s query string.
    pub async fn validate_authorization_request(
        &self,
        query: &str,
    ) -> Result<AuthorizationRequest, AuthorizationError> {
        let params = parse_form(query.as_bytes()).map_err(|e| {
            AuthorizationError::Page(format!(
                "The authorization request is malformed: {}.",
                e.description
            ))
        })?;
        let client_id = params.get("client_id").ok_or_else(|| {
            AuthorizationError::Page(
                "The authorization request names no client (client_id).".into(),
            )
        })?;
        let client = self
            .store
            .find_client(client_id)
            .await
            .map_err(|_| {
                AuthorizationError::Page(
                    "The server cannot process requests right now. Try again later.".into(),
                )
            })?
            .ok_or_else(|| {
                AuthorizationError::Page(
                    "The application that sent you here is not registered.".into(),
                )
            })?;
        // RFC 6749 §3.1.2.3: with several registered URIs the request MUST include one; it is
        // compared exactly (RFC 9700 §2.1: "exact string matching").
        let (redirect_uri, given) = match params.get("redirect_uri") {
            Some(uri) if client.redirect_uris.iter().any(|r| r == uri) => (uri.to_owned(), true),
            Some(_) => {
                return Err(AuthorizationError::Page(
                    "The application sent a redirect address that is not registered for it.".into(),
                ))
            }
            None => match client.redirect_uris.as_slice() {
                [only] => (only.clone(), false),
                _ => {
                    return Err(AuthorizationError::Page(
                        "The application did not say where to return (redirect_uri).".into(),
                    ))
                }
            },
        };
        let mut request = AuthorizationRequest {
            client,
            redirect_uri,
            redirect_uri_given: given,
            scope: Scope::default(),
            state: params.get("state").map(str::to_owned),
            code_challenge: None,
            issuer: self.config.issuer.clone(),
        };
        let fail = |request: &AuthorizationRequest, code: ErrorCode, description: &str| {
            AuthorizationError::Redirect(request.error_location(code, description))
        };
        match params.get("response_type") {
            Some("code") => {}
            None => {
                return Err(fail(
                    &request,
                    ErrorCode::InvalidRequest,
                    "missing response_type",
                ))
            }
            Some(_) => {
                return Err(fail(
                    &request,
                    ErrorCode::UnsupportedResponseType,
                    "only response_type=code is supported",
                ))
            }
        }
        if !request.client.allows(GrantType::AuthorizationCode) {
            return Err(fail(
                &request,
                ErrorCode::UnauthorizedClient,
                "client is not registered for authorization_code",
            ));
        }
        request.scope = resolve_scope(params.get("scope"), &request.client.scope)
            .map_err(|e: OAuthError| fail(&request, e.code, &e.description))?;
        // RFC 7636 §4.3; `plain` is refused (RFC 9700 §2.1.1: use S256).
        match (
            params.get("code_challenge"),
            params.get("code_challenge_method"),
        ) {
            // An S256 challenge is BASE64URL(SHA-256(..)): exactly 43 characters (RFC 7636 §4.2).
            (Some(challenge), Some("S256"))
                if challenge.len() == 43 && is_valid_verifier_syntax_chars(challenge) =>
            {
                request.code_challenge = Some(challenge.to_owned());
            }
            (Some(_), Some("S256")) => {
                return Err(fail(
                    &request,
                    ErrorCode::InvalidRequest,
                    "malformed code_challenge",
                ));
            }
            (Some(_), _) => {
                return Err(fail(
                    &request,
                    ErrorCode::InvalidRequest,
                    "code_challenge_method must be S256 (plain is not supported)",
                ));
            }
            (None, Some(_)) => {
                return Err(fail(
                    &request,
                    ErrorCode::InvalidRequest,
                    "code_challenge_method without code_challenge",
                ));
            }
            (None, None) if request.client.is_public() => {
                // RFC 9700 §2.1.1: public clients MUST use PKCE.
                return Err(fail(
                    &request,
                    ErrorCode::InvalidRequest,
                    "PKCE (code_challenge, S256) is required for this client",
                ));
            }
            (None, None) => {}
        }
        Ok(request)
    }

    /// Mints a single-use authorization code for the signed-in `username` and returns the
    /// redirect location carrying `code`, `state` and `iss` (RFC 6749 §4.1.2, RFC 9207).
    pub async fn issue_authorization_code(
        &self,
        request: &AuthorizationRequest,
        username: &str,
    ) -> Result<String, OAuthError> {
        let now = self.clock.now();
        let code = new_authorization_code(self.random.as_ref(), self.clock.now_millis())?;
        let record = AuthorizationCodeRecord {
            digest: TokenDigest::of(code.secret()),
            client_id: request.client.client_id.clone(),
            username: username.to_owned(),
            redirect_uri: request.redirect_uri.clone(),
            redirect_uri_given: request.redirect_uri_given,
            scope: request.scope.clone(),
            code_challenge: request.code_challenge.clone(),
            issued_at: now,
            expires_at: now + self.config.auth_code_ttl,
        };
        self.store.insert_authorization_code(&record).await?;
        let mut params = vec![("code", code.secret())];
        if let Some(state) = &request.state {
            params.push(("state", state));
        }
        params.push(("iss", &self.config.issuer));
        Ok(append_query(&request.redirect_uri, &params))
    }
}

#[cfg(test)]
mod tests {
    use super::append_query;

    #[test]
    fn appends_to_existing_query_and_encodes() {
        assert_eq!(
            append_query("https://a/cb", &[("code", "x y"), ("state", "s&t")]),
            "https://a/cb?code=x%20y&state=s%26t"
        );
        assert_eq!(
            append_query("https://a/cb?v=1", &[("code", "c")]),
            "https://a/cb?v=1&code=c"
        );
    }
}
