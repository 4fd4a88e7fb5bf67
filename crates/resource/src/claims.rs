//! What a handler learns about the caller: the members of an active introspection response
//! (RFC 7662 §2.2), with `scope` split into its values (RFC 6749 §3.3).

use tokenwarden_client::introspection::Audience;
use tokenwarden_client::IntrospectionResponse;

/// The validated claims of an access token, inserted into the request's extensions as
/// `Arc<TokenClaims>` by the layer (and readable with the `Claims` extractor under the `axum`
/// feature). Contains no token and no secret.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenClaims {
    /// `sub`: the resource owner (tokenwarden: the user, or the client itself for the client
    /// credentials grant).
    pub subject: Option<String>,
    /// `client_id`: the client the token was issued to.
    pub client_id: Option<String>,
    /// `username`: a human-readable identifier of the resource owner.
    pub username: Option<String>,
    /// `scope`, split on spaces (RFC 6749 §3.3: "a list of space-delimited, case-sensitive
    /// strings").
    pub scopes: Vec<String>,
    /// `exp`: expiry, seconds since the epoch.
    pub exp: Option<i64>,
    /// `iat`: issue time, seconds since the epoch.
    pub iat: Option<i64>,
    /// `nbf`: not-before, seconds since the epoch.
    pub nbf: Option<i64>,
    /// `aud`: the intended audiences.
    pub audience: Vec<String>,
    /// `iss`: the issuer.
    pub issuer: Option<String>,
    /// `jti`: the token's identifier.
    pub jti: Option<String>,
    /// `token_type`, when the server sent one.
    pub token_type: Option<String>,
}

impl TokenClaims {
    /// The claims of an active introspection response.
    pub fn from_introspection(response: &IntrospectionResponse) -> Self {
        let scopes = response
            .scope
            .as_deref()
            .map(|s| {
                s.split(' ')
                    .filter(|v| !v.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let audience = match &response.aud {
            Some(Audience::One(a)) => vec![a.clone()],
            Some(Audience::Many(many)) => many.clone(),
            None => Vec::new(),
        };
        Self {
            subject: response.sub.clone(),
            client_id: response.client_id.clone(),
            username: response.username.clone(),
            scopes,
            exp: response.exp,
            iat: response.iat,
            nbf: response.nbf,
            audience,
            issuer: response.iss.clone(),
            jti: response.jti.clone(),
            token_type: response.token_type.clone(),
        }
    }

    /// Whether the token was granted `scope` (exact, case-sensitive comparison, RFC 6749 §3.3).
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    /// Whether the token was granted every scope in `required`.
    pub fn has_scopes<'a>(&self, required: impl IntoIterator<Item = &'a str>) -> bool {
        required.into_iter().all(|s| self.has_scope(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_is_split_on_spaces_and_compared_exactly() {
        let response: IntrospectionResponse = serde_json::from_str(
            r#"{"active":true,"scope":"read  write","sub":"alice","aud":["a","b"]}"#,
        )
        .unwrap();
        let claims = TokenClaims::from_introspection(&response);
        assert_eq!(claims.scopes, ["read", "write"]);
        assert!(claims.has_scope("read"));
        assert!(!claims.has_scope("READ"));
        assert!(claims.has_scopes(["read", "write"]));
        assert!(!claims.has_scopes(["read", "admin"]));
        assert_eq!(claims.audience, ["a", "b"]);
        assert_eq!(claims.subject.as_deref(), Some("alice"));
    }
}
