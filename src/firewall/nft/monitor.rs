//! Noticing that someone else rebuilt the firewall.
//!
//! `fw4 restart` (and `nft flush ruleset`, `service firewall restart`) drops
//! every set, and with them postern's live grants. The kernel announces table
//! and set changes to the `NFNLGRP_NFTABLES` netlink multicast group; this
//! module reads those events and says whether postern's table or allow sets
//! were deleted or (re)created, so the daemon can re-apply live grants.
//!
//! [`classify`] is pure (bytes in, verdict out, never panics); [`Monitor`] is
//! the socket edge. A receive-buffer overflow (`ENOBUFS`: too many events at
//! once, e.g. a full ruleset reload) is reported as a change, to be safe.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::netlink::{NFNL_SUBSYS_NFTABLES, NFTA_SET_NAME, NFTA_SET_TABLE, NLMSG_HDRLEN};
use crate::firewall::nfnetlink::wire::{read_u16, read_u32};

/// `NFT_MSG_NEWTABLE`.
pub const NFT_MSG_NEWTABLE: u16 = 0;
/// `NFT_MSG_DELTABLE`.
pub const NFT_MSG_DELTABLE: u16 = 2;
/// `NFT_MSG_NEWSET`.
pub const NFT_MSG_NEWSET: u16 = 9;
/// `NFT_MSG_DELSET`.
pub const NFT_MSG_DELSET: u16 = 11;
/// `NFTA_TABLE_NAME`.
pub const NFTA_TABLE_NAME: u16 = 1;
/// The nftables multicast group (`NFNLGRP_NFTABLES`).
pub const NFNLGRP_NFTABLES: u32 = 7;
/// Size of `struct nfgenmsg` after the netlink header.
const NFGENMSG_LEN: usize = 4;

/// What a batch of events means for postern's firewall objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Change {
    /// Our table, or one of our allow sets, was deleted.
    pub removed: bool,
    /// Our table, or one of our allow sets, was created.
    pub created: bool,
}

impl Change {
    /// True when grants may have been lost and must be re-applied.
    pub fn needs_resync(self) -> bool {
        self.removed || self.created
    }
}

/// The value of string attribute `ty` among `attrs` (without its NUL).
fn string_attr(attrs: &[u8], ty: u16) -> Option<&[u8]> {
    let mut at = 0;
    while at + 4 <= attrs.len() {
        let len = usize::from(read_u16(attrs, at)?);
        let kind = read_u16(attrs, at + 2)? & 0x3fff;
        if len < 4 || at + len > attrs.len() {
            return None;
        }
        if kind == ty {
            let value = &attrs[at + 4..at + len];
            return Some(value.split(|&b| b == 0).next().unwrap_or(value));
        }
        at += (len + 3) & !3;
    }
    None
}

/// Reads one datagram of nftables events and says whether `table` (family
/// inet) or one of `sets` in it was created or deleted.
pub fn classify(buf: &[u8], table: &str, sets: &[&str]) -> Change {
    let mut change = Change::default();
    let mut rest = buf;
    while rest.len() >= NLMSG_HDRLEN {
        let Some(len) = read_u32(rest, 0).and_then(|l| usize::try_from(l).ok()) else {
            break;
        };
        if len < NLMSG_HDRLEN || len > rest.len() {
            break;
        }
        let msg = &rest[..len];
        rest = &rest[((len + 3) & !3).min(rest.len())..];
        let Some(ty) = read_u16(msg, 4) else { break };
        if ty >> 8 != NFNL_SUBSYS_NFTABLES || msg.len() < NLMSG_HDRLEN + NFGENMSG_LEN {
            continue;
        }
        let family = msg[NLMSG_HDRLEN];
        if family != super::netlink::NFPROTO_INET {
            continue;
        }
        let attrs = &msg[NLMSG_HDRLEN + NFGENMSG_LEN..];
        let ours = |t: Option<&[u8]>| t == Some(table.as_bytes());
        let (removed, created) = match ty & 0xff {
            NFT_MSG_DELTABLE if ours(string_attr(attrs, NFTA_TABLE_NAME)) => (true, false),
            NFT_MSG_NEWTABLE if ours(string_attr(attrs, NFTA_TABLE_NAME)) => (false, true),
            m @ (NFT_MSG_NEWSET | NFT_MSG_DELSET)
                if ours(string_attr(attrs, NFTA_SET_TABLE))
                    && string_attr(attrs, NFTA_SET_NAME)
                        .is_some_and(|n| sets.iter().any(|s| s.as_bytes() == n)) =>
            {
                (m == NFT_MSG_DELSET, m == NFT_MSG_NEWSET)
            }
            _ => (false, false),
        };
        change.removed |= removed;
        change.created |= created;
    }
    change
}

/// A netlink socket subscribed to nftables events (non-blocking).
#[derive(Debug)]
pub struct Monitor {
    fd: OwnedFd,
}

