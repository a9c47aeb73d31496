//! The fw3 backend (OpenWrt ≤ 21.02: iptables + ipset): grants as ipset
//! elements with kernel timeouts.
//!
//! fw3 owns the firewall; postern's fw3 include (`/usr/share/postern/fw3.include`,
//! run by fw3 on every reload) creates the `hash:ip,port` sets `postern4` and
//! `postern6` with timeout support, the guard sets, and the chain
//! `postern_input`, jumped to from fw3's `input_rule` (ahead of the
//! established accept and every zone's rules) for packets from the capture
//! devices: it accepts granted sources unless their source is in one of the
//! `hash:net` ban sets `postern_ban4`/`postern_ban6` (a ban has no rule of
//! its own: a banned source is treated as one without a grant), then refuses
//! the guarded ports as the capture devices' zone refuses, so a user rule
//! accepting a guarded port cannot open it.
//!
//! Setup checks that the sets exist and fills the guard sets (guarded ports,
//! capture devices: [`guard_restore_script`]) with one `ipset restore`; then
//! grants are added and deleted over netlink: per grant it never spawns
//! `ipset` or `iptables`. Messages are built by [`netlink`] (pure,
//! byte-tested) and sent by the shared `nfnetlink::socket`. It never creates
//! or destroys a set: they belong to the include.

pub mod fw3_forwards;
pub mod netlink;

use std::io;
use std::net::IpAddr;

use self::netlink::{ElemOp, ElemRequest, IpPortIpRequest, NetRequest, REQUEST_BUF_LEN};
use super::nfnetlink::socket::LazySocket;
use super::nfnetlink::wire::EncodeError;
use super::{
    forward_target, zero_forward_timeout, Backend, FirewallError, ForwardGrant, ForwardLedger,
    ForwardSpec, Grant, GuardVerdict,
};
use crate::cidr::Cidr;
use crate::port::PortSpec;

/// The IPv4 set created by the postern fw3 include.
pub const SET4: &str = "postern4";
/// The IPv6 set created by the postern fw3 include.
pub const SET6: &str = "postern6";
/// The IPv4 ban set created by the postern fw3 include.
pub const BAN4: &str = "postern_ban4";
/// The IPv6 ban set created by the postern fw3 include.
pub const BAN6: &str = "postern_ban6";
/// The forward DNAT set (`hash:ip,port`: source, proto:external port).
pub const FWD4: &str = "postern_fwd4";
/// The IPv4 forward allow set (`hash:ip,port,ip`: source, proto:LAN port, LAN host).
pub const FWD_ALLOW4: &str = "postern_fwd_allow4";
/// The IPv6 forward allow set (`hash:ip,port,ip`).
pub const FWD_ALLOW6: &str = "postern_fwd_allow6";
/// postern's nat chain holding one DNAT rule per forward (see [`fw3_forwards`]).
pub const FWD_CHAIN: &str = "postern_fwd";
/// Where the OpenWrt package installs the fw3 include (named in errors).
pub const INCLUDE_PATH: &str = "/usr/share/postern/fw3.include";
/// The guarded TCP ports (`bitmap:port`), filled by setup.
pub const GUARD_TCP: &str = "postern_guard_tcp";
/// The guarded UDP ports (`bitmap:port`), filled by setup.
pub const GUARD_UDP: &str = "postern_guard_udp";
/// The capture devices, IPv4 (`hash:net,iface`: `0.0.0.0/0,DEV`).
pub const DEVICES4: &str = "postern_devices4";
/// The capture devices, IPv6 (`hash:net,iface`: `::/0,DEV`).
pub const DEVICES6: &str = "postern_devices6";
/// The capture devices whose zone drops (else empty), IPv4.
pub const DROP_DEVICES4: &str = "postern_drop_devices4";
/// The capture devices whose zone drops (else empty), IPv6.
pub const DROP_DEVICES6: &str = "postern_drop_devices6";

