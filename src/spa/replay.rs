//! The replay cache: nonces of authenticated, fresh packets, fixed capacity.
//!
//! Only packets that passed the AEAD and the timestamp window are recorded,
//! so nobody without a key can fill it. An entry is needed only while a
//! packet with its timestamp could still pass the window (`timestamp +
//! max_skew` has not passed); after that its slot may be reused. Expired
//! entries are not removed eagerly: they are overwritten when a slot is
//! needed, so a wall clock that jumps back still finds them.
//!
//! When every slot holds a live entry the cache refuses the new packet
//! ([`CacheFull`]) instead of forgetting a live one: forgetting would let a
//! replay through, refusing only delays an honest client. [`CAPACITY`] live
//! entries means that many accepted packets within one window (2 × 120 s by
//! default), far beyond any real use. Plain data in and out
//! ([`ReplayCache::entries`], [`ReplayCache::restore`]) so the daemon can keep
//! it across restarts. No I/O, no allocation.

use super::seal::NONCE_LEN;
use crate::fixed_vec::FixedVec;

/// Most entries the cache holds.
pub const CAPACITY: usize = 1024;

static_assertions::const_assert!(CAPACITY >= 64);
static_assertions::const_assert!(CAPACITY * core::mem::size_of::<ReplayEntry>() <= 64 * 1024);

/// One accepted packet: its nonce and its timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayEntry {
    /// The packet's 24-byte nonce (authenticated, random per packet).
    pub nonce: [u8; NONCE_LEN],
    /// The request's timestamp (unix seconds).
    pub timestamp: u64,
}

/// The nonce was seen before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replayed;

/// Every slot holds a live entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheFull;

/// Why [`ReplayCache::insert`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertError {
    /// Seen before.
    Replayed(Replayed),
    /// No free or expired slot.
    Full(CacheFull),
}

/// Fixed-capacity set of accepted nonces.
#[derive(Debug, Clone, Default)]
pub struct ReplayCache {
    entries: FixedVec<ReplayEntry, CAPACITY>,
}

impl ReplayCache {
    /// An empty cache.
    pub fn new() -> ReplayCache {
        ReplayCache {
            entries: FixedVec::new(),
        }
    }

    /// True if an entry with this nonce is held (live or expired).
    pub fn contains(&self, nonce: &[u8; NONCE_LEN]) -> bool {
        self.entries.iter().any(|e| &e.nonce == nonce)
    }

    /// Records `entry` unless its nonce is known; reuses an expired slot
    /// (`timestamp + max_skew < now_unix`) when full.
    pub fn insert(
        &mut self,
        entry: ReplayEntry,
        now_unix: u64,
        max_skew: u64,
    ) -> Result<(), InsertError> {
        if self.contains(&entry.nonce) {
            return Err(InsertError::Replayed(Replayed));
        }
        if self.entries.push(entry).is_ok() {
            return Ok(());
        }
        let expired = |e: &ReplayEntry| e.timestamp.saturating_add(max_skew) < now_unix;
        match self.entries.iter_mut().find(|e| expired(e)) {
            Some(slot) => {
                *slot = entry;
                Ok(())
            }
            None => Err(InsertError::Full(CacheFull)),
        }
    }

    /// The entries held (for the daemon's state file).
    pub fn entries(&self) -> &[ReplayEntry] {
        &self.entries
    }

    /// Number of entries held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Adds saved entries (e.g. from the state file), skipping known nonces and
    /// those already expired at `now_unix`; stops silently when full.
    pub fn restore(&mut self, saved: &[ReplayEntry], now_unix: u64, max_skew: u64) {
        for e in saved {
            if e.timestamp.saturating_add(max_skew) >= now_unix && !self.contains(&e.nonce) {
                let _ = self.entries.push(*e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(n: u16, timestamp: u64) -> ReplayEntry {
        let mut nonce = [0u8; NONCE_LEN];
        nonce[..2].copy_from_slice(&n.to_be_bytes());
        ReplayEntry { nonce, timestamp }
    }

    #[test]
    fn refuses_a_known_nonce() {
        let mut c = ReplayCache::new();
        assert_eq!(c.insert(e(1, 100), 100, 120), Ok(()));
        assert_eq!(
            c.insert(e(1, 100), 101, 120),
            Err(InsertError::Replayed(Replayed))
        );
        assert_eq!(
            c.insert(e(1, 999), 101, 120),
            Err(InsertError::Replayed(Replayed))
        );
        assert_eq!(c.insert(e(2, 100), 101, 120), Ok(()));
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn full_cache_refuses_until_an_entry_expires() {
        let mut c = ReplayCache::new();
        for i in 0..CAPACITY as u16 {
            c.insert(e(i, 1000), 1000, 120).unwrap();
        }
        let new = e(60000, 1000);
        assert_eq!(
            c.insert(new, 1120, 120),
            Err(InsertError::Full(CacheFull)),
            "all entries live: refuse, never forget a live one"
        );
        assert!(c.contains(&e(5, 0).nonce));
        assert_eq!(c.insert(new, 1121, 120), Ok(()), "expired slot reused");
        assert_eq!(c.len(), CAPACITY);
    }

    #[test]
    fn restore_skips_expired_and_duplicates() {
        let mut c = ReplayCache::new();
        c.insert(e(1, 500), 500, 120).unwrap();
        c.restore(&[e(1, 500), e(2, 300), e(3, 450)], 500, 120);
        assert_eq!(c.entries(), &[e(1, 500), e(3, 450)]);
    }
}
