//! The replay cache: nonces of authenticated, fresh packets, a fixed quota per client.
//!
//! Only packets that passed the authentication and the timestamp window are
//! recorded (accepted ones and those refused after that point: a port, an
//! address or a command the client may not ask for), so nobody without a key
//! can fill it. An entry is needed only while a packet with its timestamp
//! could still pass the window (`timestamp + max_skew` has not passed); after
//! that its slot may be reused. Expired entries are not removed eagerly: they
//! are overwritten when a slot is needed, so a wall clock that jumps back
//! still finds them.
//!
//! **Quotas.** Each client owns [`QUOTA`] slots. When all of a client's slots
//! hold live entries, that client's new packet is refused ([`CacheFull`])
//! instead of forgetting a live entry: forgetting would let a replay through,
//! refusing only delays that client. One client (or one leaked key) can
//! therefore never crowd out another. [`ORPHANS`] more slots hold restored
//! entries whose client is no longer configured (or whose own slots are
//! full): those nonces stay refused for every client.
//!
//! **Floor.** The cache also keeps a floor: a timestamp below which it no
//! longer knows every recorded packet. Whenever an entry is forgotten (its
//! slot reused, or skipped on restore because it expired under the
//! `max_skew` in force) the floor rises above its timestamp; the verifier
//! refuses packets stamped below the floor. With `max_skew` unchanged the
//! floor never refuses anything the window would accept; after `max_skew` is
//! raised (by a reload or a restart) it closes the gap the forgotten entries
//! left.
//!
//! **Lookups** are O(1) expected: open addressing with linear probing over at
//! least twice as many index slots as entries, keyed by a per-process random
//! SipHash of the nonce (attacker-chosen nonces cannot be made to collide).
//! [`ReplayCache::contains`] costs one hash and is safe to call before any
//! cryptography. Plain data in and out ([`ReplayCache::iter`],
//! [`ReplayCache::restore`]) so the daemon can keep it across restarts. No
//! I/O, no allocation after [`ReplayCache::new`].

use core::hash::{BuildHasher, Hasher};
use std::collections::hash_map::RandomState;

use crate::probe_index::{Probe, ProbeIndex};

use static_assertions::const_assert;

use super::seal::NONCE_LEN;
use crate::config::MAX_CLIENTS;

/// Live entries each client may hold: packets within one window (up to
/// 2 × `max_skew`, 4 min by default).
pub const QUOTA: usize = 64;
/// Slots for restored entries of clients that are gone (or over quota).
pub const ORPHANS: usize = 256;
/// Most slots a cache can have (all clients configured).
pub const MAX_SLOTS: usize = MAX_CLIENTS * QUOTA + ORPHANS;

const_assert!(QUOTA >= 16);
const_assert!(ORPHANS >= QUOTA);
// Index positions: the next power of two of twice the entries.
const_assert!((2 * MAX_SLOTS).next_power_of_two() <= ProbeIndex::MAX_POSITIONS);
// 40 bytes a slot and at most 8 bytes of index per slot: about 110 KiB with
// every client configured, 17 KiB for two clients.
const_assert!(core::mem::size_of::<Slot>() <= 40);
const_assert!(MAX_SLOTS * (core::mem::size_of::<Slot>() + 8) <= 128 * 1024);

/// One recorded packet: its nonce and its timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayEntry {
    /// The packet's 24-byte replay id (the native nonce, or fwknop's digest).
    pub nonce: [u8; NONCE_LEN],
    /// The request's timestamp (unix seconds).
    pub timestamp: u64,
}

/// The nonce was seen before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replayed;

/// Every slot of the client holds a live entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheFull;

/// Why [`ReplayCache::insert`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertError {
    /// Seen before.
    Replayed(Replayed),
    /// No free or expired slot in the client's quota.
    Full(CacheFull),
}

/// One entry of a saved record: whose it was, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedEntry {
    /// The client's name, if known (orphans lose it: they stay refused anyway).
    pub client: Option<String>,
    /// The packet.
    pub entry: ReplayEntry,
}

