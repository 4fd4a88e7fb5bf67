//! Browser sessions, cookies and CSRF tokens for the login, consent and account pages.
//!
//! The session cookie holds a 256-bit random token; the database holds only its SHA-256 digest.
//! The CSRF token of a signed-in page is derived from the session token (a digest under a fixed
//! label), so it needs no storage and changes with every session. Before sign-in, the login form
//! uses a double-submit token: a random value in a cookie and in the hidden field.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::header::COOKIE;
use http::{HeaderMap, HeaderValue};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;
use tokenwarden_core::clock::Timestamp;
use tokenwarden_core::crypto::TokenDigest;
use tokenwarden_core::model::Session;
use tokenwarden_core::store::{AccountStore, StoreError};

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "tw_session";
/// Name of the pre-login CSRF cookie.
pub const LOGIN_CSRF_COOKIE: &str = "tw_login_csrf";
/// How long a sign-in lasts.
pub const SESSION_TTL: i64 = 12 * 3600;

/// The value of cookie `name`, if sent.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value: `HttpOnly`, `SameSite=Lax`, `Path=/`, `Secure` when the issuer is https.
pub fn set_cookie(name: &str, value: &str, max_age: i64, secure: bool) -> Option<HeaderValue> {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}"
    ))
    .ok()
}

/// The CSRF token of the session whose cookie value is `session_token`.
pub fn csrf_for(session_token: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"tokenwarden/csrf/v1:");
    h.update(session_token.as_bytes());
    URL_SAFE_NO_PAD.encode(h.finalize())
}

/// Constant-time comparison of a submitted CSRF token with the expected one.
pub fn csrf_matches(submitted: Option<&str>, expected: &str) -> bool {
    submitted.is_some_and(|s| s.as_bytes().ct_eq(expected.as_bytes()).into())
}

/// The signed-in session: the stored row and the cookie value (for the CSRF token).
pub struct SignedIn {
    /// The session row.
    pub session: Session,
    /// The cookie value.
    pub token: String,
}

impl SignedIn {
    /// The CSRF token for forms on this session's pages.
    pub fn csrf(&self) -> String {
        csrf_for(&self.token)
    }
}

impl std::fmt::Debug for SignedIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedIn")
            .field("username", &self.session.username)
            .finish_non_exhaustive()
    }
}

/// The current session, if the request carries a valid, unexpired one.
pub async fn current<S: AccountStore>(
    store: &S,
    headers: &HeaderMap,
    now: Timestamp,
) -> Result<Option<SignedIn>, StoreError> {
    let Some(token) = cookie(headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    let Some(session) = store.find_session(&TokenDigest::of(token)).await? else {
        return Ok(None);
    };
    if now >= session.expires_at {
        return Ok(None);
    }
    Ok(Some(SignedIn {
        session,
        token: token.to_owned(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cookies_and_derives_csrf() {
        let mut h = HeaderMap::new();
        h.insert(
            COOKIE,
            HeaderValue::from_static("a=1; tw_session=twu_x; b=2"),
        );
        assert_eq!(cookie(&h, "tw_session"), Some("twu_x"));
        assert_eq!(cookie(&h, "missing"), None);
        assert!(csrf_matches(Some(&csrf_for("twu_x")), &csrf_for("twu_x")));
        assert!(!csrf_matches(Some(&csrf_for("twu_y")), &csrf_for("twu_x")));
        assert!(!csrf_matches(None, &csrf_for("twu_x")));
        let c = set_cookie("tw_session", "v", 60, true).unwrap();
        assert_eq!(
            c,
            "tw_session=v; Path=/; HttpOnly; SameSite=Lax; Max-Age=60; Secure"
        );
    }
}
