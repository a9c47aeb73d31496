//! Brute-force bans: failures counted per source network, a ban past a threshold.
//!
//! Owns the per-network failure counts and the bans the engine decided, in
//! one fixed-capacity table, and the policy (`ban_threshold` failures within
//! `ban_window` → banned for `ban_duration`; networks that must never be
//! banned, see below). A failure is an SPA packet refused for authentication,
//! replay or its timestamp; knocks never are (whether a knock was right must
//! have no visible effect: see [`crate::knock::volume`] for their limit). Sans-IO:
//! time is an argument; the kernel enforces a ban (a set element with a
//! timeout, see [`crate::firewall::Backend::ban`]); this table only decides
//! and remembers, so that the engine ignores a banned source's knocks and SPA
//! packets (the capture socket sees packets before the firewall drops them)
//! and `postern status` can list bans.
//!
//! **What is counted and banned: a network.** An IPv4 source counts as its
//! address (/32); an IPv6 source as its network of `ban_ipv6_prefix` bits
//! (default /64, [`DEFAULT_BAN_IPV6_PREFIX`]): one subscriber's /64 is an
//! unlimited supply of fresh addresses, so rotating within it must not start
//! the count over. The ban is then on the whole network.
//!
//! **Never banned, whatever fails.** A failure needs no key, and UDP SPA
//! packets and knock SYNs are trivially spoofed, so anyone who can forge a
//! source address can get it banned. Postern therefore refuses to ban (and
//! counts as `protected_failures`) any source that is
//! * link-local (169.254.0.0/16, fe80::/10), multicast (224.0.0.0/4,
//!   ff00::/8), unspecified, loopback or the broadcast address
//!   255.255.255.255 ([`is_never_banned_address`]): banning the upstream
//!   router's fe80:: address would take IPv6 away from the whole LAN;
//! * in, or whose banned network would contain, one of the router's
//!   [`ProtectedNets`]: its own addresses, its on-link subnets and its default
//!   gateways, learnt from the kernel at start, at reload and when they change
//!   (see [`crate::local_networks`]);
//! * or in (or overlapping) a `list trusted` network (counted as
//!   `trusted_failures`).
//!
//! What remains is the cost for an owner whose own remote address is known
//! to an attacker: it can be locked out of the guarded ports for
//! `ban_duration`. Hence bans are short by default
//! ([`DEFAULT_BAN_DURATION`]), `ban_duration 0` turns them off, and `list
//! trusted` exempts the networks the owner comes from.
//!
//! **Lookups** hash the network with a per-process random key (see
//! `bans::map`): one hash per packet while any ban is live, none otherwise; no
//! scan, no allocation.
//!
//! **When the table is full** ([`BAN_TABLE_CAPACITY`] networks): the failure
//! count whose window began earliest is dropped (an expired one silently, a
//! running one counted as `evicted`; never a live ban), found in O(1) from a
//! queue of windows in the order they began. If every entry is a live ban,
//! bans that are over are purged; if none is, the new network's failure is
//! not tracked (counted as `untracked`). Live bans are therefore never
//! forgotten early, and a flood of spoofed sources can at worst reset other
//! sources' failure counts.

mod map;

use core::net::IpAddr;
use core::time::Duration;

use static_assertions::const_assert;

use crate::cidr::Cidr;
use crate::config::Main;
use crate::fixed_vec::FixedDeque;
use crate::time::Millis;
use map::NetMap;

/// Most networks tracked at once (failure counts and live bans together).
pub const BAN_TABLE_CAPACITY: usize = 512;
/// Default failures within the window that cause a ban.
pub const DEFAULT_BAN_THRESHOLD: u32 = 10;
/// Default window over which failures are counted.
pub const DEFAULT_BAN_WINDOW: Duration = Duration::from_secs(60);
/// Default ban length: short, since sources can be spoofed (see module docs).
pub const DEFAULT_BAN_DURATION: Duration = Duration::from_secs(300);
/// Default prefix length of the IPv6 networks failures are counted for.
pub const DEFAULT_BAN_IPV6_PREFIX: u8 = 64;
/// Shortest `ban_ipv6_prefix` accepted: a /32 is a whole provider allocation.
pub const MIN_BAN_IPV6_PREFIX: u8 = 32;
/// Longest `ban_ipv6_prefix` accepted (per address).
pub const MAX_BAN_IPV6_PREFIX: u8 = 128;
/// Most protected networks (the router's own addresses, on-link subnets and
/// default gateways) the table holds.
pub const PROTECTED_CAPACITY: usize = 64;

const_assert!(BAN_TABLE_CAPACITY.is_power_of_two());
const_assert!(BAN_TABLE_CAPACITY >= 16 && BAN_TABLE_CAPACITY <= 4096);
const_assert!(MIN_BAN_IPV6_PREFIX <= DEFAULT_BAN_IPV6_PREFIX);
const_assert!(DEFAULT_BAN_IPV6_PREFIX <= MAX_BAN_IPV6_PREFIX);
const_assert!(PROTECTED_CAPACITY >= 8 && PROTECTED_CAPACITY <= 1024);
/// The queue of windows: twice the table, so compacting it (dropping the
/// items of entries that moved on) frees at least half of it: O(1) amortised.
const WINDOW_QUEUE: usize = 2 * BAN_TABLE_CAPACITY;

