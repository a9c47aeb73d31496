//! HMAC-SHA256 (RFC 2104) over `sha2`, with the key's pads absorbed once.
//!
//! Owns the one MAC/PRF the information-carrying knock modes use (TOTP
//! derivation, the authenticated record's tag and keystream) and the
//! constant-time comparison of tags. Pure: no I/O, no allocation.

use sha2::{Digest, Sha256};

/// Bytes of an HMAC-SHA256 output.
pub const MAC_LEN: usize = 32;
const BLOCK: usize = 64;

/// A key prepared for HMAC-SHA256: the inner and outer hash states after the
/// padded key block, so each MAC costs two compressions for short messages.
#[derive(Clone)]
pub struct HmacKey {
    inner: Sha256,
    outer: Sha256,
}

impl HmacKey {
    /// Prepares `key` (hashed first when longer than a block, as RFC 2104 says).
    pub fn new(key: &[u8]) -> HmacKey {
        let mut block = [0u8; BLOCK];
        if key.len() > BLOCK {
            block[..MAC_LEN].copy_from_slice(&Sha256::digest(key));
        } else {
            block[..key.len()].copy_from_slice(key);
        }
        let mut ipad = [0x36u8; BLOCK];
        let mut opad = [0x5cu8; BLOCK];
        for i in 0..BLOCK {
            ipad[i] ^= block[i];
            opad[i] ^= block[i];
        }
        let mut inner = Sha256::new();
        inner.update(ipad);
        let mut outer = Sha256::new();
        outer.update(opad);
        HmacKey { inner, outer }
    }

    /// HMAC of the concatenation of `parts`.
    pub fn mac(&self, parts: &[&[u8]]) -> [u8; MAC_LEN] {
        let mut inner = self.inner.clone();
        for p in parts {
            inner.update(p);
        }
        let mut outer = self.outer.clone();
        outer.update(inner.finalize());
        outer.finalize().into()
    }
}

impl core::fmt::Debug for HmacKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("HmacKey(…)")
    }
}

/// Compares two byte strings without an early exit on the first difference
/// (lengths are public).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    core::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn rfc4231_vectors() {
        // Test case 1.
        let k = HmacKey::new(&[0x0b; 20]);
        assert_eq!(
            hex(&k.mac(&[b"Hi There"])),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        // Test case 2, message split in parts.
        let k = HmacKey::new(b"Jefe");
        assert_eq!(
            hex(&k.mac(&[b"what do ya want ", b"for nothing?"])),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 6: a key longer than a block.
        let k = HmacKey::new(&[0xaa; 131]);
        assert_eq!(
            hex(&k.mac(&[b"Test Using Larger Than Block-Size Key - Hash Key First"])),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn constant_time_equality() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
        assert!(ct_eq(b"", b""));
    }
}
