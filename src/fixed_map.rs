//! A fixed-capacity hash map for per-packet state (knock progress, the ban
//! table): a lookup costs one keyed hash and a short probe, never a scan, and
//! nothing allocates after [`FixedMap::new`].
//!
//! Dense entries (a [`FixedVec`]) plus a [`ProbeIndex`] of twice the
//! capacity. Keys are hashed with a per-process random SipHash key, so spoofed
//! sources cannot be chosen to collide. Hashing is the main cost, so it is
//! done at most once per key and operation: each entry keeps its home
//! position (moving an entry never rehashes), and the home of the key last
//! looked up is remembered, so the lookup, remove and re-insert that one
//! packet makes hash its key once.

use core::cell::Cell;
use core::hash::{BuildHasher, Hasher};
use core::net::IpAddr;
use std::collections::hash_map::RandomState;

use crate::fixed_vec::FixedVec;
use crate::probe_index::{Probe, ProbeIndex};

/// A key a [`FixedMap`] can hold: its identity as at most 18 bytes, written
/// in one go (one SipHash write is cheaper than a derived `Hash`'s several).
pub trait MapKey: Copy + Eq {
    /// Writes the key's bytes into `out`; returns how many were written.
    fn key_bytes(&self, out: &mut [u8; 18]) -> usize;
}

/// Writes an address as a family byte and its octets; returns the length.
pub fn address_key_bytes(addr: IpAddr, out: &mut [u8; 18]) -> usize {
    match addr {
        IpAddr::V4(a) => {
            out[0] = 4;
            out[1..5].copy_from_slice(&a.octets());
            5
        }
        IpAddr::V6(a) => {
            out[0] = 6;
            out[1..17].copy_from_slice(&a.octets());
            17
        }
    }
}

/// One stored key, its value and its home position in the index.
#[derive(Debug, Clone, Copy)]
pub struct Stored<K, V> {
    /// The key.
    pub key: K,
    /// The owner's value.
    pub value: V,
    home: u16,
}

/// Fixed-capacity map from `K` to `V` holding at most `CAP` entries (see the
/// module docs). `CAP` must be a power of two below 2^14 (checked at
/// construction; owners check their constants with `static_assertions`).
pub struct FixedMap<K, V, const CAP: usize> {
    index: ProbeIndex,
    entries: FixedVec<Stored<K, V>, CAP>,
    hasher: RandomState,
    last_home: Cell<Option<(K, u16)>>,
}

impl<K, V, const CAP: usize> core::fmt::Debug for FixedMap<K, V, CAP> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "FixedMap({} of {CAP} entries)", self.entries.len())
    }
}

impl<K: MapKey, V: Copy, const CAP: usize> Default for FixedMap<K, V, CAP> {
    fn default() -> Self {
        FixedMap::new()
    }
}

impl<K: MapKey, V: Copy, const CAP: usize> FixedMap<K, V, CAP> {
    /// An empty map with a fresh random hash key (allocates its storage once).
    pub fn new() -> Self {
        FixedMap {
            index: ProbeIndex::new(2 * CAP),
            entries: FixedVec::new(),
            hasher: RandomState::new(),
            last_home: Cell::new(None),
        }
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// True when `CAP` entries are held.
    pub fn is_full(&self) -> bool {
        self.entries.is_full()
    }

    /// The entries, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Stored<K, V>> {
        self.entries.iter()
    }

    /// The home position of `key`: keyed SipHash of its bytes (remembered
    /// for the next call with the same key).
    fn home(&self, key: &K) -> usize {
        if let Some((k, home)) = self.last_home.get() {
            if k == *key {
                return usize::from(home);
            }
        }
        let mut bytes = [0u8; 18];
        let n = key.key_bytes(&mut bytes);
        let mut h = self.hasher.build_hasher();
        h.write(&bytes[..n]);
        let home = self.index.home(h.finish());
        self.last_home.set(Some((*key, home as u16)));
        home
    }

    fn probe(&self, key: &K) -> (Probe, usize) {
        let home = self.home(key);
        let entries = &self.entries;
        (self.index.find(home, |e| entries[e].key == *key), home)
    }

