//! The wire rules shared by `/oauth2/token`, `/oauth2/revoke` and `/oauth2/introspect`
//! (INTERFACE "Wire rules"): method, content type, size, query string, strict form parsing, and
//! the JSON response headers.

use std::borrow::Cow;
use std::fmt;

use bytes::Bytes;
use http::header::{ALLOW, CACHE_CONTROL, CONTENT_TYPE, PRAGMA, WWW_AUTHENTICATE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use zeroize::Zeroize;

use crate::error::{ErrorCode, OAuthError};

/// Largest accepted request body: 64 KiB. Larger → `413`.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Why a request was refused before any OAuth processing: the error plus the extra header it
/// needs. Rendered by [`error_response`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError {
    /// The OAuth error.
    pub error: OAuthError,
    /// `Allow: POST` for a `405`.
    pub allow_post: bool,
}

impl From<OAuthError> for WireError {
    fn from(error: OAuthError) -> Self {
        Self {
            error,
            allow_post: false,
        }
    }
}

/// Parsed `application/x-www-form-urlencoded` parameters. Each name appears at most once; empty
/// values were dropped ("an empty value counts as absent"). Values may be secrets, so `Debug`
/// shows names only and the values are zeroized on drop.
#[derive(Default)]
pub struct Form {
    params: Vec<(Cow<'static, str>, String)>,
}

/// The parameter names of RFC 6749, 7009, 7636 and 7662 that the endpoints read: a name spelled
/// exactly like one of these is kept as a `&'static str` instead of a copy (one allocation fewer
/// per parameter on every request).
const KNOWN_NAMES: [&str; 14] = [
    "token",
    "token_type_hint",
    "grant_type",
    "client_id",
    "client_secret",
    "scope",
    "refresh_token",
    "code",
    "redirect_uri",
    "code_verifier",
    "state",
    "username",
    "password",
    "callback",
];

/// A parameter name: a [`KNOWN_NAMES`] entry when it is spelled like one, else decoded.
fn parameter_name(raw: &[u8]) -> Result<Cow<'static, str>, OAuthError> {
    match KNOWN_NAMES.iter().find(|n| n.as_bytes() == raw) {
        Some(name) => Ok(Cow::Borrowed(name)),
        None => decode_component(raw).map(Cow::Owned),
    }
}

impl Form {
    /// The value of `name`, if present and non-empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    /// Names present.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.params.iter().map(|(k, _)| k.as_ref())
    }
}

impl fmt::Debug for Form {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Form")
            .field("names", &self.names().collect::<Vec<_>>())
            .finish()
    }
}

impl Drop for Form {
    fn drop(&mut self) {
        for (_, v) in &mut self.params {
            v.zeroize();
        }
    }
}

/// Decodes one `application/x-www-form-urlencoded` component: `+` is a space, `%XX` a byte, and
/// the result must be UTF-8 (RFC 6749 Appendix B).
pub(crate) fn decode_component(raw: &[u8]) -> Result<String, OAuthError> {
    // Fast path: tokens, ids and grant types are plain ASCII with nothing to decode.
    if !raw.iter().any(|&b| b == b'+' || b == b'%') {
        return std::str::from_utf8(raw)
            .map(str::to_owned)
            .map_err(|_| OAuthError::invalid_request("request parameters must be UTF-8"));
    }
    let plus_decoded: Vec<u8> = raw
        .iter()
        .map(|&b| if b == b'+' { b' ' } else { b })
        .collect();
    let bytes: Vec<u8> = percent_encoding::percent_decode(&plus_decoded).collect();
    String::from_utf8(bytes)
        .map_err(|_| OAuthError::invalid_request("request parameters must be UTF-8"))
}

/// Parses a form body strictly.
///
/// RFC 6749 §3.2: "Request and response parameters MUST NOT be included more than once." A name
/// sent twice is refused even when one of the values is empty. RFC 6749 §3.1: "Parameters sent
/// without a value MUST be treated as if they were omitted from the request."
pub fn parse_form(body: &[u8]) -> Result<Form, OAuthError> {
    let mut form = Form::default();
    let mut empty_names: Vec<Cow<'static, str>> = Vec::new();
    for pair in body.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
        let (name, value) = match pair.iter().position(|&b| b == b'=') {
            Some(i) => (
                pair.get(..i).unwrap_or_default(),
                pair.get(i + 1..).unwrap_or_default(),
            ),
            None => (pair, &[][..]),
        };
        let name = parameter_name(name)?;
        let value = decode_component(value)?;
        if form.get(&name).is_some() || empty_names.contains(&name) {
            return Err(OAuthError::invalid_request(format!(
                "parameter `{}` sent more than once",
                printable(&name)
            )));
        }
        if value.is_empty() {
            empty_names.push(name);
        } else {
            form.params.push((name, value));
        }
    }
    Ok(form)
}

