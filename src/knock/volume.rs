//! Knock volume per source network, whatever the knocks were.
//!
//! Every knock into a knock range (TOTP, encoded, authenticated) or onto a
//! static knock port is counted against its source *network*: an IPv4
//! address, or an IPv6 prefix (`ban_ipv6_prefix`, `/64` by default: one
//! subscriber's LAN, which hands out addresses freely; the same networks as bans). Once a network has knocked more than `limit`
//! times within its `window` (which starts at its first knock), its further
//! knocks are ignored until the window ends. Whether a knock was right never
//! enters: being limited is an effect of volume alone, so it tells an attacker
//! nothing about their guesses (see `docs/knock-modes.md`).
//!
//! The table has a fixed capacity, allocated once. It is set-associative: a
//! network hashes (per-process random SipHash key, so spoofed sources cannot
//! be chosen to collide) to one bucket of [`WAYS`] slots. A newcomer takes a
//! free slot or one whose window is over; otherwise it evicts the slot with
//! the fewest knocks (the oldest of those). A network over its limit is never
//! evicted while its window runs: a flood of spoofed sources cannot give a
//! limited network a fresh count. When every slot of a bucket is such a
//! network, the newcomer is limited too (counted): failing open would let a
//! flood switch the limit off. Evicting an unlimited network only gives it a
//! fresh count; for an attacker that costs (capacity × its own count)
//! spoofed knocks per reset. Pure: time is passed in, no I/O, no allocation
//! after construction, O([`WAYS`]) per knock.

use core::hash::{BuildHasher, Hasher};
use core::net::IpAddr;
use core::time::Duration;
use std::collections::hash_map::RandomState;

use static_assertions::const_assert;

use crate::cidr::Cidr;
use crate::time::Millis;

/// Source networks tracked at once.
pub const VOLUME_TABLE_CAPACITY: usize = 4096;
/// Slots per bucket (a newcomer evicts within its bucket).
pub const WAYS: usize = 8;
const BUCKETS: usize = VOLUME_TABLE_CAPACITY / WAYS;
const_assert!(VOLUME_TABLE_CAPACITY % WAYS == 0);
const_assert!(BUCKETS.is_power_of_two());
const_assert!(WAYS >= 4 && WAYS <= 16);
// 32 bytes a slot: 128 KiB in all.
const_assert!(core::mem::size_of::<Slot>() <= 32);
const_assert!(VOLUME_TABLE_CAPACITY * core::mem::size_of::<Slot>() <= 256 * 1024);

/// Default most knocks per network per window: a user sending a few
/// sequences a minute (12 knocks for the longest, authenticated ones, some
/// retransmitted) stays far below it.
pub const DEFAULT_KNOCK_LIMIT: u32 = 240;
/// Default window over which knocks are counted.
pub const DEFAULT_KNOCK_WINDOW: Duration = Duration::from_secs(60);
/// Default IPv6 prefix length of a source network: the bans' (the engine
/// passes `ban_ipv6_prefix`).
pub const DEFAULT_IPV6_PREFIX: u8 = crate::bans::DEFAULT_BAN_IPV6_PREFIX;

/// How knocks are counted and limited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VolumePolicy {
    /// Most knocks a network may send per window (at least 1).
    pub limit: u32,
    /// The window, from a network's first knock.
    pub window: Duration,
    /// IPv6 sources are grouped by this prefix length (IPv4: per address).
    pub ipv6_prefix: u8,
}

impl Default for VolumePolicy {
    fn default() -> Self {
        VolumePolicy {
            limit: DEFAULT_KNOCK_LIMIT,
            window: DEFAULT_KNOCK_WINDOW,
            ipv6_prefix: DEFAULT_IPV6_PREFIX,
        }
    }
}

impl VolumePolicy {
    /// The default limits, with IPv6 sources grouped by `ipv6_prefix` bits.
    pub fn with_ipv6_prefix(ipv6_prefix: u8) -> VolumePolicy {
        VolumePolicy {
            ipv6_prefix,
            ..VolumePolicy::default()
        }
    }
}

/// What to do with a knock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Volume {
    /// Within the limit: on to the matchers.
    Admitted,
    /// Over the limit (or untrackable): ignore it.
    Limited,
}

