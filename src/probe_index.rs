//! The index half of a fixed-capacity hash table: open addressing with linear
//! probing over an array of entry numbers, and deletion by shifting later
//! members of a probe run back (no tombstones, so probes never lengthen with
//! churn).
//!
//! The entries themselves, their keys and their hashing stay with the owner
//! ([`crate::fixed_map::FixedMap`], the replay cache): the index only stores
//! `u16` entry numbers and asks the owner, through closures, whether an entry
//! holds the key looked for and where an entry's probe run starts (its
//! *home*, which owners store beside the entry so that moving it never
//! rehashes). Keep the index at least twice as large as the entries it
//! holds (load factor at most 1/2), so probe runs stay short even when full.
//! Allocates once, in [`ProbeIndex::new`].

/// Marks an empty position.
const EMPTY: u16 = u16::MAX;

/// Where a probe for a key ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// The key is held: at this position, by this entry.
    Found {
        /// Position in the index.
        pos: usize,
        /// The entry's number.
        entry: usize,
    },
    /// The key is not held; this empty position is where it would go.
    Vacant {
        /// Position in the index.
        pos: usize,
    },
}

/// An array of entry numbers addressed by hash (see the module docs).
#[derive(Debug, Clone)]
pub struct ProbeIndex {
    positions: Box<[u16]>,
}

impl ProbeIndex {
    /// Most positions an index may have (entry numbers fit in `u16`, one
    /// value kept for "empty").
    pub const MAX_POSITIONS: usize = 1 << 15;

    /// An empty index of `positions` positions: a power of two, at most
    /// [`Self::MAX_POSITIONS`] (checked by the owners' static assertions;
    /// a wrong size here is a programming error).
    pub fn new(positions: usize) -> ProbeIndex {
        assert!(positions.is_power_of_two() && positions <= Self::MAX_POSITIONS);
        ProbeIndex {
            positions: vec![EMPTY; positions].into_boxed_slice(),
        }
    }

    fn mask(&self) -> usize {
        self.positions.len() - 1
    }

    /// The home position of a key whose (keyed) hash is `hash`.
    pub fn home(&self, hash: u64) -> usize {
        (hash as usize) & self.mask()
    }

    /// Walks the probe run from `home` until `holds_key(entry)` is true or an
    /// empty position ends the run.
    pub fn find(&self, home: usize, holds_key: impl Fn(usize) -> bool) -> Probe {
        let mask = self.mask();
        let mut pos = home & mask;
        loop {
            let entry = self.positions[pos];
            if entry == EMPTY {
                return Probe::Vacant { pos };
            }
            if holds_key(usize::from(entry)) {
                return Probe::Found {
                    pos,
                    entry: usize::from(entry),
                };
            }
            pos = (pos + 1) & mask;
        }
    }

    /// Puts entry number `entry` at `pos` (a [`Probe::Vacant`] position of
    /// the entry's key, or a [`Probe::Found`] one to replace).
    pub fn set(&mut self, pos: usize, entry: usize) {
        debug_assert!(entry < usize::from(EMPTY));
        self.positions[pos] = entry as u16;
    }

    /// Empties `hole`, shifting later members of its probe run back;
    /// `home_of(entry)` is the stored home of an entry.
    pub fn clear(&mut self, mut hole: usize, home_of: impl Fn(usize) -> usize) {
        let mask = self.mask();
        self.positions[hole] = EMPTY;
        let mut pos = (hole + 1) & mask;
        while self.positions[pos] != EMPTY {
            let home = home_of(usize::from(self.positions[pos]));
            // Move it into the hole unless its home is cyclically in (hole, pos].
            if hole.wrapping_sub(home) & mask < pos.wrapping_sub(home) & mask {
                self.positions[hole] = self.positions[pos];
                self.positions[pos] = EMPTY;
                hole = pos;
            }
            pos = (pos + 1) & mask;
        }
    }

    /// Renumbers entry `from` (whose home is `home`) to `to`, as when the
    /// owner moves its last entry into a freed place; nothing is rehashed.
    pub fn renumber(&mut self, home: usize, from: usize, to: usize) {
        let mask = self.mask();
        let mut pos = home & mask;
        while usize::from(self.positions[pos]) != from {
            pos = (pos + 1) & mask;
        }
        self.positions[pos] = to as u16;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Entries whose "hash" is chosen by the test, to force long runs that wrap.
    struct Table {
        index: ProbeIndex,
        keys: Vec<Option<(u32, usize)>>,
    }

    impl Table {
        fn home_of_key(&self, key: u32) -> usize {
            self.index.home(u64::from(key % 5) + 13)
        }
        fn find(&self, key: u32) -> Probe {
            let keys = &self.keys;
            self.index.find(self.home_of_key(key), |e| {
                keys[e].map(|(k, _)| k) == Some(key)
            })
        }
        fn insert(&mut self, key: u32) {
            if let Probe::Vacant { pos } = self.find(key) {
                let entry = self.keys.iter().position(Option::is_none).unwrap();
                self.keys[entry] = Some((key, self.home_of_key(key)));
                self.index.set(pos, entry);
            }
        }
        fn remove(&mut self, key: u32) -> bool {
            match self.find(key) {
                Probe::Found { pos, entry } => {
                    let keys = &self.keys;
                    self.index.clear(pos, |e| keys[e].unwrap().1);
                    self.keys[entry] = None;
                    true
                }
                Probe::Vacant { .. } => false,
            }
        }
    }

    #[test]
    fn keys_stay_findable_through_colliding_inserts_and_removes() {
        // 16 positions, homes 13..17 wrap past the end: every run collides.
        let mut t = Table {
            index: ProbeIndex::new(16),
            keys: vec![None; 8],
        };
        let mut held = std::collections::BTreeSet::new();
        let mut rng = 0x2545_f491u32;
        for _ in 0..20_000 {
            rng ^= rng << 13;
            rng ^= rng >> 17;
            rng ^= rng << 5;
            let key = rng % 40;
            if rng & 0x100 != 0 && held.len() < 8 {
                t.insert(key);
                held.insert(key);
            } else {
                assert_eq!(t.remove(key), held.remove(&key));
            }
            for k in 0..40 {
                let found = matches!(t.find(k), Probe::Found { .. });
                assert_eq!(found, held.contains(&k), "key {k}");
            }
        }
    }

    #[test]
    fn renumber_repoints_the_position_without_rehashing() {
        let mut index = ProbeIndex::new(8);
        index.set(3, 0);
        index.set(4, 1);
        index.renumber(3, 1, 5);
        assert_eq!(index.find(3, |e| e == 5), Probe::Found { pos: 4, entry: 5 });
    }
}
