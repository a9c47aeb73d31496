//! The ban table's storage: a fixed-capacity hash map from a network to its
//! failure count and ban, so that a packet's lookup costs one hash and a short
//! probe, never a scan of the table.
//!
//! Dense entries plus a slot array of entry indices, twice as many slots as
//! entries (load factor at most 1/2), linear probing, deletion by shifting
//! later members of a probe run back (no tombstones). Keys are hashed with a
//! per-process random SipHash key, so spoofed sources cannot be chosen to
//! collide. Each entry keeps its home slot, so moving an entry never rehashes.
//! Nothing allocates after [`NetMap::new`].

use core::hash::{BuildHasher, Hasher};
use core::net::IpAddr;
use std::collections::hash_map::RandomState;

use static_assertions::const_assert;

use super::BAN_TABLE_CAPACITY;
use crate::cidr::Cidr;
use crate::fixed_vec::FixedVec;

/// Hash slots: twice the capacity, a power of two, indices fit in `u16`.
const SLOTS: usize = 2 * BAN_TABLE_CAPACITY;
const_assert!(SLOTS.is_power_of_two());
const_assert!(SLOTS < u16::MAX as usize);
const EMPTY: u16 = u16::MAX;

/// One stored network, its value and its home slot.
#[derive(Debug, Clone, Copy)]
pub(super) struct Stored<V> {
    /// The key.
    pub net: Cidr,
    /// The owner's value.
    pub value: V,
    home: u16,
}

/// Fixed-capacity map from [`Cidr`] to `V` (see the module docs).
pub(super) struct NetMap<V> {
    slots: Box<[u16; SLOTS]>,
    entries: FixedVec<Stored<V>, BAN_TABLE_CAPACITY>,
    hasher: RandomState,
}

impl<V> core::fmt::Debug for NetMap<V> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "NetMap({} entries)", self.entries.len())
    }
}

impl<V: Copy> NetMap<V> {
    /// An empty map with a fresh random hash key (allocates its storage once).
    pub fn new() -> NetMap<V> {
        let slots = match vec![EMPTY; SLOTS].into_boxed_slice().try_into() {
            Ok(slots) => slots,
            Err(_) => unreachable!("a vec of SLOTS elements"),
        };
        NetMap {
            slots,
            entries: FixedVec::new(),
            hasher: RandomState::new(),
        }
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when [`BAN_TABLE_CAPACITY`] entries are held.
    pub fn is_full(&self) -> bool {
        self.entries.is_full()
    }

    /// The entries, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Stored<V>> {
        self.entries.iter()
    }

    /// The slot where `net`'s probe run starts: keyed SipHash of its bytes.
    fn home(&self, net: &Cidr) -> usize {
        let mut bytes = [0u8; 18];
        match net.addr() {
            IpAddr::V4(a) => {
                bytes[0] = 4;
                bytes[1..5].copy_from_slice(&a.octets());
            }
            IpAddr::V6(a) => {
                bytes[0] = 6;
                bytes[1..17].copy_from_slice(&a.octets());
            }
        }
        bytes[17] = net.len();
        let mut h = self.hasher.build_hasher();
        h.write(&bytes);
        (h.finish() as usize) & (SLOTS - 1)
    }

    /// The slot holding `net` (true), or the empty slot where it would go
    /// (false), and its home.
    fn probe(&self, net: &Cidr) -> (usize, bool, usize) {
        let home = self.home(net);
        let mut slot = home;
        loop {
            let idx = self.slots[slot];
            if idx == EMPTY {
                return (slot, false, home);
            }
            if self.entries[usize::from(idx)].net == *net {
                return (slot, true, home);
            }
            slot = (slot + 1) & (SLOTS - 1);
        }
    }

    /// The value stored for `net`.
    pub fn get(&self, net: &Cidr) -> Option<&V> {
        match self.probe(net) {
            (slot, true, _) => Some(&self.entries[usize::from(self.slots[slot])].value),
            _ => None,
        }
    }

    /// The value stored for `net`, to change in place.
    pub fn get_mut(&mut self, net: &Cidr) -> Option<&mut V> {
        match self.probe(net) {
            (slot, true, _) => Some(&mut self.entries[usize::from(self.slots[slot])].value),
            _ => None,
        }
    }

