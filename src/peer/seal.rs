//! The sealed peer datagram: `version(1) ‖ nonce(24) ‖ ciphertext ‖ tag(16)`,
//! XChaCha20-Poly1305 under the peer key, with the version byte and the
//! constant [`AAD`] as associated data. The plaintext is `stamp(8) ‖
//! flags(1) ‖ items`: the stamp is the sender's wall clock in microseconds,
//! strictly increasing per sender ([`Stamps`]), which the receiver's
//! [`super::Freshness`] checks against replays. No I/O, no allocation, no
//! randomness (the caller brings the nonce).

use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{KeyInit, Tag, XChaCha20Poly1305, XNonce};

use crate::spa::seal::{NONCE_LEN, TAG_LEN};
use crate::spa::Key;

/// The first byte of every peer datagram.
pub const VERSION: u8 = 1;
/// Bytes before the ciphertext: version and nonce.
pub const HEADER_LEN: usize = 1 + NONCE_LEN;
/// Largest datagram sent or accepted (fits an IPv6 minimum MTU with headers).
pub const MAX_DATAGRAM: usize = 1200;
/// Bytes of plaintext before the items: stamp and flags.
pub const PAYLOAD_HEADER: usize = 9;
/// Smallest datagram accepted: a header with no items.
pub const MIN_DATAGRAM: usize = HEADER_LEN + PAYLOAD_HEADER + TAG_LEN;
/// Most bytes of items one datagram carries.
pub const MAX_ITEMS_LEN: usize = MAX_DATAGRAM - MIN_DATAGRAM;
/// Associated data bound into every tag (domain separation; never sent).
pub const AAD: &[u8] = b"postern-peer";
/// Flag: the datagram answers a resync request.
pub const FLAG_RESYNC: u8 = 1;

static_assertions::const_assert!(MAX_ITEMS_LEN >= 8 * super::message::MAX_ITEM_LEN);

/// Why a datagram was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenError {
    /// Too short, too long, or another version (no crypto tried).
    BadLength,
    /// The tag does not match under the peer key.
    Auth,
}

/// An opened datagram: its stamp, flags and the bytes of its items.
#[derive(Debug, PartialEq, Eq)]
pub struct Opened<'b> {
    /// The sender's stamp (unix microseconds).
    pub stamp: u64,
    /// [`FLAG_RESYNC`] or 0.
    pub flags: u8,
    /// The encoded items ([`super::message::Items`] reads them).
    pub items: &'b [u8],
}

/// The peer key, ready for AEAD work.
#[derive(Clone)]
pub struct PeerCipher {
    aead: XChaCha20Poly1305,
}

impl PeerCipher {
    /// The cipher for the peer key.
    pub fn new(key: &Key) -> PeerCipher {
        PeerCipher {
            aead: XChaCha20Poly1305::new(key.as_bytes().into()),
        }
    }

    /// Seals `items` (encoded) with `stamp` and `flags` into `out`; the
    /// datagram's length. `None` when the items exceed [`MAX_ITEMS_LEN`].
    pub fn seal(
        &self,
        nonce: [u8; NONCE_LEN],
        stamp: u64,
        flags: u8,
        items: &[u8],
        out: &mut [u8; MAX_DATAGRAM],
    ) -> Option<usize> {
        if items.len() > MAX_ITEMS_LEN {
            return None;
        }
        out[0] = VERSION;
        out[1..HEADER_LEN].copy_from_slice(&nonce);
        let body_len = PAYLOAD_HEADER + items.len();
        let body = &mut out[HEADER_LEN..HEADER_LEN + body_len];
        body[..8].copy_from_slice(&stamp.to_be_bytes());
        body[8] = flags;
        body[PAYLOAD_HEADER..].copy_from_slice(items);
        let tag = self
            .aead
            .encrypt_in_place_detached(XNonce::from_slice(&nonce), &aad(), body)
            .ok()?;
        let end = HEADER_LEN + body_len;
        out[end..end + TAG_LEN].copy_from_slice(&tag);
        Some(end + TAG_LEN)
    }

