//! Base64 (RFC 4648 §4: standard alphabet `A–Z a–z 0–9 + /`, `=` padding).
//!
//! Owns the text form of keys in config files and on the command line, and the
//! unpadded form fwknop puts on the wire ([`decode_unpadded_into`],
//! [`encode_unpadded_into`]: caller-owned buffers, no allocation). Decoding
//! is strict: padding is required, no whitespace, no characters outside the
//! alphabet, and the unused low bits of the last character must be zero, so
//! every byte string has exactly one accepted text. Never panics on any input.
//! Not constant-time (keys come from files the operator controls, not from the
//! network). No I/O.

use core::fmt;

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Why a text is not valid base64.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// The length is not a multiple of 4 (padding is required).
    BadLength,
    /// A character outside the alphabet, or `=` where it may not stand.
    BadCharacter {
        /// Byte offset of the character in the text.
        at: usize,
    },
    /// The last character carries bits that no encoder would set.
    NonCanonical,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::BadLength => {
                f.write_str("length is not a multiple of 4 (base64 needs '=' padding)")
            }
            DecodeError::BadCharacter { at } => {
                write!(f, "character {} is not base64", at + 1)
            }
            DecodeError::NonCanonical => f.write_str("last character has stray bits"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Encodes `bytes` with padding.
pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 0x3f) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The 6-bit value of one alphabet character.
fn value(c: u8) -> Option<u32> {
    Some(u32::from(match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    }))
}

/// Decodes a padded base64 text strictly.
pub fn decode(text: &str) -> Result<Vec<u8>, DecodeError> {
    let t = text.as_bytes();
    if t.len() % 4 != 0 {
        return Err(DecodeError::BadLength);
    }
    let mut out = Vec::with_capacity(t.len() / 4 * 3);
    let quads = t.len() / 4;
    for (q, chunk) in t.chunks(4).enumerate() {
        let last = q + 1 == quads;
        let pad = if last {
            chunk.iter().rev().take_while(|&&c| c == b'=').count()
        } else {
            0
        };
        if pad > 2 {
            return Err(DecodeError::BadCharacter { at: q * 4 + 1 });
        }
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            let v = if i >= 4 - pad {
                0
            } else {
                value(c).ok_or(DecodeError::BadCharacter { at: q * 4 + i })?
            };
            n = n << 6 | v;
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        // The bits of the last character that fall outside the output must be zero.
        let stray = match pad {
            1 => n & 0xff,
            2 => n & 0xffff,
            _ => 0,
        };
        if stray != 0 {
            return Err(DecodeError::NonCanonical);
        }
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    Ok(out)
}

/// True for the 64 characters of the alphabet (not `=`).
pub const fn is_alphabet(c: u8) -> bool {
    matches!(c, b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'+' | b'/')
}

/// Bytes that `chars` unpadded base64 characters decode to (`None` for a
/// length no encoder produces: `4k + 1`).
pub const fn unpadded_decoded_len(chars: usize) -> Option<usize> {
    match chars % 4 {
        1 => None,
        r => Some(chars / 4 * 3 + r.saturating_sub(1)),
    }
}

/// Characters of the unpadded encoding of `bytes` bytes.
pub const fn unpadded_encoded_len(bytes: usize) -> usize {
    (bytes * 4).div_ceil(3)
}

/// Decodes unpadded base64 (padding stripped, as fwknop sends it) into `out`
/// and returns the number of bytes written. Strict like [`decode`]: only
/// alphabet characters, no `=`, no stray bits in the last character, and
/// `out` must be large enough (else [`DecodeError::BadLength`]).
pub fn decode_unpadded_into(text: &[u8], out: &mut [u8]) -> Result<usize, DecodeError> {
    let len = unpadded_decoded_len(text.len()).ok_or(DecodeError::BadLength)?;
    if out.len() < len {
        return Err(DecodeError::BadLength);
    }
    let mut o = 0;
    for (q, chunk) in text.chunks(4).enumerate() {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            let v = value(c).ok_or(DecodeError::BadCharacter { at: q * 4 + i })?;
            n = n << 6 | v;
        }
        // A short last chunk: 2 chars = 1 byte (4 stray bits), 3 chars = 2 bytes (2 stray bits).
        let (bytes, stray_bits) = match chunk.len() {
            2 => (1, 4),
            3 => (2, 2),
            _ => (3, 0),
        };
        if n & ((1 << stray_bits) - 1) != 0 {
            return Err(DecodeError::NonCanonical);
        }
        let n = n >> stray_bits;
        for i in 0..bytes {
            out[o] = (n >> (8 * (bytes - 1 - i))) as u8;
            o += 1;
        }
    }
    Ok(o)
}

