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

/// The SHA-256 digest of a token or client secret: the only form in which they are stored.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenDigest(pub [u8; 32]);

impl TokenDigest {
    /// Digest of a secret value.
    pub fn of(secret: &str) -> Self {
        Self(Sha256::digest(secret.as_bytes()).into())
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
