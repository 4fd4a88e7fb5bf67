//! The token endpoint's response (RFC 6749 §5.1, §5.2), the shared request builder for the
//! form-encoded endpoints, and [`TokenSet`]: a token response anchored in time, as stored.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{HeaderValue, ACCEPT, CONTENT_TYPE, RETRY_AFTER};
use http::Method;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

use crate::client_auth::ClientCredentials;
use crate::endpoint::{EndpointUrl, UrlError};
use crate::error::{Error, ErrorResponse};
use crate::secret::{AccessToken, RefreshToken};

/// A successful token response (RFC 6749 §5.1).
#[derive(Clone, Debug, Deserialize)]
pub struct TokenResponse {
    /// `access_token` (REQUIRED).
    pub access_token: AccessToken,
    /// `token_type` (REQUIRED), e.g. `Bearer`.
    pub token_type: String,
    /// `expires_in` in seconds (RECOMMENDED). Numeric strings are accepted too.
    #[serde(default, deserialize_with = "deserialize_expires_in")]
    pub expires_in: Option<u64>,
    /// `refresh_token` (OPTIONAL). Absent on a refresh response: keep the old one (RFC 6749 §6:
    /// "The authorization server MAY issue a new refresh token").
    #[serde(default)]
    pub refresh_token: Option<RefreshToken>,
    /// `scope`: "OPTIONAL, if identical to the scope requested by the client".
    #[serde(default)]
    pub scope: Option<String>,
}

fn deserialize_expires_in<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    use serde::de::Error as _;
    match Option::<serde_json::Value>::deserialize(d)? {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::Number(n)) => match (n.as_u64(), n.as_f64()) {
            (Some(secs), _) => Ok(Some(secs)),
            (None, Some(f)) if f.is_finite() && f >= 0.0 => Ok(Some(f as u64)),
            _ => Err(D::Error::custom("expires_in must be a non-negative number")),
        },
        Some(serde_json::Value::String(s)) => s
            .trim()
            .parse::<u64>()
            .map(Some)
            .map_err(|_| D::Error::custom("expires_in must be a number of seconds")),
        Some(_) => Err(D::Error::custom("expires_in must be a number of seconds")),
    }
}

/// Parses a token endpoint response: 200 with a §5.1 body, or an error (§5.2).
pub fn parse_token_response(response: &http::Response<Bytes>) -> Result<TokenResponse, Error> {
    if response.status() != http::StatusCode::OK {
        return Err(error_from_response(response));
    }
    let mut parsed: TokenResponse = parse_json(response, "token response")?;
    if parsed.access_token.secret().is_empty() {
        return Err(unexpected(response, "token response without access_token"));
    }
    // An empty value is no value.
    if parsed
        .refresh_token
        .as_ref()
        .is_some_and(|t| t.secret().is_empty())
    {
        parsed.refresh_token = None;
    }
    Ok(parsed)
}

/// A form-encoded `POST` with client authentication (RFC 6749 §2.3, Appendix B).
pub(crate) fn form_post(
    endpoint: &EndpointUrl,
    credentials: &ClientCredentials,
    params: &[(&str, &str)],
) -> Result<http::Request<Bytes>, Error> {
    let mut form = form_urlencoded::Serializer::new(String::new());
    for (name, value) in params {
        form.append_pair(name, value);
    }
    let mut request = http::Request::new(Bytes::new());
    credentials.apply(request.headers_mut(), &mut form);
    *request.body_mut() = Bytes::from(form.finish());
    *request.method_mut() = Method::POST;
    *request.uri_mut() = uri_of(endpoint)?;
    let headers = request.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
    Ok(request)
}

pub(crate) fn uri_of(endpoint: &EndpointUrl) -> Result<http::Uri, Error> {
    endpoint
        .url()
        .as_str()
        .parse::<http::Uri>()
        .map_err(|_| Error::Url(UrlError::Invalid(endpoint.as_str().to_owned())))
}

