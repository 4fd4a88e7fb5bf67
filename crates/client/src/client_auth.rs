//! Client authentication at the token, revocation and introspection endpoints (RFC 6749 §2.3):
//! `client_secret_basic`, `client_secret_post`, or `none` for public clients.

use std::fmt;

use base64::Engine as _;
use http::header::{HeaderValue, AUTHORIZATION};

use crate::secret::ClientSecret;

/// A client identifier (RFC 6749 §2.2). Not a secret.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ClientId(String);

impl ClientId {
    /// Wraps an identifier.
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    /// The identifier.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClientId({})", self.0)
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How the client authenticates (RFC 8414 §2 `token_endpoint_auth_methods_supported` values).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMethod {
    /// HTTP Basic with the form-encoded id and secret (RFC 6749 §2.3.1).
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body (RFC 6749 §2.3.1).
    ClientSecretPost,
    /// A public client: `client_id` in the body, no secret (RFC 6749 §2.1).
    None,
}

impl AuthMethod {
    /// The RFC 8414 / RFC 7591 name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
            Self::None => "none",
        }
    }
}

/// A client's identity and how it proves it.
#[derive(Clone, Debug)]
pub struct ClientCredentials {
    client_id: ClientId,
    secret: Option<ClientSecret>,
    method: AuthMethod,
}

impl ClientCredentials {
    /// `client_secret_basic`: the recommended method (RFC 6749 §2.3.1: "The authorization server
    /// MUST support the HTTP Basic authentication scheme").
    pub fn basic(client_id: impl Into<String>, secret: ClientSecret) -> Self {
        Self {
            client_id: ClientId::new(client_id),
            secret: Some(secret),
            method: AuthMethod::ClientSecretBasic,
        }
    }

    /// `client_secret_post`.
    pub fn post(client_id: impl Into<String>, secret: ClientSecret) -> Self {
        Self {
            client_id: ClientId::new(client_id),
            secret: Some(secret),
            method: AuthMethod::ClientSecretPost,
        }
    }

    /// A public client (`none`).
    pub fn public(client_id: impl Into<String>) -> Self {
        Self {
            client_id: ClientId::new(client_id),
            secret: None,
            method: AuthMethod::None,
        }
    }

    /// The client id.
    pub fn client_id(&self) -> &ClientId {
        &self.client_id
    }

    /// The method.
    pub fn method(&self) -> AuthMethod {
        self.method
    }

    /// Adds the credentials to a request: an `Authorization` header or form parameters.
    pub(crate) fn apply(
        &self,
        headers: &mut http::HeaderMap,
        form: &mut form_urlencoded::Serializer<'_, String>,
    ) {
        match (self.method, &self.secret) {
            (AuthMethod::ClientSecretBasic, Some(secret)) => {
                if let Some(value) = basic_authorization(self.client_id.as_str(), secret) {
                    headers.insert(AUTHORIZATION, value);
                }
            }
            (AuthMethod::ClientSecretPost, Some(secret)) => {
                form.append_pair("client_id", self.client_id.as_str());
                form.append_pair("client_secret", secret.secret());
            }
            // RFC 6749 §3.2.1: a public client sends its client_id to identify itself.
            _ => {
                form.append_pair("client_id", self.client_id.as_str());
            }
        }
    }
}

/// The `Authorization: Basic` value for a client (RFC 6749 §2.3.1): "The client identifier is
/// encoded using the "application/x-www-form-urlencoded" encoding algorithm per Appendix B, and
/// the encoded value is used as the username; the client password is encoded using the same
/// algorithm and used as the password." So `a:b` / `p@ss` becomes `a%3Ab:p%40ss` before base64.
/// The value is marked sensitive so HTTP stacks keep it out of their debug output.
pub fn basic_authorization(client_id: &str, secret: &ClientSecret) -> Option<HeaderValue> {
    let user: String = form_urlencoded::byte_serialize(client_id.as_bytes()).collect();
    let password = zeroize::Zeroizing::new(
        form_urlencoded::byte_serialize(secret.secret().as_bytes()).collect::<String>(),
    );
    let joined = zeroize::Zeroizing::new(format!("{user}:{}", password.as_str()));
    let encoded = zeroize::Zeroizing::new(format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(joined.as_bytes())
    ));
    let mut value = HeaderValue::from_str(&encoded).ok()?;
    value.set_sensitive(true);
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(value: &HeaderValue) -> String {
        let text = value.to_str().unwrap();
        let b64 = text.strip_prefix("Basic ").unwrap();
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn basic_credentials_are_form_encoded_before_base64() {
        let value = basic_authorization("a:b", &ClientSecret::new("p@ss")).unwrap();
        assert_eq!(decode(&value), "a%3Ab:p%40ss");
        assert!(value.is_sensitive());
        // Form encoding, not percent-encoding: a space is `+`.
        let value = basic_authorization("my app", &ClientSecret::new("a+b c")).unwrap();
        assert_eq!(decode(&value), "my+app:a%2Bb+c");
    }
}