/// When a source is banned and for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BanPolicy {
    /// Failures within `window` that ban a source (at least 1).
    pub threshold: u32,
    /// How long failures are counted from a source's first one.
    pub window: Duration,
    /// How long a ban lasts; zero disables bans.
    pub duration: Duration,
    /// Prefix length of the IPv6 networks counted and banned.
    pub ipv6_prefix: u8,
    /// Networks never banned (their failures are counted apart).
    pub trusted: Vec<Cidr>,
}

impl Default for BanPolicy {
    fn default() -> BanPolicy {
        BanPolicy {
            threshold: DEFAULT_BAN_THRESHOLD,
            window: DEFAULT_BAN_WINDOW,
            duration: DEFAULT_BAN_DURATION,
            ipv6_prefix: DEFAULT_BAN_IPV6_PREFIX,
            trusted: Vec::new(),
        }
    }
}

impl BanPolicy {
    /// The policy of a `config postern` section.
    pub fn from_main(m: &Main) -> BanPolicy {
        BanPolicy {
            threshold: m.ban_threshold.max(1),
            window: m.ban_window,
            duration: m.ban_duration,
            ipv6_prefix: m.ban_ipv6_prefix,
            trusted: m.trusted.clone(),
        }
    }

    /// False when `ban_duration` is 0.
    pub fn enabled(&self) -> bool {
        !self.duration.is_zero()
    }

    /// The network a failure of `src` counts for: the IPv4 address, or the
    /// IPv6 network of `ipv6_prefix` bits (IPv4-mapped addresses are IPv4).
    pub fn network_of(&self, src: IpAddr) -> Cidr {
        match src.to_canonical() {
            v4 @ IpAddr::V4(_) => Cidr::host(v4),
            v6 => Cidr::network_of(v6, self.ipv6_prefix),
        }
    }

    /// Whether `net` overlaps a trusted network (banning it would ban some
    /// trusted address).
    pub fn is_trusted(&self, net: Cidr) -> bool {
        self.trusted.iter().any(|t| overlaps(*t, net))
    }
}

/// True when one of `a` and `b` contains the other (same family).
fn overlaps(a: Cidr, b: Cidr) -> bool {
    a.contains(b.addr()) || b.contains(a.addr())
}

/// Addresses never banned, whatever the configuration: link-local,
/// multicast, unspecified, loopback and the IPv4 broadcast address. Nobody
/// legitimate sends an SPA packet from them, but spoofing them can cut the
/// router off its upstream (fe80:: gateway) or its LAN.
pub fn is_never_banned_address(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(a) => {
            a.is_link_local()
                || a.is_multicast()
                || a.is_unspecified()
                || a.is_loopback()
                || a.is_broadcast()
        }
        IpAddr::V6(a) => {
            (a.segments()[0] & 0xffc0) == 0xfe80
                || a.is_multicast()
                || a.is_unspecified()
                || a.is_loopback()
        }
    }
}

/// The router's own networks, never banned: its addresses (as /32 or /128),
/// on-link subnets and default gateways. Fixed capacity
/// ([`PROTECTED_CAPACITY`]); the edge ([`crate::local_networks`]) fills it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProtectedNets {
    nets: heapless::Vec<Cidr, PROTECTED_CAPACITY>,
}

impl ProtectedNets {
    /// An empty list.
    pub fn new() -> ProtectedNets {
        ProtectedNets::default()
    }

    /// Adds `net` (IPv4-mapped addresses taken as IPv4); true when it is now
    /// covered, false when the list is full. A network already covered by
    /// one held is not added again.
    pub fn add(&mut self, net: Cidr) -> bool {
        let net = match net.addr() {
            IpAddr::V6(a) if a.to_ipv4_mapped().is_some() && net.len() >= 96 => {
                Cidr::network_of(net.addr(), net.len() - 96)
            }
            _ => net,
        };
        if self
            .nets
            .iter()
            .any(|n| n.len() <= net.len() && n.contains(net.addr()))
        {
            return true;
        }
        self.nets.push(net).is_ok()
    }

    /// The networks held.
    pub fn as_slice(&self) -> &[Cidr] {
        &self.nets
    }

    /// Whether banning `net` would ban a protected address.
    pub fn overlaps(&self, net: Cidr) -> bool {
        self.nets.iter().any(|p| overlaps(*p, net))
    }
}