/// The `ipset restore` script the fw3 setup runs: refills the guard sets with
/// `guard` (by protocol), the device sets with `devices` and the drop-device
/// sets with `devices` when `drop` (the zones drop rather than reject).
/// Grants, bans and forwards are left alone. `None` when a device name is not
/// a plain interface name.
pub fn guard_restore_script(guard: &[PortSpec], devices: &[String], drop: bool) -> Option<String> {
    use std::fmt::Write as _;
    if !devices
        .iter()
        .all(|d| crate::firewall::nft::ruleset::is_ifname(d))
    {
        return None;
    }
    let mut s = String::new();
    for set in [GUARD_TCP, GUARD_UDP] {
        let _ = writeln!(s, "flush {set}");
    }
    for p in guard {
        let set = match p.proto {
            crate::port::L4Proto::Tcp => GUARD_TCP,
            crate::port::L4Proto::Udp => GUARD_UDP,
        };
        let _ = writeln!(s, "add {set} {}", p.port);
    }
    for (sets, fill) in [
        ([DEVICES4, DEVICES6], true),
        ([DROP_DEVICES4, DROP_DEVICES6], drop),
    ] {
        for (set, any) in sets.into_iter().zip(["0.0.0.0/0", "::/0"]) {
            let _ = writeln!(s, "flush {set}");
            for d in devices.iter().filter(|_| fill) {
                let _ = writeln!(s, "add {set} {any},{d}");
            }
        }
    }
    Some(s)
}

/// ipset over netlink for fw3 (see the module docs).
#[derive(Debug, Default)]
pub struct Fw3Backend {
    sock: LazySocket,
    /// Forward grants made and not yet over, so a reload can end those of
    /// forwards no longer configured.
    live_forwards: ForwardLedger,
    /// Whether `postern_fwd` may hold rules (then an empty reload clears it).
    dnat_rules: bool,
    /// The capture devices the guard closes the guarded ports on
    /// ([`Backend::set_capture`]).
    capture: Vec<String>,
    /// Whether their zones drop (else reject).
    drop: bool,
}

impl Fw3Backend {
    /// A backend using [`SET4`] and [`SET6`].
    pub fn new() -> Fw3Backend {
        Fw3Backend::default()
    }

    /// The set for an address family.
    pub fn set_for(addr: IpAddr) -> &'static str {
        if addr.to_canonical().is_ipv6() {
            SET6
        } else {
            SET4
        }
    }

    /// Sends one request; `Ok(Err(errno))` is the kernel's refusal.
    fn exchange(
        &mut self,
        build: impl FnOnce(u32, &mut [u8]) -> Result<usize, EncodeError>,
    ) -> io::Result<Result<(), i32>> {
        let mut buf = [0u8; REQUEST_BUF_LEN];
        self.sock.exchange(1, &mut buf, |seq, buf| {
            let n = build(seq, buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            Ok((n, seq))
        })
    }

    /// One element change (`-exist` semantics: re-adding replaces the timeout,
    /// deleting an absent element succeeds).
    fn elem(&mut self, op: ElemOp, addr: IpAddr, port: PortSpec) -> Result<(), FirewallError> {
        // A v4-mapped IPv6 address is an IPv4 source on the wire.
        let addr = addr.to_canonical();
        let req = ElemRequest {
            op,
            set: Self::set_for(addr),
            addr,
            port,
        };
        let source = match self.exchange(|seq, buf| req.emit(seq, buf)) {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(errno)) => kernel_error(errno),
            Err(e) => e,
        };
        Err(FirewallError {
            context: elem_context(&req),
            source,
        })
    }

    /// Checks that `set` exists (`IPSET_CMD_HEADER`).
    fn check_set(&mut self, set: &'static str) -> Result<(), FirewallError> {
        let context = || format!("look up ipset {set}");
        match self.exchange(|seq, buf| netlink::header(set, seq, buf)) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(libc::ENOENT)) => Err(FirewallError {
                context: missing_set_message(set),
                source: io::Error::from_raw_os_error(libc::ENOENT),
            }),
            Ok(Err(errno)) => Err(FirewallError {
                context: context(),
                source: kernel_error(errno),
            }),
            Err(source) => Err(FirewallError {
                context: context(),
                source,
            }),
        }
    }
}

/// Runs `sh -c SCRIPT`; `what` names the step for errors.
fn run_sh(script: &str, what: &str) -> Result<(), FirewallError> {
    let out = crate::spawn::Spawn::new("sh")
        .args(["-c", script])
        .output()
        .map_err(|source| FirewallError {
            context: format!("{what}: cannot run `sh`"),
            source,
        })?;
    if out.status.success() {
        return Ok(());
    }
    Err(FirewallError {
        context: format!("{what}: {}", out.status),
        source: io::Error::other(String::from_utf8_lossy(&out.stderr).trim().to_string()),
    })
}