/// Volume counters, for `postern status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VolumeCounters {
    /// Knocks counted.
    pub knocks: u64,
    /// Knocks ignored: their network was over its limit.
    pub limited: u64,
    /// Times a network went over its limit (once per window).
    pub networks_limited: u64,
    /// Networks evicted to make room (they restart with a fresh count).
    pub evictions: u64,
    /// Knocks of new networks ignored: their bucket was full of limited networks.
    pub table_full: u64,
}

/// One network's count in its current window (`count == 0`: free).
#[derive(Debug, Clone, Copy)]
struct Slot {
    started: Millis,
    count: u32,
    net: IpAddr,
}

const FREE: Slot = Slot {
    started: Millis(0),
    count: 0,
    net: IpAddr::V4(core::net::Ipv4Addr::UNSPECIFIED),
};

/// Knock counts per source network, fixed capacity.
pub struct VolumeTable {
    policy: VolumePolicy,
    window_ms: u64,
    buckets: Box<[[Slot; WAYS]]>,
    hasher: RandomState,
    counters: VolumeCounters,
}

impl VolumeTable {
    /// An empty table (allocates once).
    pub fn new(policy: VolumePolicy) -> VolumeTable {
        VolumeTable {
            window_ms: policy.window.as_millis().min(u128::from(u64::MAX)) as u64,
            policy: VolumePolicy {
                limit: policy.limit.max(1),
                ..policy
            },
            buckets: vec![[FREE; WAYS]; BUCKETS].into_boxed_slice(),
            hasher: RandomState::new(),
            counters: VolumeCounters::default(),
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> VolumePolicy {
        self.policy
    }

    /// Counters so far.
    pub fn counters(&self) -> VolumeCounters {
        self.counters
    }

    /// The network `src` is counted in.
    pub fn network_of(&self, src: IpAddr) -> Cidr {
        let src = src.to_canonical();
        match src {
            IpAddr::V4(_) => Cidr::host(src),
            IpAddr::V6(_) => Cidr::network_of(src, self.policy.ipv6_prefix),
        }
    }

    /// The address of [`Self::network_of`], by bytes (no 128-bit arithmetic,
    /// which 32-bit routers do slowly): the per-packet form.
    fn network_addr(&self, src: IpAddr) -> IpAddr {
        match src.to_canonical() {
            IpAddr::V4(a) => IpAddr::V4(a),
            IpAddr::V6(a) => {
                let mut o = a.octets();
                let bits = usize::from(self.policy.ipv6_prefix.min(128));
                for (i, b) in o.iter_mut().enumerate() {
                    let keep = bits.saturating_sub(8 * i).min(8);
                    *b &= !(0xffu8.checked_shr(keep as u32).unwrap_or(0));
                }
                IpAddr::V6(o.into())
            }
        }
    }

    /// Networks whose window is still running at `now`.
    pub fn live(&self, now: Millis) -> usize {
        self.buckets
            .iter()
            .flatten()
            .filter(|s| self.is_live(s, now))
            .count()
    }

    /// True when `src`'s network is over its limit at `now`.
    pub fn is_limited(&self, now: Millis, src: IpAddr) -> bool {
        let net = self.network_addr(src);
        self.buckets[self.bucket(net)]
            .iter()
            .any(|s| self.is_live(s, now) && s.net == net && s.count > self.policy.limit)
    }

    fn is_live(&self, s: &Slot, now: Millis) -> bool {
        s.count > 0 && now.since(s.started) < self.window_ms
    }

    fn bucket(&self, net: IpAddr) -> usize {
        let mut bytes = [0u8; 17];
        match net {
            IpAddr::V4(a) => {
                bytes[0] = 4;
                bytes[1..5].copy_from_slice(&a.octets());
            }
            IpAddr::V6(a) => {
                bytes[0] = 6;
                bytes[1..17].copy_from_slice(&a.octets());
            }
        }
        let mut h = self.hasher.build_hasher();
        h.write(&bytes);
        (h.finish() as usize) & (BUCKETS - 1)
    }

    /// Counts one knock of `src` at `now`; whether it may go on.
    pub fn on_knock(&mut self, now: Millis, src: IpAddr) -> Volume {
        self.counters.knocks += 1;
        let net = self.network_addr(src);
        let b = self.bucket(net);
        let (limit, window) = (self.policy.limit, self.window_ms);
        let ways = &mut self.buckets[b];
        if let Some(s) = ways.iter_mut().find(|s| s.count > 0 && s.net == net) {
            if now.since(s.started) >= window {
                s.started = now;
                s.count = 0;
            }
            s.count = s.count.saturating_add(1);
            if s.count <= limit {
                return Volume::Admitted;
            }
            if s.count == limit + 1 {
                self.counters.networks_limited += 1;
            }
            self.counters.limited += 1;
            return Volume::Limited;
        }
        // A newcomer: a free or expired slot, else the live one with the
        // fewest knocks (oldest first) that is not over its limit.
        let mut victim: Option<usize> = None;
        let mut evicts = false;
        for (i, s) in ways.iter().enumerate() {
            if s.count == 0 || now.since(s.started) >= window {
                victim = Some(i);
                evicts = false;
                break;
            }
            if s.count > limit {
                continue;
            }
            let better = match victim {
                None => true,
                Some(j) => (s.count, s.started) < (ways[j].count, ways[j].started),
            };
            if better {
                victim = Some(i);
                evicts = true;
            }
        }
        let Some(i) = victim else {
            self.counters.table_full += 1;
            self.counters.limited += 1;
            return Volume::Limited;
        };
        if evicts {
            self.counters.evictions += 1;
        }
        ways[i] = Slot {
            started: now,
            count: 1,
            net,
        };
        Volume::Admitted
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::{Ipv4Addr, Ipv6Addr};

    fn policy(limit: u32) -> VolumePolicy {
        VolumePolicy {
            limit,
            window: Duration::from_secs(60),
            ipv6_prefix: 64,
        }
    }

    fn v4(n: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n))
    }

    fn v6(net: u16, host: u64) -> IpAddr {
        IpAddr::V6(Ipv6Addr::new(
            0x2001,
            0xdb8,
            net,
            0,
            (host >> 48) as u16,
            (host >> 32) as u16,
            (host >> 16) as u16,
            host as u16,
        ))
    }

    /// Knocks `n` times from `src` at `now`; how many were admitted.
    fn admitted(t: &mut VolumeTable, now: Millis, src: IpAddr, n: u32) -> u32 {
        (0..n)
            .filter(|_| t.on_knock(now, src) == Volume::Admitted)
            .count() as u32
    }

    #[test]
    fn a_network_over_its_limit_is_ignored_until_its_window_ends() {
        let mut t = VolumeTable::new(policy(5));
        assert_eq!(admitted(&mut t, Millis(0), v4(1), 5), 5);
        assert_eq!(t.on_knock(Millis(10), v4(1)), Volume::Limited);
        assert!(t.is_limited(Millis(10), v4(1)));
        // Others are not affected.
        assert_eq!(admitted(&mut t, Millis(10), v4(2), 5), 5);
        // Still limited just before the window ends, fresh after.
        assert_eq!(t.on_knock(Millis(59_999), v4(1)), Volume::Limited);
        assert_eq!(admitted(&mut t, Millis(60_000), v4(1), 6), 5);
        let c = t.counters();
        assert_eq!((c.knocks, c.limited, c.networks_limited), (18, 3, 2));
    }

    #[test]
    fn ipv6_sources_count_per_prefix() {
        let mut t = VolumeTable::new(policy(10));
        // Ten fresh addresses of one /64 use up its budget...
        for host in 1..=10 {
            assert_eq!(t.on_knock(Millis(0), v6(1, host)), Volume::Admitted);
        }
        // ...so an eleventh address of it is limited, another /64 is not.
        assert_eq!(t.on_knock(Millis(1), v6(1, 0xffff_0000)), Volume::Limited);
        assert_eq!(t.on_knock(Millis(1), v6(2, 1)), Volume::Admitted);
        assert_eq!(t.network_of(v6(1, 77)).to_string(), "2001:db8:1::/64");
        // The prefix length is a parameter: with /32, two /64s of it share a count.
        let mut wide = VolumeTable::new(VolumePolicy {
            ipv6_prefix: 32,
            ..policy(3)
        });
        assert_eq!(admitted(&mut wide, Millis(0), v6(1, 1), 2), 2);
        assert_eq!(admitted(&mut wide, Millis(0), v6(2, 1), 2), 1);
        // IPv4 is per address; IPv4-mapped IPv6 counts as the IPv4 address.
        let mapped = IpAddr::V6(Ipv4Addr::new(10, 0, 0, 9).to_ipv6_mapped());
        assert_eq!(admitted(&mut t, Millis(0), v4(9), 10), 10);
        assert_eq!(t.on_knock(Millis(0), mapped), Volume::Limited);
        assert_eq!(t.on_knock(Millis(0), v4(8)), Volume::Admitted);
    }

    #[test]
    fn the_per_packet_network_is_the_cidr_network() {
        let mut rng = crate::test_rng::Rng(0x0123_4567);
        for prefix in [0u8, 1, 7, 8, 9, 48, 56, 63, 64, 65, 127, 128, 200] {
            let t = VolumeTable::new(VolumePolicy {
                ipv6_prefix: prefix,
                ..policy(1)
            });
            for _ in 0..50 {
                let a = IpAddr::V6(Ipv6Addr::from(
                    (u128::from(rng.next()) << 64) | u128::from(rng.next()),
                ));
                assert_eq!(t.network_addr(a), t.network_of(a).addr(), "/{prefix} {a}");
            }
            let v4 = IpAddr::V4(Ipv4Addr::from(rng.next() as u32));
            assert_eq!(t.network_addr(v4), t.network_of(v4).addr());
        }
    }

    #[test]
    fn capacity_is_fixed_and_newcomers_find_room() {
        let mut t = VolumeTable::new(policy(100));
        // Eight times the capacity: every bucket gets well over its share.
        let n = 8 * VOLUME_TABLE_CAPACITY;
        for i in 0..n as u32 {
            assert_eq!(t.on_knock(Millis(1), v4(i)), Volume::Admitted);
        }
        assert_eq!(t.live(Millis(1)), VOLUME_TABLE_CAPACITY);
        let c = t.counters();
        assert_eq!(c.evictions, (n - VOLUME_TABLE_CAPACITY) as u64);
        assert_eq!(c.table_full, 0);
    }

    #[test]
    fn a_spoofed_flood_cannot_reset_a_limited_network() {
        let limit = 20;
        let mut t = VolumeTable::new(policy(limit));
        let attacker = v6(0xa, 1);
        assert_eq!(admitted(&mut t, Millis(0), attacker, limit + 5), limit);
        // A flood of first knocks from random sources, and of sources that
        // knock until they too are over the limit, all within the window.
        let mut rng = crate::test_rng::Rng(0x5eed_f10d);
        for i in 0..200_000u64 {
            let src = IpAddr::V4(Ipv4Addr::from(rng.next() as u32));
            t.on_knock(Millis(1 + i / 10), src);
        }
        for n in 0..(2 * VOLUME_TABLE_CAPACITY) as u32 {
            admitted(&mut t, Millis(30_000), v4(n), limit + 1);
        }
        assert!(t.is_limited(Millis(30_000), attacker));
        assert_eq!(t.on_knock(Millis(30_001), attacker), Volume::Limited);
        // The table stayed within its capacity, and once full of limited
        // networks it limits newcomers rather than forget a limited one.
        assert!(t.live(Millis(30_001)) <= VOLUME_TABLE_CAPACITY);
        assert!(t.counters().table_full > 0, "{:?}", t.counters());
    }

    #[test]
    fn a_flood_evicts_the_lightest_networks_first() {
        let mut t = VolumeTable::new(policy(100));
        // A real user mid-sequence, with a few knocks counted.
        let user = v4(0xffff);
        admitted(&mut t, Millis(0), user, 6);
        // Spoofed first knocks, one per source, many times the capacity:
        // they evict each other (one knock each), never the heavier user.
        for n in 0..(8 * VOLUME_TABLE_CAPACITY) as u32 {
            t.on_knock(Millis(1), IpAddr::V4(Ipv4Addr::from(0xc000_0000 + n)));
        }
        assert_eq!(admitted(&mut t, Millis(2), user, 94), 94);
        assert_eq!(t.on_knock(Millis(2), user), Volume::Limited);
    }
}
