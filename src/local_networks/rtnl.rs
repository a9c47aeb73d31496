//! rtnetlink dump requests and replies, as bytes: no I/O.
//!
//! Builds the `RTM_GETADDR` and `RTM_GETROUTE` dump requests and reads the
//! kernel's `RTM_NEWADDR` / `RTM_NEWROUTE` replies into [`LocalNetworks`].
//! Netlink headers and attribute headers are in host byte order (so these
//! bytes differ between x86 and big-endian MIPS); addresses are in network
//! order. Malformed input is an error or skipped, never a panic.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::bans::is_never_banned_address;
use crate::cidr::Cidr;

/// Size of `struct nlmsghdr`.
const NLMSG_HDRLEN: usize = 16;
/// `NLMSG_ERROR`: an error (or, with errno 0, an ack).
const NLMSG_ERROR: u16 = 2;
/// `NLMSG_DONE`: the end of a dump.
const NLMSG_DONE: u16 = 3;
/// `RTM_NEWADDR`, `RTM_GETADDR`, `RTM_NEWROUTE`, `RTM_GETROUTE`.
const RTM_NEWADDR: u16 = 20;
const RTM_GETADDR: u16 = 22;
const RTM_NEWROUTE: u16 = 24;
const RTM_GETROUTE: u16 = 26;
/// `NLM_F_REQUEST | NLM_F_DUMP` (`NLM_F_ROOT | NLM_F_MATCH`).
const DUMP_FLAGS: u16 = 0x0001 | 0x0300;
/// `AF_INET`, `AF_INET6`.
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;
/// `IFA_ADDRESS` (the prefix address; the peer on point-to-point links) and
/// `IFA_LOCAL` (the interface's own address when it differs).
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
/// `RTA_GATEWAY`, `RTA_MULTIPATH`.
const RTA_GATEWAY: u16 = 5;
const RTA_MULTIPATH: u16 = 9;
/// `RTN_UNICAST`: a route to a gateway or a direct route.
const RTN_UNICAST: u8 = 1;
/// `RTM_F_CLONED`: a route-cache entry, not a configured route.
const RTM_F_CLONED: u32 = 0x200;
/// Size of `struct ifaddrmsg`, `struct rtmsg`, `struct rtnexthop`.
const IFADDRMSG_LEN: usize = 8;
const RTMSG_LEN: usize = 12;
const RTNEXTHOP_LEN: usize = 8;

/// Most addresses, on-link prefixes and default gateways kept (each).
pub const MAX_ADDRESSES: usize = 32;
/// Most default gateways kept.
pub const MAX_GATEWAYS: usize = 8;

/// What the kernel says about the router's own networks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalNetworks {
    /// The router's own addresses.
    pub own: heapless::Vec<IpAddr, MAX_ADDRESSES>,
    /// The subnets of those addresses (on-link), and point-to-point peers as
    /// single addresses.
    pub on_link: heapless::Vec<Cidr, MAX_ADDRESSES>,
    /// Gateways of default routes.
    pub gateways: heapless::Vec<IpAddr, MAX_GATEWAYS>,
    /// Entries not kept because a list was full.
    pub dropped: usize,
}

impl LocalNetworks {
    fn add_own(&mut self, ip: IpAddr) {
        let ip = ip.to_canonical();
        if !is_never_banned_address(ip) && !self.own.contains(&ip) && self.own.push(ip).is_err() {
            self.dropped += 1;
        }
    }

    fn add_on_link(&mut self, net: Cidr) {
        // A /0 "subnet" would protect everything; link-local and the like
        // are never banned anyway.
        if net.is_empty() || is_never_banned_address(net.addr()) || self.on_link.contains(&net) {
            return;
        }
        if self.on_link.push(net).is_err() {
            self.dropped += 1;
        }
    }

    fn add_gateway(&mut self, ip: IpAddr) {
        let ip = ip.to_canonical();
        if !is_never_banned_address(ip)
            && !self.gateways.contains(&ip)
            && self.gateways.push(ip).is_err()
        {
            self.dropped += 1;
        }
    }
}

/// Which table a dump request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dump {
    /// Every address of every interface (`RTM_GETADDR`).
    Addresses,
    /// Every route of every table (`RTM_GETROUTE`).
    Routes,
}

/// The longest dump request.
pub const REQUEST_LEN: usize = NLMSG_HDRLEN + RTMSG_LEN;