/// Feeds `script` to `ipset restore -exist`; `what` names the step for errors.
fn run_ipset_restore(script: &str, what: &str) -> Result<(), FirewallError> {
    use crate::spawn::{Spawn, Stdio};
    use std::io::Write as _;
    let mut child = Spawn::new("ipset")
        .args(["restore", "-exist"])
        .stdin(Stdio::Piped)
        .stdout(Stdio::Null)
        .stderr(Stdio::Piped)
        .spawn()
        .map_err(|source| FirewallError {
            context: format!("{what}: cannot run `ipset`"),
            source,
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        // A write error (ipset exited early) shows up in the exit status below.
        let _ = stdin.write_all(script.as_bytes());
    }
    let out = child.wait_with_output().map_err(|source| FirewallError {
        context: format!("{what}: waiting for `ipset`"),
        source,
    })?;
    if out.status.success() {
        return Ok(());
    }
    Err(FirewallError {
        context: format!("{what}: `ipset restore` failed ({})", out.status),
        source: io::Error::other(String::from_utf8_lossy(&out.stderr).trim().to_string()),
    })
}

/// What to do when a set is missing.
pub fn missing_set_message(set: &str) -> String {
    format!(
        "ipset {set} missing: is the postern fw3 include installed \
         (firewall include {INCLUDE_PATH}, reload 1)?"
    )
}

/// An errno from the kernel as an `io::Error`; ipset's own codes (beyond the
/// errno range) get their meaning spelled out.
fn kernel_error(errno: i32) -> io::Error {
    match netlink::describe_errno(errno) {
        Some(text) => io::Error::other(format!("{text} (ipset error {errno})")),
        None => io::Error::from_raw_os_error(errno),
    }
}

/// "add 10.0.0.2,tcp:22 to ipset postern4" (or "delete … from …").
fn elem_context(req: &ElemRequest<'_>) -> String {
    let (verb, prep) = match req.op {
        ElemOp::Add { .. } => ("add", "to"),
        ElemOp::Delete => ("delete", "from"),
    };
    format!("{verb} {},{} {prep} ipset {}", req.addr, req.port, req.set)
}

impl Backend for Fw3Backend {
    fn setup(&mut self, guarded: &[PortSpec]) -> Result<(), FirewallError> {
        self.check_set(SET4)?;
        self.check_set(SET6)?;
        log::info!("fw3: ipsets {SET4} and {SET6} present");
        // Without the guard sets (an older include) a user rule could open a
        // guarded port while postern says it guards it: refuse to start.
        for set in [
            GUARD_TCP,
            GUARD_UDP,
            DEVICES4,
            DEVICES6,
            DROP_DEVICES4,
            DROP_DEVICES6,
        ] {
            self.check_set(set).map_err(|e| FirewallError {
                context: format!(
                    "{}: the fw3 include of this postern version is not loaded, so \
                     guarded ports would stay open (reload the firewall)",
                    e.context
                ),
                source: e.source,
            })?;
        }
        let script = guard_restore_script(guarded, &self.capture, self.drop).ok_or_else(|| {
            FirewallError {
                context: format!("fw3: capture devices {:?}", self.capture),
                source: io::Error::new(io::ErrorKind::InvalidInput, "not an interface name"),
            }
        })?;
        run_ipset_restore(&script, "fill the fw3 guard sets")?;
        if self.capture.is_empty() {
            log::warn!("fw3: no capture device given: guarded ports are closed on no interface");
        }
        log::info!(
            "fw3: guarding {} port(s) on {} ({}), ahead of the zones' rules",
            guarded.len(),
            self.capture.join(" "),
            if self.drop { "drop" } else { "reject" }
        );
        // An older include has no ban sets: grants still work, bans fail (logged).
        for set in [BAN4, BAN6] {
            if let Err(e) = self.check_set(set) {
                log::warn!("fw3: {e}: sources will not be banned");
            }
        }
        Ok(())
    }

    fn grant(&mut self, grant: &Grant) -> Result<(), FirewallError> {
        let op = ElemOp::Add {
            timeout: grant.timeout,
        };
        if let Err(e) = netlink::timeout_secs(grant.timeout) {
            // Zero would be "forever": refused before anything is sent.
            let addr = grant.addr.to_canonical();
            return Err(FirewallError {
                context: elem_context(&ElemRequest {
                    op,
                    set: Self::set_for(addr),
                    addr,
                    port: grant.port,
                }),
                source: io::Error::new(io::ErrorKind::InvalidInput, e),
            });
        }
        // One add: without NLM_F_EXCL the kernel replaces the timeout of an
        // element that is already there, so a re-grant restarts it.
        self.elem(op, grant.addr, grant.port)
    }

    fn revoke(&mut self, addr: IpAddr, port: PortSpec) -> Result<(), FirewallError> {
        self.elem(ElemOp::Delete, addr, port)
    }

    fn ban(&mut self, net: Cidr, duration: core::time::Duration) -> Result<(), FirewallError> {
        self.ban_op(ElemOp::Add { timeout: duration }, net)
    }

    fn unban(&mut self, net: Cidr) -> Result<(), FirewallError> {
        // Without NLM_F_EXCL deleting an absent element succeeds.
        self.ban_op(ElemOp::Delete, net)
    }

    fn setup_forwards(&mut self, forwards: &[ForwardSpec]) -> Result<(), FirewallError> {
        if !forwards.is_empty() {
            for set in [FWD4, FWD_ALLOW4, FWD_ALLOW6] {
                self.check_set(set)?;
            }
        }
        // Grants of forwards no longer configured (or changed) end now.
        let stale = self.live_forwards.stale(forwards);
        for (src, spec) in &stale {
            self.unforward(*src, spec)?;
        }
        if forwards.is_empty() && !self.dnat_rules {
            return Ok(());
        }
        run_sh(
            &fw3_forwards::forward_rules_script(forwards),
            "set up the fw3 forward DNAT rules",
        )?;
        self.dnat_rules = !forwards.is_empty();
        log::info!("fw3: {} forward(s) ready", forwards.len());
        Ok(())
    }

    fn forward(&mut self, g: &ForwardGrant) -> Result<(), FirewallError> {
        if netlink::timeout_secs(g.timeout).is_err() {
            return Err(zero_forward_timeout(g));
        }
        let src = g.src.to_canonical();
        let (target, _) = forward_target(src, &g.spec)?;
        let what = format!("forward {} from {src} to {target}", g.spec.describe());
        // Without NLM_F_EXCL re-adding replaces the timeouts: a re-grant restarts them.
        self.forward_elems(
            ElemOp::Add { timeout: g.timeout },
            src,
            &g.spec,
            target,
            &what,
        )?;
        self.live_forwards.granted(src, g.spec, g.timeout);
        Ok(())
    }

    fn unforward(&mut self, src: IpAddr, spec: &ForwardSpec) -> Result<(), FirewallError> {
        let src = src.to_canonical();
        self.live_forwards.ended(src, spec);
        let Ok((target, _)) = forward_target(src, spec) else {
            return Ok(()); // nothing was ever added for this family
        };
        let what = format!("unforward {} from {src}", spec.describe());
        // Without NLM_F_EXCL deleting an absent element succeeds.
        self.forward_elems(ElemOp::Delete, src, spec, target, &what)
    }

    fn teardown(&mut self) -> Result<(), FirewallError> {
        // The sets belong to fw3's include; live elements expire on their own.
        self.sock.close();
        Ok(())
    }

    fn name(&self) -> &'static str {
        "fw3"
    }

    fn set_capture(&mut self, devices: &[String], verdict: GuardVerdict) {
        self.capture = devices.to_vec();
        self.drop = verdict == GuardVerdict::Drop;
    }
}