    /// Authenticates and decrypts `datagram` into `scratch`. Nothing but
    /// `scratch` is touched, whatever the input.
    pub fn open<'b>(
        &self,
        datagram: &[u8],
        scratch: &'b mut [u8; MAX_DATAGRAM],
    ) -> Result<Opened<'b>, OpenError> {
        if datagram.len() < MIN_DATAGRAM || datagram.len() > MAX_DATAGRAM || datagram[0] != VERSION
        {
            return Err(OpenError::BadLength);
        }
        let nonce = XNonce::from_slice(&datagram[1..HEADER_LEN]);
        let body_len = datagram.len() - HEADER_LEN - TAG_LEN;
        let tag = Tag::from_slice(&datagram[HEADER_LEN + body_len..]);
        let body = &mut scratch[..body_len];
        body.copy_from_slice(&datagram[HEADER_LEN..HEADER_LEN + body_len]);
        // Poly1305 verification is constant time.
        self.aead
            .decrypt_in_place_detached(nonce, &aad(), body, tag)
            .map_err(|_| OpenError::Auth)?;
        let mut stamp = [0u8; 8];
        stamp.copy_from_slice(&body[..8]);
        Ok(Opened {
            stamp: u64::from_be_bytes(stamp),
            flags: body[8],
            items: &scratch[PAYLOAD_HEADER..body_len],
        })
    }
}

/// The associated data: [`AAD`] and the version.
fn aad() -> [u8; 13] {
    let mut a = [0u8; 13];
    a[..12].copy_from_slice(AAD);
    a[12] = VERSION;
    a
}

static_assertions::const_assert!(AAD.len() == 12);

/// The sender's stamps: its wall clock in microseconds, never repeating or
/// going back within one process.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stamps {
    last: u64,
}

impl Stamps {
    /// The stamp for a datagram sent at `now_us` (unix microseconds).
    pub fn next(&mut self, now_us: u64) -> u64 {
        self.last = now_us.max(self.last.saturating_add(1));
        self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cipher(b: u8) -> PeerCipher {
        PeerCipher::new(&Key::from_bytes([b; 32]))
    }

    fn sealed(items: &[u8]) -> ([u8; MAX_DATAGRAM], usize) {
        let mut out = [0u8; MAX_DATAGRAM];
        let len = cipher(1)
            .seal([3; NONCE_LEN], 42, FLAG_RESYNC, items, &mut out)
            .unwrap();
        (out, len)
    }

    #[test]
    fn seal_then_open_gives_the_items_back() {
        let (d, len) = sealed(b"\x08\x08");
        let mut scratch = [0u8; MAX_DATAGRAM];
        let o = cipher(1).open(&d[..len], &mut scratch).unwrap();
        assert_eq!(
            o,
            Opened {
                stamp: 42,
                flags: FLAG_RESYNC,
                items: b"\x08\x08"
            }
        );
    }

    #[test]
    fn another_key_is_refused() {
        let (d, len) = sealed(b"\x08");
        let mut scratch = [0u8; MAX_DATAGRAM];
        assert_eq!(
            cipher(2).open(&d[..len], &mut scratch),
            Err(OpenError::Auth)
        );
    }

    #[test]
    fn every_flipped_bit_is_refused() {
        let (d, len) = sealed(b"\x07");
        let mut scratch = [0u8; MAX_DATAGRAM];
        for i in 0..len * 8 {
            let mut forged = d;
            forged[i / 8] ^= 1 << (i % 8);
            assert!(
                cipher(1).open(&forged[..len], &mut scratch).is_err(),
                "bit {i}"
            );
        }
    }

    #[test]
    fn truncated_and_oversized_datagrams_are_refused() {
        let (d, len) = sealed(b"\x08\x08\x08");
        let mut scratch = [0u8; MAX_DATAGRAM];
        for cut in 0..len {
            assert!(
                cipher(1).open(&d[..cut], &mut scratch).is_err(),
                "cut {cut}"
            );
        }
        let big = [VERSION; MAX_DATAGRAM + 1];
        assert_eq!(
            cipher(1).open(&big, &mut scratch),
            Err(OpenError::BadLength)
        );
    }

    #[test]
    fn items_too_long_are_not_sealed() {
        let mut out = [0u8; MAX_DATAGRAM];
        let items = [8u8; MAX_ITEMS_LEN + 1];
        assert_eq!(cipher(1).seal([0; NONCE_LEN], 1, 0, &items, &mut out), None);
        let items = [8u8; MAX_ITEMS_LEN];
        assert_eq!(
            cipher(1).seal([0; NONCE_LEN], 1, 0, &items, &mut out),
            Some(MAX_DATAGRAM)
        );
    }

    #[test]
    fn stamps_strictly_increase_when_the_clock_stands_or_goes_back() {
        let mut s = Stamps::default();
        assert_eq!(s.next(100), 100);
        assert_eq!(s.next(100), 101);
        assert_eq!(s.next(50), 102);
        assert_eq!(s.next(500), 500);
    }
}
