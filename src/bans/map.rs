//! The ban table's storage: a [`FixedMap`] from a network to its failure
//! count and ban, so that a packet's lookup costs one keyed hash and a short
//! probe, never a scan of the table. A network and the host at its address
//! are different keys (the prefix length is part of the key).

use super::BAN_TABLE_CAPACITY;
use crate::cidr::Cidr;
use crate::fixed_map::{address_key_bytes, FixedMap, MapKey};
use crate::probe_index::ProbeIndex;
use static_assertions::const_assert;

/// Fixed-capacity map from a banned (or failing) network to `V`.
pub(super) type NetMap<V> = FixedMap<Cidr, V, BAN_TABLE_CAPACITY>;

// The index has twice the capacity's positions.
const_assert!(2 * BAN_TABLE_CAPACITY <= ProbeIndex::MAX_POSITIONS);

impl MapKey for Cidr {
    fn key_bytes(&self, out: &mut [u8; 18]) -> usize {
        let n = address_key_bytes(self.addr(), out);
        out[n] = self.len();
        n + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

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
