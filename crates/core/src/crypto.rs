//! Digests and the sealed grace-window response.
//!
//! Tokens and client secrets are stored only as SHA-256 digests (CONVENTIONS §3): a leaked
//! database yields no usable token. The refresh grace window needs the server to answer a retry of
//! the previous refresh token with *the same* response, whose tokens it no longer has in clear; so
//! the successor response is stored encrypted under a key derived from the presented (old) refresh
//! token with HKDF-SHA-256, sealed with ChaCha20-Poly1305. Only whoever holds the old refresh token
//! can open it — which is exactly who is entitled to the response.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hkdf::Hkdf;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::random::{Random, RandomError};

/// The digest of a token or client secret: the only form in which they are stored.
///
/// For a time-ordered token (see [`crate::random`]: `tw?_` followed by 51 base64url characters,
/// whose first 8 encode the issuance time in milliseconds) the digest is those **6 bytes of
/// time, then the first 26 bytes of the SHA-256** of the whole token string. Storage keyed by
/// the digest then receives new tokens at the end of its index instead of on a random page —
/// at the token-issuance rates of `BENCHMARKS.md` that is the difference between rewriting one
/// index page per token and one per batch. The time part is not secret (the token carries it in
/// clear); the 208 bits of SHA-256 keep the digest one-way and collision-free. Anything else (client
/// secrets, session tokens, tokens minted before this format, foreign strings) gets the plain
/// SHA-256 of the string. `tokenwarden-resource` computes the same digest (the revocation feed
/// names revoked tokens by it).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenDigest(pub [u8; 32]);

/// Characters after the prefix of a time-ordered token: base64url of 6 bytes of time and 32
/// random bytes.
pub const ORDERED_TOKEN_BODY_LEN: usize = 51;
/// The base64url characters at the start of an ordered token's body that encode its 6 time bytes.
const ORDER_CHARS: usize = 8;
/// Bytes of time at the start of an ordered digest.
const ORDER_BYTES: usize = 6;

impl TokenDigest {
    /// Digest of a secret value (see the type's documentation for the two forms).
    pub fn of(secret: &str) -> Self {
        let hash: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
        let Some(order) = ordered_token_time(secret) else {
            return Self(hash);
        };
        let mut out = [0u8; 32];
        let (time, rest) = out.split_at_mut(ORDER_BYTES);
        time.copy_from_slice(&order);
        rest.copy_from_slice(hash.get(..32 - ORDER_BYTES).unwrap_or_default());
        Self(out)
    }
    /// From stored bytes; `None` unless exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; 32]>::try_from(bytes).ok().map(Self)
    }
    /// The raw digest.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
    /// Constant-time comparison (CONVENTIONS §3), for client-secret verification.
    pub fn ct_eq(&self, other: &TokenDigest) -> bool {
        self.0.ct_eq(&other.0).into()
    }
    /// A public identifier for the token (RFC 7662 `jti`): the first 128 bits of the digest,
    /// base64url. It names the token without revealing it.
    pub fn jti(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0.get(..16).unwrap_or(&self.0))
    }
    /// [`Self::jti`] written into `buf` instead of a new `String` (the introspection hot path).
    pub fn jti_into<'b>(&self, buf: &'b mut [u8; JTI_LEN]) -> &'b str {
        let written = URL_SAFE_NO_PAD
            .encode_slice(self.0.get(..16).unwrap_or(&self.0), buf)
            .unwrap_or(0);
        // base64url output is ASCII, hence UTF-8.
        std::str::from_utf8(buf.get(..written).unwrap_or_default()).unwrap_or_default()
    }
    /// Hex form, for logs and the revocation feed.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// The 6 time bytes of a time-ordered token (`tw?_` + 51 base64url characters), or `None` for
/// any other string.
fn ordered_token_time(secret: &str) -> Option<[u8; ORDER_BYTES]> {
    let bytes = secret.as_bytes();
    let (prefix, body) = (bytes.get(..4)?, bytes.get(4..)?);
    if !(prefix.starts_with(b"tw") && prefix.get(3) == Some(&b'_'))
        || body.len() != ORDERED_TOKEN_BODY_LEN
        || !body
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
    {
        return None;
    }
    let mut order = [0u8; ORDER_BYTES];
    let written = URL_SAFE_NO_PAD
        .decode_slice(body.get(..ORDER_CHARS)?, &mut order)
        .ok()?;
    (written == ORDER_BYTES).then_some(order)
}

impl std::fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenDigest({})", self.jti())
    }
}

/// Length of a [`TokenDigest::jti`]: 128 bits in unpadded base64url.
pub const JTI_LEN: usize = 22;

