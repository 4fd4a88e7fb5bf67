//! Client authentication (RFC 6749 §2.3): `client_secret_basic`, `client_secret_post`, or `none`
//! for public clients. Secrets are compared by SHA-256 digest in constant time — they are 256-bit
//! random values minted by the server, so a fast hash is right (a memory-hard hash on every
//! request would cap throughput at a few requests per second for no gain).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::header::AUTHORIZATION;
use http::HeaderMap;
use zeroize::Zeroizing;

use crate::crypto::TokenDigest;
use crate::error::OAuthError;
use crate::model::Client;
use crate::store::Store;
use crate::wire::{decode_component, Form};

/// How the client authenticated (RFC 8414 `token_endpoint_auth_methods_supported` names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuthMethod {
    /// HTTP Basic with the form-encoded id and secret (RFC 6749 §2.3.1).
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the body (RFC 6749 §2.3.1).
    ClientSecretPost,
    /// A public client sending only `client_id` (RFC 6749 §2.1, §3.2.1).
    None,
}

impl ClientAuthMethod {
    /// The RFC 8414 / RFC 7591 name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
            Self::None => "none",
        }
    }
}

/// A client whose credentials checked out.
#[derive(Debug, Clone)]
pub struct AuthenticatedClient {
    /// The client.
    pub client: Client,
    /// How it authenticated.
    pub method: ClientAuthMethod,
}

struct Credentials {
    client_id: String,
    secret: Option<Zeroizing<String>>,
    method: ClientAuthMethod,
}

/// Decodes `Authorization: Basic …`. RFC 6749 §2.3.1: "The client identifier is encoded using
/// the application/x-www-form-urlencoded encoding algorithm … and the encoded value is used as
/// the username; the client password is encoded using the same algorithm and used as the
/// password."
fn basic_credentials(value: &str) -> Result<(String, Zeroizing<String>), OAuthError> {
    let malformed = || OAuthError::invalid_client("malformed Basic credentials");
    let (scheme, rest) = value.split_once(' ').ok_or_else(malformed)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(OAuthError::invalid_client(
            "unsupported authorization scheme; use Basic",
        ));
    }
    let decoded = Zeroizing::new(STANDARD.decode(rest.trim()).map_err(|_| malformed())?);
    let colon = decoded
        .iter()
        .position(|&b| b == b':')
        .ok_or_else(malformed)?;
    let (id, secret) = decoded.split_at(colon);
    let id = decode_component(id).map_err(|_| malformed())?;
    let secret = Zeroizing::new(
        decode_component(secret.get(1..).unwrap_or_default()).map_err(|_| malformed())?,
    );
    if id.is_empty() {
        return Err(malformed());
    }
    Ok((id, secret))
}

fn credentials(headers: &HeaderMap, form: &Form) -> Result<Credentials, OAuthError> {
    let header = match headers.get(AUTHORIZATION) {
        Some(v) => Some(
            v.to_str()
                .map_err(|_| OAuthError::invalid_client("malformed Authorization header"))?,
        ),
        None => None,
    };
    let form_id = form.get("client_id");
    let form_secret = form.get("client_secret");
    match header {
        Some(value) => {
            let (client_id, secret) = basic_credentials(value)?;
            // RFC 6749 §2.3: "The client MUST NOT use more than one authentication method in
            // each request."
            if form_secret.is_some() {
                return Err(OAuthError::invalid_request(
                    "client authenticated with both HTTP Basic and client_secret in the body",
                ));
            }
            if form_id.is_some_and(|id| id != client_id) {
                return Err(OAuthError::invalid_request(
                    "client_id in the body differs from the Basic credentials",
                ));
            }
            Ok(Credentials {
                client_id,
                secret: Some(secret),
                method: ClientAuthMethod::ClientSecretBasic,
            })
        }
        None => match (form_id, form_secret) {
            (Some(id), Some(secret)) => Ok(Credentials {
                client_id: id.to_owned(),
                secret: Some(Zeroizing::new(secret.to_owned())),
                method: ClientAuthMethod::ClientSecretPost,
            }),
            (Some(id), None) => Ok(Credentials {
                client_id: id.to_owned(),
                secret: None,
                method: ClientAuthMethod::None,
            }),
            (None, Some(_)) => Err(OAuthError::invalid_request(
                "client_secret sent without client_id",
            )),
            (None, None) => Err(OAuthError::invalid_client("client authentication required")),
        },
    }
}

/// Authenticates the client of a token, revocation or introspection request.
/// `allow_public` says whether a public client may use the endpoint with `none`.
pub async fn authenticate_client<S: Store>(
    store: &S,
    headers: &HeaderMap,
    form: &Form,
    allow_public: bool,
) -> Result<AuthenticatedClient, OAuthError> {
    let creds = credentials(headers, form)?;
    let failed = || OAuthError::invalid_client("client authentication failed");
    let client = store.find_client(&creds.client_id).await?;
    match (&creds.secret, client) {
        (Some(secret), Some(client)) => {
            let presented = TokenDigest::of(secret);
            match client.secret_digest {
                Some(stored) if stored.ct_eq(&presented) => Ok(AuthenticatedClient {
                    client,
                    method: creds.method,
                }),
                _ => Err(failed()),
            }
        }
        (None, Some(client)) if client.is_public() => {
            if allow_public {
                Ok(AuthenticatedClient {
                    client,
                    method: ClientAuthMethod::None,
                })
            } else {
                Err(OAuthError::invalid_client(
                    "public clients may not use this endpoint",
                ))
            }
        }
        (Some(secret), None) => {
            // Same work as a known client, so timing does not reveal which ids exist.
            let _ = TokenDigest::of(secret).ct_eq(&TokenDigest([0; 32]));
            Err(failed())
        }
        _ => Err(failed()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_decoded() {
        // id "a:b", secret "p@ss" → form-encoded "a%3Ab:p%40ss" (RFC 6749 §2.3.1).
        let header = format!("Basic {}", STANDARD.encode("a%3Ab:p%40ss"));
        let (id, secret) = basic_credentials(&header).unwrap();
        assert_eq!(id, "a:b");
        assert_eq!(secret.as_str(), "p@ss");
        assert!(basic_credentials("Bearer abc").is_err());
        assert!(basic_credentials("Basic !!!").is_err());
    }
}