/// The replay record as plain data: what the state file holds and what a
/// reload carries from one engine to the next.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayRecord {
    /// Packets stamped below this (unix seconds) may have been forgotten.
    pub floor: u64,
    /// The recorded packets.
    pub entries: Vec<SavedEntry>,
}

impl ReplayRecord {
    /// Adds `entry` unless its nonce is held; drops the entries expired at
    /// `now_unix` under `max_skew`, raising the floor above each one.
    pub fn record(
        &mut self,
        client: Option<&str>,
        entry: ReplayEntry,
        now_unix: u64,
        max_skew: u64,
    ) {
        let mut floor = self.floor;
        self.entries.retain(|s| {
            let live = !expired(&s.entry, now_unix, max_skew);
            if !live {
                floor = floor.max(s.entry.timestamp.saturating_add(1));
            }
            live
        });
        self.floor = floor;
        if !self.entries.iter().any(|s| s.entry.nonce == entry.nonce) {
            self.entries.push(SavedEntry {
                client: client.map(str::to_string),
                entry,
            });
        }
    }
}

fn expired(e: &ReplayEntry, now_unix: u64, max_skew: u64) -> bool {
    e.timestamp.saturating_add(max_skew) < now_unix
}

/// One slot: an entry, whether it is in use, and its home in the index.
#[derive(Debug, Clone, Copy)]
struct Slot {
    entry: ReplayEntry,
    used: bool,
    home: u16,
}

const FREE: Slot = Slot {
    entry: ReplayEntry {
        nonce: [0; NONCE_LEN],
        timestamp: 0,
    },
    used: false,
    home: 0,
};

/// Recorded nonces, a fixed quota per client.
#[derive(Debug, Clone)]
pub struct ReplayCache {
    /// Client `i` owns `slots[i * QUOTA..(i + 1) * QUOTA]`; the last
    /// [`ORPHANS`] slots are the orphans'.
    slots: Box<[Slot]>,
    owners: usize,
    /// Slot numbers by keyed hash of the nonce.
    index: ProbeIndex,
    hasher: RandomState,
    floor: u64,
    len: usize,
}

impl Default for ReplayCache {
    fn default() -> Self {
        ReplayCache::new(0)
    }
}

impl ReplayCache {
    /// An empty cache for `owners` clients (at most [`MAX_CLIENTS`]); the only allocation.
    pub fn new(owners: usize) -> ReplayCache {
        let owners = owners.min(MAX_CLIENTS);
        let n = owners * QUOTA + ORPHANS;
        ReplayCache {
            slots: vec![FREE; n].into_boxed_slice(),
            owners,
            index: ProbeIndex::new((2 * n).next_power_of_two()),
            hasher: RandomState::new(),
            floor: 0,
            len: 0,
        }
    }

    fn home(&self, nonce: &[u8; NONCE_LEN]) -> usize {
        let mut h = self.hasher.build_hasher();
        h.write(nonce);
        self.index.home(h.finish())
    }

    /// Where `nonce` is in the index, or the empty position where it would go.
    fn probe(&self, nonce: &[u8; NONCE_LEN]) -> Probe {
        let slots = &self.slots;
        self.index
            .find(self.home(nonce), |s| slots[s].entry.nonce == *nonce)
    }

    /// True if an entry with this nonce is held (live or expired): one keyed
    /// hash, O(1) expected, no cryptography — cheap enough to ask first.
    pub fn contains(&self, nonce: &[u8; NONCE_LEN]) -> bool {
        matches!(self.probe(nonce), Probe::Found { .. })
    }

    /// Packets stamped below this may have been forgotten: refuse them.
    pub fn floor(&self) -> u64 {
        self.floor
    }

    /// Raises the floor to `t` (never lowers it).
    pub fn raise_floor(&mut self, t: u64) {
        self.floor = self.floor.max(t);
    }

    /// Records `entry` for client `owner` unless its nonce is known; reuses
    /// an expired slot of that client's (`timestamp + max_skew < now_unix`)
    /// when its quota is used up.
    pub fn insert(
        &mut self,
        owner: usize,
        entry: ReplayEntry,
        now_unix: u64,
        max_skew: u64,
    ) -> Result<(), InsertError> {
        if self.contains(&entry.nonce) {
            return Err(InsertError::Replayed(Replayed));
        }
        if owner >= self.owners {
            return Err(InsertError::Full(CacheFull));
        }
        let range = owner * QUOTA..(owner + 1) * QUOTA;
        match self.free_slot(range, now_unix, max_skew) {
            Some(s) => {
                self.put(s, entry);
                Ok(())
            }
            None => Err(InsertError::Full(CacheFull)),
        }
    }