/// What the ban table has counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BanCounters {
    /// Failures counted against a network.
    pub failures: u64,
    /// Failures from trusted networks (never counted towards a ban).
    pub trusted_failures: u64,
    /// Failures from addresses never banned: link-local, multicast and the
    /// like, and the router's own networks and gateways (never counted).
    pub protected_failures: u64,
    /// Bans decided.
    pub bans: u64,
    /// Packets ignored because their source was banned.
    pub from_banned: u64,
    /// Failure counts evicted to make room (table full).
    pub evicted: u64,
    /// Failures not tracked because the table was full of live bans.
    pub untracked: u64,
}

/// One network: its failures in the current window, and its ban if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    failures: u32,
    /// Start of the current counting window.
    since: Millis,
    /// End of the ban, when banned.
    until: Option<Millis>,
    /// Ties this entry to its latest item in the queue of windows.
    generation: u32,
}

/// A live ban, for `postern status` and for re-applying after a firewall restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ban {
    /// The banned network (an IPv4 address as /32).
    pub net: Cidr,
    /// When the ban ends (monotonic).
    pub until: Millis,
}

/// A banned network as logs and `postern status` show it: a single address
/// bare (`192.0.2.7`), a wider network as `ADDR/LEN` (`2001:db8:1:2::/64`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetText(pub Cidr);

impl core::fmt::Display for NetText {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if self.0.is_host() {
            write!(f, "{}", self.0.addr())
        } else {
            write!(f, "{}", self.0)
        }
    }
}

impl Ban {
    /// Time left at `now` (zero once over).
    pub fn remaining(&self, now: Millis) -> Duration {
        Duration::from_millis(self.until.since(now))
    }
}

/// The fixed-capacity failure and ban table (see the module docs).
pub struct BanTable {
    policy: BanPolicy,
    protected: ProtectedNets,
    map: NetMap<Entry>,
    /// `(network, generation)` in the order windows began; stale items (the
    /// entry moved on or is gone) are skipped.
    windows: FixedDeque<(Cidr, u32), WINDOW_QUEUE>,
    next_generation: u32,
    /// Entries with a ban (possibly over, until the next expiry): lets
    /// [`BanTable::is_banned`] skip the lookup when there are none.
    banned: usize,
    /// No ban ends before this (the earliest end, or earlier): purging over
    /// bans when the table is full is worth it only from then on.
    next_ban_end: Option<Millis>,
    counters: BanCounters,
}

impl core::fmt::Debug for BanTable {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("BanTable")
            .field("policy", &self.policy)
            .field("protected", &self.protected)
            .field("tracked", &self.map.len())
            .field("banned", &self.banned)
            .field("counters", &self.counters)
            .finish()
    }
}

