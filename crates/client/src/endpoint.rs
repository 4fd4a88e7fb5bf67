//! Endpoint and issuer URLs, parsed once. Plain `http://` is accepted only for loopback hosts
//! (127.0.0.0/8, `::1`, `localhost`), so a development server on 127.0.0.1 works while a
//! credential is never sent in clear across a network.

use std::fmt;

use url::{Host, Url};

/// Why a URL was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Not an absolute URL.
    #[error("`{0}` is not an absolute URL")]
    Invalid(String),
    /// `http://` to a host that is not loopback, or another scheme.
    #[error(
        "`{0}` must use https (plain http is allowed only for 127.0.0.0/8, ::1 and localhost)"
    )]
    Insecure(String),
    /// A fragment (`#…`).
    #[error("`{0}` must not contain a fragment")]
    Fragment(String),
    /// User name or password in the URL.
    #[error("`{0}` must not carry credentials in the URL")]
    Credentials(String),
    /// A query string in an issuer identifier.
    #[error("issuer `{0}` must not contain a query")]
    Query(String),
}

fn check_transport(url: &Url, original: &str) -> Result<(), UrlError> {
    match url.scheme() {
        "https" => Ok(()),
        // RFC 6749 §3.1/§3.2 require TLS for the authorization and token endpoints; RFC 7009 §2
        // and RFC 7662 §4 likewise. Loopback traffic never leaves the machine.
        "http" if is_loopback(url) => Ok(()),
        _ => Err(UrlError::Insecure(original.to_owned())),
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        Some(Host::Domain(name)) => {
            let name = name.strip_suffix('.').unwrap_or(name);
            name.eq_ignore_ascii_case("localhost")
        }
        None => false,
    }
}

fn parse_common(input: &str) -> Result<Url, UrlError> {
    let url = Url::parse(input).map_err(|_| UrlError::Invalid(input.to_owned()))?;
    if !url.has_host() {
        return Err(UrlError::Invalid(input.to_owned()));
    }
    check_transport(&url, input)?;
    // RFC 6749 §3.1/§3.2: "The endpoint URI MUST NOT include a fragment component."
    if url.fragment().is_some() {
        return Err(UrlError::Fragment(input.to_owned()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UrlError::Credentials(input.to_owned()));
    }
    Ok(url)
}

/// An endpoint URL (token, revocation, introspection, metadata): https, or http on loopback.
/// Keeps the original string.
#[derive(Clone, PartialEq, Eq)]
pub struct EndpointUrl {
    original: String,
    url: Url,
}

impl EndpointUrl {
    /// Parses and checks an endpoint URL.
    pub fn parse(input: &str) -> Result<Self, UrlError> {
        let url = parse_common(input)?;
        Ok(Self {
            original: input.to_owned(),
            url,
        })
    }

    /// The URL as given.
    pub fn as_str(&self) -> &str {
        &self.original
    }

    /// The parsed URL.
    pub fn url(&self) -> &Url {
        &self.url
    }
}

impl fmt::Debug for EndpointUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EndpointUrl({})", self.original)
    }
}

impl fmt::Display for EndpointUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.original)
    }
}

/// An authorization server's issuer identifier (RFC 8414 §2): https (or http on loopback), no
/// query, no fragment. Compared as the exact original string (RFC 8414 §3.3).
#[derive(Clone, PartialEq, Eq)]
pub struct IssuerUrl {
    original: String,
    url: Url,
}

impl IssuerUrl {
    /// Parses and checks an issuer identifier.
    pub fn parse(input: &str) -> Result<Self, UrlError> {
        let url = parse_common(input)?;
        // RFC 8414 §2: "a URL that uses the "https" scheme and has no query or fragment components"
        if url.query().is_some() {
            return Err(UrlError::Query(input.to_owned()));
        }
        Ok(Self {
            original: input.to_owned(),
            url,
        })
    }

    /// The issuer as given.
    pub fn as_str(&self) -> &str {
        &self.original
    }

    /// The metadata URL (RFC 8414 §3.1): "/.well-known/oauth-authorization-server" inserted between
    /// the host and the path, "any terminating "/" MUST be removed" first.
    pub fn metadata_url(&self) -> Result<EndpointUrl, UrlError> {
        let path = self.url.path().trim_end_matches('/');
        let mut url = self.url.clone();
        url.set_path(&format!("/.well-known/oauth-authorization-server{path}"));
        EndpointUrl::parse(url.as_str())
    }
}

impl fmt::Debug for IssuerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IssuerUrl({})", self.original)
    }
}

impl fmt::Display for IssuerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.original)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_is_allowed_only_for_loopback_hosts() {
        for ok in [
            "https://auth.example.com/oauth2/token",
            "http://127.0.0.1:8080/oauth2/token",
            "http://127.1.2.3/token",
            "http://[::1]:9000/token",
            "http://localhost/token",
            "http://LOCALHOST./token",
        ] {
            assert!(EndpointUrl::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://auth.example.com/token",
            "http://10.0.0.1/token",
            "http://128.0.0.1/token",
            "http://[::2]/token",
            "http://localhost.example.com/token",
            "ftp://127.0.0.1/token",
        ] {
            assert!(
                matches!(EndpointUrl::parse(bad), Err(UrlError::Insecure(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn endpoint_must_not_have_fragment_or_credentials() {
        assert!(matches!(
            EndpointUrl::parse("https://a.example/token#x"),
            Err(UrlError::Fragment(_))
        ));
        assert!(matches!(
            EndpointUrl::parse("https://u:p@a.example/token"),
            Err(UrlError::Credentials(_))
        ));
        assert!(matches!(
            EndpointUrl::parse("/relative"),
            Err(UrlError::Invalid(_))
        ));
    }

    #[test]
    fn metadata_url_inserts_the_well_known_suffix_before_the_path() {
        let cases = [
            (
                "https://example.com",
                "https://example.com/.well-known/oauth-authorization-server",
            ),
            (
                "https://example.com/",
                "https://example.com/.well-known/oauth-authorization-server",
            ),
            (
                "https://example.com/issuer1",
                "https://example.com/.well-known/oauth-authorization-server/issuer1",
            ),
            (
                "http://127.0.0.1:8080",
                "http://127.0.0.1:8080/.well-known/oauth-authorization-server",
            ),
        ];
        for (issuer, expected) in cases {
            let issuer = IssuerUrl::parse(issuer).unwrap();
            assert_eq!(issuer.metadata_url().unwrap().as_str(), expected);
        }
        assert!(IssuerUrl::parse("https://example.com/?a=b").is_err());
    }
}
