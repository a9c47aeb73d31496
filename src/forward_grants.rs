//! Live forward grants as the daemon knows them.
//!
//! The kernel holds the real state (a DNAT map element and a forward-accept
//! set element, both with timeouts); this table mirrors them so that `postern
//! status` can show them, the daemon can re-apply them with their remaining
//! time after a firewall restart, and a reload can withdraw the grants of
//! forwards it removed or changed. Fixed capacity; when full, the grant that
//! expires soonest is forgotten here (the kernel still ends it on time) and
//! counted. Sans-IO: time is passed in.

use core::net::IpAddr;
use core::time::Duration;

use static_assertions::const_assert;

use crate::fixed_vec::FixedVec;

use crate::config::Forward;
use crate::grants::{cut, ORIGIN_MAX};
use crate::time::Millis;

/// Most forward grants mirrored at once.
pub const FORWARD_TABLE_CAPACITY: usize = 256;

const_assert!(FORWARD_TABLE_CAPACITY >= 16 && FORWARD_TABLE_CAPACITY <= 65_536);

/// One source let through one forward until `expires`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveForward {
    /// The address let through.
    pub addr: IpAddr,
    /// The forward's name.
    pub name: heapless::String<ORIGIN_MAX>,
    /// What the forward did when it was granted.
    pub forward: Forward,
    /// When the kernel removes it (monotonic).
    pub expires: Millis,
    /// The client that asked.
    pub client: heapless::String<ORIGIN_MAX>,
}

impl LiveForward {
    /// Time left at `now` (zero once expired).
    pub fn remaining(&self, now: Millis) -> Duration {
        Duration::from_millis(self.expires.since(now))
    }
}

/// The fixed-capacity mirror of live forward grants.
#[derive(Debug, Default)]
pub struct ForwardTable {
    entries: FixedVec<LiveForward, FORWARD_TABLE_CAPACITY>,
    forgotten: u64,
}

impl ForwardTable {
    /// An empty table.
    pub fn new() -> ForwardTable {
        ForwardTable::default()
    }

    /// Records a grant of `forward` (named `name`) to `addr` made at `now`
    /// for `timeout`, replacing one for the same address and forward name.
    pub fn record(
        &mut self,
        now: Millis,
        addr: IpAddr,
        name: &str,
        forward: Forward,
        timeout: Duration,
        client: &str,
    ) {
        self.remove(addr, name);
        let live = LiveForward {
            addr,
            name: cut(name),
            forward,
            expires: now + timeout,
            client: cut(client),
        };
        if self.entries.is_full() {
            self.expire(now);
        }
        if self.entries.is_full() {
            // Forget the one that ends soonest: the kernel still ends it.
            if let Some(i) = (0..self.entries.len()).min_by_key(|&i| self.entries[i].expires) {
                self.entries.swap_remove(i);
                self.forgotten += 1;
            }
        }
        // Room was made above.
        let _ = self.entries.push(live);
    }

    /// Forgets the grant of `name` to `addr`; true if there was one.
    pub fn remove(&mut self, addr: IpAddr, name: &str) -> bool {
        match self
            .entries
            .iter()
            .position(|e| e.addr == addr && e.name == name)
        {
            Some(i) => {
                self.entries.swap_remove(i);
                true
            }
            None => false,
        }
    }

    /// Drops the grants that expired by `now`.
    pub fn expire(&mut self, now: Millis) {
        self.entries.retain(|e| e.expires > now);
    }

    /// Removes and returns the live grants that `keep` rejects (after a
    /// reload: forwards that are gone or changed).
    pub fn take_unless(&mut self, mut keep: impl FnMut(&LiveForward) -> bool) -> Vec<LiveForward> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < self.entries.len() {
            if keep(&self.entries[i]) {
                i += 1;
            } else {
                out.push(self.entries.swap_remove(i));
            }
        }
        out
    }

    /// Live grants at `now`, soonest expiry first.
    pub fn live(&self, now: Millis) -> Vec<&LiveForward> {
        let mut v: Vec<&LiveForward> = self.entries.iter().filter(|e| e.expires > now).collect();
        v.sort_unstable_by_key(|e| (e.expires, e.addr));
        v
    }

    /// How many grants were forgotten because the table was full.
    pub fn forgotten(&self) -> u64 {
        self.forgotten
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::port::L4Proto;
    use core::net::Ipv4Addr;

    fn fwd(port: u16) -> Forward {
        Forward {
            enabled: true,
            proto: L4Proto::Tcp,
            port,
            to4: Some(Ipv4Addr::new(10, 0, 0, 5)),
            to6: None,
            to_port: 22,
        }
    }

    fn ip(i: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i))
    }

    #[test]
    fn records_replaces_and_expires() {
        let mut t = ForwardTable::new();
        let s = Duration::from_secs;
        t.record(Millis(0), ip(1), "ssh", fwd(2222), s(10), "phone");
        t.record(Millis(0), ip(2), "ssh", fwd(2222), s(5), "phone");
        t.record(Millis(1000), ip(1), "ssh", fwd(2222), s(10), "phone");
        let live = t.live(Millis(1000));
        assert_eq!(live.len(), 2, "a re-grant replaces");
        assert_eq!(live[0].addr, ip(2), "soonest first");
        assert_eq!(live[1].remaining(Millis(1000)), s(10));
        t.expire(Millis(5000));
        assert_eq!(t.live(Millis(5000)).len(), 1);
        assert!(t.remove(ip(1), "ssh"));
        assert!(!t.remove(ip(1), "ssh"));
    }

    #[test]
    fn full_table_forgets_the_soonest_and_counts() {
        let mut t = ForwardTable::new();
        for i in 0..FORWARD_TABLE_CAPACITY as u32 {
            let secs = Duration::from_secs(100 + u64::from(i));
            t.record(Millis(0), ip(i), "f", fwd(80), secs, "c");
        }
        t.record(
            Millis(0),
            ip(99_999),
            "f",
            fwd(80),
            Duration::from_secs(500),
            "c",
        );
        assert_eq!(t.forgotten(), 1);
        let live = t.live(Millis(0));
        assert_eq!(live.len(), FORWARD_TABLE_CAPACITY);
        assert!(live.iter().all(|e| e.addr != ip(0)), "the soonest went");
    }

    #[test]
    fn take_unless_withdraws_changed_forwards() {
        let mut t = ForwardTable::new();
        t.record(Millis(0), ip(1), "a", fwd(80), Duration::from_secs(9), "c");
        t.record(Millis(0), ip(2), "b", fwd(81), Duration::from_secs(9), "c");
        let gone = t.take_unless(|e| e.name == "a" && e.forward == fwd(80));
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].name, "b");
        assert_eq!(t.live(Millis(0)).len(), 1);
    }
}