impl BanTable {
    /// An empty table with `policy` (allocates its storage once).
    pub fn new(policy: BanPolicy) -> BanTable {
        BanTable {
            policy,
            protected: ProtectedNets::new(),
            map: NetMap::new(),
            windows: FixedDeque::new(),
            next_generation: 0,
            banned: 0,
            next_ban_end: None,
            counters: BanCounters::default(),
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> &BanPolicy {
        &self.policy
    }

    /// The router's own networks in force.
    pub fn protected(&self) -> &ProtectedNets {
        &self.protected
    }

    /// Counters so far.
    pub fn counters(&self) -> BanCounters {
        self.counters
    }

    /// True when failures of `src` (counted for `net`) must never ban.
    fn protects(&self, src: IpAddr, net: Cidr) -> bool {
        is_never_banned_address(src) || self.protected.overlaps(net)
    }

    /// Replaces the router's own networks (learnt again from the kernel) and
    /// forgets the entries they now cover; `lifted` is called with each live
    /// ban dropped that way (the caller lifts it in the kernel).
    pub fn set_protected(
        &mut self,
        now: Millis,
        protected: ProtectedNets,
        mut lifted: impl FnMut(Cidr),
    ) {
        self.protected = protected;
        let p = &self.protected;
        self.map.retain(|net, e| {
            if !p.overlaps(*net) {
                return true;
            }
            if e.until.is_some_and(|u| u > now) {
                lifted(*net);
            }
            false
        });
        self.recount_bans();
    }

    /// Takes over the entries and counters of `old` (the table of the engine a
    /// reload replaces) and its protected networks (learnt from the kernel,
    /// not configured), keeping this table's policy: networks now trusted are dropped, IPv6 networks of another
    /// length than the new `ban_ipv6_prefix` too, and everything when bans are
    /// now off (the caller lifts their kernel bans: see [`BanTable::banned_until`]).
    pub fn adopt(&mut self, old: &BanTable) {
        self.counters = old.counters;
        self.protected = old.protected.clone();
        self.map.retain(|_, _| false);
        self.windows = FixedDeque::new();
        let mut kept: Vec<(Cidr, Entry)> = old
            .map
            .iter()
            .map(|s| (s.key, s.value))
            .filter(|(net, _)| {
                self.policy.enabled()
                    && !self.policy.is_trusted(*net)
                    && !self.protected.overlaps(*net)
                    && self.policy.network_of(net.addr()) == *net
            })
            .collect();
        kept.sort_unstable_by_key(|(_, e)| e.since);
        for (net, e) in kept {
            let generation = self.bump();
            // Cannot fail: same capacity, and the queue is empty.
            self.map.insert(net, Entry { generation, ..e });
            let _ = self.windows.push_back((net, generation));
        }
        self.recount_bans();
    }

    /// When the ban of `net` ends, if it is banned at `now` (nothing counted).
    pub fn banned_until(&self, now: Millis, net: Cidr) -> Option<Millis> {
        self.map
            .get(&net)
            .and_then(|e| e.until)
            .filter(|&u| u > now)
    }

    /// True when `src`'s network is banned at `now` (the packet is counted as
    /// ignored). One keyed hash while some ban is live, none otherwise.
    pub fn is_banned(&mut self, now: Millis, src: IpAddr) -> bool {
        if self.banned == 0 {
            return false;
        }
        let net = self.policy.network_of(src);
        let hit = self
            .map
            .get(&net)
            .is_some_and(|e| e.until.is_some_and(|u| u > now));
        if hit {
            self.counters.from_banned += 1;
        }
        hit
    }

    /// Counts one failure of `src` at `now`; the network banned and the ban's
    /// length when this failure bans it (once per ban: a banned network's
    /// packets are ignored).
    pub fn on_failure(&mut self, now: Millis, src: IpAddr) -> Option<(Cidr, Duration)> {
        if !self.policy.enabled() {
            return None;
        }
        let net = self.policy.network_of(src);
        if self.policy.is_trusted(net) {
            self.counters.trusted_failures += 1;
            return None;
        }
        if self.protects(src, net) {
            self.counters.protected_failures += 1;
            return None;
        }
        self.counters.failures += 1;
        if self.map.get(&net).is_none() {
            self.insert(now, net)?;
        }
        let (window, threshold, duration) = (
            self.policy.window.as_millis() as u64,
            self.policy.threshold,
            self.policy.duration,
        );
        let generation = self.next_generation;
        let e = self.map.get_mut(&net)?;
        if e.until.is_some_and(|u| u > now) {
            return None;
        }
        let mut requeue = false;
        if e.until.take().is_some() {
            self.banned -= 1;
            requeue = true;
        }
        if now.since(e.since) >= window {
            e.failures = 0;
            e.since = now;
            requeue = true;
        }
        e.failures = e.failures.saturating_add(1);
        if e.failures >= threshold {
            e.failures = 0;
            let until = now + duration;
            e.until = Some(until);
            self.banned += 1;
            self.counters.bans += 1;
            self.next_ban_end = Some(self.next_ban_end.map_or(until, |n| n.min(until)));
            return Some((net, duration));
        }
        if requeue {
            e.generation = generation;
            self.bump();
            self.queue(net, generation);
        }
        None
    }

    /// Bans `net` for `duration` because a peer router banned it (see
    /// [`crate::peer`]), under this table's own policy: nothing happens (false)
    /// when bans are off, when `net` is not a network this policy bans (an
    /// IPv4 address, an IPv6 network of `ban_ipv6_prefix` bits), when it
    /// overlaps a trusted or a protected network (the router's own), or when
    /// every entry is a live ban. A longer live ban stays as it is.
    pub fn impose(&mut self, now: Millis, net: Cidr, duration: Duration) -> bool {
        if !self.policy.enabled() || duration.is_zero() || self.policy.network_of(net.addr()) != net
        {
            return false;
        }
        if self.policy.is_trusted(net) || self.protects(net.addr(), net) {
            return false;
        }
        if self.map.get(&net).is_none() && self.insert(now, net).is_none() {
            return false;
        }
        let until = now + duration;
        let Some(e) = self.map.get_mut(&net) else {
            return false;
        };
        if e.until.is_none() {
            self.banned += 1;
        }
        e.until = Some(match e.until {
            Some(u) if u > until => u,
            _ => until,
        });
        e.failures = 0;
        self.next_ban_end = Some(self.next_ban_end.map_or(until, |n| n.min(until)));
        true
    }

    /// A fresh generation number.
    fn bump(&mut self) -> u32 {
        let g = self.next_generation;
        self.next_generation = self.next_generation.wrapping_add(1);
        g
    }

    /// Appends `(net, generation)` to the queue of windows, compacting it
    /// first when full (it then has room: live items are at most the entries).
    fn queue(&mut self, net: Cidr, generation: u32) {
        if self.windows.is_full() {
            for _ in 0..self.windows.len() {
                if let Some((n, g)) = self.windows.pop_front() {
                    if self.map.get(&n).is_some_and(|e| e.generation == g) {
                        let _ = self.windows.push_back((n, g));
                    }
                }
            }
        }
        let _ = self.windows.push_back((net, generation));
    }

    /// Makes room for `net` and inserts it with no failures; `None` when
    /// every entry is a live ban.
    fn insert(&mut self, now: Millis, net: Cidr) -> Option<()> {
        if self.map.is_full() && !self.evict_oldest_window(now) {
            if self.next_ban_end.is_some_and(|end| end <= now) {
                self.expire(now);
            }
            if self.map.is_full() {
                self.counters.untracked += 1;
                return None;
            }
        }
        let generation = self.bump();
        let entry = Entry {
            failures: 0,
            since: now,
            until: None,
            generation,
        };
        // Cannot fail: room was made above.
        self.map.insert(net, entry).then_some(())?;
        self.queue(net, generation);
        Some(())
    }

    /// Drops the failure count whose window began earliest (counted as
    /// evicted unless its window is over); false when there is none (every
    /// entry is banned).
    fn evict_oldest_window(&mut self, now: Millis) -> bool {
        let window = self.policy.window.as_millis() as u64;
        while let Some((net, generation)) = self.windows.pop_front() {
            let Some(e) = self.map.get(&net).copied() else {
                continue;
            };
            if e.generation != generation || e.until.is_some_and(|u| u > now) {
                // Moved on (a newer item exists) or a live ban (never evicted;
                // it is queued again when the ban is over and it fails again).
                continue;
            }
            self.map.remove(&net);
            if e.until.is_some() {
                self.banned -= 1;
            } else if now.since(e.since) < window {
                self.counters.evicted += 1;
            }
            return true;
        }
        false
    }

    /// Recounts `banned` and `next_ban_end` from the entries.
    fn recount_bans(&mut self) {
        self.banned = 0;
        self.next_ban_end = None;
        for s in self.map.iter() {
            if let Some(u) = s.value.until {
                self.banned += 1;
                self.next_ban_end = Some(self.next_ban_end.map_or(u, |n| n.min(u)));
            }
        }
    }

    /// Drops bans that are over and failure counts whose window has passed.
    pub fn expire(&mut self, now: Millis) {
        let window = self.policy.window.as_millis() as u64;
        self.map.retain(|_, e| match e.until {
            Some(u) => u > now,
            None => now.since(e.since) < window,
        });
        self.recount_bans();
    }

    /// The live bans at `now`.
    pub fn active(&self, now: Millis) -> impl Iterator<Item = Ban> + '_ {
        self.map.iter().filter_map(move |s| match s.value.until {
            Some(until) if until > now => Some(Ban { net: s.key, until }),
            _ => None,
        })
    }

    /// Networks tracked (failure counts and bans).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when no network is tracked.
    pub fn is_empty(&self) -> bool {
        self.map.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::{Ipv4Addr, Ipv6Addr};

    fn v4(n: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n))
    }