    /// Inserts or replaces; false when full (nothing changes then).
    pub fn insert(&mut self, net: Cidr, value: V) -> bool {
        let (slot, found, home) = self.probe(&net);
        if found {
            self.entries[usize::from(self.slots[slot])].value = value;
            return true;
        }
        let idx = self.entries.len() as u16;
        let stored = Stored {
            net,
            value,
            home: home as u16,
        };
        if self.entries.push(stored).is_err() {
            return false;
        }
        self.slots[slot] = idx;
        true
    }

    /// Removes `net`; its value if it was there.
    pub fn remove(&mut self, net: &Cidr) -> Option<V> {
        let (slot, found, _) = self.probe(net);
        if !found {
            return None;
        }
        let idx = usize::from(self.slots[slot]);
        self.clear_slot(slot);
        let last = self.entries.len() - 1;
        if idx != last {
            // The last entry moves to `idx`: repoint its slot, found from its
            // stored home without hashing.
            let mut s = usize::from(self.entries[last].home);
            while usize::from(self.slots[s]) != last {
                s = (s + 1) & (SLOTS - 1);
            }
            self.slots[s] = idx as u16;
        }
        Some(self.entries.swap_remove(idx).value)
    }

    /// Empties `hole`, shifting later members of its probe run back.
    fn clear_slot(&mut self, mut hole: usize) {
        self.slots[hole] = EMPTY;
        let mut slot = (hole + 1) & (SLOTS - 1);
        while self.slots[slot] != EMPTY {
            let home = usize::from(self.entries[usize::from(self.slots[slot])].home);
            // Move it into the hole unless its home is cyclically in (hole, slot].
            let to_hole = hole.wrapping_sub(home) & (SLOTS - 1);
            let to_slot = slot.wrapping_sub(home) & (SLOTS - 1);
            if to_hole < to_slot {
                self.slots[hole] = self.slots[slot];
                self.slots[slot] = EMPTY;
                hole = slot;
            }
            slot = (slot + 1) & (SLOTS - 1);
        }
    }

    /// Keeps the entries for which `keep` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(&Cidr, &V) -> bool) {
        let mut i = 0;
        while i < self.entries.len() {
            let Stored { net, value, .. } = self.entries[i];
            if keep(&net, &value) {
                i += 1;
            } else {
                self.remove(&net);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::{Ipv4Addr, Ipv6Addr};

    fn v4(n: u32) -> Cidr {
        Cidr::host(IpAddr::V4(Ipv4Addr::from(n)))
    }

    #[test]
    fn behaves_like_a_hash_map_through_random_operations() {
        let mut m = NetMap::<u32>::new();
        let mut model = std::collections::HashMap::new();
        let mut rng = crate::test_rng::Rng(0xba4_5eed);
        for i in 0..200_000u32 {
            // Few distinct keys of both families and two lengths: long probe
            // runs, many collisions in the low bits of the hash.
            let n = rng.below(3 * BAN_TABLE_CAPACITY) as u32;
            let net = match n % 3 {
                0 => v4(n),
                1 => Cidr::network_of(IpAddr::V6(Ipv6Addr::from(u128::from(n) << 64)), 64),
                _ => Cidr::host(IpAddr::V6(Ipv6Addr::from(u128::from(n)))),
            };
            match rng.below(3) {
                0 => {
                    let inserted = m.insert(net, i);
                    if model.len() < BAN_TABLE_CAPACITY || model.contains_key(&net) {
                        assert!(inserted);
                        model.insert(net, i);
                    } else {
                        assert!(!inserted && m.is_full());
                    }
                }
                1 => assert_eq!(m.remove(&net), model.remove(&net)),
                _ => assert_eq!(m.get(&net), model.get(&net)),
            }
            assert_eq!(m.len(), model.len());
            if i % 10_000 == 0 {
                m.retain(|_, v| v % 2 == 0);
                model.retain(|_, v| *v % 2 == 0);
                for (k, v) in &model {
                    assert_eq!(m.get(k), Some(v));
                }
            }
        }
    }

    #[test]
    fn a_network_and_the_host_at_its_address_are_different_keys() {
        let mut m = NetMap::<u8>::new();
        let ip = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0));
        assert!(m.insert(Cidr::network_of(ip, 64), 1));
        assert!(m.insert(Cidr::host(ip), 2));
        assert_eq!(m.get(&Cidr::network_of(ip, 64)), Some(&1));
        assert_eq!(m.get(&Cidr::host(ip)), Some(&2));
        *m.get_mut(&Cidr::host(ip)).unwrap() = 3;
        assert_eq!(m.remove(&Cidr::host(ip)), Some(3));
        assert_eq!(m.len(), 1);
    }
}