const SEAL_SALT: &[u8] = b"tokenwarden/refresh-grace/v1";
const SEAL_INFO: &[u8] = b"successor-token-response";
const NONCE_LEN: usize = 12;

/// Sealing or opening the grace-window response failed.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// No randomness for the nonce.
    #[error(transparent)]
    Random(#[from] RandomError),
    /// Authentication of the ciphertext failed (wrong token or tampered row).
    #[error("sealed response does not open with this token")]
    Open,
}

fn cipher_for(old_refresh_token: &str) -> Result<ChaCha20Poly1305, SealError> {
    let hk = Hkdf::<Sha256>::new(Some(SEAL_SALT), old_refresh_token.as_bytes());
    let mut key = Zeroizing::new([0u8; 32]);
    hk.expand(SEAL_INFO, key.as_mut())
        .map_err(|_| SealError::Open)?;
    Ok(ChaCha20Poly1305::new(Key::from_slice(key.as_ref())))
}

/// Encrypts `response` under a key derived from `old_refresh_token`; the digest of the old token
/// is bound as associated data so a sealed blob cannot be moved to another row.
pub fn seal_successor(
    old_refresh_token: &str,
    response: &[u8],
    random: &dyn Random,
) -> Result<Vec<u8>, SealError> {
    let cipher = cipher_for(old_refresh_token)?;
    let mut nonce = [0u8; NONCE_LEN];
    random.fill(&mut nonce)?;
    let aad = TokenDigest::of(old_refresh_token);
    let ciphertext = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: response,
                aad: aad.as_bytes(),
            },
        )
        .map_err(|_| SealError::Open)?;
    let mut out = Vec::with_capacity(NONCE_LEN + ciphertext.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ciphertext);
    Ok(out)
}

/// Opens a blob made by [`seal_successor`] with the same old refresh token.
pub fn open_successor(
    old_refresh_token: &str,
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, SealError> {
    if sealed.len() < NONCE_LEN {
        return Err(SealError::Open);
    }
    let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
    let cipher = cipher_for(old_refresh_token)?;
    let aad = TokenDigest::of(old_refresh_token);
    cipher
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad: aad.as_bytes(),
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| SealError::Open)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordered_tokens_get_time_then_sha256_others_plain_sha256() {
        let token =
            crate::random::new_access_token(&crate::random::OsRandom, 0x0102_0304_0506).unwrap();
        let d = TokenDigest::of(token.secret());
        let sha: [u8; 32] = Sha256::digest(token.secret().as_bytes()).into();
        assert_eq!(&d.0[..6], &[1, 2, 3, 4, 5, 6]);
        assert_eq!(&d.0[6..], &sha[..26]);
        // Not the shape: plain SHA-256.
        for other in [
            "tws_0123456789012345678901234567890123456789012",
            "twa_short",
            "xxa_AQIDBAUGAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "twa_AQIDBAUGAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA!",
            "twa_AQIDBAUGAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        ] {
            let sha: [u8; 32] = Sha256::digest(other.as_bytes()).into();
            assert_eq!(TokenDigest::of(other).0, sha, "{other}");
        }
        // The shape with a foreign prefix letter still orders: the rule reads only the shape.
        let same_shape = "twx_AQIDBAUGAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        assert_eq!(&TokenDigest::of(same_shape).0[..6], &[1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn jti_into_writes_the_jti() {
        for secret in ["", "twa_x", "a much longer token value than the others"] {
            let d = TokenDigest::of(secret);
            let mut buf = [0u8; JTI_LEN];
            assert_eq!(d.jti_into(&mut buf), d.jti());
            assert_eq!(d.jti().len(), JTI_LEN);
        }
    }
    use crate::random::OsRandom;

    #[test]
    fn sealed_response_opens_only_with_the_old_token() {
        let sealed = seal_successor("twr_old", b"{\"access_token\":\"x\"}", &OsRandom).unwrap();
        assert_eq!(
            open_successor("twr_old", &sealed).unwrap().as_slice(),
            b"{\"access_token\":\"x\"}"
        );
        assert!(open_successor("twr_other", &sealed).is_err());
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(open_successor("twr_old", &tampered).is_err());
        assert!(!sealed
            .windows(b"access_token".len())
            .any(|w| w == b"access_token"));
    }

    #[test]
    fn digest_is_sha256() {
        // SHA-256("abc"), FIPS 180-2 appendix B.1.
        assert_eq!(
            TokenDigest::of("abc").to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(TokenDigest::of("a").ct_eq(&TokenDigest::of("a")));
        assert!(!TokenDigest::of("a").ct_eq(&TokenDigest::of("b")));
    }
}