    fn table(threshold: u32, trusted: &[&str]) -> BanTable {
        BanTable::new(BanPolicy {
            threshold,
            window: Duration::from_secs(60),
            duration: Duration::from_secs(300),
            ipv6_prefix: 64,
            trusted: trusted.iter().map(|t| t.parse().unwrap()).collect(),
        })
    }

    fn fail(t: &mut BanTable, ms: u64, src: IpAddr, n: u32) -> Vec<Option<Duration>> {
        (0..n).map(|_| one(t, ms, src)).collect()
    }

    /// One failure; the ban's length if it banned.
    fn one(t: &mut BanTable, ms: u64, src: IpAddr) -> Option<Duration> {
        t.on_failure(Millis(ms), src).map(|(_, d)| d)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn net(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn threshold_within_the_window_bans_once() {
        let mut t = table(3, &[]);
        let a = v4(1);
        assert_eq!(fail(&mut t, 0, a, 2), [None, None]);
        assert!(!t.is_banned(Millis(1), a));
        assert_eq!(one(&mut t, 59_000, a), Some(Duration::from_secs(300)));
        assert!(t.is_banned(Millis(59_001), a));
        // Further failures while banned do not re-ban.
        assert_eq!(fail(&mut t, 60_000, a, 5), [None; 5]);
        let bans: Vec<Ban> = t.active(Millis(60_000)).collect();
        assert_eq!(
            bans,
            [Ban {
                net: Cidr::host(a),
                until: Millis(359_000)
            }]
        );
        assert_eq!(bans[0].remaining(Millis(60_000)), Duration::from_secs(299));
        let c = t.counters();
        assert_eq!((c.failures, c.bans, c.from_banned), (8, 1, 1));
    }

    #[test]
    fn failures_outside_the_window_start_over() {
        let mut t = table(3, &[]);
        let a = v4(1);
        assert_eq!(fail(&mut t, 0, a, 2), [None, None]);
        // 60 s after the first failure: a new window.
        assert_eq!(fail(&mut t, 60_000, a, 2), [None, None]);
        assert_eq!(one(&mut t, 61_000, a), Some(Duration::from_secs(300)));
    }

    #[test]
    fn bans_expire_and_the_source_starts_from_zero() {
        let mut t = table(2, &[]);
        let a = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));
        assert_eq!(fail(&mut t, 0, a, 2)[1], Some(Duration::from_secs(300)));
        assert!(t.is_banned(Millis(299_999), a));
        assert!(!t.is_banned(Millis(300_000), a));
        assert_eq!(t.active(Millis(300_000)).count(), 0);
        // Over (not yet expired by a tick): one failure does not ban again.
        assert_eq!(one(&mut t, 300_001, a), None);
        assert_eq!(one(&mut t, 300_002, a), Some(Duration::from_secs(300)));
        t.expire(Millis(600_002));
        assert!(t.is_empty());
    }

