//! Firewall backends: where a [`crate::engine::Decision`] becomes kernel state.
//!
//! A grant is a set element with a kernel timeout, so an open port closes on
//! time even if the daemon dies. Backends are edges (they do I/O); the bytes
//! they send are built by pure functions in their submodules and tested as bytes.

use core::fmt;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use core::time::Duration;

use crate::cidr::Cidr;
use crate::port::{L4Proto, PortSpec};

pub mod dry_run;
pub mod fw4_zones;
pub mod ipset;
pub mod nfnetlink;
pub mod nft;

/// One address allowed to one port for a while.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// The address allowed in.
    pub addr: IpAddr,
    /// The port it may open new connections to.
    pub port: PortSpec,
    /// How long new connections are allowed; the kernel removes the element after it.
    pub timeout: Duration,
}

/// A configured forward as the firewall sees it (built from `config forward`):
/// an external port on the router that, for a granted source, leads to a LAN
/// host. IPv4 is DNAT to `to4`; IPv6 has no NAT, only an accept to `to6`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForwardSpec {
    /// The transport protocol (the same outside and inside).
    pub proto: L4Proto,
    /// The external port on the router's WAN address (IPv4 DNAT key).
    pub port: u16,
    /// The IPv4 DNAT target; `None`: no IPv4 forward.
    pub to4: Option<Ipv4Addr>,
    /// The IPv6 LAN address reached directly (no NAT); `None`: no IPv6 forward.
    pub to6: Option<Ipv6Addr>,
    /// The port on the LAN host.
    pub to_port: u16,
}

/// One source allowed through one forward for a while.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForwardGrant {
    /// The source address allowed through (a v4-mapped IPv6 address is IPv4).
    pub src: IpAddr,
    /// The forward it may use.
    pub spec: ForwardSpec,
    /// How long new connections are allowed; the kernel removes the elements after it.
    pub timeout: Duration,
}

impl ForwardSpec {
    /// `tcp/8080 -> 192.168.1.5:80, [fd00::5]:80` for logs and errors.
    pub fn describe(&self) -> String {
        let mut s = format!("{}/{} ->", self.proto, self.port);
        if let Some(a) = self.to4 {
            s.push_str(&format!(" {a}:{}", self.to_port));
        }
        if let Some(a) = self.to6 {
            if self.to4.is_some() {
                s.push(',');
            }
            s.push_str(&format!(" [{a}]:{}", self.to_port));
        }
        if self.to4.is_none() && self.to6.is_none() {
            s.push_str(" nowhere");
        }
        s
    }
}

/// The forward target for `src`'s family: `Ok((target, ipv6))`, or the
/// `InvalidInput` error when the spec has no target of that family.
pub fn forward_target(src: IpAddr, spec: &ForwardSpec) -> Result<(IpAddr, bool), FirewallError> {
    let src = src.to_canonical();
    let target = match src {
        IpAddr::V4(_) => spec.to4.map(IpAddr::V4),
        IpAddr::V6(_) => spec.to6.map(IpAddr::V6),
    };
    match target {
        Some(t) => Ok((t, src.is_ipv6())),
        None => Err(FirewallError {
            context: format!(
                "forward {} for {src}: the forward has no IPv{} target",
                spec.describe(),
                if src.is_ipv6() { 6 } else { 4 }
            ),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "no target address of the source's family",
            ),
        }),
    }
}

/// The error for a zero forward timeout (the kernel would keep the elements forever).
pub fn zero_forward_timeout(g: &ForwardGrant) -> FirewallError {
    FirewallError {
        context: format!("forward {} for {}", g.spec.describe(), g.src),
        source: std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "zero timeout (would never expire)",
        ),
    }
}

/// A firewall failure, with the operation that failed.
#[derive(Debug)]
pub struct FirewallError {
    /// What was being done, e.g. "add element to postern_allow4".
    pub context: String,
    /// The underlying OS error (errno from the kernel or a spawn failure).
    pub source: std::io::Error,
}

impl fmt::Display for FirewallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.context, self.source)
    }
}

impl std::error::Error for FirewallError {}

