//! The keyed pre-filter of protocol 2: a 4-byte tag inside the nonce.
//!
//! A native packet's 24-byte nonce is `random(20) ‖ tag(4)` with
//! `tag = SipHash-2-4(k_pf, random)` (the first 4 bytes of the output's
//! little-endian form) and `k_pf` the first 16 bytes of
//! `HMAC-SHA256(client key, "postern spa2 pre-filter")`. The router checks a
//! client's tag (one SipHash of 20 bytes) before it spends an AEAD
//! verification on that client's key: a junk packet passes one client's
//! filter with probability 2^-32, and without the key the tag is a PRF
//! output of random bytes, so the packet still looks random. Sans-IO, no
//! allocation. Why this design: `docs/spa-protocol.md`, "The pre-filter".

use super::siphash::{self, SipKey};
use super::Key;
use crate::knock::hmac::HmacKey;

/// Random bytes at the start of the nonce.
pub const RANDOM_LEN: usize = 20;
/// Bytes of the pre-filter tag (the nonce's last bytes).
pub const FILTER_TAG_LEN: usize = 4;
/// The HMAC label that derives the pre-filter key from the client key.
pub const LABEL: &[u8] = b"postern spa2 pre-filter";

static_assertions::const_assert_eq!(RANDOM_LEN + FILTER_TAG_LEN, super::seal::NONCE_LEN);

/// SipHash blocks of the random part (20 bytes: two full blocks and the
/// length block).
const BLOCKS: usize = RANDOM_LEN / 8 + 1;

/// A client's pre-filter key (`k_pf`), with its SipHash state precomputed.
/// `Debug` does not print it.
#[derive(Clone)]
pub struct FilterKey {
    raw: [u8; siphash::KEY_LEN],
    sip: SipKey,
}

/// A packet's nonce as the pre-filter reads it, computed once per packet and
/// checked against every candidate client's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilterInput {
    blocks: [u64; BLOCKS],
    tag: [u8; FILTER_TAG_LEN],
}

impl FilterInput {
    /// The random part and the tag of `packet`'s nonce (`None`: shorter than a nonce).
    pub fn of(packet: &[u8]) -> Option<FilterInput> {
        let random = packet.get(..RANDOM_LEN)?;
        let tag = packet.get(RANDOM_LEN..RANDOM_LEN + FILTER_TAG_LEN)?;
        let mut t = [0u8; FILTER_TAG_LEN];
        t.copy_from_slice(tag);
        Some(FilterInput {
            blocks: siphash::blocks(random),
            tag: t,
        })
    }
}

impl FilterKey {
    /// Derives `k_pf` from the client key (an HMAC: done once, at load).
    pub fn derive(key: &Key) -> FilterKey {
        let mac = HmacKey::new(key.as_bytes()).mac(&[LABEL]);
        let mut k = [0u8; siphash::KEY_LEN];
        k.copy_from_slice(&mac[..siphash::KEY_LEN]);
        FilterKey {
            sip: SipKey::new(&k),
            raw: k,
        }
    }

    /// The raw key bytes (for test vectors).
    pub fn as_bytes(&self) -> &[u8; siphash::KEY_LEN] {
        &self.raw
    }

    /// The tag of `random`.
    pub fn tag(&self, random: &[u8; RANDOM_LEN]) -> [u8; FILTER_TAG_LEN] {
        Self::truncate(self.sip.hash_blocks(&siphash::blocks::<BLOCKS>(random)))
    }

    fn truncate(h: u64) -> [u8; FILTER_TAG_LEN] {
        let b = h.to_le_bytes();
        [b[0], b[1], b[2], b[3]]
    }

    /// True when `input`'s tag is this key's tag of its random part (one SipHash).
    #[inline]
    pub fn matches(&self, input: &FilterInput) -> bool {
        // Tags are not secrets (a match only earns an AEAD attempt): a
        // plain comparison is fine.
        Self::truncate(self.sip.hash_blocks(&input.blocks)) == input.tag
    }

    /// The nonce `random ‖ tag(random)`.
    pub fn nonce(&self, random: &[u8; RANDOM_LEN]) -> [u8; super::seal::NONCE_LEN] {
        let mut n = [0u8; super::seal::NONCE_LEN];
        n[..RANDOM_LEN].copy_from_slice(random);
        n[RANDOM_LEN..].copy_from_slice(&self.tag(random));
        n
    }

    /// True when `packet` starts with a nonce whose tag is this key's (one
    /// SipHash; false for packets shorter than a nonce).
    pub fn passes(&self, packet: &[u8]) -> bool {
        FilterInput::of(packet).is_some_and(|i| self.matches(&i))
    }
}

impl core::fmt::Debug for FilterKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("FilterKey(…)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MAX_CLIENTS;
    use crate::test_rng::Rng;

    #[test]
    fn a_nonce_passes_its_own_filter_only() {
        let a = FilterKey::derive(&Key::from_bytes([1; 32]));
        let b = FilterKey::derive(&Key::from_bytes([2; 32]));
        let n = a.nonce(&[9; RANDOM_LEN]);
        assert!(a.passes(&n) && !b.passes(&n));
        assert!(!a.passes(&n[..23]), "short");
        for i in 0..n.len() {
            let mut t = n;
            t[i] ^= 0x01;
            assert!(!a.passes(&t), "byte {i} changed and the tag still matches");
        }
        assert_eq!(format!("{a:?}"), "FilterKey(…)");
    }

    /// 10^6 random nonces against 32 clients' filters: none passes (the
    /// expected number of passes is 32 × 10^6 / 2^32 ≈ 0.0075). Seeded, so
    /// the test is the same every run.
    #[test]
    fn junk_passes_no_filter_of_32_clients_in_a_million_tries() {
        let keys: Vec<FilterKey> = (0..MAX_CLIENTS as u8)
            .map(|i| FilterKey::derive(&Key::from_bytes([i.wrapping_mul(37) ^ 0x5a; 32])))
            .collect();
        assert_eq!(keys.len(), 32);
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut nonce = [0u8; 24];
        let mut passes = 0;
        for _ in 0..1_000_000 {
            for c in nonce.chunks_mut(8) {
                c.copy_from_slice(&rng.next().to_le_bytes()[..c.len()]);
            }
            let input = FilterInput::of(&nonce).unwrap();
            passes += keys.iter().filter(|k| k.matches(&input)).count();
        }
        assert_eq!(passes, 0);
    }
}