    #[test]
    fn mapped_addresses_are_the_ipv4_source() {
        let mut t = table(2, &[]);
        let mapped = IpAddr::V6(Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped());
        t.on_failure(Millis(0), mapped);
        assert!(t.on_failure(Millis(0), v4(1)).is_some());
        assert!(t.is_banned(Millis(1), mapped));
    }

    #[test]
    fn trusted_networks_are_never_banned() {
        let mut t = table(1, &["10.0.0.0/24", "2001:db8::/32"]);
        assert_eq!(fail(&mut t, 0, v4(5), 20), [None; 20]);
        let v6 = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 9));
        assert_eq!(one(&mut t, 0, v6), None);
        assert!(one(&mut t, 0, v4(256)).is_some());
        let c = t.counters();
        assert_eq!((c.trusted_failures, c.failures, c.bans), (21, 1, 1));
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn zero_duration_disables_bans() {
        let mut t = BanTable::new(BanPolicy {
            duration: Duration::ZERO,
            threshold: 1,
            ..BanPolicy::default()
        });
        assert_eq!(one(&mut t, 0, v4(1)), None);
        assert!(t.is_empty());
    }

    #[test]
    fn full_table_evicts_oldest_counts_never_live_bans() {
        let mut t = table(2, &[]);
        // Fill half with bans, half with single failures.
        let half = (BAN_TABLE_CAPACITY / 2) as u32;
        for n in 0..half {
            assert!(fail(&mut t, u64::from(n), v4(n), 2)[1].is_some());
        }
        for n in half..2 * half {
            t.on_failure(Millis(u64::from(n)), v4(n));
        }
        assert_eq!(t.len(), BAN_TABLE_CAPACITY);
        // A new source evicts the oldest failure count (v4(half)), not a ban.
        t.on_failure(Millis(10_000), v4(100_000));
        assert_eq!(t.counters().evicted, 1);
        assert_eq!(t.active(Millis(10_000)).count(), half as usize);
        // v4(half) starts over: one failure does not ban it.
        assert_eq!(one(&mut t, 10_001, v4(half)), None);
        // Full of bans: new sources are not tracked, bans stay.
        let mut u = table(1, &[]);
        for n in 0..BAN_TABLE_CAPACITY as u32 {
            assert!(one(&mut u, 0, v4(n)).is_some());
        }
        assert_eq!(one(&mut u, 1, v4(99_999)), None);
        assert_eq!(u.counters().untracked, 1);
        assert_eq!(u.active(Millis(1)).count(), BAN_TABLE_CAPACITY);
        // Once the bans are over, room is made by expiry.
        assert!(one(&mut u, 300_000, v4(99_999)).is_some());
        assert_eq!(u.len(), 1);
    }

    #[test]
    fn adopt_keeps_bans_except_newly_trusted() {
        let mut old = table(1, &[]);
        old.on_failure(Millis(0), v4(1));
        old.on_failure(Millis(0), v4(300));
        let mut new = table(1, &["10.0.0.0/24"]);
        new.adopt(&old);
        assert_eq!(new.banned_until(Millis(1), Cidr::host(v4(1))), None);
        assert_eq!(
            new.banned_until(Millis(1), Cidr::host(v4(300))),
            Some(Millis(300_000))
        );
        assert!(!new.is_banned(Millis(1), v4(1)));
        assert!(new.is_banned(Millis(1), v4(300)));
        assert_eq!(new.counters().bans, 2);
        // Bans turned off: nothing is kept.
        let mut off = BanTable::new(BanPolicy {
            duration: Duration::ZERO,
            ..BanPolicy::default()
        });
        off.adopt(&old);
        assert!(off.is_empty());
    }

    #[test]
    fn ipv6_failures_count_per_prefix_and_ban_the_network() {
        let mut t = table(3, &[]);
        // Three addresses of one /64: rotating does not start over.
        assert_eq!(one(&mut t, 0, ip("2001:db8:1:2::1")), None);
        assert_eq!(one(&mut t, 1, ip("2001:db8:1:2:ffff::7")), None);
        let banned = t.on_failure(Millis(2), ip("2001:db8:1:2:abcd::9"));
        assert_eq!(
            banned,
            Some((net("2001:db8:1:2::/64"), Duration::from_secs(300)))
        );
        // Any address of the /64 is now ignored; the next /64 is not.
        assert!(t.is_banned(Millis(3), ip("2001:db8:1:2:5:5:5:5")));
        assert!(!t.is_banned(Millis(3), ip("2001:db8:1:3::1")));
        assert_eq!(
            NetText(t.active(Millis(3)).next().unwrap().net).to_string(),
            "2001:db8:1:2::/64"
        );
        assert_eq!(NetText(Cidr::host(v4(1))).to_string(), "10.0.0.1");
        // Per address when configured so; IPv4 is always per address.
        let mut p = BanTable::new(BanPolicy {
            threshold: 2,
            ipv6_prefix: 128,
            ..BanPolicy::default()
        });
        assert_eq!(one(&mut p, 0, ip("2001:db8::1")), None);
        assert_eq!(one(&mut p, 0, ip("2001:db8::2")), None);
        assert_eq!(one(&mut p, 0, v4(1)), None);
        assert_eq!(one(&mut p, 0, v4(2)), None);
        assert_eq!(p.len(), 4);
    }

    #[test]
    fn link_local_multicast_and_special_sources_are_never_banned() {
        let mut t = table(1, &[]);
        let never = [
            "fe80::1",
            "febf:ffff::1",
            "ff02::1",
            "ff0e::1",
            "::",
            "::1",
            "169.254.1.1",
            "224.0.0.1",
            "239.255.255.250",
            "255.255.255.255",
            "0.0.0.0",
            "127.0.0.1",
            "127.9.9.9",
            "::ffff:169.254.0.1",
        ];
        for a in never {
            assert!(is_never_banned_address(ip(a)), "{a}");
            assert_eq!(fail(&mut t, 0, ip(a), 5), [None; 5], "{a}");
        }
        assert_eq!(t.counters().protected_failures, 5 * never.len() as u64);
        assert_eq!((t.counters().failures, t.len()), (0, 0));
        for a in [
            "fec0::1",
            "2001:db8::1",
            "169.255.0.1",
            "192.0.2.255",
            "223.0.0.1",
        ] {
            assert!(!is_never_banned_address(ip(a)), "{a}");
        }
    }

    #[test]
    fn the_routers_own_networks_and_gateways_are_never_banned() {
        let mut t = table(1, &[]);
        let mut p = ProtectedNets::new();
        // A default gateway, an own address, an on-link subnet of each family.
        for n in [
            "203.0.113.1",
            "198.51.100.2",
            "192.168.1.0/24",
            "2001:db8:5::1",
        ] {
            assert!(p.add(net(n)));
        }
        // Covered already: not stored twice.
        assert!(p.add(net("192.168.1.7")));
        assert_eq!(p.as_slice().len(), 4);
        t.set_protected(Millis(0), p, |_| panic!("nothing was banned"));
        for a in ["203.0.113.1", "198.51.100.2", "192.168.1.99"] {
            assert_eq!(fail(&mut t, 0, ip(a), 3), [None; 3], "{a}");
        }
        // The /64 holding the router's IPv6 address is never banned as a
        // whole, though the address itself never failed.
        assert_eq!(fail(&mut t, 0, ip("2001:db8:5::77"), 3), [None; 3]);
        assert_eq!(t.counters().protected_failures, 12);
        // Next door is banned as usual.
        assert!(one(&mut t, 0, ip("203.0.113.2")).is_some());
        assert!(one(&mut t, 0, ip("2001:db8:6::1")).is_some());
        assert_eq!(t.counters().bans, 2);
    }

    #[test]
    fn newly_protected_networks_lose_their_bans() {
        let mut t = table(1, &[]);
        assert!(one(&mut t, 0, ip("203.0.113.1")).is_some());
        assert!(one(&mut t, 0, ip("2001:db8:9::5")).is_some());
        assert!(one(&mut t, 0, v4(1)).is_some());
        // A PPPoE reconnect: the new default gateway was banned before.
        let mut p = ProtectedNets::new();
        p.add(net("203.0.113.1"));
        p.add(net("2001:db8:9::1"));
        let mut lifted = Vec::new();
        t.set_protected(Millis(1), p, |n| lifted.push(n));
        lifted.sort_unstable_by_key(|n| n.len());
        assert_eq!(lifted, [net("203.0.113.1/32"), net("2001:db8:9::/64")]);
        assert!(!t.is_banned(Millis(2), ip("203.0.113.1")));
        assert!(t.is_banned(Millis(2), v4(1)));
        assert_eq!(t.active(Millis(2)).count(), 1);
        // A reload's new table keeps the networks learnt from the kernel.
        let mut new = table(1, &[]);
        new.adopt(&t);
        assert_eq!(new.protected(), t.protected());
        assert_eq!(one(&mut new, 3, ip("203.0.113.1")), None);
        assert_eq!(new.counters().protected_failures, 1);
    }

    #[test]
    fn a_network_overlapping_a_trusted_one_is_never_banned() {
        let mut t = table(1, &["2001:db8:1:2::5/128"]);
        assert_eq!(one(&mut t, 0, ip("2001:db8:1:2::6")), None);
        assert_eq!(t.counters().trusted_failures, 1);
    }

    #[test]
    fn protected_list_has_a_fixed_capacity() {
        let mut p = ProtectedNets::new();
        for n in 0..PROTECTED_CAPACITY as u32 {
            assert!(p.add(Cidr::host(v4(n))));
        }
        assert!(!p.add(Cidr::host(v4(100_000))));
        assert!(p.add(Cidr::host(v4(3))), "already covered");
        // IPv4-mapped networks are stored as IPv4.
        let mut q = ProtectedNets::new();
        q.add(net("::ffff:192.0.2.0/120"));
        assert_eq!(q.as_slice(), [net("192.0.2.0/24")]);
    }

    #[test]
    fn adopt_drops_ipv6_networks_of_another_prefix_length() {
        let mut old = table(1, &[]);
        assert!(one(&mut old, 0, ip("2001:db8::1")).is_some());
        assert!(one(&mut old, 0, v4(1)).is_some());
        let mut new = BanTable::new(BanPolicy {
            threshold: 1,
            ipv6_prefix: 48,
            ..BanPolicy::default()
        });
        new.adopt(&old);
        assert!(new.banned_until(Millis(1), net("2001:db8::/64")).is_none());
        assert!(new.banned_until(Millis(1), Cidr::host(v4(1))).is_some());
        assert!(!new.is_banned(Millis(1), ip("2001:db8::1")));
    }

    #[test]
    fn a_flood_of_fresh_sources_keeps_every_live_ban_and_the_queue_bounded() {
        // Threshold 2: a quarter of the sources fail twice and are banned;
        // the rest pass through a full table, evicting the oldest windows.
        let mut t = table(2, &[]);
        let mut banned = Vec::new();
        for n in 0..200_000u32 {
            let now = u64::from(n) / 10;
            if n % 4 == 0 && banned.len() < BAN_TABLE_CAPACITY / 2 {
                let src = IpAddr::V6(Ipv6Addr::from(u128::from(n + 1) << 64));
                assert!(fail(&mut t, now, src, 2)[1].is_some());
                banned.push((src, now + 300_000));
            } else {
                one(&mut t, now, v4(n));
            }
            assert!(t.len() <= BAN_TABLE_CAPACITY);
            assert!(t.windows.len() <= WINDOW_QUEUE);
            if n % 1000 == 0 {
                for &(src, until) in &banned {
                    assert_eq!(t.is_banned(Millis(now), src), until > now, "{src}");
                }
            }
        }
        let c = t.counters();
        assert_eq!(c.bans, BAN_TABLE_CAPACITY as u64 / 2);
        assert!(c.evicted > 100_000 && c.untracked == 0, "{c:?}");
    }

    #[test]
    fn a_peer_ban_is_imposed_under_the_own_policy() {
        let mut t = table(3, &["10.9.0.0/16"]);
        let host = Cidr::host(v4(7));
        assert!(t.impose(Millis(1000), host, Duration::from_secs(30)));
        assert_eq!(t.banned_until(Millis(1000), host), Some(Millis(31_000)));
        assert!(t.is_banned(Millis(2000), v4(7)));
        // A shorter ban from the peer leaves the longer one.
        assert!(t.impose(Millis(2000), host, Duration::from_secs(1)));
        assert_eq!(t.banned_until(Millis(2000), host), Some(Millis(31_000)));
        assert_eq!(t.active(Millis(2000)).count(), 1);
        // Not a network this policy bans, trusted, or zero: refused.
        let wide = Cidr::new(ip("10.1.0.0"), 16).unwrap();
        assert!(!t.impose(Millis(1000), wide, Duration::from_secs(30)));
        let v6_48 = Cidr::new(ip("2001:db8::"), 48).unwrap();
        assert!(!t.impose(Millis(1000), v6_48, Duration::from_secs(30)));
        let v6_64 = Cidr::new(ip("2001:db8::"), 64).unwrap();
        assert!(t.impose(Millis(1000), v6_64, Duration::from_secs(30)));
        let trusted = Cidr::host(ip("10.9.1.1"));
        assert!(!t.impose(Millis(1000), trusted, Duration::from_secs(30)));
        assert!(!t.impose(Millis(1000), Cidr::host(v4(8)), Duration::ZERO));
        // The router's own networks are never banned, not even by a peer.
        let mut own = ProtectedNets::new();
        own.add(Cidr::new(ip("192.168.1.0"), 24).unwrap());
        t.set_protected(Millis(1000), own, |_| {});
        assert!(!t.impose(
            Millis(1000),
            Cidr::host(ip("192.168.1.5")),
            Duration::from_secs(30)
        ));
        assert!(!t.impose(
            Millis(1000),
            Cidr::host(ip("127.0.0.1")),
            Duration::from_secs(30)
        ));
        // A ban from a peer ends like any other.
        t.expire(Millis(40_000));
        assert!(!t.is_banned(Millis(40_000), v4(7)));
    }
}
