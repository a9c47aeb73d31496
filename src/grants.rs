//! Live grants as the daemon knows them.
//!
//! The kernel holds the real grants (set elements with timeouts); this table
//! mirrors them so that `postern status` can show them and the daemon can
//! re-apply them, with their remaining time, after the firewall was restarted
//! (`fw4 restart` drops every set). Fixed capacity; when full, the grant that
//! expires soonest is forgotten here (the kernel still closes it on time) and
//! counted. Sans-IO: time is passed in.

use core::net::IpAddr;
use core::time::Duration;

use static_assertions::const_assert;

use crate::fixed_vec::FixedVec;

use crate::firewall::Grant;
use crate::port::PortSpec;
use crate::time::Millis;

/// Most grants mirrored at once.
pub const GRANT_TABLE_CAPACITY: usize = 1024;
/// Longest origin name kept (longer names are cut at a character boundary).
pub const ORIGIN_MAX: usize = 32;

const_assert!(GRANT_TABLE_CAPACITY >= 16 && GRANT_TABLE_CAPACITY <= 65_536);

/// One grant the daemon made that has not expired or been revoked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveGrant {
    /// The address allowed in.
    pub addr: IpAddr,
    /// The port it may open new connections to.
    pub port: PortSpec,
    /// When the kernel removes it (monotonic).
    pub expires: Millis,
    /// What granted it: a sequence or client name.
    pub origin: heapless::String<ORIGIN_MAX>,
}

impl LiveGrant {
    /// Time left at `now` (zero once expired).
    pub fn remaining(&self, now: Millis) -> Duration {
        Duration::from_millis(self.expires.since(now))
    }
}

/// The fixed-capacity mirror of live grants.
#[derive(Debug, Default)]
pub struct GrantTable {
    entries: FixedVec<LiveGrant, GRANT_TABLE_CAPACITY>,
    forgotten: u64,
}

/// `origin` cut to at most [`ORIGIN_MAX`] bytes at a character boundary.
pub(crate) fn cut(origin: &str) -> heapless::String<ORIGIN_MAX> {
    let mut end = origin.len().min(ORIGIN_MAX);
    while !origin.is_char_boundary(end) {
        end -= 1;
    }
    let mut s = heapless::String::new();
    // Cannot fail: at most ORIGIN_MAX bytes.
    let _ = s.push_str(&origin[..end]);
    s
}

impl GrantTable {
    /// An empty table.
    pub fn new() -> GrantTable {
        GrantTable::default()
    }

    /// Records a grant made at `now` (replacing one for the same address and port).
    pub fn record(&mut self, now: Millis, grant: &Grant, origin: &str) {
        self.remove(grant.addr, grant.port);
        let live = LiveGrant {
            addr: grant.addr,
            port: grant.port,
            expires: now + grant.timeout,
            origin: cut(origin),
        };
        if self.entries.is_full() {
            self.expire(now);
        }
        if self.entries.is_full() {
            if let Some(i) = (0..self.entries.len()).min_by_key(|&i| self.entries[i].expires) {
                self.entries.swap_remove(i);
                self.forgotten += 1;
            }
        }
        // Cannot fail: room was made above.
        let _ = self.entries.push(live);
    }

    /// Forgets the grant of `addr` to `port`; true if there was one.
    pub fn remove(&mut self, addr: IpAddr, port: PortSpec) -> bool {
        match self
            .entries
            .iter()
            .position(|g| g.addr == addr && g.port == port)
        {
            Some(i) => {
                self.entries.swap_remove(i);
                true
            }
            None => false,
        }
    }

    /// Takes out the grants whose origin `keep` refuses (a reload removed
    /// the sequence or client that made them).
    pub fn take_unless(&mut self, keep: impl Fn(&str) -> bool) -> Vec<LiveGrant> {
        let mut gone = Vec::new();
        let mut i = 0;
        while i < self.entries.len() {
            if keep(&self.entries[i].origin) {
                i += 1;
            } else {
                gone.push(self.entries.swap_remove(i));
            }
        }
        gone
    }