/// What every firewall backend does.
pub trait Backend {
    /// Prepares kernel state: tables/sets/chains for `guarded` ports (the ports
    /// that stay closed unless granted). Called at start and after a reload with
    /// the new guarded set; must be idempotent and keep live grants.
    fn setup(&mut self, guarded: &[PortSpec]) -> Result<(), FirewallError>;
    /// Allows `grant.addr` to `grant.port` for `grant.timeout` (re-granting restarts the timeout).
    fn grant(&mut self, grant: &Grant) -> Result<(), FirewallError>;
    /// Removes the grant of `addr` to `port` now; absent grants are not an error.
    fn revoke(&mut self, addr: IpAddr, port: PortSpec) -> Result<(), FirewallError>;
    /// Removes what `setup` created (if the backend owns it). Called on clean exit.
    fn teardown(&mut self) -> Result<(), FirewallError>;
    /// Bans the network `net` (an IPv4 /32, an IPv6 prefix) for `duration`:
    /// its grants and forward grants stop accepting new connections, so a
    /// new connection from it to a guarded port or forward target is
    /// refused exactly as for a source without a grant. Nothing else is
    /// touched: established flows, unguarded ports, ICMP/ICMPv6 and other
    /// interfaces' traffic. A kernel timeout ends the ban on time even if the
    /// daemon dies; banning again restarts it. Backends without ban sets log
    /// that and change nothing.
    fn ban(&mut self, net: Cidr, duration: Duration) -> Result<(), FirewallError> {
        log::warn!(
            "{}: bans not supported by this backend: {net} not banned for {} s",
            self.name(),
            duration.as_secs()
        );
        Ok(())
    }
    /// Lifts the ban of `net` now (the same network that was banned); an
    /// absent ban is not an error. Backends without ban sets do nothing.
    fn unban(&mut self, net: Cidr) -> Result<(), FirewallError> {
        let _ = net;
        Ok(())
    }
    /// Prepares the forward objects for `forwards` (the full configured list).
    /// Called right after [`Backend::setup`] at start and after each reload;
    /// idempotent, keeps live forward grants whose spec is unchanged and
    /// removes those of forwards no longer configured. Backends without
    /// forwards accept only an empty list.
    fn setup_forwards(&mut self, forwards: &[ForwardSpec]) -> Result<(), FirewallError> {
        if forwards.is_empty() {
            return Ok(());
        }
        Err(FirewallError {
            context: format!("{}: {} forward(s) configured", self.name(), forwards.len()),
            source: std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "this firewall backend has no port forwards",
            ),
        })
    }
    /// Lets `g.src` through `g.spec` for `g.timeout` (kernel timeouts): an
    /// IPv4 source (also v4-mapped) gets the DNAT (src, proto, port) → (to4,
    /// to_port) and the forward accept (src, to4, proto, to_port); an IPv6
    /// source only the forward accept (src, to6, proto, to_port). A missing
    /// target for the source's family or a zero timeout is an `InvalidInput`
    /// error; re-granting restarts the timeouts.
    fn forward(&mut self, g: &ForwardGrant) -> Result<(), FirewallError> {
        Err(FirewallError {
            context: format!("forward {} for {}", g.spec.describe(), g.src),
            source: std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "this firewall backend has no port forwards",
            ),
        })
    }
    /// Removes the forward grant of `src` through `spec` now (DNAT and
    /// accept); an absent grant is not an error.
    fn unforward(&mut self, src: IpAddr, spec: &ForwardSpec) -> Result<(), FirewallError> {
        let _ = (src, spec);
        Ok(())
    }
    /// A short name for logs (`nft`, `fw4`, `dry-run`).
    fn name(&self) -> &'static str;
    /// The nftables table (family inet) and sets whose deletion drops this
    /// backend's grants, so the daemon can watch for firewall restarts and
    /// re-apply live grants. `None`: nothing to watch.
    fn watched(&self) -> Option<(&'static str, [&'static str; 2])> {
        None
    }
    /// Tells the backend the capture devices and how their firewall zones
    /// refuse, before [`Backend::setup`]. The fw4 backend closes the guarded
    /// ports on exactly these devices (its include is tied to no zone); the
    /// other backends guard every interface and ignore this.
    fn set_capture(&mut self, devices: &[String], verdict: GuardVerdict) {
        let _ = (devices, verdict);
    }
}

/// How the fw4 guard refuses a packet to a guarded port from a source
/// without a grant: like the zone it arrives in ([`fw4_zones::guard_verdict`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuardVerdict {
    /// TCP RST / ICMP port unreachable, as fw4's `handle_reject` (zones with
    /// input `REJECT` or `ACCEPT`; fw4's default WAN zone).
    Reject,
    /// Silently dropped (a capture device's zone has input `DROP`).
    Drop,
}

/// The forward grants a backend made and that have not yet expired (source,
/// spec, kernel expiry), so that `setup_forwards` can end the grants of
/// forwards that were removed or changed. Pruned as grants expire; shared by
/// the nft and fw3 backends.
#[derive(Debug, Default)]
pub(crate) struct ForwardLedger {
    live: Vec<(IpAddr, ForwardSpec, std::time::Instant)>,
}

impl ForwardLedger {
    /// Records a grant of `src` through `spec` for `timeout`, replacing an earlier one.
    pub(crate) fn granted(&mut self, src: IpAddr, spec: ForwardSpec, timeout: Duration) {
        let now = std::time::Instant::now();
        self.live
            .retain(|(s, f, until)| *until > now && !(*s == src && *f == spec));
        self.live
            .push((src, spec, now.checked_add(timeout).unwrap_or(now)));
    }

    /// Forgets the grant of `src` through `spec`.
    pub(crate) fn ended(&mut self, src: IpAddr, spec: &ForwardSpec) {
        self.live.retain(|(s, f, _)| !(*s == src && f == spec));
    }

    /// The live grants whose spec is not in `forwards` (removed or changed).
    pub(crate) fn stale(&mut self, forwards: &[ForwardSpec]) -> Vec<(IpAddr, ForwardSpec)> {
        let now = std::time::Instant::now();
        self.live.retain(|(_, _, until)| *until > now);
        self.live
            .iter()
            .filter(|(_, f, _)| !forwards.contains(f))
            .map(|(s, f, _)| (*s, *f))
            .collect()
    }

    /// Forgets every grant.
    pub(crate) fn clear(&mut self) {
        self.live.clear();
    }
}
