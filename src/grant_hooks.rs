//! Open and close hooks of grants, sans-IO: which `config command` runs,
//! with which environment, when a hooked grant opens and when it ends.
//!
//! A sequence or client with `option on_open`/`on_close` has its grants
//! tracked here, one entry per (address, origin): its ports, when it
//! expires and the command to run at its end. Opening runs `on_open` once;
//! opening again while the grant is live (a refresh) extends it and runs
//! nothing, so every `on_open` is followed by exactly one `on_close`. The
//! grant ends (and `on_close` runs) when the daemon's own clock passes its
//! expiry ([`HookTable::expire`]), when a close request or revoke removes its
//! last port ([`HookTable::close`]), or when a reload removes its origin
//! ([`HookTable::withdraw`]). Fixed capacity; when full, the grant that
//! expires soonest ends here early (its `on_close` runs, the kernel keeps
//! the grant until its timeout), and is counted. Time is passed in.

use core::fmt::Write as _;
use core::net::IpAddr;
use core::time::Duration;

use static_assertions::const_assert;

use crate::config::Hooks;
use crate::fixed_vec::FixedVec;
use crate::grants::{cut, ORIGIN_MAX};
use crate::port::PortSpec;
use crate::time::Millis;

/// Most hooked grants tracked at once.
pub const HOOKED_GRANTS: usize = 256;
/// Most ports one hooked grant lists (an SPA request's most).
pub const HOOK_PORTS: usize = crate::spa::request::MAX_PORTS;
/// Longest command name (`config command` names are at most 32 bytes).
pub const COMMAND_MAX: usize = 32;

const_assert!(HOOKED_GRANTS >= 16 && HOOKED_GRANTS <= 4096);

/// Whether a grant opened or ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookEvent {
    /// `on_open`: the grant was made.
    Open,
    /// `on_close`: the grant ended.
    Close,
}

impl HookEvent {
    /// `open` or `close` (`POSTERN_EVENT`).
    pub fn as_str(self) -> &'static str {
        match self {
            HookEvent::Open => "open",
            HookEvent::Close => "close",
        }
    }

    /// The inverse of [`HookEvent::as_str`].
    pub fn parse(s: &str) -> Option<HookEvent> {
        [HookEvent::Open, HookEvent::Close]
            .into_iter()
            .find(|e| e.as_str() == s)
    }
}

/// Why a hook runs (`POSTERN_REASON`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookReason {
    /// The grant was made (`on_open`).
    Granted,
    /// Its time ran out.
    Expired,
    /// A close request (a close sequence, SPA `--close`, `postern revoke`)
    /// removed its last port.
    Closed,
    /// A reload removed or disabled the sequence or client that made it.
    Removed,
    /// The table of hooked grants was full: the grant that expires soonest
    /// was let go (the kernel still holds it until its timeout).
    Evicted,
}

impl HookReason {
    /// The word in `POSTERN_REASON`.
    pub fn as_str(self) -> &'static str {
        match self {
            HookReason::Granted => "granted",
            HookReason::Expired => "expired",
            HookReason::Closed => "closed",
            HookReason::Removed => "removed",
            HookReason::Evicted => "evicted",
        }
    }

    /// The inverse of [`HookReason::as_str`].
    pub fn parse(s: &str) -> Option<HookReason> {
        [
            HookReason::Granted,
            HookReason::Expired,
            HookReason::Closed,
            HookReason::Removed,
            HookReason::Evicted,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }
}

/// What a hook's process learns about the grant: its `POSTERN_*` environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantEnv {
    /// Open or close.
    pub event: HookEvent,
    /// Why it runs.
    pub reason: HookReason,
    /// The address let in.
    pub address: IpAddr,
    /// Its ports.
    pub ports: heapless::Vec<PortSpec, HOOK_PORTS>,
    /// The sequence or client that granted it.
    pub granted_by: heapless::String<ORIGIN_MAX>,
    /// Seconds it was granted for (the last grant's duration after a refresh).
    pub duration_s: u64,
}

impl GrantEnv {
    /// The ports as `POSTERN_PORTS` has them: `tcp:22 udp:53`.
    pub fn ports_text(&self) -> String {
        let mut s = String::new();
        for (i, p) in self.ports.iter().enumerate() {
            if i > 0 {
                s.push(' ');
            }
            let _ = write!(s, "{p}");
        }
        s
    }