    /// Drops grants whose time is up.
    pub fn expire(&mut self, now: Millis) {
        self.entries.retain(|g| g.expires > now);
    }

    /// The live grants, soonest expiry first.
    pub fn sorted(&self) -> heapless::Vec<&LiveGrant, GRANT_TABLE_CAPACITY> {
        let mut v: heapless::Vec<&LiveGrant, GRANT_TABLE_CAPACITY> = self.entries.iter().collect();
        v.sort_unstable_by_key(|g| (g.expires, g.addr, g.port));
        v
    }

    /// Grants to re-apply at `now`, each with its remaining time (expired ones skipped).
    pub fn to_reapply(&self, now: Millis) -> impl Iterator<Item = (Grant, &str)> + '_ {
        self.entries
            .iter()
            .filter(move |g| g.expires > now)
            .map(move |g| {
                let grant = Grant {
                    addr: g.addr,
                    port: g.port,
                    timeout: g.remaining(now),
                };
                (grant, g.origin.as_str())
            })
    }

    /// Number of live grants recorded.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no grant is recorded.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Grants forgotten because the table was full.
    pub fn forgotten(&self) -> u64 {
        self.forgotten
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;

    fn grant(n: u8, port: u16, secs: u64) -> Grant {
        Grant {
            addr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, n)),
            port: PortSpec::tcp(port),
            timeout: Duration::from_secs(secs),
        }
    }

    #[test]
    fn records_replaces_removes_and_expires() {
        let mut t = GrantTable::new();
        t.record(Millis(0), &grant(1, 22, 30), "ssh");
        t.record(Millis(0), &grant(2, 22, 10), "laptop");
        t.record(Millis(5_000), &grant(1, 22, 30), "ssh"); // re-grant: one entry, later expiry
        assert_eq!(t.len(), 2);
        {
            let s = t.sorted();
            assert_eq!(
                (s[0].origin.as_str(), s[0].expires),
                ("laptop", Millis(10_000))
            );
            assert_eq!(
                (s[1].origin.as_str(), s[1].expires),
                ("ssh", Millis(35_000))
            );
        }
        assert!(t.remove(grant(2, 22, 0).addr, PortSpec::tcp(22)));
        assert!(!t.remove(grant(2, 22, 0).addr, PortSpec::tcp(22)));
        t.expire(Millis(35_000));
        assert!(t.is_empty());
    }

    #[test]
    fn reapply_carries_remaining_time() {
        let mut t = GrantTable::new();
        t.record(Millis(1_000), &grant(1, 22, 30), "ssh");
        t.record(Millis(1_000), &grant(1, 80, 2), "web");
        let again: Vec<_> = t.to_reapply(Millis(21_000)).collect();
        assert_eq!(again.len(), 1, "the 2 s grant has run out");
        assert_eq!(again[0].0.timeout, Duration::from_secs(10));
        assert_eq!(again[0].1, "ssh");
    }

    #[test]
    fn full_table_forgets_the_soonest_expiry() {
        let mut t = GrantTable::new();
        for i in 0..GRANT_TABLE_CAPACITY as u16 {
            t.record(Millis(0), &grant(1, i + 1, 100 + u64::from(i)), "x");
        }
        t.record(Millis(0), &grant(9, 1, 1000), "new");
        assert_eq!(t.len(), GRANT_TABLE_CAPACITY);
        assert_eq!(t.forgotten(), 1);
        assert!(t
            .sorted()
            .iter()
            .all(|g| g.port != PortSpec::tcp(1) || g.origin == "new"));
        // Expired entries go before anything live is forgotten.
        t.record(Millis(200_000), &grant(9, 2, 1000), "later");
        assert_eq!(t.forgotten(), 1);
    }

    #[test]
    fn long_origins_are_cut_at_a_char_boundary() {
        let mut t = GrantTable::new();
        let name = "é".repeat(40);
        t.record(Millis(0), &grant(1, 22, 1), &name);
        let o = &t.sorted()[0].origin;
        assert!(o.len() <= ORIGIN_MAX && o.chars().all(|c| c == 'é'));
    }
}