/// Encodes `bytes` without padding into `out`; returns the characters
/// written, or `None` (nothing written) if `out` is shorter than
/// [`unpadded_encoded_len`].
pub fn encode_unpadded_into(bytes: &[u8], out: &mut [u8]) -> Option<usize> {
    let len = unpadded_encoded_len(bytes.len());
    let out = out.get_mut(..len)?;
    let mut o = 0;
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out[o] = ALPHABET[(n >> (18 - 6 * i) & 0x3f) as usize];
            o += 1;
        }
    }
    Some(o)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::Rng;

    #[test]
    fn unpadded_forms() {
        let mut out = [0u8; 16];
        for (plain, enc) in [
            ("", ""),
            ("f", "Zg"),
            ("fo", "Zm8"),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg"),
            ("fooba", "Zm9vYmE"),
            ("foobar", "Zm9vYmFy"),
        ] {
            let n = encode_unpadded_into(plain.as_bytes(), &mut out).unwrap();
            assert_eq!(&out[..n], enc.as_bytes());
            let n = decode_unpadded_into(enc.as_bytes(), &mut out).unwrap();
            assert_eq!(&out[..n], plain.as_bytes(), "{enc}");
            assert_eq!(unpadded_decoded_len(enc.len()), Some(plain.len()));
        }
        assert_eq!(
            decode_unpadded_into(b"Zm9vY", &mut out),
            Err(DecodeError::BadLength)
        );
        assert_eq!(
            decode_unpadded_into(b"Zh", &mut out),
            Err(DecodeError::NonCanonical)
        );
        assert_eq!(
            decode_unpadded_into(b"Zm9", &mut out),
            Err(DecodeError::NonCanonical)
        );
        assert_eq!(
            decode_unpadded_into(b"Zg==", &mut out),
            Err(DecodeError::BadCharacter { at: 2 })
        );
        assert_eq!(
            decode_unpadded_into(b"Zm9vYmFy", &mut [0u8; 5]),
            Err(DecodeError::BadLength),
            "output too small"
        );
        assert_eq!(encode_unpadded_into(b"foo", &mut [0u8; 3]), None);
        assert!(is_alphabet(b'+') && is_alphabet(b'z') && !is_alphabet(b'=') && !is_alphabet(b'-'));
    }

    #[test]
    fn rfc4648_vectors() {
        for (plain, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(encode(plain.as_bytes()), enc);
            assert_eq!(decode(enc).unwrap(), plain.as_bytes(), "{enc}");
        }
        assert_eq!(encode(&[0xfb, 0xff, 0xbf]), "+/+/");
        assert_eq!(decode("+/+/").unwrap(), [0xfb, 0xff, 0xbf]);
    }

    #[test]
    fn strict_decoding() {
        assert_eq!(decode("Zg"), Err(DecodeError::BadLength));
        assert_eq!(decode("Zg=== "), Err(DecodeError::BadLength));
        assert_eq!(decode("Z==="), Err(DecodeError::BadCharacter { at: 1 }));
        assert_eq!(
            decode("Zm9v\nA=="),
            Err(DecodeError::BadCharacter { at: 4 })
        );
        assert_eq!(decode("Zm-v"), Err(DecodeError::BadCharacter { at: 2 }));
        assert_eq!(decode("Zm=v"), Err(DecodeError::BadCharacter { at: 2 }));
        assert_eq!(decode("Zg==Zg=="), Err(DecodeError::BadCharacter { at: 2 }));
        assert_eq!(decode("Zh=="), Err(DecodeError::NonCanonical));
        assert_eq!(decode("Zm9="), Err(DecodeError::NonCanonical));
        assert_eq!(decode("===="), Err(DecodeError::BadCharacter { at: 1 }));
    }

    #[test]
    fn random_round_trips_and_junk_never_panics() {
        let mut rng = Rng(0x0ba5_e640);
        for _ in 0..2000 {
            let len = rng.below(70);
            let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            assert_eq!(decode(&encode(&bytes)).unwrap(), bytes);
            let junk: String = (0..rng.below(12))
                .map(|_| char::from(b"AZaz09+/=-\n \xc3"[rng.below(13)]))
                .collect();
            if let Ok(b) = decode(&junk) {
                assert_eq!(encode(&b), junk, "one text per byte string");
            }
            let mut buf = [0u8; 16];
            if let Ok(n) = decode_unpadded_into(junk.as_bytes(), &mut buf) {
                let mut back = [0u8; 24];
                let m = encode_unpadded_into(&buf[..n], &mut back).unwrap();
                assert_eq!(
                    &back[..m],
                    junk.as_bytes(),
                    "one unpadded text per byte string"
                );
            }
            let mut text = [0u8; 96];
            let m = encode_unpadded_into(&bytes, &mut text).unwrap();
            let mut back = [0u8; 70];
            let n = decode_unpadded_into(&text[..m], &mut back).unwrap();
            assert_eq!(&back[..n], &bytes[..]);
        }
    }
}
