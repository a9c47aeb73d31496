//! fwknop wire compatibility: packets of the real `fwknop` client (2.6.x,
//! Rijndael + HMAC mode) verified with a client's fwknop keys.
//!
//! Owns the fwknop wire format (`docs/fwknop.md`): the cheap checks a UDP
//! payload must pass before any cryptography ([`precheck`]), the HMAC check
//! ([`authenticate`]: constant time, before any decryption), the decryption
//! ([`decrypt`]) and the plaintext's fields ([`message`]). The verifier
//! ([`super::verifier`]) owns the order of the checks, the budget, the
//! replay cache and the decisions; this module never grants anything.
//!
//! Wire form (fwknop's `fko_encryption.c`, `fko_hmac.c`): base64 (standard
//! alphabet, `=` padding stripped) of `Salted__ ‖ salt(8) ‖
//! AES-256-CBC(PKCS#7)`, with the leading `U2FsdGVkX1` (the base64 of
//! `Salted__`'s first bytes, the same in every packet) stripped, followed
//! directly by the base64 HMAC of the text *with* that prefix. Key and IV come
//! from OpenSSL's `EVP_BytesToKey(MD5, salt, key, 1)`. Sans-IO, no
//! allocation: buffers are the caller's ([`Scratch`]).

use core::fmt;

pub mod crypto;
pub mod message;

#[cfg(test)]
pub(crate) mod vectors;

pub use message::{Access, Error, Message, MessageType};

use crate::base64;
use crypto::{MAX_DIGEST_LEN, SALT_LEN};

/// Shortest fwknop packet fwknopd considers (its `MIN_SPA_DATA_SIZE`).
pub const MIN_PACKET_LEN: usize = 140;
/// Longest fwknop packet (fwknopd's `MAX_SPA_PACKET_LEN`).
pub const MAX_PACKET_LEN: usize = 1500;
/// The base64 text every fwknop ciphertext starts with (`Salted__`), stripped on the wire.
pub const SALTED_PREFIX: &[u8] = b"U2FsdGVkX1";
/// Longest Rijndael key (fwknop's `RIJNDAEL_MAX_KEYSIZE`).
pub const MAX_KEY_LEN: usize = 32;
/// Longest HMAC key (fwknop's `MAX_DIGEST_BLOCK_LEN`).
pub const MAX_HMAC_KEY_LEN: usize = 128;
/// Bytes a decoded packet can have (the decoded prefix included).
pub const MAX_DECODED_LEN: usize = (MAX_PACKET_LEN + SALTED_PREFIX.len()) / 4 * 3 + 3;

/// The HMAC a client's packets carry (`fwknop --hmac-digest-type`, access.conf `HMAC_DIGEST_TYPE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HmacType {
    /// HMAC-SHA-1.
    Sha1,
    /// HMAC-SHA-256 (fwknop's default).
    Sha256,
    /// HMAC-SHA-384.
    Sha384,
    /// HMAC-SHA-512.
    Sha512,
}

impl HmacType {
    /// Every type, with its config name.
    pub const NAMES: [(&'static str, HmacType); 4] = [
        ("sha1", HmacType::Sha1),
        ("sha256", HmacType::Sha256),
        ("sha384", HmacType::Sha384),
        ("sha512", HmacType::Sha512),
    ];

    /// The config name (`sha256`, …).
    pub fn name(self) -> &'static str {
        match self {
            HmacType::Sha1 => "sha1",
            HmacType::Sha256 => "sha256",
            HmacType::Sha384 => "sha384",
            HmacType::Sha512 => "sha512",
        }
    }

    /// Characters of the unpadded base64 HMAC at the end of a packet.
    pub const fn b64_len(self) -> usize {
        base64::unpadded_encoded_len(match self {
            HmacType::Sha1 => 20,
            HmacType::Sha256 => 32,
            HmacType::Sha384 => 48,
            HmacType::Sha512 => 64,
        })
    }

    /// The HMAC of `parts` (concatenated) under `key`; returns its length in `out`.
    pub fn mac(self, key: &[u8], parts: &[&[u8]], out: &mut [u8; MAX_DIGEST_LEN]) -> usize {
        match self {
            HmacType::Sha1 => crypto::hmac::<sha1::Sha1>(key, parts, out),
            HmacType::Sha256 => crypto::hmac::<sha2::Sha256>(key, parts, out),
            HmacType::Sha384 => crypto::hmac::<sha2::Sha384>(key, parts, out),
            HmacType::Sha512 => crypto::hmac::<sha2::Sha512>(key, parts, out),
        }
    }
}