/// `Retry-After` as delta-seconds (RFC 9110 §10.2.3). An HTTP-date is not interpreted: the caller
/// then falls back to its own backoff.
pub(crate) fn retry_after(response: &http::Response<Bytes>) -> Option<Duration> {
    response
        .headers()
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

pub(crate) fn unexpected(response: &http::Response<Bytes>, reason: impl Into<String>) -> Error {
    Error::UnexpectedResponse {
        status: response.status().as_u16(),
        reason: reason.into(),
        retry_after: retry_after(response),
    }
}

/// A non-success answer: the §5.2 error body if there is one.
pub(crate) fn error_from_response(response: &http::Response<Bytes>) -> Error {
    match serde_json::from_slice::<ErrorResponse>(response.body()) {
        Ok(body) => Error::OAuth {
            status: response.status().as_u16(),
            response: body,
            retry_after: retry_after(response),
        },
        Err(_) => unexpected(response, "no OAuth error body"),
    }
}

/// Parses a JSON body. The serde message is reduced to its category and position unless it is a
/// missing field: other messages can quote values, and a value may be a token.
pub(crate) fn parse_json<T: DeserializeOwned>(
    response: &http::Response<Bytes>,
    what: &str,
) -> Result<T, Error> {
    serde_json::from_slice(response.body()).map_err(|e| {
        let message = e.to_string();
        let detail = if message.starts_with("missing field") {
            message
        } else {
            format!(
                "{:?} error at line {} column {}",
                e.classify(),
                e.line(),
                e.column()
            )
        };
        unexpected(response, format!("malformed {what}: {detail}"))
    })
}

/// Where a token stands relative to its refresh point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Freshness {
    /// Before `expiry − min(buffer, lifetime/2)`: use it.
    Fresh,
    /// In the early-refresh window: still valid, refresh now if possible.
    RefreshDue,
    /// At or past expiry.
    Expired,
}

/// Tokens as the manager keeps and stores them: the response plus absolute times. Expiry is
/// counted from the moment the request was *sent*, so network and queueing delays make the client
/// err early, never late.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenSet {
    /// The access token.
    pub access_token: AccessToken,
    /// Its type (`Bearer`).
    pub token_type: String,
    /// The refresh token, if any.
    pub refresh_token: Option<RefreshToken>,
    /// The granted scope, if known.
    pub scope: Option<String>,
    /// When the request that obtained these tokens was sent.
    pub obtained_at: SystemTime,
    /// When the access token expires.
    pub expires_at: SystemTime,
    /// `true` when the server sent no `expires_in` and `expires_at` is the assumed lifetime.
    pub expiry_assumed: bool,
}

impl TokenSet {
    /// Anchors a token response in time. Without `expires_in` the lifetime is `assumed_lifetime`
    /// (the documented rule: never "valid forever"; a 401 refreshes earlier).
    pub fn from_response(
        response: TokenResponse,
        sent_at: SystemTime,
        assumed_lifetime: Duration,
    ) -> Self {
        let (lifetime, expiry_assumed) = match response.expires_in {
            Some(secs) => (Duration::from_secs(secs), false),
            None => (assumed_lifetime, true),
        };
        Self {
            access_token: response.access_token,
            token_type: response.token_type,
            refresh_token: response.refresh_token,
            scope: response.scope,
            obtained_at: sent_at,
            expires_at: sent_at.checked_add(lifetime).unwrap_or(sent_at),
            expiry_assumed,
        }
    }

    /// A refresh response applied on top of the previous set: a new refresh token is adopted; when
    /// the response has none the old one is kept (RFC 6749 §6), and so is the scope (§5.1).
    pub fn succeeding(mut self, previous: &TokenSet) -> Self {
        if self.refresh_token.is_none() {
            self.refresh_token = previous.refresh_token.clone();
        }
        if self.scope.is_none() {
            self.scope = previous.scope.clone();
        }
        self
    }

