//! The sealed SPA packet (protocol 2): `random(20) ‖ filter tag(4) ‖
//! ciphertext ‖ tag(16)`, XChaCha20-Poly1305 with the first 24 bytes as nonce.
//!
//! Owns the wire form and the AEAD: [`seal`] turns a [`RequestRepr`] plus
//! padding into packet bytes (deterministic given the random bytes and the
//! padding, so the test vectors in `docs/spa-protocol.md` are exact), [`open`]
//! checks the length bounds, authenticates and decrypts into a caller-owned
//! scratch buffer, [`Cipher::passes`] is the keyed pre-filter
//! ([`super::prefilter`]) to ask first. There is no magic and no cleartext
//! field: the whole packet looks random. The associated data is the constant
//! [`AAD`] (domain separation; it is never sent). No I/O, no allocation, no
//! randomness here (the caller brings the random bytes and the padding).

use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{KeyInit, Tag, XChaCha20Poly1305, XNonce};

use super::prefilter::{FilterInput, FilterKey, RANDOM_LEN};
use super::request::{Request, RequestRepr, HEADER_LEN, PORT_LEN};
use super::Key;

/// Bytes of the random nonce at the start of a packet.
pub const NONCE_LEN: usize = 24;
/// Bytes of the Poly1305 tag at the end of a packet.
pub const TAG_LEN: usize = 16;
/// Largest plaintext (request plus padding).
pub const MAX_PLAINTEXT_LEN: usize = 256;
/// Smallest valid packet: a command or forward request with a one-character
/// name, no padding (an open or close request is at least two bytes longer).
pub const MIN_PACKET_LEN: usize = NONCE_LEN + HEADER_LEN + 1 + TAG_LEN;
/// Largest valid packet.
pub const MAX_PACKET_LEN: usize = NONCE_LEN + MAX_PLAINTEXT_LEN + TAG_LEN;
/// Associated data bound into every tag.
pub const AAD: &[u8] = b"postern-spa";

static_assertions::const_assert!(
    HEADER_LEN + PORT_LEN * super::request::MAX_PORTS <= MAX_PLAINTEXT_LEN
);
static_assertions::const_assert!(MAX_PACKET_LEN <= 512);

/// Why a packet could not be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenError {
    /// Shorter than [`MIN_PACKET_LEN`] or longer than [`MAX_PACKET_LEN`] (no crypto tried).
    BadLength,
    /// The tag does not match under this key.
    Auth,
}

/// Why a request could not be sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealError {
    /// Request plus padding exceed [`MAX_PLAINTEXT_LEN`], or `out` is too short.
    TooLong,
}

/// A client key ready for the pre-filter and AEAD work.
#[derive(Clone)]
pub struct Cipher {
    aead: XChaCha20Poly1305,
    filter: FilterKey,
}

impl Cipher {
    /// The cipher for `key` (derives the pre-filter key: one HMAC).
    pub fn new(key: &Key) -> Cipher {
        Cipher {
            aead: XChaCha20Poly1305::new(key.as_bytes().into()),
            filter: FilterKey::derive(key),
        }
    }

    /// True when `packet`'s nonce carries this key's pre-filter tag (one
    /// SipHash): only then is [`open`] worth trying.
    pub fn passes(&self, packet: &[u8]) -> bool {
        self.filter.passes(packet)
    }

    /// [`Cipher::passes`] on a nonce read once ([`FilterInput::of`]) for all candidates.
    #[inline]
    pub fn matches(&self, input: &FilterInput) -> bool {
        self.filter.matches(input)
    }
}

/// The nonce a packet sealed under `key` with `random` carries: `random ‖
/// SipHash-2-4(k_pf, random)[..4]`.
pub fn nonce_for(key: &Key, random: &[u8; RANDOM_LEN]) -> [u8; NONCE_LEN] {
    FilterKey::derive(key).nonce(random)
}

/// Seals `repr` followed by `padding` under `key` into `out`, with the nonce
/// [`nonce_for`]`(key, random)`; returns the packet length.
pub fn seal(
    key: &Key,
    random: &[u8; RANDOM_LEN],
    repr: &RequestRepr,
    padding: &[u8],
    out: &mut [u8],
) -> Result<usize, SealError> {
    let plain_len = repr.buffer_len() + padding.len();
    let total = NONCE_LEN + plain_len + TAG_LEN;
    if plain_len > MAX_PLAINTEXT_LEN || out.len() < total {
        return Err(SealError::TooLong);
    }
    let cipher = Cipher::new(key);
    let nonce = cipher.filter.nonce(random);
    out[..NONCE_LEN].copy_from_slice(&nonce);
    let body = &mut out[NONCE_LEN..NONCE_LEN + plain_len];
    body[repr.buffer_len()..].copy_from_slice(padding);
    repr.emit(&mut Request::new_unchecked(&mut *body));
    let tag = cipher
        .aead
        .encrypt_in_place_detached(XNonce::from_slice(&nonce), AAD, body)
        .map_err(|_| SealError::TooLong)?;
    out[NONCE_LEN + plain_len..total].copy_from_slice(&tag);
    Ok(total)
}

/// Checks that `packet`'s length is within bounds (no crypto).
pub fn check_len(packet: &[u8]) -> Result<(), OpenError> {
    if (MIN_PACKET_LEN..=MAX_PACKET_LEN).contains(&packet.len()) {
        Ok(())
    } else {
        Err(OpenError::BadLength)
    }
}