/// The dump request for `dump` with sequence number `seq`, both families;
/// returns the buffer and the request's length.
pub fn dump_request(dump: Dump, seq: u32) -> ([u8; REQUEST_LEN], usize) {
    let (kind, body) = match dump {
        Dump::Addresses => (RTM_GETADDR, IFADDRMSG_LEN),
        Dump::Routes => (RTM_GETROUTE, RTMSG_LEN),
    };
    let len = NLMSG_HDRLEN + body;
    let mut b = [0u8; REQUEST_LEN];
    b[0..4].copy_from_slice(&(len as u32).to_ne_bytes());
    b[4..6].copy_from_slice(&kind.to_ne_bytes());
    b[6..8].copy_from_slice(&DUMP_FLAGS.to_ne_bytes());
    b[8..12].copy_from_slice(&seq.to_ne_bytes());
    // nlmsg_pid 0, family AF_UNSPEC (0), everything else zero: the whole table.
    (b, len)
}

/// Why a reply could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RtnlError {
    /// A message header claims more bytes than the datagram holds, or fewer
    /// than a header.
    Truncated,
    /// The kernel refused the request (errno, positive).
    Kernel(i32),
}

impl core::fmt::Display for RtnlError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            RtnlError::Truncated => f.write_str("truncated rtnetlink message"),
            RtnlError::Kernel(e) => write!(
                f,
                "rtnetlink request refused: {}",
                std::io::Error::from_raw_os_error(*e)
            ),
        }
    }
}

/// Whether a dump goes on after a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// More datagrams follow.
    More,
    /// `NLMSG_DONE` was seen.
    Done,
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Reads one datagram of the reply to request `seq`, adding what it says to
/// `into`. Messages of other sequence numbers are skipped.
pub fn read_reply(buf: &[u8], seq: u32, into: &mut LocalNetworks) -> Result<Progress, RtnlError> {
    let mut at = 0;
    while buf.len() - at >= NLMSG_HDRLEN {
        let len = u32_at(buf, at).ok_or(RtnlError::Truncated)? as usize;
        if len < NLMSG_HDRLEN || len > buf.len() - at {
            return Err(RtnlError::Truncated);
        }
        let kind = u16_at(buf, at + 4).ok_or(RtnlError::Truncated)?;
        let msg_seq = u32_at(buf, at + 8).ok_or(RtnlError::Truncated)?;
        let payload = &buf[at + NLMSG_HDRLEN..at + len];
        at = (at + align4(len)).min(buf.len());
        if msg_seq != seq {
            continue;
        }
        match kind {
            NLMSG_DONE => return Ok(Progress::Done),
            NLMSG_ERROR => {
                let errno = u32_at(payload, 0).ok_or(RtnlError::Truncated)? as i32;
                if errno != 0 {
                    return Err(RtnlError::Kernel(errno.saturating_neg()));
                }
            }
            RTM_NEWADDR => read_address(payload, into),
            RTM_NEWROUTE => read_route(payload, into),
            _ => {}
        }
    }
    Ok(Progress::More)
}

/// The attributes (type without flag bits, value) in `b`; stops at the first
/// malformed one.
fn attributes(b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let mut at = 0;
    core::iter::from_fn(move || {
        let len = usize::from(u16_at(b, at)?);
        let kind = u16_at(b, at + 2)? & 0x3fff;
        if len < 4 || len > b.len() - at {
            return None;
        }
        let value = &b[at + 4..at + len];
        at = (at + align4(len)).min(b.len());
        Some((kind, value))
    })
}

/// An address of `family` from an attribute value.
fn address(family: u8, v: &[u8]) -> Option<IpAddr> {
    match family {
        AF_INET => Some(IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(v).ok()?))),
        AF_INET6 => Some(IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(v).ok()?))),
        _ => None,
    }
}

/// An `RTM_NEWADDR`: the own address (`IFA_LOCAL`, else `IFA_ADDRESS`) and
/// the subnet of `IFA_ADDRESS` (on a point-to-point link, the peer as /32).
fn read_address(p: &[u8], into: &mut LocalNetworks) {
    if p.len() < IFADDRMSG_LEN {
        return;
    }
    let (family, prefix_len) = (p[0], p[1]);
    let (mut local, mut addr) = (None, None);
    for (kind, v) in attributes(&p[IFADDRMSG_LEN..]) {
        match kind {
            IFA_LOCAL => local = address(family, v),
            IFA_ADDRESS => addr = address(family, v),
            _ => {}
        }
    }
    if let Some(own) = local.or(addr) {
        into.add_own(own);
    }
    if let Some(a) = addr {
        let width = if family == AF_INET { 32 } else { 128 };
        if prefix_len <= width {
            into.add_on_link(Cidr::network_of(a, prefix_len));
        }
    }
}

