//! The control socket's requests that change state: `revoke ADDR
//! PROTO:PORT` ends a live grant, `unban NET` lifts the live bans within
//! NET. Each answers one line, `ok: …` or `error: …`, and logs what it did.

use std::net::IpAddr;

use log::{error, info};

use super::{lift_ban, Effects};
use crate::bans::{NetText, ProtectedNets};
use crate::cidr::Cidr;
use crate::engine::Engine;
use crate::firewall::Backend;
use crate::port::PortSpec;
use crate::time::Millis;

/// Ends the live grant of `addr` to `port` (table and firewall).
pub(super) fn revoke(fx: &mut Effects<'_>, now: Millis, addr: IpAddr, port: PortSpec) -> String {
    fx.grants.expire(now);
    if !fx.grants.remove(addr, port) {
        return format!("error: no live grant of {port} to {addr}\n");
    }
    fx.hooks.closed(&mut fx.actions, addr, &[port]);
    match fx.backend.revoke(addr, port) {
        Ok(()) => {
            info!("revoked {port} for {addr} (control socket)");
            format!("ok: revoked {port} for {addr}\n")
        }
        Err(e) => {
            error!("could not revoke {port} for {addr}: {e}");
            format!("error: the firewall refused to revoke {port} for {addr}: {e}\n")
        }
    }
}

/// Lifts every live ban within `net` (engine and firewall), and forgets the
/// failures counted there.
///
/// The ban table offers no removal of its own; it drops the entries that
/// overlap the router's protected networks when these change. So `net`
/// becomes the protected set for a moment, and the set in force is put back
/// right after (that drops nothing more: no entry overlaps it).
pub(super) fn unban(
    engine: &mut Engine,
    backend: &mut dyn Backend,
    now: Millis,
    net: Cidr,
) -> String {
    let kept = engine.bans().protected().clone();
    let mut only = ProtectedNets::new();
    only.add(net);
    let mut lifted = Vec::new();
    engine.set_protected(now, only, |n| lifted.push(n));
    engine.set_protected(now, kept, |_| {});
    if lifted.is_empty() {
        return format!("error: no live ban within {}\n", NetText(net));
    }
    for &n in &lifted {
        lift_ban(backend, n, "lifted through the control socket");
    }
    let names: Vec<String> = lifted.iter().map(|&n| NetText(n).to_string()).collect();
    format!("ok: lifted the ban of {}\n", names.join(" "))
}
