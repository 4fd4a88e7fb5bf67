//! RFC 6750: reading the bearer token from the request (§2.1) and the answers when it is missing,
//! malformed, invalid or short of scope (§3, §3.1).
//!
//! Only the `Authorization` request header field is read. The form-encoded body parameter (§2.2)
//! and the URI query parameter (§2.3) are not accepted: a token sent only there is ignored, and the
//! request is answered as one without credentials. (§2.3 itself discourages the query form: URLs
//! end up in logs and browser history.)

use bytes::Bytes;
use http::header::{HeaderValue, AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderMap, Response, StatusCode};

/// Why a request was not let through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Rejection {
    /// No bearer credentials (no `Authorization` header, or another scheme): `401` with a bare
    /// challenge. RFC 6750 §3.1: "If the request lacks any authentication information (e.g., the
    /// client was unaware that authentication is necessary or attempted using an unsupported
    /// authentication method), the resource server SHOULD NOT include an error code or other
    /// error information."
    MissingToken,
    /// A malformed `Authorization` header: `400 invalid_request` (§3.1).
    InvalidRequest(&'static str),
    /// Introspection said the token is not active: `401 invalid_token` (§3.1).
    InvalidToken,
    /// The token lacks a required scope: `403 insufficient_scope` with the `scope` attribute
    /// (§3, §3.1).
    InsufficientScope,
    /// The token could not be validated (introspection failed): `503`. Fail closed.
    Unavailable,
    /// The layer was configured with an unusable required scope: `500`. Fail closed.
    Misconfigured,
}

/// `error_description` of `invalid_token`. RFC 7662 does not say why a token is inactive, so
/// neither can we.
pub(crate) const INVALID_TOKEN_DESCRIPTION: &str =
    "The access token is invalid, expired or revoked";
pub(crate) const INSUFFICIENT_SCOPE_DESCRIPTION: &str =
    "The access token does not grant the required scope";
const UNAVAILABLE_DESCRIPTION: &str = "The access token could not be validated; try again later";
const MISCONFIGURED_DESCRIPTION: &str = "The resource server is misconfigured";

/// The bearer token of a request, if it sent one (RFC 6750 §2.1):
///
/// ```text
/// credentials = "Bearer" 1*SP b64token
/// b64token    = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
/// ```
///
/// The scheme is matched case-insensitively (RFC 7235 §2.1: "It uses a case-insensitive token
/// as a means to identify the authentication scheme"). Another scheme means "no bearer token"; a
/// `Bearer` header that does not match the grammar, or more than one `Authorization` header, is
/// `invalid_request`.
pub(crate) fn bearer_token(headers: &HeaderMap) -> Result<Option<&str>, Rejection> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        // RFC 6750 §2: "Clients MUST NOT use more than one method to transmit the token in each
        // request"; two headers are at best ambiguous.
        return Err(Rejection::InvalidRequest(
            "More than one Authorization header",
        ));
    }
    let Ok(value) = value.to_str() else {
        return Err(Rejection::InvalidRequest(
            "The Authorization header is not printable ASCII",
        ));
    };
    let value = value.trim_matches([' ', '\t']);
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("Bearer") {
        return Ok(None);
    }
    let token = rest.trim_start_matches(' ');
    if token.is_empty() {
        return Err(Rejection::InvalidRequest(
            "The Bearer credentials carry no token",
        ));
    }
    if !is_b64token(token) {
        return Err(Rejection::InvalidRequest(
            "The Bearer token is not a b64token (RFC 6750 section 2.1)",
        ));
    }
    Ok(Some(token))
}

fn is_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && body.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        })
}