    /// The value stored for `key`.
    pub fn get(&self, key: &K) -> Option<&V> {
        match self.probe(key).0 {
            Probe::Found { entry, .. } => Some(&self.entries[entry].value),
            Probe::Vacant { .. } => None,
        }
    }

    /// The value stored for `key`, to change in place.
    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        match self.probe(key).0 {
            Probe::Found { entry, .. } => Some(&mut self.entries[entry].value),
            Probe::Vacant { .. } => None,
        }
    }

    /// Inserts or replaces; false when full (nothing changes then).
    pub fn insert(&mut self, key: K, value: V) -> bool {
        match self.probe(&key) {
            (Probe::Found { entry, .. }, _) => {
                self.entries[entry].value = value;
                true
            }
            (Probe::Vacant { pos }, home) => {
                let entry = self.entries.len();
                let stored = Stored {
                    key,
                    value,
                    home: home as u16,
                };
                if self.entries.push(stored).is_err() {
                    return false;
                }
                self.index.set(pos, entry);
                true
            }
        }
    }

    /// Removes `key`; its value if it was there. The last entry takes the
    /// freed place (so the order of [`Self::iter`] changes).
    pub fn remove(&mut self, key: &K) -> Option<V> {
        let (pos, entry) = match self.probe(key).0 {
            Probe::Found { pos, entry } => (pos, entry),
            Probe::Vacant { .. } => return None,
        };
        let entries = &self.entries;
        self.index.clear(pos, |e| usize::from(entries[e].home));
        let last = self.entries.len() - 1;
        if entry != last {
            let home = usize::from(self.entries[last].home);
            self.index.renumber(home, last, entry);
        }
        Some(self.entries.swap_remove(entry).value)
    }

    /// Keeps the entries for which `keep` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(&K, &V) -> bool) {
        let mut i = 0;
        while i < self.entries.len() {
            let Stored { key, value, .. } = self.entries[i];
            if keep(&key, &value) {
                i += 1;
            } else {
                self.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    struct K(u32);

    impl MapKey for K {
        fn key_bytes(&self, out: &mut [u8; 18]) -> usize {
            out[..4].copy_from_slice(&self.0.to_le_bytes());
            4
        }
    }

    #[test]
    fn behaves_like_a_std_map_through_random_operations() {
        use std::collections::HashMap;
        let mut m: FixedMap<K, u64, 256> = FixedMap::new();
        let mut reference = HashMap::new();
        let mut rng = 0x9e37_79b9u32;
        for step in 0..100_000u64 {
            rng ^= rng << 13;
            rng ^= rng >> 17;
            rng ^= rng << 5;
            let k = K(rng % 400);
            match rng % 3 {
                0 | 1 => {
                    if m.insert(k, step) {
                        reference.insert(k, step);
                    } else {
                        assert!(!reference.contains_key(&k) && reference.len() == 256);
                    }
                }
                _ => assert_eq!(m.remove(&k), reference.remove(&k)),
            }
            assert_eq!(m.len(), reference.len());
        }
        for (k, v) in &reference {
            assert_eq!(m.get(k), Some(v));
        }
        m.retain(|_, v| v % 2 == 0);
        reference.retain(|_, v| *v % 2 == 0);
        assert_eq!(m.len(), reference.len());
        for (k, v) in &reference {
            assert_eq!(m.get(k), Some(v));
        }
        for k in 0..400 {
            assert_eq!(m.get(&K(k)).is_some(), reference.contains_key(&K(k)));
        }
    }

    #[test]
    fn a_full_map_refuses_a_new_key_but_replaces_a_held_one() {
        let mut m: FixedMap<K, u8, 4> = FixedMap::new();
        for k in 0..4 {
            assert!(m.insert(K(k), 1));
        }
        assert!(!m.insert(K(9), 1));
        assert!(m.get(&K(9)).is_none());
        assert!(m.insert(K(2), 7));
        assert_eq!(m.get(&K(2)), Some(&7));
        *m.get_mut(&K(3)).unwrap() = 5;
        assert_eq!(m.get(&K(3)), Some(&5));
    }
}
