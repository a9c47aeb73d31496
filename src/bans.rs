//! Brute-force bans: failures counted per source, a ban past a threshold.
//!
//! Owns the per-source failure counts and the bans the engine decided, in one
//! fixed-capacity table, and the policy (`ban_threshold` failures within
//! `ban_window` → banned for `ban_duration`; `list trusted` networks never).
//! A failure is an SPA packet refused for authentication, replay or its
//! timestamp, or a wrong knock step (any knock mode). Sans-IO: time is an
//! argument; the kernel enforces a ban (a set element with a timeout, see
//! [`crate::firewall::Backend::ban`]); this table only decides and remembers,
//! so that the engine ignores a banned source's knocks and SPA packets (the
//! capture socket sees packets before the firewall drops them) and `postern
//! status` can list bans.
//!
//! **Spoofing trade-off.** A failure needs no authentication, so whoever can
//! forge a source address can get that address banned (UDP SPA packets and
//! knock SYNs are trivially spoofed). Counting them anyway is what makes a
//! guessing attack visible and slow; the cost is that an attacker who knows a
//! legitimate user's address can lock it out for `ban_duration`. Hence bans are
//! short by default ([`DEFAULT_BAN_DURATION`]), `ban_duration 0` turns them
//! off, and `list trusted` exempts the networks the owner comes from. IPv6
//! sources are banned per address (/128): a host with a /64 can rotate.
//!
//! **When the table is full** ([`BAN_TABLE_CAPACITY`] sources): expired
//! entries are dropped first; then the failure counter of the source whose
//! window began earliest (never a live ban) is evicted and counted; if every
//! entry is a live ban, the new source's failure is not tracked (counted as
//! `untracked`). Live bans are therefore never forgotten early, and a flood of
//! spoofed sources can at worst reset other sources' failure counts.

use core::net::IpAddr;
use core::time::Duration;

use static_assertions::const_assert;

use crate::fixed_vec::FixedVec;

use crate::cidr::Cidr;
use crate::config::Main;
use crate::time::Millis;

/// Most sources tracked at once (failure counts and live bans together).
pub const BAN_TABLE_CAPACITY: usize = 512;
/// Default failures within the window that cause a ban.
pub const DEFAULT_BAN_THRESHOLD: u32 = 10;
/// Default window over which failures are counted.
pub const DEFAULT_BAN_WINDOW: Duration = Duration::from_secs(60);
/// Default ban length: short, since sources can be spoofed (see module docs).
pub const DEFAULT_BAN_DURATION: Duration = Duration::from_secs(300);

const_assert!(BAN_TABLE_CAPACITY >= 16 && BAN_TABLE_CAPACITY <= 4096);

/// When a source is banned and for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BanPolicy {
    /// Failures within `window` that ban a source (at least 1).
    pub threshold: u32,
    /// How long failures are counted from a source's first one.
    pub window: Duration,
    /// How long a ban lasts; zero disables bans.
    pub duration: Duration,
    /// Networks never banned (their failures are counted apart).
    pub trusted: Vec<Cidr>,
}

impl Default for BanPolicy {
    fn default() -> BanPolicy {
        BanPolicy {
            threshold: DEFAULT_BAN_THRESHOLD,
            window: DEFAULT_BAN_WINDOW,
            duration: DEFAULT_BAN_DURATION,
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
            trusted: m.trusted.clone(),
        }
    }

    /// False when `ban_duration` is 0.
    pub fn enabled(&self) -> bool {
        !self.duration.is_zero()
    }

    /// Whether `addr` is in a trusted network.
    pub fn is_trusted(&self, addr: IpAddr) -> bool {
        self.trusted.iter().any(|n| n.contains(addr))
    }
}

/// What the ban table has counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BanCounters {
    /// Failures counted against a source.
    pub failures: u64,
    /// Failures from trusted networks (never counted towards a ban).
    pub trusted_failures: u64,
    /// Bans decided.
    pub bans: u64,
    /// Packets ignored because their source was banned.
    pub from_banned: u64,
    /// Failure counts evicted to make room (table full).
    pub evicted: u64,
    /// Failures not tracked because the table was full of live bans.
    pub untracked: u64,
}

