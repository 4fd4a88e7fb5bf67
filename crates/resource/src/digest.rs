//! The cache key: tokenwarden's digest of the bearer token (CONVENTIONS §3, "store only
//! hashes"). The token itself is never kept; a memory dump of the cache yields no usable
//! credential. The revocation feed names a revoked access token by the same digest
//! (`token_digest`, lowercase hex), so this must compute exactly what the server stores:
//!
//! - a time-ordered token — `tw?_` then 51 base64url characters, the first 8 of which encode
//!   6 bytes of issuance time — digests to those 6 bytes followed by the first 26 bytes of the
//!   SHA-256 of the whole token string;
//! - any other string to its plain SHA-256.
//!
//! (`tokenwarden_core::crypto::TokenDigest` is the server's side of this rule; a test in each
//! crate pins the same vector.)

use std::fmt;

use sha2::{Digest as _, Sha256};

/// The digest of a token string (see the module documentation). Not a secret: printing it is
/// safe.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TokenDigest([u8; 32]);

impl TokenDigest {
    /// The digest of `token` (its UTF-8 bytes, as sent in the `Authorization` header).
    pub fn of(token: &str) -> Self {
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let Some(time) = ordered_token_time(token) else {
            return Self(hash);
        };
        let mut out = [0u8; 32];
        let (head, rest) = out.split_at_mut(time.len());
        head.copy_from_slice(&time);
        rest.copy_from_slice(hash.get(..32 - time.len()).unwrap_or_default());
        Self(out)
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

/// The 6 time bytes at the front of a time-ordered token (`tw?_` + 51 base64url characters).
fn ordered_token_time(token: &str) -> Option<[u8; 6]> {
    let bytes = token.as_bytes();
    let (prefix, body) = (bytes.get(..4)?, bytes.get(4..)?);
    if !(prefix.starts_with(b"tw") && prefix.get(3) == Some(&b'_')) || body.len() != 51 {
        return None;
    }
    let mut sextets = [0u8; 51];
    for (slot, c) in sextets.iter_mut().zip(body) {
        *slot = sextet(*c)?;
    }
    // 8 characters, 48 bits: the 6 bytes, big-endian.
    let bits = sextets
        .get(..8)?
        .iter()
        .fold(0u64, |acc, s| (acc << 6) | u64::from(*s));
    let mut time = [0u8; 6];
    time.copy_from_slice(bits.to_be_bytes().get(2..)?);
    Some(time)
}

/// The value of a base64url character.
fn sextet(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'-' => Some(62),
        b'_' => Some(63),
        _ => None,
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

    #[test]
    fn a_time_ordered_token_digests_to_its_time_then_sha256() {
        // The same vector as tokenwarden-core's crypto tests: time bytes 01 02 03 04 05 06.
        let token = "twa_AQIDBAUGAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        let sha: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let d = TokenDigest::of(token);
        assert_eq!(&d.0[..6], &[1, 2, 3, 4, 5, 6]);
        assert_eq!(&d.0[6..], &sha[..26]);
        // One character too many, or a character outside base64url: plain SHA-256.
        for other in [
            "twa_AQIDBAUGAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "twa_AQIDBAUGAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA!",
        ] {
            let sha: [u8; 32] = Sha256::digest(other.as_bytes()).into();
            assert_eq!(TokenDigest::of(other).0, sha);
        }
    }
}