    /// A free slot in `range`, else an expired one (forgotten: the floor rises).
    fn free_slot(
        &mut self,
        range: core::ops::Range<usize>,
        now_unix: u64,
        max_skew: u64,
    ) -> Option<usize> {
        if let Some(s) = range.clone().find(|&s| !self.slots[s].used) {
            return Some(s);
        }
        let s = range
            .clone()
            .find(|&s| expired(&self.slots[s].entry, now_unix, max_skew))?;
        self.forget(s);
        Some(s)
    }

    /// Empties slot `s`, raising the floor above its entry.
    fn forget(&mut self, s: usize) {
        let e = self.slots[s].entry;
        self.raise_floor(e.timestamp.saturating_add(1));
        if let Probe::Found { pos, .. } = self.probe(&e.nonce) {
            let slots = &self.slots;
            self.index.clear(pos, |s| usize::from(slots[s].home));
        }
        self.slots[s] = FREE;
        self.len -= 1;
    }

    fn put(&mut self, s: usize, entry: ReplayEntry) {
        let home = self.home(&entry.nonce);
        let slots = &self.slots;
        let pos = match self
            .index
            .find(home, |s| slots[s].entry.nonce == entry.nonce)
        {
            Probe::Found { pos, .. } | Probe::Vacant { pos } => pos,
        };
        self.index.set(pos, s);
        self.slots[s] = Slot {
            entry,
            used: true,
            home: home as u16,
        };
        self.len += 1;
    }

    /// The entries held, with their client (`None`: an orphan).
    pub fn iter(&self) -> impl Iterator<Item = (Option<usize>, ReplayEntry)> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.used)
            .map(|(i, s)| {
                let owner = i / QUOTA;
                (Some(owner).filter(|&o| o < self.owners), s.entry)
            })
    }

    /// Entries held by client `owner`.
    pub fn owned(&self, owner: usize) -> usize {
        if owner >= self.owners {
            return 0;
        }
        self.slots[owner * QUOTA..(owner + 1) * QUOTA]
            .iter()
            .filter(|s| s.used)
            .count()
    }

    /// Number of entries held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds a saved entry (from the state file, or the engine a reload
    /// replaces) for `owner` (`None`: unknown). An entry expired at
    /// `now_unix` under `max_skew` is not kept: the floor rises above it. An
    /// entry whose client's slots are full goes to the orphans; when those
    /// are full too, the older of it and the oldest orphan is forgotten (the
    /// floor rises above it), so nothing is forgotten without the floor
    /// covering it.
    pub fn restore(
        &mut self,
        owner: Option<usize>,
        entry: ReplayEntry,
        now_unix: u64,
        max_skew: u64,
    ) {
        if expired(&entry, now_unix, max_skew) {
            self.raise_floor(entry.timestamp.saturating_add(1));
            return;
        }
        if self.contains(&entry.nonce) {
            return;
        }
        let own = owner
            .filter(|&o| o < self.owners)
            .and_then(|o| self.free_slot(o * QUOTA..(o + 1) * QUOTA, now_unix, max_skew));
        let orphans = self.owners * QUOTA..self.slots.len();
        let slot = own.or_else(|| self.free_slot(orphans.clone(), now_unix, max_skew));
        if let Some(s) = slot {
            self.put(s, entry);
            return;
        }
        // No room: forget the older of this entry and the oldest orphan.
        match orphans.min_by_key(|&s| self.slots[s].entry.timestamp) {
            Some(oldest) if self.slots[oldest].entry.timestamp < entry.timestamp => {
                self.forget(oldest);
                self.put(oldest, entry);
            }
            _ => self.raise_floor(entry.timestamp.saturating_add(1)),
        }
    }
}

#[cfg(test)]
mod tests;
