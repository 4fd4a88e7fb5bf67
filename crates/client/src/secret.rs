//! Secrets as newtypes: a redacted `Debug`, no `Display`, zeroized on drop, compared in constant
//! time. Access tokens, refresh tokens and client secrets are bearer credentials (RFC 6750 §1.2,
//! RFC 6749 §1.5, §2.3.1): whoever reads one from a log can use it.

use subtle::ConstantTimeEq as _;
use zeroize::{Zeroize, ZeroizeOnDrop};

macro_rules! secret_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        ///
        /// `Debug` prints the type name and `([redacted])`; there is no `Display`. Read the value
        /// with [`Self::secret`] only to put it on the wire.
        #[derive(Clone, Zeroize, ZeroizeOnDrop)]
        pub struct $name(String);

        impl $name {
            /// Wraps a secret value.
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }

            /// The secret itself. Never log it.
            pub fn secret(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(concat!(stringify!($name), "([redacted])"))
            }
        }

        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
            }
        }

        impl Eq for $name {}

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                String::deserialize(deserializer).map(Self)
            }
        }
    };
}

secret_type!(
    /// An OAuth 2.0 access token (RFC 6749 §1.4), sent as `Authorization: Bearer` (RFC 6750 §2.1).
    AccessToken
);
secret_type!(
    /// An OAuth 2.0 refresh token (RFC 6749 §1.5).
    RefreshToken
);
secret_type!(
    /// A client secret (RFC 6749 §2.3.1).
    ClientSecret
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_is_redacted() {
        assert_eq!(
            format!("{:?}", AccessToken::new("twa_abc")),
            "AccessToken([redacted])"
        );
        assert_eq!(
            format!("{:?}", RefreshToken::new("twr_abc")),
            "RefreshToken([redacted])"
        );
        assert_eq!(
            format!("{:?}", Some(ClientSecret::new("p@ss"))),
            "Some(ClientSecret([redacted]))"
        );
    }

    #[test]
    fn equality_compares_the_values() {
        assert_eq!(AccessToken::new("a"), AccessToken::new("a"));
        assert_ne!(AccessToken::new("a"), AccessToken::new("b"));
        assert_ne!(AccessToken::new("a"), AccessToken::new("ab"));
    }
}
