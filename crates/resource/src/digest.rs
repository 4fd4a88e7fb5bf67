//! The cache key: SHA-256 of the bearer token (CONVENTIONS §3, "store only hashes"). The token
//! itself is never kept; a memory dump of the cache yields no usable credential. The revocation
//! feed names a revoked access token by the same digest (`token_sha256`, lowercase hex).

use std::fmt;

use sha2::{Digest as _, Sha256};

/// SHA-256 of a token string. Not a secret: printing it is safe.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TokenDigest([u8; 32]);

impl TokenDigest {
    /// The digest of `token` (its UTF-8 bytes, as sent in the `Authorization` header).
    pub fn of(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }

    /// Parses 64 hex digits (the feed sends lowercase; uppercase is accepted too).
    pub fn from_hex(hex: &str) -> Option<Self> {
        let bytes = hex.as_bytes();
        if bytes.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (slot, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
            let (hi, lo) = match pair {
                [hi, lo] => (nibble(*hi)?, nibble(*lo)?),
                _ => return None,
            };
            *slot = (hi << 4) | lo;
        }
        Some(Self(out))
    }

    /// Lowercase hex, as on the feed.
    pub fn to_hex(&self) -> String {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = String::with_capacity(64);
        for byte in self.0 {
            for n in [byte >> 4, byte & 0x0f] {
                out.push(char::from(*DIGITS.get(usize::from(n)).unwrap_or(&b'0')));
            }
        }
        out
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenDigest({})", self.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_matches_the_sha256_test_vector_and_round_trips_through_hex() {
        // FIPS 180-2 / RFC 6234 test vector: SHA-256("abc").
        let d = TokenDigest::of("abc");
        assert_eq!(
            d.to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(TokenDigest::from_hex(&d.to_hex()), Some(d));
        assert_eq!(TokenDigest::from_hex(&d.to_hex().to_uppercase()), Some(d));
        assert_eq!(TokenDigest::from_hex("abc"), None);
        assert_eq!(TokenDigest::from_hex(&"g".repeat(64)), None);
    }
}