    /// `expires_at − obtained_at`.
    pub fn lifetime(&self) -> Duration {
        self.expires_at
            .duration_since(self.obtained_at)
            .unwrap_or(Duration::ZERO)
    }

    /// `expires_at − min(buffer, lifetime / 2)`.
    pub fn refresh_at(&self, buffer: Duration) -> SystemTime {
        let early = buffer.min(self.lifetime() / 2);
        self.expires_at
            .checked_sub(early)
            .unwrap_or(self.expires_at)
    }

    /// Where the token stands at `now`.
    pub fn freshness(&self, now: SystemTime, buffer: Duration) -> Freshness {
        if now >= self.expires_at {
            Freshness::Expired
        } else if now >= self.refresh_at(buffer) {
            Freshness::RefreshDue
        } else {
            Freshness::Fresh
        }
    }

    /// Whether the access token is past its expiry at `now`.
    pub fn is_expired(&self, now: SystemTime) -> bool {
        now >= self.expires_at
    }

    /// RFC 6750 bearer token (case-insensitive, RFC 6749 §5.1).
    pub fn is_bearer(&self) -> bool {
        self.token_type.eq_ignore_ascii_case("bearer")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(body: &str, status: u16) -> http::Response<Bytes> {
        http::Response::builder()
            .status(status)
            .header("retry-after", "7")
            .body(Bytes::from(body.to_owned()))
            .unwrap()
    }

    #[test]
    fn parses_a_token_response_with_string_expires_in() {
        let r = parse_token_response(&response(
            r#"{"access_token":"A","token_type":"Bearer","expires_in":"3600","refresh_token":""}"#,
            200,
        ))
        .unwrap();
        assert_eq!(r.expires_in, Some(3600));
        assert!(r.refresh_token.is_none());
    }

    #[test]
    fn malformed_bodies_never_echo_values() {
        let e = parse_token_response(&response(
            r#"{"access_token":"twa_SECRET","token_type":42}"#,
            200,
        ))
        .unwrap_err();
        assert!(!format!("{e} {e:?}").contains("twa_SECRET"));
        let e = parse_token_response(&response(r#"{"token_type":"Bearer"}"#, 200)).unwrap_err();
        assert!(
            e.to_string().contains("missing field `access_token`"),
            "{e}"
        );
    }

    #[test]
    fn error_bodies_and_retry_after_are_kept() {
        let e = parse_token_response(&response(r#"{"error":"temporarily_unavailable"}"#, 503))
            .unwrap_err();
        assert!(e.is_transient());
        assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
        let e = parse_token_response(&response("<html>bad gateway</html>", 502)).unwrap_err();
        assert!(matches!(e, Error::UnexpectedResponse { status: 502, .. }));
    }

    #[test]
    fn refresh_point_is_expiry_minus_min_of_buffer_and_half_lifetime() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let set = |secs| TokenSet {
            access_token: AccessToken::new("a"),
            token_type: "Bearer".into(),
            refresh_token: None,
            scope: None,
            obtained_at: t0,
            expires_at: t0 + Duration::from_secs(secs),
            expiry_assumed: false,
        };
        let buffer = Duration::from_secs(300);
        assert_eq!(set(3600).refresh_at(buffer), t0 + Duration::from_secs(3300));
        assert_eq!(set(240).refresh_at(buffer), t0 + Duration::from_secs(120));
        let s = set(3600);
        assert_eq!(
            s.freshness(t0 + Duration::from_millis(3_299_999), buffer),
            Freshness::Fresh
        );
        assert_eq!(
            s.freshness(t0 + Duration::from_secs(3300), buffer),
            Freshness::RefreshDue
        );
        assert_eq!(
            s.freshness(t0 + Duration::from_secs(3600), buffer),
            Freshness::Expired
        );
    }
}