/// An `RTM_NEWROUTE`: the gateways of a default unicast route (one, or
/// each next hop of a multipath route). Other routes are skipped.
fn read_route(p: &[u8], into: &mut LocalNetworks) {
    if p.len() < RTMSG_LEN {
        return;
    }
    let (family, dst_len, kind) = (p[0], p[1], p[7]);
    let flags = u32_at(p, 8).unwrap_or(0);
    if dst_len != 0 || kind != RTN_UNICAST || flags & RTM_F_CLONED != 0 {
        return;
    }
    for (attr, v) in attributes(&p[RTMSG_LEN..]) {
        match attr {
            RTA_GATEWAY => {
                if let Some(gw) = address(family, v) {
                    into.add_gateway(gw);
                }
            }
            RTA_MULTIPATH => read_next_hops(family, v, into),
            _ => {}
        }
    }
}

/// The gateways of the `struct rtnexthop`s of an `RTA_MULTIPATH`.
fn read_next_hops(family: u8, mut b: &[u8], into: &mut LocalNetworks) {
    while let Some(len) = u16_at(b, 0).map(usize::from) {
        if len < RTNEXTHOP_LEN || len > b.len() {
            return;
        }
        for (attr, v) in attributes(&b[RTNEXTHOP_LEN..len]) {
            if attr == RTA_GATEWAY {
                if let Some(gw) = address(family, v) {
                    into.add_gateway(gw);
                }
            }
        }
        b = &b[align4(len).min(b.len())..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds netlink bytes the way the kernel lays them out on this host.
    #[derive(Default)]
    struct Bytes(Vec<u8>);

    impl Bytes {
        fn u8s(mut self, b: &[u8]) -> Self {
            self.0.extend_from_slice(b);
            self
        }
        fn u16(self, v: u16) -> Self {
            self.u8s(&v.to_ne_bytes())
        }
        fn u32(self, v: u32) -> Self {
            self.u8s(&v.to_ne_bytes())
        }
        /// An attribute, padded to 4 bytes.
        fn attr(self, kind: u16, value: &[u8]) -> Self {
            let pad = align4(value.len()) - value.len();
            self.u16(4 + value.len() as u16)
                .u16(kind)
                .u8s(value)
                .u8s(&[0; 3][..pad])
        }
    }

    /// A whole message: header (length filled in) and `body`, padded to 4 bytes.
    fn msg(kind: u16, seq: u32, body: Bytes) -> Vec<u8> {
        let pad = align4(body.0.len()) - body.0.len();
        Bytes::default()
            .u32((NLMSG_HDRLEN + body.0.len()) as u32)
            .u16(kind)
            .u16(2) // NLM_F_MULTI
            .u32(seq)
            .u32(4242)
            .u8s(&body.0)
            .u8s(&[0; 3][..pad])
            .0
    }

    fn ifaddr(family: u8, prefix: u8) -> Bytes {
        // family, prefixlen, flags, scope, ifindex
        Bytes::default().u8s(&[family, prefix, 0x80, 0]).u32(2)
    }

    fn rtmsg(family: u8, dst_len: u8, kind: u8, flags: u32) -> Bytes {
        // family, dst_len, src_len, tos, table main, proto boot, scope, type, flags
        Bytes::default()
            .u8s(&[family, dst_len, 0, 0, 254, 3, 0, kind])
            .u32(flags)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn octets(s: &str) -> Vec<u8> {
        match ip(s) {
            IpAddr::V4(a) => a.octets().to_vec(),
            IpAddr::V6(a) => a.octets().to_vec(),
        }
    }

    #[test]
    fn requests_are_the_kernels_layout() {
        let (b, n) = dump_request(Dump::Addresses, 7);
        let want = Bytes::default()
            .u32(24)
            .u16(22)
            .u16(0x301)
            .u32(7)
            .u32(0)
            .u8s(&[0; 8]);
        assert_eq!(&b[..n], &want.0[..]);
        let (b, n) = dump_request(Dump::Routes, 8);
        assert_eq!(n, 28);
        assert_eq!(u16_at(&b, 4), Some(26));
        assert_eq!(&b[16..28], &[0; 12]);
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn reads_a_literal_little_endian_address_reply() {
        // RTM_NEWADDR for 192.0.2.1/24 on ifindex 2, as `ip monitor` would
        // dump it on x86 (seq 1), followed by NLMSG_DONE.
        #[rustfmt::skip]
        let bytes: [u8; 56] = [
            0x28, 0, 0, 0, 0x14, 0, 0x02, 0, 1, 0, 0, 0, 0x92, 0x10, 0, 0,
            2, 24, 0x80, 0, 2, 0, 0, 0,
            8, 0, 1, 0, 192, 0, 2, 1,
            8, 0, 2, 0, 192, 0, 2, 1,
            0x14, 0, 0, 0, 3, 0, 2, 0, 1, 0, 0, 0, 0x92, 0x10, 0, 0,
        ];
        let mut n = LocalNetworks::default();
        // The DONE message is cut short (a 20-byte header, 16 present): an error.
        assert_eq!(read_reply(&bytes, 1, &mut n), Err(RtnlError::Truncated));
        let mut whole = bytes.to_vec();
        whole.extend_from_slice(&[0; 4]);
        let mut n = LocalNetworks::default();
        assert_eq!(read_reply(&whole, 1, &mut n), Ok(Progress::Done));
        assert_eq!(n.own, [ip("192.0.2.1")]);
        assert_eq!(n.on_link, ["192.0.2.0/24".parse::<Cidr>().unwrap()]);
    }

    #[test]
    fn reads_addresses_and_subnets_of_both_families() {
        let mut dump = msg(
            RTM_NEWADDR,
            5,
            ifaddr(AF_INET, 24)
                .attr(IFA_ADDRESS, &octets("192.168.1.1"))
                .attr(IFA_LOCAL, &octets("192.168.1.1"))
                .attr(3, b"br-lan\0"),
        );
        // PPPoE: own address 198.51.100.2, peer 198.51.100.1 as /32.
        dump.extend(msg(
            RTM_NEWADDR,
            5,
            ifaddr(AF_INET, 32)
                .attr(IFA_ADDRESS, &octets("198.51.100.1"))
                .attr(IFA_LOCAL, &octets("198.51.100.2")),
        ));
        dump.extend(msg(
            RTM_NEWADDR,
            5,
            ifaddr(AF_INET6, 64).attr(IFA_ADDRESS, &octets("2001:db8:1:2::1")),
        ));
        // Skipped: link-local and loopback (never banned anyway), and a
        // message of another request.
        dump.extend(msg(
            RTM_NEWADDR,
            5,
            ifaddr(AF_INET6, 64).attr(IFA_ADDRESS, &octets("fe80::1")),
        ));
        dump.extend(msg(
            RTM_NEWADDR,
            5,
            ifaddr(AF_INET, 8).attr(IFA_LOCAL, &octets("127.0.0.1")),
        ));
        dump.extend(msg(
            RTM_NEWADDR,
            6,
            ifaddr(AF_INET, 24).attr(IFA_ADDRESS, &octets("10.9.9.9")),
        ));
        let mut n = LocalNetworks::default();
        assert_eq!(read_reply(&dump, 5, &mut n), Ok(Progress::More));
        assert_eq!(
            n.own,
            [ip("192.168.1.1"), ip("198.51.100.2"), ip("2001:db8:1:2::1")]
        );
        let nets: Vec<String> = n.on_link.iter().map(|c| c.to_string()).collect();
        assert_eq!(
            nets,
            ["192.168.1.0/24", "198.51.100.1/32", "2001:db8:1:2::/64"]
        );
        let done = msg(NLMSG_DONE, 5, Bytes::default().u32(0));
        assert_eq!(read_reply(&done, 5, &mut n), Ok(Progress::Done));
    }

    #[test]
    fn reads_default_gateways_only() {
        let mut dump = msg(
            RTM_NEWROUTE,
            9,
            rtmsg(AF_INET, 0, RTN_UNICAST, 0)
                .attr(15, &254u32.to_ne_bytes())
                .attr(RTA_GATEWAY, &octets("203.0.113.1"))
                .attr(4, &2u32.to_ne_bytes()),
        );
        // Not default routes: a subnet via a router, a connected route.
        dump.extend(msg(
            RTM_NEWROUTE,
            9,
            rtmsg(AF_INET, 24, RTN_UNICAST, 0).attr(RTA_GATEWAY, &octets("10.0.0.9")),
        ));
        // A default that is not unicast (unreachable), and a cloned one.
        dump.extend(msg(
            RTM_NEWROUTE,
            9,
            rtmsg(AF_INET, 0, 7, 0).attr(RTA_GATEWAY, &octets("10.0.0.10")),
        ));
        dump.extend(msg(
            RTM_NEWROUTE,
            9,
            rtmsg(AF_INET, 0, RTN_UNICAST, RTM_F_CLONED).attr(RTA_GATEWAY, &octets("10.0.0.11")),
        ));
        // IPv6 multipath default: a global and a link-local next hop.
        let hop = |gw: &str| {
            let attrs = Bytes::default().attr(RTA_GATEWAY, &octets(gw)).0;
            Bytes::default()
                .u16((RTNEXTHOP_LEN + attrs.len()) as u16)
                .u8s(&[0, 0])
                .u32(3)
                .u8s(&attrs)
                .0
        };
        let mut hops = hop("2001:db8:ff::1");
        hops.extend(hop("fe80::1"));
        dump.extend(msg(
            RTM_NEWROUTE,
            9,
            rtmsg(AF_INET6, 0, RTN_UNICAST, 0).attr(RTA_MULTIPATH, &hops),
        ));
        let mut n = LocalNetworks::default();
        assert_eq!(read_reply(&dump, 9, &mut n), Ok(Progress::More));
        assert_eq!(n.gateways, [ip("203.0.113.1"), ip("2001:db8:ff::1")]);
        assert!(n.own.is_empty() && n.on_link.is_empty());
    }

    #[test]
    fn errors_and_malformed_replies() {
        let err = msg(
            NLMSG_ERROR,
            3,
            Bytes::default().u32((-13i32) as u32).u8s(&[0; 16]),
        );
        assert_eq!(
            read_reply(&err, 3, &mut LocalNetworks::default()),
            Err(RtnlError::Kernel(13))
        );
        let ack = msg(NLMSG_ERROR, 3, Bytes::default().u32(0).u8s(&[0; 16]));
        assert_eq!(
            read_reply(&ack, 3, &mut LocalNetworks::default()),
            Ok(Progress::More)
        );
        // A header claiming more than the datagram, or less than a header.
        let mut long = msg(NLMSG_DONE, 3, Bytes::default().u32(0));
        long[0] = 200;
        assert_eq!(
            read_reply(&long, 3, &mut LocalNetworks::default()),
            Err(RtnlError::Truncated)
        );
        // Attributes cut short, bodies too short, wrong address sizes: skipped.
        let mut n = LocalNetworks::default();
        let mut odd = msg(RTM_NEWADDR, 3, Bytes::default().u8s(&[2, 24]));
        odd.extend(msg(
            RTM_NEWADDR,
            3,
            ifaddr(AF_INET, 24)
                .u16(200)
                .u16(IFA_ADDRESS)
                .u8s(&[1, 2, 3, 4]),
        ));
        odd.extend(msg(
            RTM_NEWADDR,
            3,
            ifaddr(AF_INET, 24).attr(IFA_ADDRESS, &[1, 2, 3]),
        ));
        odd.extend(msg(
            RTM_NEWROUTE,
            3,
            rtmsg(AF_INET, 0, RTN_UNICAST, 0).attr(RTA_MULTIPATH, &[0xff, 0xff, 0, 0]),
        ));
        assert_eq!(read_reply(&odd, 3, &mut n), Ok(Progress::More));
        assert_eq!(n, LocalNetworks::default());
        // Every prefix of a valid dump: never a panic.
        let good = msg(
            RTM_NEWADDR,
            3,
            ifaddr(AF_INET6, 64).attr(IFA_ADDRESS, &octets("2001:db8::1")),
        );
        for cut in 0..good.len() {
            let _ = read_reply(&good[..cut], 3, &mut n);
        }
        let mut rng = crate::test_rng::Rng(0x7e7);
        for _ in 0..2000 {
            let junk: Vec<u8> = (0..rng.below(200)).map(|_| rng.next() as u8).collect();
            let _ = read_reply(&junk, 3, &mut n);
        }
    }

    #[test]
    fn lists_have_a_fixed_capacity() {
        let mut n = LocalNetworks::default();
        for i in 0..(MAX_ADDRESSES + 5) as u32 {
            n.add_own(IpAddr::V4(Ipv4Addr::from(0x0a00_0001 + i)));
            n.add_on_link(Cidr::host(IpAddr::V4(Ipv4Addr::from(0x0b00_0001 + i))));
        }
        for i in 0..(MAX_GATEWAYS + 1) as u32 {
            n.add_gateway(IpAddr::V4(Ipv4Addr::from(0x0c00_0001 + i)));
        }
        assert_eq!(n.own.len(), MAX_ADDRESSES);
        assert_eq!(n.dropped, 11);
    }
}
