//! The router's own networks, learnt from the kernel: its addresses, the
//! on-link subnets of those addresses and its default gateways, which a ban
//! must never cover (see [`crate::bans`]).
//!
//! Edge module: two `NETLINK_ROUTE` dumps (`RTM_GETADDR`, `RTM_GETROUTE`)
//! whose bytes are built and read by the pure [`rtnl`]. rtnetlink rather than
//! `/proc/net/route` + `/proc/net/ipv6_route` + `getifaddrs`: one mechanism
//! for both families, gateways of multipath routes, point-to-point peers
//! (PPPoE), and change events, with no text parsing; it needs no privilege
//! and works under qemu-user (unlike `NETLINK_NETFILTER`).
//!
//! When: the daemon learns at start and at every reload, and again when a
//! [`Watch`] (a socket subscribed to the address and route change groups)
//! has seen a change, checked on the daemon's tick: addresses and gateways
//! change with PPPoE reconnects and DHCP renewals. Never per packet. Bounded:
//! at most [`rtnl::MAX_ADDRESSES`] addresses and subnets and
//! [`rtnl::MAX_GATEWAYS`] gateways are kept, and
//! [`crate::bans::PROTECTED_CAPACITY`] networks protected.

pub mod rtnl;

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{
    bind, recv, sendto, socket, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol,
    SockType,
};

use crate::bans::ProtectedNets;
use crate::cidr::Cidr;
pub use rtnl::LocalNetworks;
use rtnl::{dump_request, read_reply, Dump, Progress};

/// How long one dump may take before it is abandoned.
const DUMP_TIMEOUT: Duration = Duration::from_secs(2);
/// Receive buffer: the kernel sends dumps in datagrams of up to a page or
/// two; a larger one is truncated (an error, the refresh is retried later).
const RECV_BUFFER: usize = 32 * 1024;
/// `RTMGRP_IPV4_IFADDR | RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_IFADDR | RTMGRP_IPV6_ROUTE`.
const CHANGE_GROUPS: u32 = 0x10 | 0x40 | 0x100 | 0x400;

impl LocalNetworks {
    /// The networks bans must spare, most important first (gateways, then
    /// subnets, then addresses, which the subnets mostly cover already), and
    /// how many did not fit.
    pub fn protected(&self) -> (ProtectedNets, usize) {
        let mut p = ProtectedNets::new();
        let mut dropped = self.dropped;
        let nets = self
            .gateways
            .iter()
            .map(|&g| Cidr::host(g))
            .chain(self.on_link.iter().copied())
            .chain(self.own.iter().map(|&a| Cidr::host(a)));
        for net in nets {
            if !p.add(net) {
                dropped += 1;
            }
        }
        (p, dropped)
    }
}

/// Asks the kernel (in the calling thread's network namespace) for the
/// router's addresses, subnets and default gateways.
pub fn learn() -> io::Result<LocalNetworks> {
    let fd = socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkRoute,
    )?;
    let mut buf = vec![0u8; RECV_BUFFER];
    let mut found = LocalNetworks::default();
    let seq = std::process::id().rotate_left(16) ^ 0x5eed;
    dump(&fd, Dump::Addresses, seq, &mut buf, &mut found)?;
    dump(&fd, Dump::Routes, seq.wrapping_add(1), &mut buf, &mut found)?;
    Ok(found)
}

/// Sends one dump request and reads its reply up to `NLMSG_DONE`.
fn dump(
    fd: &OwnedFd,
    what: Dump,
    seq: u32,
    buf: &mut [u8],
    into: &mut LocalNetworks,
) -> io::Result<()> {
    let (req, len) = dump_request(what, seq);
    let sent = sendto(
        fd.as_raw_fd(),
        &req[..len],
        &NetlinkAddr::new(0, 0),
        MsgFlags::empty(),
    )?;
    if sent != len {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            "short netlink send",
        ));
    }
    let deadline = Instant::now() + DUMP_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "rtnetlink dump timed out",
            ));
        }
        let ms = u16::try_from(left.as_millis().max(1)).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(0) | Err(Errno::EINTR) => continue,
            Ok(_) => {}
            Err(e) => return Err(e.into()),
        }
        let n = match recv(
            fd.as_raw_fd(),
            buf,
            MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_TRUNC,
        ) {
            Ok(n) => n,
            Err(Errno::EINTR | Errno::EAGAIN) => continue,
            Err(e) => return Err(e.into()),
        };
        if n > buf.len() {
            return Err(io::Error::other(
                "rtnetlink datagram larger than the buffer",
            ));
        }
        match read_reply(&buf[..n], seq, into) {
            Ok(Progress::Done) => return Ok(()),
            Ok(Progress::More) => {}
            Err(e) => return Err(io::Error::other(e.to_string())),
        }
    }
}

/// A socket subscribed to address and route changes (both families).
#[derive(Debug)]
pub struct Watch {
    fd: OwnedFd,
}

impl Watch {
    /// Subscribes (no privilege needed).
    pub fn open() -> io::Result<Watch> {
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            SockProtocol::NetlinkRoute,
        )?;
        bind(fd.as_raw_fd(), &NetlinkAddr::new(0, CHANGE_GROUPS))?;
        Ok(Watch { fd })
    }

    /// True when some change was announced since the last call (also when
    /// announcements were lost: the socket overran). Reads whatever is
    /// queued, without waiting.
    pub fn changed(&self, buf: &mut [u8]) -> bool {
        let mut changed = false;
        loop {
            match recv(self.fd.as_raw_fd(), buf, MsgFlags::MSG_DONTWAIT) {
                Ok(_) => changed = true,
                Err(Errno::EINTR) => {}
                Err(Errno::ENOBUFS) => changed = true,
                Err(_) => return changed,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protected_networks_put_gateways_first_and_count_what_does_not_fit() {
        let mut n = LocalNetworks::default();
        n.gateways.push("203.0.113.1".parse().unwrap()).unwrap();
        n.on_link.push("192.168.1.0/24".parse().unwrap()).unwrap();
        n.own.push("192.168.1.1".parse().unwrap()).unwrap();
        n.own.push("203.0.113.77".parse().unwrap()).unwrap();
        let (p, dropped) = n.protected();
        let nets: Vec<String> = p.as_slice().iter().map(|c| c.to_string()).collect();
        assert_eq!(
            nets,
            ["203.0.113.1/32", "192.168.1.0/24", "203.0.113.77/32"]
        );
        assert_eq!(dropped, 0);
    }
}

#[cfg(test)]
mod netns_tests;