impl Monitor {
    /// Opens the socket and joins `NFNLGRP_NFTABLES`.
    pub fn open() -> io::Result<Monitor> {
        // SAFETY: plain socket(2); the fd is owned right away.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                libc::NETLINK_NETFILTER,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh fd nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // Bind (which also gives the socket its port id) with the group in the
        // legacy bitmask: group N is bit N-1.
        // SAFETY: sockaddr_nl is plain data; zeroed is a valid value.
        let mut addr: libc::sockaddr_nl = unsafe { core::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        addr.nl_groups = 1 << (NFNLGRP_NFTABLES - 1);
        // SAFETY: bind(2) with a correctly sized sockaddr_nl that outlives the call.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_nl).cast(),
                core::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Monitor { fd })
    }

    /// Reads every queued event datagram and classifies them together.
    /// `buf` is the caller's receive buffer (reused; no allocation).
    pub fn drain(&self, buf: &mut [u8], table: &str, sets: &[&str]) -> io::Result<Change> {
        let mut change = Change::default();
        loop {
            // SAFETY: recv(2) into the caller's buffer, bounded by its length.
            let n =
                unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                let e = io::Error::last_os_error();
                return match e.raw_os_error() {
                    Some(libc::EAGAIN) => Ok(change),
                    Some(libc::EINTR) => continue,
                    // Events were lost: assume the worst.
                    Some(libc::ENOBUFS) => {
                        change.removed = true;
                        continue;
                    }
                    _ => Err(e),
                };
            }
            let c = classify(&buf[..n as usize], table, sets);
            change.removed |= c.removed;
            change.created |= c.created;
        }
    }
}

impl AsFd for Monitor {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One nftables event message: header, nfgenmsg(inet), string attributes.
    fn event(msg: u16, attrs: &[(u16, &str)]) -> Vec<u8> {
        let mut body = vec![1u8, 0, 0, 0]; // NFPROTO_INET, version 0, res_id 0
        for (ty, s) in attrs {
            let len = 4 + s.len() + 1;
            body.extend_from_slice(&(len as u16).to_ne_bytes());
            body.extend_from_slice(&ty.to_ne_bytes());
            body.extend_from_slice(s.as_bytes());
            body.push(0);
            while body.len() % 4 != 0 {
                body.push(0);
            }
        }
        let mut m = Vec::new();
        m.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&((NFNL_SUBSYS_NFTABLES << 8) | msg).to_ne_bytes());
        m.extend_from_slice(&0u16.to_ne_bytes());
        m.extend_from_slice(&[0; 8]);
        m.extend_from_slice(&body);
        m
    }

    const SETS: &[&str] = &["postern_allow4", "postern_allow6"];

    #[test]
    fn deleted_and_recreated_fw4_table_is_a_change() {
        let mut buf = event(NFT_MSG_DELTABLE, &[(NFTA_TABLE_NAME, "fw4")]);
        assert_eq!(
            classify(&buf, "fw4", SETS),
            Change {
                removed: true,
                created: false
            }
        );
        buf.extend(event(NFT_MSG_NEWTABLE, &[(NFTA_TABLE_NAME, "fw4")]));
        buf.extend(event(
            NFT_MSG_NEWSET,
            &[(NFTA_SET_TABLE, "fw4"), (NFTA_SET_NAME, "postern_allow6")],
        ));
        let c = classify(&buf, "fw4", SETS);
        assert!(c.removed && c.created && c.needs_resync());
    }

    #[test]
    fn other_tables_and_sets_are_not_a_change() {
        let mut buf = event(NFT_MSG_DELTABLE, &[(NFTA_TABLE_NAME, "fw4x")]);
        buf.extend(event(
            NFT_MSG_NEWSET,
            &[(NFTA_SET_TABLE, "fw4"), (NFTA_SET_NAME, "ddos")],
        ));
        buf.extend(event(
            NFT_MSG_NEWSET,
            &[(NFTA_SET_TABLE, "other"), (NFTA_SET_NAME, "postern_allow4")],
        ));
        buf.extend(event(
            12, /* NEWSETELEM */
            &[(1, "fw4"), (2, "postern_allow4")],
        ));
        assert_eq!(classify(&buf, "fw4", SETS), Change::default());
        // The same deletion in another family (ip, not inet) is not ours either.
        let mut v4 = event(NFT_MSG_DELTABLE, &[(NFTA_TABLE_NAME, "fw4")]);
        v4[16] = 2; // NFPROTO_IPV4
        assert_eq!(classify(&v4, "fw4", SETS), Change::default());
    }

    #[test]
    fn garbage_never_panics() {
        let good = event(
            NFT_MSG_DELSET,
            &[(NFTA_SET_TABLE, "postern"), (NFTA_SET_NAME, "allow4")],
        );
        assert!(classify(&good, "postern", &["allow4"]).removed);
        for cut in 0..good.len() {
            let _ = classify(&good[..cut], "postern", &["allow4"]);
        }
        let mut rng = crate::test_rng::Rng(7);
        for _ in 0..20_000 {
            let mut b = good.clone();
            for _ in 0..3 {
                let i = rng.below(b.len());
                b[i] = rng.next() as u8;
            }
            let _ = classify(&b, "postern", &["allow4"]);
        }
    }
}