    /// The environment variables of the hook's process (besides `PATH`,
    /// `POSTERN_COMMAND`, `POSTERN_CLIENT` = granted by and
    /// `POSTERN_SOURCE` = the address).
    pub fn vars(&self) -> [(&'static str, String); 6] {
        [
            ("POSTERN_EVENT", self.event.as_str().to_string()),
            ("POSTERN_REASON", self.reason.as_str().to_string()),
            ("POSTERN_ADDRESS", self.address.to_string()),
            ("POSTERN_PORTS", self.ports_text()),
            ("POSTERN_GRANTED_BY", self.granted_by.to_string()),
            ("POSTERN_DURATION", self.duration_s.to_string()),
        ]
    }
}

/// A hook to run now: the command's name and the grant it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookRun {
    /// The `config command` section to run.
    pub command: heapless::String<COMMAND_MAX>,
    /// Its environment.
    pub env: GrantEnv,
}

/// One live hooked grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookedGrant {
    /// The address let in.
    pub addr: IpAddr,
    /// The sequence or client that granted it.
    pub origin: heapless::String<ORIGIN_MAX>,
    /// Its live ports.
    pub ports: heapless::Vec<PortSpec, HOOK_PORTS>,
    /// When its last port expires (monotonic).
    pub expires: Millis,
    /// The duration of the last grant.
    pub duration: Duration,
    /// The `on_close` command, if any.
    pub on_close: Option<heapless::String<COMMAND_MAX>>,
}

impl HookedGrant {
    fn ending(&self, reason: HookReason) -> Option<HookRun> {
        let command = self.on_close.clone()?;
        Some(HookRun {
            command,
            env: GrantEnv {
                event: HookEvent::Close,
                reason,
                address: self.addr,
                ports: self.ports.clone(),
                granted_by: self.origin.clone(),
                duration_s: self.duration.as_secs(),
            },
        })
    }
}

/// A grant just made, as [`HookTable::open`] takes it.
#[derive(Debug, Clone, Copy)]
pub struct Opened<'a> {
    /// The address let in.
    pub addr: IpAddr,
    /// The sequence or client that granted it.
    pub origin: &'a str,
    /// Its ports.
    pub ports: &'a [PortSpec],
    /// For how long.
    pub duration: Duration,
}

/// The live hooked grants (fixed capacity).
#[derive(Debug, Default)]
pub struct HookTable {
    entries: FixedVec<HookedGrant, HOOKED_GRANTS>,
    evicted: u64,
}

fn command_name(name: &str) -> Option<heapless::String<COMMAND_MAX>> {
    heapless::String::try_from(name).ok()
}

impl HookTable {
    /// No hooked grant.
    pub fn new() -> HookTable {
        HookTable::default()
    }

    /// `opened` was granted at `now` by an origin whose configured hooks
    /// are `hooks`. Calls `run` with the `on_open` hook of a new grant
    /// (nothing for a refresh of a live one), and with the `on_close` of a
    /// grant let go when the table is full.
    pub fn open(
        &mut self,
        now: Millis,
        opened: Opened<'_>,
        hooks: Option<&Hooks>,
        mut run: impl FnMut(HookRun),
    ) {
        let Some(hooks) = hooks else { return };
        let Opened {
            addr,
            origin,
            ports,
            duration,
        } = opened;
        let expires = now + duration;
        let origin = cut(origin);
        if let Some(live) = self
            .entries
            .iter_mut()
            .find(|g| g.addr == addr && g.origin == origin && g.expires > now)
        {
            for p in ports {
                if !live.ports.contains(p) {
                    let _ = live.ports.push(*p);
                }
            }
            live.expires = live.expires.max(expires);
            live.duration = duration;
            return;
        }
        self.expire(now, &mut run);
        if self.entries.is_full() {
            if let Some(i) = (0..self.entries.len()).min_by_key(|&i| self.entries[i].expires) {
                let gone = self.entries.swap_remove(i);
                self.evicted += 1;
                gone.ending(HookReason::Evicted).map(&mut run);
            }
        }
        let grant = HookedGrant {
            addr,
            origin,
            ports: ports.iter().take(HOOK_PORTS).copied().collect(),
            expires,
            duration,
            on_close: hooks.on_close.as_deref().and_then(command_name),
        };
        if let Some(command) = hooks.on_open.as_deref().and_then(command_name) {
            run(HookRun {
                command,
                env: GrantEnv {
                    event: HookEvent::Open,
                    reason: HookReason::Granted,
                    address: addr,
                    ports: grant.ports.clone(),
                    granted_by: grant.origin.clone(),
                    duration_s: duration.as_secs(),
                },
            });
        }
        // Cannot fail: room was made above.
        let _ = self.entries.push(grant);
    }