/// One source: its failures in the current window, and its ban if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    addr: IpAddr,
    failures: u32,
    /// Start of the current counting window.
    since: Millis,
    /// End of the ban, when banned.
    until: Option<Millis>,
}

/// A live ban, for `postern status` and for re-applying after a firewall restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ban {
    /// The banned source.
    pub addr: IpAddr,
    /// When the ban ends (monotonic).
    pub until: Millis,
}

impl Ban {
    /// Time left at `now` (zero once over).
    pub fn remaining(&self, now: Millis) -> Duration {
        Duration::from_millis(self.until.since(now))
    }
}

/// The fixed-capacity failure and ban table (see the module docs).
#[derive(Debug)]
pub struct BanTable {
    policy: BanPolicy,
    entries: FixedVec<Entry, BAN_TABLE_CAPACITY>,
    /// Entries with a ban (possibly over, until the next tick): lets
    /// [`BanTable::is_banned`] skip the scan when there are none.
    banned: usize,
    counters: BanCounters,
}

impl BanTable {
    /// An empty table with `policy`.
    pub fn new(policy: BanPolicy) -> BanTable {
        BanTable {
            policy,
            entries: FixedVec::new(),
            banned: 0,
            counters: BanCounters::default(),
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> &BanPolicy {
        &self.policy
    }

    /// Counters so far.
    pub fn counters(&self) -> BanCounters {
        self.counters
    }

    /// Takes over the entries and counters of `old` (the table of the engine a
    /// reload replaces), keeping this table's policy: newly trusted sources
    /// are dropped, and everything when bans are now off (the caller lifts
    /// their kernel bans: see [`BanTable::banned_until`]).
    pub fn adopt(&mut self, old: &BanTable) {
        self.counters = old.counters;
        self.entries.clear();
        for e in &old.entries {
            if self.policy.enabled() && !self.policy.is_trusted(e.addr) {
                // Cannot fail: same capacity.
                let _ = self.entries.push(*e);
            }
        }
        self.banned = self.entries.iter().filter(|e| e.until.is_some()).count();
    }

    /// When the ban of `src` ends, if it is banned at `now` (nothing counted).
    pub fn banned_until(&self, now: Millis, src: IpAddr) -> Option<Millis> {
        let src = src.to_canonical();
        self.entries
            .iter()
            .find(|e| e.addr == src)
            .and_then(|e| e.until)
            .filter(|&u| u > now)
    }

    /// True when `src` is banned at `now` (the packet is counted as ignored).
    pub fn is_banned(&mut self, now: Millis, src: IpAddr) -> bool {
        if self.banned == 0 {
            return false;
        }
        let src = src.to_canonical();
        let hit = self
            .entries
            .iter()
            .any(|e| e.addr == src && e.until.is_some_and(|u| u > now));
        if hit {
            self.counters.from_banned += 1;
        }
        hit
    }

    /// Counts one failure of `src` at `now`; `Some(ban length)` when this
    /// failure bans it (once per ban: a banned source's packets are ignored).
    pub fn on_failure(&mut self, now: Millis, src: IpAddr) -> Option<Duration> {
        if !self.policy.enabled() {
            return None;
        }
        let src = src.to_canonical();
        if self.policy.is_trusted(src) {
            self.counters.trusted_failures += 1;
            return None;
        }
        self.counters.failures += 1;
        let i = match self.entries.iter().position(|e| e.addr == src) {
            Some(i) => i,
            None => self.insert(now, src)?,
        };
        let (window, threshold, duration) = (
            self.policy.window,
            self.policy.threshold,
            self.policy.duration,
        );
        let e = &mut self.entries[i];
        if e.until.is_some_and(|u| u > now) {
            return None;
        }
        if e.until.take().is_some() {
            self.banned -= 1;
        }
        if now.since(e.since) >= window.as_millis() as u64 {
            e.failures = 0;
            e.since = now;
        }
        e.failures = e.failures.saturating_add(1);
        if e.failures < threshold {
            return None;
        }
        e.failures = 0;
        e.until = Some(now + duration);
        self.banned += 1;
        self.counters.bans += 1;
        Some(duration)
    }

    /// Makes room for `src` and inserts it with no failures; its index, or
    /// `None` when every entry is a live ban.
    fn insert(&mut self, now: Millis, src: IpAddr) -> Option<usize> {
        if self.entries.is_full() {
            self.expire(now);
        }
        if self.entries.is_full() {
            let oldest = (0..self.entries.len())
                .filter(|&i| self.entries[i].until.is_none())
                .min_by_key(|&i| self.entries[i].since);
            match oldest {
                Some(i) => {
                    self.entries.swap_remove(i);
                    self.counters.evicted += 1;
                }
                None => {
                    self.counters.untracked += 1;
                    return None;
                }
            }
        }
        let entry = Entry {
            addr: src,
            failures: 0,
            since: now,
            until: None,
        };
        // Cannot fail: room was made above.
        self.entries.push(entry).ok()?;
        Some(self.entries.len() - 1)
    }

    /// Drops bans that are over and failure counts whose window has passed.
    pub fn expire(&mut self, now: Millis) {
        let window = self.policy.window.as_millis() as u64;
        self.entries.retain(|e| match e.until {
            Some(u) => u > now,
            None => now.since(e.since) < window,
        });
        self.banned = self.entries.iter().filter(|e| e.until.is_some()).count();
    }

    /// The live bans at `now`.
    pub fn active(&self, now: Millis) -> impl Iterator<Item = Ban> + '_ {
        self.entries.iter().filter_map(move |e| match e.until {
            Some(until) if until > now => Some(Ban {
                addr: e.addr,
                until,
            }),
            _ => None,
        })
    }

    /// Sources tracked (failure counts and bans).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no source is tracked.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
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
            trusted: trusted.iter().map(|t| t.parse().unwrap()).collect(),
        })
    }

    fn fail(t: &mut BanTable, ms: u64, src: IpAddr, n: u32) -> Vec<Option<Duration>> {
        (0..n).map(|_| t.on_failure(Millis(ms), src)).collect()
    }

    #[test]
    fn threshold_within_the_window_bans_once() {
        let mut t = table(3, &[]);
        let a = v4(1);
        assert_eq!(fail(&mut t, 0, a, 2), [None, None]);
        assert!(!t.is_banned(Millis(1), a));
        assert_eq!(
            t.on_failure(Millis(59_000), a),
            Some(Duration::from_secs(300))
        );
        assert!(t.is_banned(Millis(59_001), a));
        // Further failures while banned do not re-ban.
        assert_eq!(fail(&mut t, 60_000, a, 5), [None; 5]);
        let bans: Vec<Ban> = t.active(Millis(60_000)).collect();
        assert_eq!(
            bans,
            [Ban {
                addr: a,
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
        assert_eq!(
            t.on_failure(Millis(61_000), a),
            Some(Duration::from_secs(300))
        );
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
        assert_eq!(t.on_failure(Millis(300_001), a), None);
        assert_eq!(
            t.on_failure(Millis(300_002), a),
            Some(Duration::from_secs(300))
        );
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
        assert_eq!(t.on_failure(Millis(0), v6), None);
        assert!(t.on_failure(Millis(0), v4(256)).is_some());
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
        assert_eq!(t.on_failure(Millis(0), v4(1)), None);
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
        assert_eq!(t.on_failure(Millis(10_001), v4(half)), None);
        // Full of bans: new sources are not tracked, bans stay.
        let mut u = table(1, &[]);
        for n in 0..BAN_TABLE_CAPACITY as u32 {
            assert!(u.on_failure(Millis(0), v4(n)).is_some());
        }
        assert_eq!(u.on_failure(Millis(1), v4(99_999)), None);
        assert_eq!(u.counters().untracked, 1);
        assert_eq!(u.active(Millis(1)).count(), BAN_TABLE_CAPACITY);
        // Once the bans are over, room is made by expiry.
        assert!(u.on_failure(Millis(300_000), v4(99_999)).is_some());
        assert_eq!(u.len(), 1);
    }

    #[test]
    fn adopt_keeps_bans_except_newly_trusted() {
        let mut old = table(1, &[]);
        old.on_failure(Millis(0), v4(1));
        old.on_failure(Millis(0), v4(300));
        let mut new = table(1, &["10.0.0.0/24"]);
        new.adopt(&old);
        assert_eq!(new.banned_until(Millis(1), v4(1)), None);
        assert_eq!(new.banned_until(Millis(1), v4(300)), Some(Millis(300_000)));
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
}
