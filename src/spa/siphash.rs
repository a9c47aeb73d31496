//! SipHash-2-4 (Aumasson and Bernstein, 2012): a 64-bit PRF under a 128-bit key.
//!
//! Owns the pre-filter's PRF ([`super::prefilter`]). Written from the
//! paper's description and checked against its reference vectors (the
//! 64 outputs for key `00 01 … 0f` and messages `00 01 … (n-1)`).
//! Pure, constant-time in the key, no allocation.

/// Bytes in a SipHash key.
pub const KEY_LEN: usize = 16;

#[inline(always)]
fn round(v: &mut [u64; 4]) {
    v[0] = v[0].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(13);
    v[1] ^= v[0];
    v[0] = v[0].rotate_left(32);
    v[2] = v[2].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(16);
    v[3] ^= v[2];
    v[0] = v[0].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(21);
    v[3] ^= v[0];
    v[2] = v[2].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(17);
    v[1] ^= v[2];
    v[2] = v[2].rotate_left(32);
}

#[inline(always)]
fn compress(v: &mut [u64; 4], m: u64) {
    v[3] ^= m;
    round(v);
    round(v);
    v[0] ^= m;
}

/// A key's initial state, computed once: hashing many short messages under
/// one key (or one message under many keys) then costs only the rounds.
#[derive(Clone)]
pub struct SipKey([u64; 4]);

impl SipKey {
    /// The initial state of `key`.
    pub fn new(key: &[u8; KEY_LEN]) -> SipKey {
        let mut k0 = [0u8; 8];
        let mut k1 = [0u8; 8];
        k0.copy_from_slice(&key[..8]);
        k1.copy_from_slice(&key[8..]);
        let (k0, k1) = (u64::from_le_bytes(k0), u64::from_le_bytes(k1));
        SipKey([
            k0 ^ 0x736f_6d65_7073_6575,
            k1 ^ 0x646f_7261_6e64_6f6d,
            k0 ^ 0x6c79_6765_6e65_7261,
            k1 ^ 0x7465_6462_7974_6573,
        ])
    }

    /// SipHash-2-4 of a message already cut into its blocks ([`blocks`]).
    /// The state lives in four locals (registers), not an array: this is
    /// the pre-filter's inner loop, once per candidate client per packet.
    #[inline]
    pub fn hash_blocks(&self, blocks: &[u64]) -> u64 {
        let [mut v0, mut v1, mut v2, mut v3] = self.0;
        macro_rules! sipround {
            () => {
                v0 = v0.wrapping_add(v1);
                v1 = v1.rotate_left(13) ^ v0;
                v0 = v0.rotate_left(32);
                v2 = v2.wrapping_add(v3);
                v3 = v3.rotate_left(16) ^ v2;
                v0 = v0.wrapping_add(v3);
                v3 = v3.rotate_left(21) ^ v0;
                v2 = v2.wrapping_add(v1);
                v1 = v1.rotate_left(17) ^ v2;
                v2 = v2.rotate_left(32);
            };
        }
        for &m in blocks {
            v3 ^= m;
            sipround!();
            sipround!();
            v0 ^= m;
        }
        v2 ^= 0xff;
        sipround!();
        sipround!();
        sipround!();
        sipround!();
        v0 ^ v1 ^ v2 ^ v3
    }
}

/// `msg` as SipHash's little-endian 64-bit blocks, the last one padded with
/// zeros and the length's low byte in its top byte; `N` must be
/// `msg.len() / 8 + 1`.
pub fn blocks<const N: usize>(msg: &[u8]) -> [u64; N] {
    let mut out = [0u64; N];
    for (w, b) in out.iter_mut().zip(msg.chunks(8)) {
        let mut bytes = [0u8; 8];
        bytes[..b.len()].copy_from_slice(b);
        *w = u64::from_le_bytes(bytes);
    }
    out[N - 1] |= (msg.len() as u64 & 0xff) << 56;
    out
}

/// SipHash-2-4 of `msg` under `key`, as the paper defines it (the output's
/// little-endian bytes are the reference vectors' bytes).
pub fn siphash24(key: &[u8; KEY_LEN], msg: &[u8]) -> u64 {
    let mut v = SipKey::new(key).0;
    let mut chunks = msg.chunks_exact(8);
    for b in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(b);
        compress(&mut v, u64::from_le_bytes(w));
    }
    let rest = chunks.remainder();
    let mut last = [0u8; 8];
    last[..rest.len()].copy_from_slice(rest);
    // The length's low byte goes in the last block's top byte.
    last[7] = msg.len() as u8;
    compress(&mut v, u64::from_le_bytes(last));
    v[2] ^= 0xff;
    for _ in 0..4 {
        round(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The paper's Appendix A example and some of the reference
    /// implementation's 64 vectors (`vectors.h`: key 00..0f, message 00..n-1),
    /// around the 8-byte block boundaries.
    #[test]
    fn reference_vectors() {
        let key: [u8; 16] = core::array::from_fn(|i| i as u8);
        let msg: Vec<u8> = (0u8..64).collect();
        let out = |n: usize| siphash24(&key, &msg[..n]).to_le_bytes();
        // Appendix A: 15-byte message 00..0e → a129ca6149be45e5.
        assert_eq!(siphash24(&key, &msg[..15]), 0xa129_ca61_49be_45e5);
        assert_eq!(out(0), [0x31, 0x0e, 0x0e, 0xdd, 0x47, 0xdb, 0x6f, 0x72]);
        assert_eq!(out(1), [0xfd, 0x67, 0xdc, 0x93, 0xc5, 0x39, 0xf8, 0x74]);
        assert_eq!(out(7), [0x37, 0xd1, 0x01, 0x8b, 0xf5, 0x00, 0x02, 0xab]);
        assert_eq!(out(8), [0x62, 0x24, 0x93, 0x9a, 0x79, 0xf5, 0xf5, 0x93]);
        assert_eq!(out(12), [0xfb, 0xe5, 0x0e, 0x86, 0xbc, 0x8f, 0x1e, 0x75]);
        assert_eq!(out(15), [0xe5, 0x45, 0xbe, 0x49, 0x61, 0xca, 0x29, 0xa1]);
    }

    #[test]
    fn blocks_and_a_precomputed_key_agree_with_the_plain_function() {
        let key: [u8; 16] = core::array::from_fn(|i| (i * 7 + 3) as u8);
        let sk = SipKey::new(&key);
        let msg: Vec<u8> = (0u8..40).map(|i| i.wrapping_mul(29)).collect();
        assert_eq!(
            sk.hash_blocks(&blocks::<3>(&msg[..20])),
            siphash24(&key, &msg[..20])
        );
        assert_eq!(
            sk.hash_blocks(&blocks::<3>(&msg[..16])),
            siphash24(&key, &msg[..16])
        );
        assert_eq!(
            sk.hash_blocks(&blocks::<1>(&msg[..7])),
            siphash24(&key, &msg[..7])
        );
        assert_eq!(sk.hash_blocks(&blocks::<1>(&[])), siphash24(&key, &[]));
    }
}