/// RFC 6750 §3: `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )` — it must fit in the quoted
/// `scope` attribute without escaping.
pub(crate) fn is_scope_token(scope: &str) -> bool {
    !scope.is_empty()
        && scope
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

/// Keeps the characters RFC 6750 §3 allows in a quoted attribute value (`%x20-21 / %x23-5B /
/// %x5D-7E`): a realm is configuration, so it is cleaned rather than refused.
pub(crate) fn clean_realm(realm: &str) -> String {
    realm
        .chars()
        .filter(|&c| c == ' ' || c == '!' || ('#'..='[').contains(&c) || (']'..='~').contains(&c))
        .collect()
}

impl Rejection {
    /// The HTTP status.
    pub fn status(self) -> StatusCode {
        match self {
            Self::MissingToken | Self::InvalidToken => StatusCode::UNAUTHORIZED,
            Self::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            Self::InsufficientScope => StatusCode::FORBIDDEN,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Misconfigured => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error(self) -> Option<(&'static str, &'static str)> {
        match self {
            Self::MissingToken => None,
            Self::InvalidRequest(description) => Some(("invalid_request", description)),
            Self::InvalidToken => Some(("invalid_token", INVALID_TOKEN_DESCRIPTION)),
            Self::InsufficientScope => Some(("insufficient_scope", INSUFFICIENT_SCOPE_DESCRIPTION)),
            Self::Unavailable => Some(("temporarily_unavailable", UNAVAILABLE_DESCRIPTION)),
            Self::Misconfigured => Some(("server_error", MISCONFIGURED_DESCRIPTION)),
        }
    }

    /// The `WWW-Authenticate` challenge (RFC 6750 §3), for the answers that carry one:
    /// `Bearer realm="…"` alone when no token was sent, `error` and `error_description` added
    /// otherwise, and `scope` (the required scopes, space-delimited) for `insufficient_scope`.
    pub fn challenge(self, realm: &str, required_scope: &str) -> Option<String> {
        let mut challenge = format!("Bearer realm=\"{realm}\"");
        match self {
            Self::MissingToken => {}
            Self::InvalidRequest(_) | Self::InvalidToken | Self::InsufficientScope => {
                if let Some((code, description)) = self.error() {
                    challenge.push_str(&format!(
                        ", error=\"{code}\", error_description=\"{description}\""
                    ));
                }
                if self == Self::InsufficientScope {
                    challenge.push_str(&format!(", scope=\"{required_scope}\""));
                }
            }
            Self::Unavailable | Self::Misconfigured => return None,
        }
        Some(challenge)
    }

    /// The complete answer: status, `WWW-Authenticate` (when the answer is a challenge),
    /// `Cache-Control: no-store`, and a JSON body `{"error", "error_description"}` repeating the
    /// challenge's error for humans (none when no token was sent).
    pub fn to_response<B: From<Bytes>>(self, realm: &str, required_scope: &str) -> Response<B> {
        let body = match self.error() {
            Some((code, description)) => Bytes::from(
                serde_json::json!({ "error": code, "error_description": description }).to_string(),
            ),
            None => Bytes::new(),
        };
        let mut response = Response::new(B::from(body));
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        if let Some(challenge) = self.challenge(realm, required_scope) {
            if let Ok(value) = HeaderValue::from_str(&challenge) {
                headers.insert(WWW_AUTHENTICATE, value);
            }
        }
        if self.error().is_some() {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    #[test]
    fn bearer_tokens_follow_the_rfc_6750_grammar() {
        assert_eq!(bearer_token(&headers(&[])), Ok(None));
        assert_eq!(bearer_token(&headers(&["Bearer abc"])), Ok(Some("abc")));
        assert_eq!(bearer_token(&headers(&["bearer abc"])), Ok(Some("abc")));
        assert_eq!(
            bearer_token(&headers(&["BEARER   a-b.c_d~e+f/g=="])),
            Ok(Some("a-b.c_d~e+f/g=="))
        );
        assert_eq!(bearer_token(&headers(&["Basic YTpi"])), Ok(None));
        assert_eq!(bearer_token(&headers(&["Negotiate"])), Ok(None));
        for bad in [
            "Bearer",
            "Bearer ",
            "Bearer a b",
            "Bearer a,b",
            "Bearer ==",
            "Bearer a=b",
            "Bearer x\"y",
        ] {
            assert!(
                matches!(
                    bearer_token(&headers(&[bad])),
                    Err(Rejection::InvalidRequest(_))
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            bearer_token(&headers(&["Bearer a", "Bearer b"])),
            Err(Rejection::InvalidRequest(_))
        ));
        let mut map = HeaderMap::new();
        map.insert(
            AUTHORIZATION,
            HeaderValue::from_bytes(b"Bearer \xe9t\xe9").unwrap(),
        );
        assert!(matches!(
            bearer_token(&map),
            Err(Rejection::InvalidRequest(_))
        ));
    }

    #[test]
    fn challenges_are_exact() {
        assert_eq!(
            Rejection::MissingToken.challenge("api", "").as_deref(),
            Some("Bearer realm=\"api\"")
        );
        assert_eq!(
            Rejection::InvalidToken.challenge("api", "").as_deref(),
            Some("Bearer realm=\"api\", error=\"invalid_token\", error_description=\"The access token is invalid, expired or revoked\"")
        );
        assert_eq!(
            Rejection::InsufficientScope.challenge("api", "read write").as_deref(),
            Some("Bearer realm=\"api\", error=\"insufficient_scope\", error_description=\"The access token does not grant the required scope\", scope=\"read write\"")
        );
        assert_eq!(Rejection::Unavailable.challenge("api", ""), None);
    }

    #[test]
    fn scope_tokens_and_realms_fit_in_quoted_strings() {
        assert!(is_scope_token("notes:write"));
        assert!(!is_scope_token("a b"));
        assert!(!is_scope_token("a\"b"));
        assert!(!is_scope_token("a\\b"));
        assert!(!is_scope_token(""));
        assert_eq!(clean_realm("my \"api\"\\\n"), "my api");
    }
}