impl Fw3Backend {
    /// One forward element change (`-exist` semantics); `what` names the grant.
    fn fwd_op(
        &mut self,
        what: &str,
        set: &'static str,
        build: impl FnOnce(u32, &mut [u8]) -> Result<usize, EncodeError>,
    ) -> Result<(), FirewallError> {
        let source = match self.exchange(build) {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(errno)) => kernel_error(errno),
            Err(e) => e,
        };
        Err(FirewallError {
            context: format!("{what}: ipset {set}"),
            source,
        })
    }

    /// Adds (`Some(timeout)`) or deletes both elements of a forward grant.
    fn forward_elems(
        &mut self,
        op: ElemOp,
        src: IpAddr,
        spec: &ForwardSpec,
        target: IpAddr,
        what: &str,
    ) -> Result<(), FirewallError> {
        let allow = IpPortIpRequest {
            op,
            set: if src.is_ipv6() {
                FWD_ALLOW6
            } else {
                FWD_ALLOW4
            },
            addr: src,
            port: PortSpec {
                proto: spec.proto,
                port: spec.to_port,
            },
            addr2: target,
        };
        self.fwd_op(what, allow.set, |seq, buf| allow.emit(seq, buf))?;
        if src.is_ipv6() {
            return Ok(());
        }
        let dnat = ElemRequest {
            op,
            set: FWD4,
            addr: src,
            port: PortSpec {
                proto: spec.proto,
                port: spec.port,
            },
        };
        let added = self.fwd_op(what, FWD4, |seq, buf| dnat.emit(seq, buf));
        if added.is_err() && matches!(op, ElemOp::Add { .. }) {
            // Both or neither: take the accept back.
            let undo = IpPortIpRequest {
                op: ElemOp::Delete,
                ..allow
            };
            let _ = self.fwd_op(what, undo.set, |seq, buf| undo.emit(seq, buf));
        }
        added
    }

    /// Adds (with timeout) or deletes the network `net` in the ban set of its family.
    fn ban_op(&mut self, op: ElemOp, net: Cidr) -> Result<(), FirewallError> {
        let req = NetRequest {
            op,
            set: if net.addr().is_ipv6() { BAN6 } else { BAN4 },
            net,
        };
        // Without NLM_F_EXCL an existing element gets the new timeout.
        let source = match self.exchange(|seq, buf| req.emit(seq, buf)) {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(errno)) => kernel_error(errno),
            Err(e) => e,
        };
        let (verb, prep) = match op {
            ElemOp::Add { .. } => ("add", "to"),
            ElemOp::Delete => ("delete", "from"),
        };
        Err(FirewallError {
            context: format!("{verb} {net} {prep} ipset {}", req.set),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::{Ipv4Addr, Ipv6Addr};
    use core::time::Duration;

    #[test]
    fn sets_by_family_and_mapped_addresses() {
        let v4 = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
        let mapped = IpAddr::V6(Ipv4Addr::new(10, 0, 0, 2).to_ipv6_mapped());
        let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        assert_eq!(Fw3Backend::set_for(v4), "postern4");
        assert_eq!(Fw3Backend::set_for(mapped), "postern4");
        assert_eq!(Fw3Backend::set_for(v6), "postern6");
        assert_eq!(Fw3Backend::new().name(), "fw3");
    }

    #[test]
    fn guard_script_fills_ports_by_protocol_and_devices_by_verdict() {
        let guard = [PortSpec::tcp(2222), PortSpec::udp(5300)];
        let devs = ["pppoe-wan".to_string(), "wwan0".to_string()];
        assert_eq!(
            guard_restore_script(&guard, &devs, false).unwrap(),
            "flush postern_guard_tcp\nflush postern_guard_udp\n\
             add postern_guard_tcp 2222\nadd postern_guard_udp 5300\n\
             flush postern_devices4\nadd postern_devices4 0.0.0.0/0,pppoe-wan\n\
             add postern_devices4 0.0.0.0/0,wwan0\n\
             flush postern_devices6\nadd postern_devices6 ::/0,pppoe-wan\n\
             add postern_devices6 ::/0,wwan0\n\
             flush postern_drop_devices4\nflush postern_drop_devices6\n"
        );
        let drop = guard_restore_script(&guard[..1], &devs[..1], true).unwrap();
        assert!(drop.ends_with(
            "flush postern_drop_devices4\nadd postern_drop_devices4 0.0.0.0/0,pppoe-wan\n\
             flush postern_drop_devices6\nadd postern_drop_devices6 ::/0,pppoe-wan\n"
        ));
        // A name that could smuggle a second command into the script is refused.
        assert!(guard_restore_script(&guard, &["eth0\nflush postern4".into()], false).is_none());
        assert!(guard_restore_script(&guard, &["eth0 x".into()], false).is_none());
    }

    #[test]
    fn zero_timeout_is_refused_before_any_io() {
        // No socket is opened: encoding fails first, with the element named.
        let mut b = Fw3Backend::new();
        let err = b
            .grant(&Grant {
                addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
                port: PortSpec::tcp(22),
                timeout: Duration::ZERO,
            })
            .unwrap_err();
        assert_eq!(err.context, "add 10.0.0.2,tcp:22 to ipset postern4");
        assert_eq!(err.source.kind(), io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("zero timeout"), "{err}");
    }

    #[test]
    fn error_texts() {
        let req = ElemRequest {
            op: ElemOp::Delete,
            set: SET6,
            addr: IpAddr::V6(Ipv6Addr::LOCALHOST),
            port: PortSpec::udp(53),
        };
        assert_eq!(elem_context(&req), "delete ::1,udp:53 from ipset postern6");
        assert_eq!(
            missing_set_message("postern4"),
            "ipset postern4 missing: is the postern fw3 include installed \
             (firewall include /usr/share/postern/fw3.include, reload 1)?"
        );
        assert_eq!(
            kernel_error(4352).to_string(),
            "the set is full (ipset error 4352)"
        );
        assert_eq!(kernel_error(libc::EPERM).raw_os_error(), Some(libc::EPERM));
    }
}
