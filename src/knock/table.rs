//! The fixed-capacity table of knock progress, keyed by (source, sequence).
//!
//! Capacity is a compile-time constant; memory does not grow under any flood.
//! When the table is full, a new first knock evicts the entry with the least
//! progress, then the oldest: entries that have matched only their first step
//! are kept in arrival order (a FIFO of `(key, generation)` with lazy deletion),
//! so the oldest of them is found in O(1). An entry that has matched two or
//! more steps is never evicted by a first knock; if every entry has, the new
//! first knock is dropped (and counted), unless some entry has expired: those
//! are purged then (and on every tick by the owner).
//!
//! The map is a [`FixedMap`]: a keyed hash and a short probe per packet, so
//! spoofed sources cannot be chosen to collide, and no scans.

use core::net::IpAddr;

use crate::fixed_map::{address_key_bytes, FixedMap, MapKey, Stored};
use crate::fixed_vec::FixedDeque;
use crate::probe_index::ProbeIndex;
use static_assertions::const_assert;

use crate::time::Millis;

/// Most (source, sequence) pairs tracked at once.
pub const KNOCK_TABLE_CAPACITY: usize = 4096;

const_assert!(KNOCK_TABLE_CAPACITY.is_power_of_two());
const_assert!(KNOCK_TABLE_CAPACITY >= 64);
// Keeps the table (about 40 bytes an entry plus the FIFO) well under 1 MiB.
const_assert!(KNOCK_TABLE_CAPACITY <= 8192);
// The map's index has twice the capacity's positions.
const_assert!(2 * KNOCK_TABLE_CAPACITY <= ProbeIndex::MAX_POSITIONS);

/// Identifies one source's attempt at one sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    /// The knocking source address.
    pub src: IpAddr,
    /// Index of the sequence in the matcher.
    pub sequence: u8,
}

/// One source's progress through one sequence, with what the owner keeps
/// beside it (`V`: nothing for static sequences, a symbol window for the
/// modes that carry information).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress<V = ()> {
    /// Steps (or symbols) matched so far (at least 1 for a stored entry);
    /// eviction prefers entries where this is 1.
    pub matched: u8,
    /// When the first step arrived.
    pub started: Millis,
    /// Unique per insertion; ties FIFO items to the entry they were made for.
    generation: u32,
    /// The owner's per-entry state.
    pub data: V,
}

/// What happened when a first knock was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Insert {
    /// Stored in a free slot.
    Stored,
    /// Stored after evicting an expired entry or the oldest first-step entry.
    StoredAfterEviction,
    /// Not stored: every entry has matched two or more steps and none expired.
    DroppedFull,
}

/// Fixed-capacity progress table. Construct once (it is large: box it).
pub struct ProgressTable<V: Copy + Default = ()> {
    map: ProgressMap<V>,
    first_steps: FixedDeque<(Key, u32), KNOCK_TABLE_CAPACITY>,
    next_generation: u32,
}

impl<V: Copy + Default> Default for ProgressTable<V> {
    fn default() -> Self {
        ProgressTable {
            map: ProgressMap::new(),
            first_steps: FixedDeque::new(),
            next_generation: 0,
        }
    }
}

impl<V: Copy + Default> ProgressTable<V> {
    /// A new empty table on the heap (allocated once, at start-up).
    pub fn boxed() -> Box<ProgressTable<V>> {
        Box::default()
    }

    /// Entries stored.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The progress stored for `key`.
    pub fn get(&self, key: &Key) -> Option<Progress<V>> {
        self.map.get(key).copied()
    }

    /// The owner's state of `key`'s entry, to change in place.
    pub fn data_mut(&mut self, key: &Key) -> Option<&mut V> {
        self.map.get_mut(key).map(|p| &mut p.data)
    }

    /// Sets the progress count of an existing entry (a window that slid back
    /// loses progress; at least 1 is kept).
    pub fn set_matched(&mut self, key: &Key, matched: u8) {
        if let Some(p) = self.map.get_mut(key) {
            p.matched = matched.max(1);
        }
    }

    /// Records one more matched step for an existing entry; returns the new count.
    pub fn advance(&mut self, key: &Key) -> Option<u8> {
        let p = self.map.get_mut(key)?;
        p.matched = p.matched.saturating_add(1);
        Some(p.matched)
    }

    /// Forgets `key`'s progress.
    pub fn remove(&mut self, key: &Key) {
        // The FIFO item (if any) goes stale and is skipped later.
        self.map.remove(key);
    }

    /// Stores a first knock (`matched = 1`) for `key`, evicting if full.
    /// `is_expired` tells whether an entry has outlived its sequence's timeout.
    pub fn insert_first(
        &mut self,
        key: Key,
        now: Millis,
        is_expired: impl Fn(&Key, &Progress<V>) -> bool,
    ) -> Insert {
        self.insert_first_with(key, now, V::default(), is_expired)
    }

    /// [`Self::insert_first`] with the owner's initial state.
    pub fn insert_first_with(
        &mut self,
        key: Key,
        now: Millis,
        data: V,
        is_expired: impl Fn(&Key, &Progress<V>) -> bool,
    ) -> Insert {
        self.map.remove(&key);
        let mut outcome = Insert::Stored;
        if self.map.is_full() {
            if self.evict_oldest_first_step() || self.purge_expired(&is_expired) > 0 {
                outcome = Insert::StoredAfterEviction;
            } else {
                return Insert::DroppedFull;
            }
        }
        let generation = self.next_generation;
        self.next_generation = self.next_generation.wrapping_add(1);
        let progress = Progress {
            matched: 1,
            started: now,
            generation,
            data,
        };
        if !self.map.insert(key, progress) {
            return Insert::DroppedFull; // unreachable: room was made above
        }
        if self.first_steps.is_full() {
            self.compact_first_steps();
        }
        // Cannot fail after compaction: live first-step items <= entries - 1 < capacity.
        let _ = self.first_steps.push_back((key, generation));
        outcome
    }