/// The nonce of a packet whose length passed [`check_len`].
pub fn nonce_of(packet: &[u8]) -> [u8; NONCE_LEN] {
    let mut n = [0u8; NONCE_LEN];
    if let Some(b) = packet.get(..NONCE_LEN) {
        n.copy_from_slice(b);
    }
    n
}

/// Authenticates and decrypts `packet` with `cipher` (exactly one AEAD
/// verification); on success returns the plaintext, a prefix of `scratch`.
/// `scratch` is overwritten either way.
pub fn open<'s>(
    cipher: &Cipher,
    packet: &[u8],
    scratch: &'s mut [u8; MAX_PLAINTEXT_LEN],
) -> Result<&'s [u8], OpenError> {
    check_len(packet)?;
    let plain_len = packet.len() - NONCE_LEN - TAG_LEN;
    let (nonce, rest) = packet.split_at(NONCE_LEN);
    let (ciphertext, tag) = rest.split_at(plain_len);
    let buf = &mut scratch[..plain_len];
    buf.copy_from_slice(ciphertext);
    cipher
        .aead
        .decrypt_in_place_detached(XNonce::from_slice(nonce), AAD, buf, Tag::from_slice(tag))
        .map_err(|_| OpenError::Auth)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::port::PortSpec;
    use crate::spa::request::{Kind, Target};
    use crate::test_rng::Rng;

    fn repr() -> RequestRepr {
        RequestRepr {
            kind: Kind::Open,
            timestamp: 1_700_000_000,
            duration: 60,
            target: Target::Source,
            ports: heapless::Vec::from_slice(&[PortSpec::tcp(22)]).unwrap(),
            name: heapless::String::new(),
        }
    }

    fn sealed(key: &Key, padding: &[u8]) -> Vec<u8> {
        let mut out = [0u8; MAX_PACKET_LEN];
        let n = seal(key, &[7; RANDOM_LEN], &repr(), padding, &mut out).unwrap();
        out[..n].to_vec()
    }

    #[test]
    fn round_trip_with_padding() {
        let key = Key::from_bytes([1; 32]);
        for pad in [0usize, 1, 17, 200] {
            let p = sealed(&key, &vec![0x5a; pad]);
            assert_eq!(p.len(), NONCE_LEN + HEADER_LEN + PORT_LEN + TAG_LEN + pad);
            let mut scratch = [0u8; MAX_PLAINTEXT_LEN];
            let plain = open(&Cipher::new(&key), &p, &mut scratch).unwrap();
            let r = Request::new_checked(plain).unwrap();
            assert_eq!(RequestRepr::parse(&r).unwrap(), repr());
            assert_eq!(r.padding().len(), pad);
        }
        let mut out = [0u8; MAX_PACKET_LEN];
        assert_eq!(
            seal(&key, &[0; RANDOM_LEN], &repr(), &[0; 222], &mut out),
            Err(SealError::TooLong)
        );
        assert_eq!(
            seal(
                &key,
                &[0; RANDOM_LEN],
                &repr(),
                &[],
                &mut out[..MIN_PACKET_LEN - 1]
            ),
            Err(SealError::TooLong)
        );
    }

    #[test]
    fn every_single_byte_tamper_is_rejected() {
        let key = Key::from_bytes([2; 32]);
        let cipher = Cipher::new(&key);
        let p = sealed(&key, &[9; 13]);
        let mut scratch = [0u8; MAX_PLAINTEXT_LEN];
        let mut rng = Rng(77);
        for i in 0..p.len() {
            for flip in [0x01u8, 0x80, (rng.next() as u8) | 1] {
                let mut t = p.clone();
                t[i] ^= flip;
                assert_eq!(
                    open(&cipher, &t, &mut scratch),
                    Err(OpenError::Auth),
                    "byte {i} ^ {flip:#x} accepted"
                );
                // A changed nonce byte already fails the pre-filter.
                assert_eq!(cipher.passes(&t), i >= NONCE_LEN, "byte {i}");
            }
        }
        // Dropping or adding a byte anywhere also fails.
        assert_eq!(
            open(&cipher, &p[..p.len() - 1], &mut scratch),
            Err(OpenError::Auth)
        );
        assert_eq!(open(&cipher, &p[1..], &mut scratch), Err(OpenError::Auth));
        let mut longer = p.clone();
        longer.push(0);
        assert_eq!(open(&cipher, &longer, &mut scratch), Err(OpenError::Auth));
    }

    #[test]
    fn wrong_key_is_rejected() {
        let p = sealed(&Key::from_bytes([3; 32]), &[]);
        let mut other = [3u8; 32];
        other[31] = 4;
        let mut scratch = [0u8; MAX_PLAINTEXT_LEN];
        assert_eq!(
            open(&Cipher::new(&Key::from_bytes(other)), &p, &mut scratch),
            Err(OpenError::Auth)
        );
    }

    #[test]
    fn length_bounds_are_checked_before_crypto() {
        let cipher = Cipher::new(&Key::from_bytes([0; 32]));
        let mut scratch = [0u8; MAX_PLAINTEXT_LEN];
        for len in [0, 1, 40, MIN_PACKET_LEN - 1, MAX_PACKET_LEN + 1, 1500] {
            assert_eq!(
                open(&cipher, &vec![0u8; len], &mut scratch),
                Err(OpenError::BadLength),
                "{len}"
            );
        }
        for len in [MIN_PACKET_LEN, MAX_PACKET_LEN] {
            assert_eq!(
                open(&cipher, &vec![0u8; len], &mut scratch),
                Err(OpenError::Auth)
            );
        }
    }
}