/// A parameter name echoed in an error: limited to a short, printable form.
fn printable(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_graphic())
        .take(40)
        .collect()
}

/// Applies the request rules common to the three POST endpoints and returns the body form and the
/// query form. `allowed_query` names the query parameters tolerated (JSONP's `callback`); any
/// other query parameter is refused: parameters belong in the body.
pub fn parse_post_form(
    request: &Request<Bytes>,
    allowed_query: &[&str],
) -> Result<(Form, Form), WireError> {
    if request.method() != Method::POST {
        return Err(WireError {
            error: OAuthError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                ErrorCode::InvalidRequest,
                "this endpoint accepts only POST",
            ),
            allow_post: true,
        });
    }
    if request.body().len() > MAX_BODY_BYTES {
        return Err(OAuthError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::InvalidRequest,
            "request body exceeds 64 KiB",
        )
        .into());
    }
    if !is_form_content_type(request.headers().get(CONTENT_TYPE)) {
        return Err(OAuthError::invalid_request(
            "Content-Type must be application/x-www-form-urlencoded",
        )
        .into());
    }
    let query = match request.uri().query().filter(|q| !q.is_empty()) {
        Some(q) => {
            // Every query parameter counts here, valueless ones too: a token pasted into the URL
            // must be refused, not silently ignored (it would end up in access logs).
            for pair in q.split('&').filter(|p| !p.is_empty()) {
                let name = decode_component(pair.split('=').next().unwrap_or_default().as_bytes())?;
                if !allowed_query.contains(&name.as_str()) {
                    return Err(OAuthError::invalid_request(format!(
                        "parameter `{}` in the query string; send parameters in the form body",
                        printable(&name)
                    ))
                    .into());
                }
            }
            parse_form(q.as_bytes())?
        }
        None => Form::default(),
    };
    let form = parse_form(request.body())?;
    Ok((form, query))
}

fn is_form_content_type(value: Option<&HeaderValue>) -> bool {
    let Some(value) = value.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/x-www-form-urlencoded")
}

/// A JSON response with the headers RFC 6749 §5.1 requires: `Cache-Control: no-store`,
/// `Pragma: no-cache`.
pub fn json_response(status: StatusCode, body: Bytes) -> Response<Bytes> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// Serializes `value` as a JSON response.
pub fn json_value_response(status: StatusCode, value: &serde_json::Value) -> Response<Bytes> {
    json_response(status, Bytes::from(value.to_string()))
}

/// Renders an OAuth error. `401 invalid_client` carries `WWW-Authenticate: Basic
/// realm="tokenwarden"` (RFC 6749 §5.2: the scheme of the client authentication methods the
/// server supports for this endpoint).
pub fn error_response(error: &WireError) -> Response<Bytes> {
    let mut response = json_value_response(error.error.status, &error.error.to_json());
    if error.error.status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"tokenwarden\""),
        );
    }
    if error.allow_post {
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("POST"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_parameter_is_refused_even_when_empty() {
        assert!(parse_form(b"a=1&a=2").is_err());
        assert!(parse_form(b"a=&a=2").is_err());
        assert!(parse_form(b"a=1&b=2").is_ok());
    }

    #[test]
    fn empty_value_is_absent_and_plus_is_space() {
        let f = parse_form(b"scope=read+write&state=&x=%41").unwrap();
        assert_eq!(f.get("scope"), Some("read write"));
        assert_eq!(f.get("state"), None);
        assert_eq!(f.get("x"), Some("A"));
    }

    #[test]
    fn non_utf8_is_invalid_request() {
        let e = parse_form(b"token=%FF%FE").unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRequest);
        assert!(parse_form(b"token=\xff").is_err());
    }

    #[test]
    fn form_debug_hides_values() {
        let f = parse_form(b"client_secret=hunter2").unwrap();
        assert!(!format!("{f:?}").contains("hunter2"));
    }
}