    /// Removes every expired entry; returns how many.
    pub fn purge_expired(&mut self, is_expired: &impl Fn(&Key, &Progress<V>) -> bool) -> usize {
        let before = self.map.len();
        self.map.retain(|k, p| !is_expired(k, p));
        before - self.map.len()
    }

    fn is_live_first_step(&self, key: &Key, generation: u32) -> bool {
        matches!(self.map.get(key), Some(p) if p.matched == 1 && p.generation == generation)
    }

    /// Evicts the oldest entry still at its first step; false if there is none.
    fn evict_oldest_first_step(&mut self) -> bool {
        while let Some((key, generation)) = self.first_steps.pop_front() {
            if self.is_live_first_step(&key, generation) {
                self.map.remove(&key);
                return true;
            }
        }
        false
    }

    /// Drops FIFO items whose entry advanced, was reset or removed.
    fn compact_first_steps(&mut self) {
        for _ in 0..self.first_steps.len() {
            if let Some((key, generation)) = self.first_steps.pop_front() {
                if self.is_live_first_step(&key, generation) {
                    let _ = self.first_steps.push_back((key, generation));
                }
            }
        }
    }
}

/// The map under the table.
type ProgressMap<V> = FixedMap<Key, Progress<V>, KNOCK_TABLE_CAPACITY>;

// The home position fits in the entry's padding: 40 bytes an entry for plain knocks.
const_assert!(core::mem::size_of::<Stored<Key, Progress<()>>>() <= 40);

impl MapKey for Key {
    fn key_bytes(&self, out: &mut [u8; 18]) -> usize {
        let n = address_key_bytes(self.src, out);
        out[n] = self.sequence;
        n + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;

    fn key(n: u32) -> Key {
        Key {
            src: IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n)),
            sequence: 0,
        }
    }

    fn never(_: &Key, _: &Progress) -> bool {
        false
    }

    #[test]
    fn full_table_evicts_oldest_first_step() {
        let mut t = ProgressTable::boxed();
        for i in 0..KNOCK_TABLE_CAPACITY as u32 {
            assert_eq!(
                t.insert_first(key(i), Millis(i as u64), never),
                Insert::Stored
            );
        }
        assert_eq!(
            t.insert_first(key(99_999), Millis(99_999), never),
            Insert::StoredAfterEviction
        );
        assert!(t.get(&key(0)).is_none(), "oldest evicted");
        assert!(t.get(&key(1)).is_some());
        assert!(t.get(&key(99_999)).is_some());
        assert_eq!(t.len(), KNOCK_TABLE_CAPACITY);
    }

    #[test]
    fn advanced_entries_survive_first_step_flood() {
        let mut t = ProgressTable::boxed();
        t.insert_first(key(0), Millis(0), never);
        assert_eq!(t.advance(&key(0)), Some(2));
        for i in 1..200_000u32 {
            assert_ne!(
                t.insert_first(key(i), Millis(1), never),
                Insert::DroppedFull
            );
        }
        assert_eq!(t.get(&key(0)).map(|p| p.matched), Some(2));
        assert_eq!(t.len(), KNOCK_TABLE_CAPACITY);
    }

    #[test]
    fn full_of_advanced_entries_drops_new_first_knocks() {
        let mut t = ProgressTable::boxed();
        for i in 0..KNOCK_TABLE_CAPACITY as u32 {
            t.insert_first(key(i), Millis(0), never);
            t.advance(&key(i));
        }
        assert_eq!(
            t.insert_first(key(1 << 20), Millis(5), never),
            Insert::DroppedFull
        );
        assert!(t.get(&key(1 << 20)).is_none());
        // ...unless some have expired.
        let expired = |_: &Key, p: &Progress| p.started == Millis(0);
        assert_eq!(
            t.insert_first(key(1 << 20), Millis(5), expired),
            Insert::StoredAfterEviction
        );
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn stale_fifo_items_are_skipped_and_compacted() {
        let mut t = ProgressTable::boxed();
        // Churn: insert, advance (item goes stale), remove — many times over capacity.
        for i in 0..(3 * KNOCK_TABLE_CAPACITY as u32) {
            t.insert_first(key(i), Millis(i as u64), never);
            t.advance(&key(i));
            t.remove(&key(i));
        }
        assert!(t.is_empty());
        // Fill with first steps again; eviction must pick the oldest live one.
        for i in 0..KNOCK_TABLE_CAPACITY as u32 {
            assert_eq!(t.insert_first(key(i), Millis(0), never), Insert::Stored);
        }
        t.insert_first(key(1 << 21), Millis(1), never);
        assert!(t.get(&key(0)).is_none());
        assert!(t.get(&key(1)).is_some());
    }

    #[test]
    fn reinserting_a_key_restarts_it() {
        let mut t = ProgressTable::boxed();
        t.insert_first(key(7), Millis(1), never);
        t.advance(&key(7));
        t.insert_first(key(7), Millis(9), never);
        let p = t.get(&key(7)).unwrap();
        assert_eq!((p.matched, p.started), (1, Millis(9)));
        assert_eq!(t.len(), 1);
    }
}