    /// `addr`'s grants on `ports` were closed (a close request or a
    /// revoke, whoever made them): each hooked grant left without a port
    /// ends, and `run` gets its `on_close`.
    pub fn close(&mut self, addr: IpAddr, ports: &[PortSpec], mut run: impl FnMut(HookRun)) {
        let mut i = 0;
        while i < self.entries.len() {
            let g = &mut self.entries[i];
            if g.addr != addr || !g.ports.iter().any(|p| ports.contains(p)) {
                i += 1;
                continue;
            }
            let left: heapless::Vec<PortSpec, HOOK_PORTS> = g
                .ports
                .iter()
                .filter(|p| !ports.contains(p))
                .copied()
                .collect();
            if !left.is_empty() {
                g.ports = left;
                i += 1;
                continue;
            }
            let gone = self.entries.swap_remove(i);
            gone.ending(HookReason::Closed).map(&mut run);
        }
    }

    /// Ends the grants whose time is up at `now`; `run` gets their `on_close`.
    pub fn expire(&mut self, now: Millis, mut run: impl FnMut(HookRun)) {
        let mut i = 0;
        while i < self.entries.len() {
            if self.entries[i].expires > now {
                i += 1;
                continue;
            }
            let gone = self.entries.swap_remove(i);
            gone.ending(HookReason::Expired).map(&mut run);
        }
    }

    /// After a reload: ends the grants whose origin `keep` refuses (the
    /// sequence or client is gone or disabled); `run` gets their
    /// `on_close` (with the hooks configured when they opened).
    pub fn withdraw(&mut self, keep: impl Fn(&str) -> bool, mut run: impl FnMut(HookRun)) {
        let mut i = 0;
        while i < self.entries.len() {
            if keep(&self.entries[i].origin) {
                i += 1;
                continue;
            }
            let gone = self.entries.swap_remove(i);
            gone.ending(HookReason::Removed).map(&mut run);
        }
    }

    /// When the soonest hooked grant expires, if any is live.
    pub fn next_expiry(&self) -> Option<Millis> {
        self.entries.iter().map(|g| g.expires).min()
    }

    /// The live hooked grants.
    pub fn live(&self) -> impl Iterator<Item = &HookedGrant> {
        self.entries.iter()
    }

    /// Grants let go early because the table was full.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;