/// Why a fwknop key text was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// Not valid base64.
    Base64(base64::DecodeError),
    /// Decodes to this many bytes, outside 1..=max.
    Length {
        /// Bytes decoded.
        got: usize,
        /// Most bytes allowed.
        max: usize,
    },
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::Base64(e) => write!(f, "not base64: {e}"),
            KeyError::Length { got, max } => write!(
                f,
                "decodes to {got} bytes, this key has 1 to {max} (make keys with 'fwknop --key-gen')"
            ),
        }
    }
}

impl std::error::Error for KeyError {}

/// A secret byte string of at most `N` bytes: `Debug` hides it, equality is constant-time.
#[derive(Clone)]
pub struct Secret<const N: usize>(heapless::Vec<u8, N>);

impl<const N: usize> Secret<N> {
    /// Parses padded base64 (as `fwknop --key-gen` prints it) of 1 to `N` bytes.
    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        let bytes = base64::decode(text).map_err(KeyError::Base64)?;
        Self::from_bytes(&bytes)
    }

    /// From raw bytes (1 to `N`).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        let len = KeyError::Length {
            got: bytes.len(),
            max: N,
        };
        if bytes.is_empty() {
            return Err(len);
        }
        heapless::Vec::from_slice(bytes)
            .map(Secret)
            .map_err(|_| len)
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl<const N: usize> PartialEq for Secret<N> {
    fn eq(&self, other: &Self) -> bool {
        crypto::ct_eq(&self.0, &other.0)
    }
}

impl<const N: usize> Eq for Secret<N> {}

impl<const N: usize> fmt::Debug for Secret<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// A client's fwknop keys (`option fwknop_key`, `fwknop_hmac_key`, `fwknop_hmac_type`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    /// The Rijndael key (fwknop's `KEY_BASE64`): the "password" of `EVP_BytesToKey`.
    pub key: Secret<MAX_KEY_LEN>,
    /// The HMAC key (`HMAC_KEY_BASE64`).
    pub hmac_key: Secret<MAX_HMAC_KEY_LEN>,
    /// The HMAC's hash.
    pub hmac_type: HmacType,
}

/// Why a payload is not worth any cryptography.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precheck {
    /// Shorter than [`MIN_PACKET_LEN`] or longer than [`MAX_PACKET_LEN`].
    Length,
    /// A byte outside the base64 alphabet.
    Charset,
    /// Starts with `U2FsdGVkX1`, which the client strips: fwknopd refuses such
    /// packets too (a prefix added to a seen packet must not pass as new).
    Prefix,
}

/// True when `payload` has the length and alphabet of a fwknop packet (a
/// native packet, random bytes, practically never does).
pub fn looks_like_fwknop(payload: &[u8]) -> bool {
    (MIN_PACKET_LEN..=MAX_PACKET_LEN).contains(&payload.len())
        && payload.iter().all(|&c| base64::is_alphabet(c))
}

/// The cheap checks, in fwknopd's order: length, prefix, charset.
pub fn precheck(payload: &[u8]) -> Result<(), Precheck> {
    if !(MIN_PACKET_LEN..=MAX_PACKET_LEN).contains(&payload.len()) {
        return Err(Precheck::Length);
    }
    if payload.starts_with(SALTED_PREFIX) {
        return Err(Precheck::Prefix);
    }
    if !payload.iter().all(|&c| base64::is_alphabet(c)) {
        return Err(Precheck::Charset);
    }
    Ok(())
}

/// Splits a packet into the base64 ciphertext (prefix stripped) and the base64 HMAC.
fn split(payload: &[u8], t: HmacType) -> Option<(&[u8], &[u8])> {
    let at = payload.len().checked_sub(t.b64_len())?;
    Some(payload.split_at(at))
}

/// True when the packet's HMAC is the one `keys` give: computed over the
/// ciphertext text with `U2FsdGVkX1` restored, encoded as fwknop encodes it,
/// and compared as text in constant time (so no second text of the same HMAC
/// exists). One HMAC computation; call it only after [`precheck`].
pub fn authenticate(keys: &Keys, payload: &[u8]) -> bool {
    let Some((body, mac_text)) = split(payload, keys.hmac_type) else {
        return false;
    };
    let mut mac = [0u8; MAX_DIGEST_LEN];
    let n = keys
        .hmac_type
        .mac(keys.hmac_key.as_bytes(), &[SALTED_PREFIX, body], &mut mac);
    let mut text = [0u8; base64::unpadded_encoded_len(MAX_DIGEST_LEN)];
    match base64::encode_unpadded_into(&mac[..n], &mut text) {
        Some(m) => crypto::ct_eq(&text[..m], mac_text),
        None => false,
    }
}

/// Buffers for [`decrypt`], owned by the verifier (no allocation per packet).
pub struct Scratch {
    bytes: [u8; MAX_DECODED_LEN],
}

impl Scratch {
    /// Zeroed buffers.
    pub const fn new() -> Scratch {
        Scratch {
            bytes: [0; MAX_DECODED_LEN],
        }
    }
}

impl Default for Scratch {
    fn default() -> Scratch {
        Scratch::new()
    }
}

/// Decrypts an authenticated packet into `scratch`; returns the plaintext.
pub fn decrypt<'s>(
    keys: &Keys,
    payload: &[u8],
    scratch: &'s mut Scratch,
) -> Result<&'s [u8], Error> {
    let (body, _) = split(payload, keys.hmac_type).ok_or(Error::Layout)?;
    if body.len() < 2 {
        return Err(Error::Layout);
    }
    // The prefix is 10 characters: decode it with the body's first two
    // (12 characters = 9 bytes), then the rest of the body, aligned again.
    let mut head = [0u8; 12];
    head[..SALTED_PREFIX.len()].copy_from_slice(SALTED_PREFIX);
    head[SALTED_PREFIX.len()..].copy_from_slice(&body[..2]);
    let out = &mut scratch.bytes;
    let a = base64::decode_unpadded_into(&head, out).map_err(|_| Error::Base64)?;
    let b = base64::decode_unpadded_into(&body[2..], &mut out[a..]).map_err(|_| Error::Base64)?;
    let data = &mut out[..a + b];
    if data.len() < 16 || &data[..8] != b"Salted__" {
        return Err(Error::Layout);
    }
    let mut salt = [0u8; SALT_LEN];
    salt.copy_from_slice(&data[8..16]);
    let kiv = crypto::bytes_to_key(keys.key.as_bytes(), &salt);
    let n = crypto::cbc_decrypt(&kiv, &mut data[16..]).map_err(|e| match e {
        crypto::CbcError::Length => Error::Layout,
        crypto::CbcError::Padding => Error::Padding,
    })?;
    Ok(&scratch.bytes[16..16 + n])
}

/// The replay cache's record of a fwknop packet: the first 24 bytes of the
/// SHA-256 of the whole packet text (fwknopd keys its digest cache on the
/// same hash). Distinct authentic packets differ in their HMAC text, so
/// their digests differ.
pub fn replay_id(payload: &[u8]) -> [u8; super::seal::NONCE_LEN] {
    let mut d = [0u8; MAX_DIGEST_LEN];
    crypto::digest::<sha2::Sha256>(payload, &mut d);
    let mut id = [0u8; super::seal::NONCE_LEN];
    id.copy_from_slice(&d[..super::seal::NONCE_LEN]);
    id
}

/// Seals `plaintext` as the fwknop client does, with `salt` (tests and
/// benches only: postern never sends fwknop packets; the real client makes
/// the vectors). Not `cfg(test)` because `benches/` (another crate) seals
/// its pool of distinct valid packets with it; hidden from the docs, unused
/// by the daemon, so the router binary does not contain it.
#[doc(hidden)]
pub fn seal_for_test(keys: &Keys, salt: [u8; SALT_LEN], plaintext: &[u8]) -> Vec<u8> {
    let mut raw = b"Salted__".to_vec();
    raw.extend_from_slice(&salt);
    let mut buf = plaintext.to_vec();
    buf.resize(plaintext.len() + crypto::BLOCK, 0);
    let kiv = crypto::bytes_to_key(keys.key.as_bytes(), &salt);
    let n = crypto::cbc_encrypt(&kiv, &mut buf, plaintext.len());
    raw.extend_from_slice(&buf[..n]);
    let mut text = vec![0u8; base64::unpadded_encoded_len(raw.len())];
    let t = base64::encode_unpadded_into(&raw, &mut text).unwrap();
    let body = &text[SALTED_PREFIX.len()..t];
    let mut mac = [0u8; MAX_DIGEST_LEN];
    let m = keys
        .hmac_type
        .mac(keys.hmac_key.as_bytes(), &[SALTED_PREFIX, body], &mut mac);
    let mut mac_text = [0u8; 86];
    let mt = base64::encode_unpadded_into(&mac[..m], &mut mac_text).unwrap();
    let mut packet = body.to_vec();
    packet.extend_from_slice(&mac_text[..mt]);
    packet
}