    const A: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));

    fn op<'a>(addr: IpAddr, origin: &'a str, ports: &'a [PortSpec], d: Duration) -> Opened<'a> {
        Opened {
            addr,
            origin,
            ports,
            duration: d,
        }
    }

    fn hooks(open: Option<&str>, close: Option<&str>) -> Hooks {
        Hooks {
            origin: "ssh".into(),
            on_open: open.map(Into::into),
            on_close: close.map(Into::into),
        }
    }

    fn runs(f: impl FnOnce(&mut dyn FnMut(HookRun))) -> Vec<(String, HookEvent, HookReason)> {
        let mut out = Vec::new();
        f(&mut |r: HookRun| out.push((r.command.to_string(), r.env.event, r.env.reason)));
        out
    }

    #[test]
    fn open_once_close_once_at_expiry_and_a_refresh_runs_nothing() {
        let h = hooks(Some("up"), Some("down"));
        let mut t = HookTable::new();
        let ports = [PortSpec::tcp(22)];
        let d = Duration::from_secs(30);
        let got = runs(|r| t.open(Millis(0), op(A, "ssh", &ports, d), Some(&h), r));
        assert_eq!(got, [("up".into(), HookEvent::Open, HookReason::Granted)]);
        // A refresh 10 s later: no second on_open, the end moves to 40 s.
        let got = runs(|r| t.open(Millis(10_000), op(A, "ssh", &ports, d), Some(&h), r));
        assert!(got.is_empty());
        assert_eq!(t.next_expiry(), Some(Millis(40_000)));
        assert!(runs(|r| t.expire(Millis(39_999), r)).is_empty());
        let got = runs(|r| t.expire(Millis(40_000), r));
        assert_eq!(
            got,
            [("down".into(), HookEvent::Close, HookReason::Expired)]
        );
        assert!(runs(|r| t.expire(Millis(90_000), r)).is_empty(), "once");
        assert_eq!(t.next_expiry(), None);
    }

    #[test]
    fn the_close_environment_names_the_grant() {
        let h = hooks(None, Some("down"));
        let mut t = HookTable::new();
        let ports = [PortSpec::tcp(22), PortSpec::udp(53)];
        let d = Duration::from_secs(5);
        assert!(runs(|r| t.open(Millis(0), op(A, "ssh", &ports, d), Some(&h), r)).is_empty());
        let mut env = None;
        t.expire(Millis(5_000), |r| env = Some(r.env));
        let vars = env.unwrap().vars();
        let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert_eq!(
            vars,
            [
                ("POSTERN_EVENT", "close"),
                ("POSTERN_REASON", "expired"),
                ("POSTERN_ADDRESS", "192.0.2.1"),
                ("POSTERN_PORTS", "tcp:22 udp:53"),
                ("POSTERN_GRANTED_BY", "ssh"),
                ("POSTERN_DURATION", "5"),
            ]
        );
    }

    #[test]
    fn a_close_ends_the_grant_when_its_last_port_goes() {
        let h = hooks(None, Some("down"));
        let mut t = HookTable::new();
        let ports = [PortSpec::tcp(22), PortSpec::tcp(80)];
        let d = Duration::from_secs(30);
        t.open(Millis(0), op(A, "ssh", &ports, d), Some(&h), |_| {});
        t.open(Millis(0), op(B, "ssh", &ports, d), Some(&h), |_| {});
        assert!(runs(|r| t.close(A, &[PortSpec::tcp(22)], r)).is_empty());
        let got = runs(|r| t.close(A, &[PortSpec::tcp(80), PortSpec::tcp(443)], r));
        assert_eq!(got, [("down".into(), HookEvent::Close, HookReason::Closed)]);
        assert!(
            runs(|r| t.close(A, &[PortSpec::tcp(80)], r)).is_empty(),
            "once"
        );
        assert_eq!(t.live().count(), 1, "B's grant stays");
        assert!(runs(|r| t.expire(Millis(30_000), r)).len() == 1);
    }

    #[test]
    fn a_reload_that_removes_the_origin_ends_its_grants() {
        let h = hooks(Some("up"), Some("down"));
        let mut t = HookTable::new();
        let d = Duration::from_secs(30);
        t.open(
            Millis(0),
            op(A, "ssh", &[PortSpec::tcp(22)], d),
            Some(&h),
            |_| {},
        );
        t.open(
            Millis(0),
            op(A, "web", &[PortSpec::tcp(80)], d),
            Some(&h),
            |_| {},
        );
        let got = runs(|r| t.withdraw(|o| o == "web", r));
        assert_eq!(
            got,
            [("down".into(), HookEvent::Close, HookReason::Removed)]
        );
        assert_eq!(t.live().next().unwrap().origin.as_str(), "web");
    }

    #[test]
    fn origins_without_hooks_are_not_tracked_and_a_full_table_ends_the_soonest() {
        let mut t = HookTable::new();
        let d = Duration::from_secs(30);
        t.open(
            Millis(0),
            op(A, "ssh", &[PortSpec::tcp(22)], d),
            None,
            |_| {},
        );
        assert_eq!(t.live().count(), 0);
        let h = hooks(None, Some("down"));
        for i in 0..HOOKED_GRANTS as u64 {
            let addr = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i as u32));
            let d = Duration::from_secs(100 + i);
            t.open(
                Millis(0),
                op(addr, "ssh", &[PortSpec::tcp(22)], d),
                Some(&h),
                |_| {},
            );
        }
        let got = runs(|r| {
            t.open(
                Millis(0),
                op(A, "ssh", &[PortSpec::tcp(22)], d),
                Some(&h),
                r,
            )
        });
        assert_eq!(
            got,
            [("down".into(), HookEvent::Close, HookReason::Evicted)]
        );
        assert_eq!(t.evicted(), 1);
        assert_eq!(t.live().count(), HOOKED_GRANTS);
    }
}
