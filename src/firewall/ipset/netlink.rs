//! ipset netlink messages as bytes: add/delete one `hash:ip,port`, `hash:ip,port,ip`
//! or `hash:net` element, look up a set.
//!
//! Owns the wire encoding of the ipset commands the fw3 backend sends (what
//! `ipset -exist add SET ADDR,PROTO:PORT timeout N`, `ipset -exist del …` and
//! the set lookup `ipset` does first put on the wire), and the texts of
//! ipset's own error numbers. Pure: no syscalls, no allocation, no panics;
//! framing and ack parsing are shared with nf_tables in
//! [`crate::firewall::nfnetlink::wire`]. This module must never grow I/O.
//!
//! Byte order, explicitly:
//! * `nlmsghdr` and `nlattr` header fields: host order;
//! * the address, port and timeout: network order, with `NLA_F_NET_BYTEORDER`
//!   set on their attribute types, as the kernel's `ip_set_get_h32`/`_n16` expect;
//! * `IPSET_ATTR_PROTO` is a single byte.
//!
//! Differences from the `ipset` 7.17 tool's bytes (captured with strace):
//! protocol 6 instead of 7 (6 is what every kernel since 2.6.39 accepts; newer
//! ones take 6..=7), no `IPSET_ATTR_LINENO` (only meaningful in restore mode),
//! and `NLM_F_ACK` on the set lookup so that success is acknowledged too.
//! Adds and deletes never carry `NLM_F_EXCL`: that is `-exist`, so re-adding an
//! element replaces its timeout and deleting an absent one succeeds.

use core::net::IpAddr;
use core::time::Duration;

use crate::cidr::Cidr;
use crate::firewall::nfnetlink::wire::{
    EncodeError, Writer, NLA_F_NET_BYTEORDER, NLM_F_ACK, NLM_F_REQUEST,
};
use crate::port::PortSpec;

/// `NFNL_SUBSYS_IPSET`: the ipset subsystem id (high byte of the message type).
pub const NFNL_SUBSYS_IPSET: u16 = 6;
/// The ipset protocol version sent (`IPSET_PROTOCOL` of kernels before 5.x,
/// `IPSET_PROTOCOL_MIN` of newer ones).
pub const IPSET_PROTOCOL: u8 = 6;
/// `IPSET_CMD_ADD`: add an element.
pub const IPSET_CMD_ADD: u16 = 9;
/// `IPSET_CMD_DEL`: delete an element.
pub const IPSET_CMD_DEL: u16 = 10;
/// `IPSET_CMD_HEADER`: a set's header (name, type, family); `ENOENT` if absent.
pub const IPSET_CMD_HEADER: u16 = 12;
/// `IPSET_ATTR_PROTOCOL` (`u8`).
pub const IPSET_ATTR_PROTOCOL: u16 = 1;
/// `IPSET_ATTR_SETNAME` (NUL-terminated string).
pub const IPSET_ATTR_SETNAME: u16 = 2;
/// `IPSET_ATTR_DATA` (nested element data).
pub const IPSET_ATTR_DATA: u16 = 7;
/// `IPSET_ATTR_IP` (nested address, inside `IPSET_ATTR_DATA`).
pub const IPSET_ATTR_IP: u16 = 1;
/// `IPSET_ATTR_CIDR` (`u8` prefix length of a `hash:net` element).
pub const IPSET_ATTR_CIDR: u16 = 3;
/// `IPSET_ATTR_PORT` (`u16`, network order).
pub const IPSET_ATTR_PORT: u16 = 4;
/// `IPSET_ATTR_TIMEOUT` (`u32` seconds, network order).
pub const IPSET_ATTR_TIMEOUT: u16 = 6;
/// `IPSET_ATTR_PROTO` (`u8` IP protocol number).
pub const IPSET_ATTR_PROTO: u16 = 7;
/// `IPSET_ATTR_IP2` (nested second address of `hash:ip,port,ip`, inside `IPSET_ATTR_DATA`).
pub const IPSET_ATTR_IP2: u16 = 20;
/// `IPSET_ATTR_IPADDR_IPV4` (4 bytes, inside `IPSET_ATTR_IP`).
pub const IPSET_ATTR_IPADDR_IPV4: u16 = 1;
/// `IPSET_ATTR_IPADDR_IPV6` (16 bytes, inside `IPSET_ATTR_IP`).
pub const IPSET_ATTR_IPADDR_IPV6: u16 = 2;
/// `nfgenmsg.nfgen_family` the `ipset` tool sends for every command (`AF_INET`).
pub const NFGEN_FAMILY: u8 = libc::AF_INET as u8;
/// `IPSET_MAXNAMELEN` - 1: the longest set name, without its NUL.
pub const SETNAME_MAX: usize = 31;
/// The longest timeout the kernel keeps (`IPSET_MAX_TIMEOUT`, about 24.8 days);
/// longer ones are clamped to it (the kernel would clamp them too).
pub const MAX_TIMEOUT_SECS: u32 = 2_147_483;

/// Bytes that always suffice for one [`ElemRequest`], [`IpPortIpRequest`],
/// [`NetRequest`] or [`header`] request.
pub const REQUEST_BUF_LEN: usize = 160;

/// The full nfnetlink message type of an ipset command.
pub const fn ipset_type(cmd: u16) -> u16 {
    (NFNL_SUBSYS_IPSET << 8) | cmd
}

/// A grant's timeout in whole seconds as ipset wants it: rounded up (so 1 ms
/// is 1 s, never 0), clamped to [`MAX_TIMEOUT_SECS`]; zero is refused because
/// in a set with timeout support 0 means "never expires".
pub fn timeout_secs(timeout: Duration) -> Result<u32, EncodeError> {
    if timeout.is_zero() {
        return Err(EncodeError::ZeroTimeout);
    }
    // Whole seconds plus one for any fraction: no u128 division (as_nanos).
    let secs = timeout
        .as_secs()
        .saturating_add(u64::from(timeout.subsec_nanos() != 0));
    Ok(u32::try_from(secs)
        .unwrap_or(u32::MAX)
        .min(MAX_TIMEOUT_SECS))
}

/// Add (with timeout) or delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElemOp {
    /// `IPSET_CMD_ADD` without `NLM_F_EXCL`: adds the element, or if it is
    /// already there replaces its timeout (in both directions).
    Add {
        /// How long the element lives (see [`timeout_secs`]).
        timeout: Duration,
    },
    /// `IPSET_CMD_DEL` without `NLM_F_EXCL`: an absent element is not an error.
    Delete,
}

/// One `hash:ip,port` element change: one message with `NLM_F_ACK`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ElemRequest<'a> {
    /// Add (with timeout) or delete.
    pub op: ElemOp,
    /// Set name, e.g. `postern4`; its family must match `addr`.
    pub set: &'a str,
    /// Source address of the element.
    pub addr: IpAddr,
    /// Protocol and destination port of the element.
    pub port: PortSpec,
}

impl ElemRequest<'_> {
    /// Writes the request into `buf` with sequence number `seq` (also the
    /// sequence of its ack); returns the number of bytes written.
    pub fn emit(&self, seq: u32, buf: &mut [u8]) -> Result<usize, EncodeError> {
        emit_ip_port(self.op, self.set, self.addr, self.port, None, seq, buf)
    }
}

/// One `hash:ip,port,ip` element change (the forward allow sets: source,
/// protocol and port of the LAN host, LAN host): one message with `NLM_F_ACK`,
/// matched by iptables as `src,dst,dst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpPortIpRequest<'a> {
    /// Add (with timeout) or delete.
    pub op: ElemOp,
    /// Set name, e.g. `postern_fwd_allow4`; its family must match both addresses.
    pub set: &'a str,
    /// First address (the source).
    pub addr: IpAddr,
    /// Protocol and port (the LAN host's).
    pub port: PortSpec,
    /// Second address (the LAN host).
    pub addr2: IpAddr,
}

impl IpPortIpRequest<'_> {
    /// Writes the request into `buf` with sequence number `seq` (also the
    /// sequence of its ack); returns the number of bytes written.
    pub fn emit(&self, seq: u32, buf: &mut [u8]) -> Result<usize, EncodeError> {
        emit_ip_port(
            self.op,
            self.set,
            self.addr,
            self.port,
            Some(self.addr2),
            seq,
            buf,
        )
    }
}

/// A nested address attribute (`IPSET_ATTR_IP` or `IPSET_ATTR_IP2`).
fn put_addr(w: &mut Writer<'_>, ty: u16, addr: IpAddr) -> Result<(), EncodeError> {
    let ip = w.begin_nest(ty)?;
    match addr {
        IpAddr::V4(a) => w.attr(IPSET_ATTR_IPADDR_IPV4 | NLA_F_NET_BYTEORDER, &a.octets())?,
        IpAddr::V6(a) => w.attr(IPSET_ATTR_IPADDR_IPV6 | NLA_F_NET_BYTEORDER, &a.octets())?,
    }
    w.end_nest(ip)
}

/// A `hash:ip,port` (or with `addr2`, `hash:ip,port,ip`) element message, in
/// the `ipset` tool's attribute order: IP, PORT, TIMEOUT, PROTO, IP2.
fn emit_ip_port(
    op: ElemOp,
    set: &str,
    addr: IpAddr,
    port: PortSpec,
    addr2: Option<IpAddr>,
    seq: u32,
    buf: &mut [u8],
) -> Result<usize, EncodeError> {
    let (cmd, timeout) = match op {
        ElemOp::Add { timeout } => (IPSET_CMD_ADD, Some(timeout_secs(timeout)?)),
        ElemOp::Delete => (IPSET_CMD_DEL, None),
    };
    let mut w = Writer::new(buf);
    let msg = begin(&mut w, cmd, seq, set)?;
    let data = w.begin_nest(IPSET_ATTR_DATA)?;
    put_addr(&mut w, IPSET_ATTR_IP, addr)?;
    w.attr(
        IPSET_ATTR_PORT | NLA_F_NET_BYTEORDER,
        &port.port.to_be_bytes(),
    )?;
    if let Some(secs) = timeout {
        w.attr(
            IPSET_ATTR_TIMEOUT | NLA_F_NET_BYTEORDER,
            &secs.to_be_bytes(),
        )?;
    }
    w.attr(IPSET_ATTR_PROTO, &[port.proto.number()])?;
    if let Some(a2) = addr2 {
        put_addr(&mut w, IPSET_ATTR_IP2, a2)?;
    }
    w.end_nest(data)?;
    w.end_msg(msg)?;
    Ok(w.len())
}

/// One `hash:net` element change (the ban sets): the network's address and,
/// unless it is a single address, `IPSET_ATTR_CIDR`, in the `ipset` tool's
/// attribute order (IP, CIDR, TIMEOUT); no port or protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetRequest<'a> {
    /// Add (with timeout) or delete.
    pub op: ElemOp,
    /// Set name, e.g. `postern_ban4`; its family must match the network's.
    pub set: &'a str,
    /// The element (a /32 for one IPv4 address, an IPv6 prefix).
    pub net: Cidr,
}

impl NetRequest<'_> {
    /// Writes the request into `buf` with sequence number `seq` (also the
    /// sequence of its ack); returns the number of bytes written.
    pub fn emit(&self, seq: u32, buf: &mut [u8]) -> Result<usize, EncodeError> {
        let (cmd, timeout) = match self.op {
            ElemOp::Add { timeout } => (IPSET_CMD_ADD, Some(timeout_secs(timeout)?)),
            ElemOp::Delete => (IPSET_CMD_DEL, None),
        };
        let mut w = Writer::new(buf);
        let msg = begin(&mut w, cmd, seq, self.set)?;
        let data = w.begin_nest(IPSET_ATTR_DATA)?;
        put_addr(&mut w, IPSET_ATTR_IP, self.net.addr())?;
        if !self.net.is_host() {
            w.attr(IPSET_ATTR_CIDR, &[self.net.len()])?;
        }
        if let Some(secs) = timeout {
            w.attr(
                IPSET_ATTR_TIMEOUT | NLA_F_NET_BYTEORDER,
                &secs.to_be_bytes(),
            )?;
        }
        w.end_nest(data)?;
        w.end_msg(msg)?;
        Ok(w.len())
    }
}

/// Writes an `IPSET_CMD_HEADER` request for `set` with `NLM_F_ACK`. The kernel
/// answers with a header message and an ack, or with `ENOENT` when there is
/// no such set.
pub fn header(set: &str, seq: u32, buf: &mut [u8]) -> Result<usize, EncodeError> {
    let mut w = Writer::new(buf);
    let msg = begin(&mut w, IPSET_CMD_HEADER, seq, set)?;
    w.end_msg(msg)?;
    Ok(w.len())
}

/// The message header and the attributes every command starts with.
fn begin(w: &mut Writer<'_>, cmd: u16, seq: u32, set: &str) -> Result<usize, EncodeError> {
    let msg = w.begin_msg(
        ipset_type(cmd),
        NLM_F_REQUEST | NLM_F_ACK,
        seq,
        NFGEN_FAMILY,
        0,
    )?;
    w.attr(IPSET_ATTR_PROTOCOL, &[IPSET_PROTOCOL])?;
    w.attr_name(IPSET_ATTR_SETNAME, set, SETNAME_MAX)?;
    Ok(msg)
}

/// What ipset's own error numbers (4096 and up, beyond the errno range) mean,
/// for those an add, delete or lookup of a `hash:ip,port` set can return.
pub fn describe_errno(errno: i32) -> Option<&'static str> {
    Some(match errno {
        4097 => "the kernel does not speak ipset protocol 6",
        4102 => "the set's type does not fit the element",
        4103 => "element already in the set, or not in it",
        4104 => "invalid prefix length for the set (hash:net takes 1 to 32 or 128)",
        4106 => "the address family does not match the set's",
        4107 => "the set was created without timeout support (`timeout 0` is needed)",
        4109 => "an IPv4 address was expected",
        4110 => "an IPv6 address was expected",
        // hash types' own codes (IPSET_ERR_TYPE_SPECIFIC + n)
        4352 => "the set is full",
        4353 => "the element is null",
        4354 => "invalid protocol",
        4355 => "protocol missing",

        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firewall::nfnetlink::wire::{ack_for, NLM_F_EXCL};
    use crate::test_rng::Rng;
    use core::net::{Ipv4Addr, Ipv6Addr};

    fn v4() -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2))
    }

    fn v6() -> IpAddr {
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1))
    }

    /// Expected bytes from pieces; header fields through `h16`/`h32` (host
    /// order), so the expectations also hold on big-endian MIPS.
    fn cat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }
    fn h16(v: u16) -> [u8; 2] {
        v.to_ne_bytes()
    }
    fn h32(v: u32) -> [u8; 4] {
        v.to_ne_bytes()
    }

    /// The message head the `ipset` tool sends, with protocol 6.
    fn head(len: u32, cmd: u16, seq: u32, set: &str) -> Vec<u8> {
        let mut name = format!("{set}\0").into_bytes();
        let name_len = 4 + name.len() as u16;
        name.resize(name.len().div_ceil(4) * 4, 0);
        cat(&[
            &h32(len),
            &h16(0x0600 | cmd),
            &h16(NLM_F_REQUEST | NLM_F_ACK),
            &h32(seq),
            &h32(0),
            &[2, 0, 0, 0], // AF_INET, NFNETLINK_V0, res_id 0
            &h16(5),
            &h16(1),
            &[6, 0, 0, 0], // IPSET_ATTR_PROTOCOL 6
            &h16(name_len),
            &h16(2),
            &name,
        ])
    }

    fn req(op: ElemOp, set: &str, addr: IpAddr, port: PortSpec) -> ElemRequest<'_> {
        ElemRequest {
            op,
            set,
            addr,
            port,
        }
    }

    /// `ipset -exist add postern4 10.0.0.2,tcp:22 timeout 30` as ipset 7.17 sent
    /// it on x86_64 (strace -xx), verbatim but for protocol 7 → 6 and without
    /// the trailing `IPSET_ATTR_LINENO` (8 bytes): 92 → 84 bytes.
    #[test]
    #[cfg(target_endian = "little")]
    fn add_v4_matches_ipset_capture() {
        #[rustfmt::skip]
        let expected: &[u8] = &[
            // nlmsghdr: len 84, type 0x0609 (IPSET << 8 | ADD), flags REQUEST|ACK, seq 0x6b04c33f (as captured), pid 0
            0x54, 0, 0, 0, 0x09, 0x06, 0x05, 0x00, 0x3f, 0xc3, 0x04, 0x6b, 0, 0, 0, 0,
            // nfgenmsg: AF_INET, v0, res_id 0
            0x02, 0x00, 0x00, 0x00,
            // PROTOCOL 6
            0x05, 0x00, 0x01, 0x00, 0x06, 0x00, 0x00, 0x00,
            // SETNAME "postern4"
            0x0d, 0x00, 0x02, 0x00, 0x70, 0x6f, 0x73, 0x74, 0x65, 0x72, 0x6e, 0x34, 0x00, 0, 0, 0,
            // DATA (nested, 40)
            0x28, 0x00, 0x07, 0x80,
            0x0c, 0x00, 0x01, 0x80, 0x08, 0x00, 0x01, 0x40, 0x0a, 0x00, 0x00, 0x02,
            0x06, 0x00, 0x04, 0x40, 0x00, 0x16, 0x00, 0x00, 0x08, 0x00, 0x06, 0x40,
            0x00, 0x00, 0x00, 0x1e, 0x05, 0x00, 0x07, 0x00, 0x06, 0x00, 0x00, 0x00,
        ];
        let r = req(
            ElemOp::Add {
                timeout: Duration::from_secs(30),
            },
            "postern4",
            v4(),
            PortSpec::tcp(22),
        );
        let mut buf = [0u8; REQUEST_BUF_LEN];
        let n = r.emit(0x6b04_c33f, &mut buf).unwrap();
        assert_eq!(&buf[..n], expected);
    }

    /// `ipset -exist add pb4 10.0.0.2 timeout 300` (a `hash:ip` set) as ipset
    /// 7.17 sent it (strace -xx), but for protocol 7 → 6 and without the
    /// trailing `IPSET_ATTR_LINENO`: IP, TIMEOUT.
    /// `ipset -exist add pb4 10.0.0.2 timeout 300` into a `hash:net` set:
    /// a single address has no CIDR attribute (ipset's LINENO left out).
    #[test]
    #[cfg(target_endian = "little")]
    fn add_single_address_matches_ipset_capture() {
        #[rustfmt::skip]
        let data: &[u8] = &[
            0x0c, 0x00, 0x01, 0x80, 0x08, 0x00, 0x01, 0x40, 0x0a, 0x00, 0x00, 0x02,
            0x08, 0x00, 0x06, 0x40, 0x00, 0x00, 0x01, 0x2c,
        ];
        let expected = cat(&[
            &head(20 + 8 + 8 + 24, IPSET_CMD_ADD, 0x6b04_c33f, "pb4"),
            &h16(24),
            &h16(0x8007),
            data,
        ]);
        let r = NetRequest {
            op: ElemOp::Add {
                timeout: Duration::from_secs(300),
            },
            set: "pb4",
            net: Cidr::host(v4()),
        };
        let mut buf = [0u8; REQUEST_BUF_LEN];
        let n = r.emit(0x6b04_c33f, &mut buf).unwrap();
        assert_eq!(&buf[..n], expected);
        // Delete: no timeout.
        let del = NetRequest {
            op: ElemOp::Delete,
            ..r
        };
        assert_eq!(del.emit(1, &mut buf).unwrap(), n - 8);
    }

    /// `ipset -exist add tb6 2001:db8:1:2::/64 timeout 30` and `ipset -exist
    /// del tb6 2001:db8:1:2::/64` into a `hash:net family inet6` set (strace
    /// -xx, ipset 7.17): IP, CIDR 64, TIMEOUT; DATA verbatim (LINENO left out).
    #[test]
    fn ipv6_prefix_matches_ipset_capture() {
        let prefix = [0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0];
        let data = |timeout: bool| {
            let mut d = cat(&[
                &h16(24),
                &h16(0x8001),
                &h16(20),
                &h16(0x4002),
                &prefix,
                &h16(5),
                &h16(3),
                &[64, 0, 0, 0],
            ]);
            if timeout {
                d.extend_from_slice(&cat(&[&h16(8), &h16(0x4006), &30u32.to_be_bytes()]));
            }
            d
        };
        let net = Cidr::network_of(IpAddr::V6(Ipv6Addr::from(prefix) | Ipv6Addr::LOCALHOST), 64);
        for (op, timeout, cmd) in [
            (
                ElemOp::Add {
                    timeout: Duration::from_secs(30),
                },
                true,
                IPSET_CMD_ADD,
            ),
            (ElemOp::Delete, false, IPSET_CMD_DEL),
        ] {
            let d = data(timeout);
            let expected = cat(&[
                &head(20 + 8 + 8 + 4 + d.len() as u32, cmd, 9, "tb6"),
                &h16(4 + d.len() as u16),
                &h16(0x8007),
                &d,
            ]);
            let r = NetRequest {
                op,
                set: "tb6",
                net,
            };
            let mut buf = [0u8; REQUEST_BUF_LEN];
            let n = r.emit(9, &mut buf).unwrap();
            assert_eq!(&buf[..n], &expected[..], "{op:?}");
            for small in 0..n {
                assert_eq!(
                    r.emit(9, &mut buf[..small]),
                    Err(EncodeError::BufferTooSmall)
                );
            }
        }
    }

    /// `ipset -exist del postern4 10.0.0.2,tcp:22`: IP, PORT, PROTO; no timeout.
    #[test]
    fn delete_v4_bytes() {
        let expected = cat(&[
            &head(20 + 8 + 16 + 32, IPSET_CMD_DEL, 7, "postern4"),
            &h16(32),
            &h16(0x8007),
            &h16(12),
            &h16(0x8001),
            &h16(8),
            &h16(0x4001),
            &[10, 0, 0, 2],
            &h16(6),
            &h16(0x4004),
            &[0, 22, 0, 0],
            &h16(5),
            &h16(7),
            &[6, 0, 0, 0],
        ]);
        let r = req(ElemOp::Delete, "postern4", v4(), PortSpec::tcp(22));
        let mut buf = [0u8; REQUEST_BUF_LEN];
        let n = r.emit(7, &mut buf).unwrap();
        assert_eq!(&buf[..n], &expected[..]);
    }

    /// `ipset -exist add postern6 2001:db8::1,udp:8000 timeout 90`: the DATA
    /// payload is verbatim from the capture (minus LINENO), headers in host order.
    #[test]
    fn add_v6_matches_ipset_capture() {
        #[rustfmt::skip]
        let captured: &[u8] = &[
            0x18, 0x00, 0x01, 0x80, 0x14, 0x00, 0x02, 0x40, 0x20, 0x01, 0x0d, 0xb8,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
            0x06, 0x00, 0x04, 0x40, 0x1f, 0x40, 0x00, 0x00, 0x08, 0x00, 0x06, 0x40,
            0x00, 0x00, 0x00, 0x5a, 0x05, 0x00, 0x07, 0x00, 0x11, 0x00, 0x00, 0x00,
        ];
        // The capture is little-endian: turn its nlattr headers into host order.
        let mut data = captured.to_vec();
        for at in [0usize, 4, 24, 32, 40] {
            let len = u16::from_le_bytes([data[at], data[at + 1]]);
            let ty = u16::from_le_bytes([data[at + 2], data[at + 3]]);
            data[at..at + 2].copy_from_slice(&len.to_ne_bytes());
            data[at + 2..at + 4].copy_from_slice(&ty.to_ne_bytes());
        }
        let expected = cat(&[
            &head(20 + 8 + 16 + 52, IPSET_CMD_ADD, u32::MAX, "postern6"),
            &h16(52),
            &h16(0x8007),
            &data,
        ]);
        let r = req(
            ElemOp::Add {
                timeout: Duration::from_secs(90),
            },
            "postern6",
            v6(),
            PortSpec::udp(8000),
        );
        let mut buf = [0u8; REQUEST_BUF_LEN];
        let n = r.emit(u32::MAX, &mut buf).unwrap();
        assert_eq!(&buf[..n], &expected[..]);
    }

    /// `ipset list -t postern4`'s lookup: protocol and name only.
    #[test]
    fn header_bytes() {
        let expected = head(44, IPSET_CMD_HEADER, 3, "postern4");
        let mut buf = [0u8; REQUEST_BUF_LEN];
        let n = header("postern4", 3, &mut buf).unwrap();
        assert_eq!(&buf[..n], &expected[..]);
    }

    #[test]
    fn never_exclusive() {
        let mut buf = [0u8; REQUEST_BUF_LEN];
        for op in [
            ElemOp::Delete,
            ElemOp::Add {
                timeout: Duration::from_secs(1),
            },
        ] {
            req(op, "s", v4(), PortSpec::tcp(1))
                .emit(0, &mut buf)
                .unwrap();
            let flags = u16::from_ne_bytes([buf[6], buf[7]]);
            assert_eq!(flags & NLM_F_EXCL, 0, "{op:?}");
        }
    }

    #[test]
    fn timeouts_round_up_clamp_and_refuse_zero() {
        assert_eq!(timeout_secs(Duration::ZERO), Err(EncodeError::ZeroTimeout));
        assert_eq!(timeout_secs(Duration::from_nanos(1)), Ok(1));
        assert_eq!(timeout_secs(Duration::from_millis(1500)), Ok(2));
        assert_eq!(timeout_secs(Duration::from_secs(30)), Ok(30));
        assert_eq!(
            timeout_secs(Duration::from_secs(u64::MAX)),
            Ok(MAX_TIMEOUT_SECS)
        );
        let mut buf = [0u8; REQUEST_BUF_LEN];
        let r = req(
            ElemOp::Add {
                timeout: Duration::from_micros(1),
            },
            "postern4",
            v4(),
            PortSpec::tcp(22),
        );
        let n = r.emit(0, &mut buf).unwrap();
        // TIMEOUT payload: after head (20 + 8 + 16), DATA (4), IP (12), PORT (8), attr header (4).
        let at = 44 + 4 + 12 + 8 + 4;
        assert_eq!(&buf[at - 2..at], &h16(0x4006));
        assert_eq!(&buf[at..at + 4], &1u32.to_be_bytes());
        assert!(n > at);
        let zero = ElemRequest {
            op: ElemOp::Add {
                timeout: Duration::ZERO,
            },
            ..r
        };
        assert_eq!(zero.emit(0, &mut buf), Err(EncodeError::ZeroTimeout));
    }

    #[test]
    fn bad_names_and_small_buffers_are_errors() {
        let mut buf = [0u8; REQUEST_BUF_LEN];
        let long = "x".repeat(SETNAME_MAX + 1);
        for set in ["", "a\0b", long.as_str()] {
            let r = req(ElemOp::Delete, set, v4(), PortSpec::tcp(22));
            assert_eq!(r.emit(0, &mut buf), Err(EncodeError::BadName));
            assert_eq!(header(set, 0, &mut buf), Err(EncodeError::BadName));
        }
        let max = "y".repeat(SETNAME_MAX);
        let r = req(
            ElemOp::Add {
                timeout: Duration::from_secs(u64::MAX),
            },
            &max,
            v6(),
            PortSpec::udp(65535),
        );
        let n = r.emit(0, &mut buf).unwrap();
        assert!(n <= REQUEST_BUF_LEN, "REQUEST_BUF_LEN suffices");
        for small in 0..n {
            let mut b = vec![0u8; small];
            assert_eq!(r.emit(0, &mut b), Err(EncodeError::BufferTooSmall));
        }
    }

    #[test]
    fn ipset_errnos_have_texts() {
        assert_eq!(
            describe_errno(4103),
            Some("element already in the set, or not in it")
        );
        assert!(describe_errno(4107).unwrap().contains("timeout"));
        assert_eq!(describe_errno(libc::ENOENT), None);
        assert_eq!(describe_errno(4096), None);
    }

    /// The kernel's refusal of `ipset add` (without `-exist`) of an element
    /// that is already there, shaped as strace showed it (`IPSET_ERR_EXIST`,
    /// `NLM_F_CAPPED` echo of the request header), then random corruptions
    /// of it, which must never panic.
    #[test]
    fn ipset_acks_parse_and_garbage_is_safe() {
        let mut reply = cat(&[
            &h32(36),
            &h16(2), // NLMSG_ERROR
            &h16(0x100),
            &h32(0x6b04_c33f),
            &h32(21928),
            &(-4103i32).to_ne_bytes(),
            &h32(92),
            &h16(0x0609),
            &h16(0x205),
            &h32(0x6b04_c33f),
            &h32(0),
        ]);
        assert_eq!(ack_for(&reply, 0x6b04_c33f), Some(Err(4103)));
        assert_eq!(ack_for(&reply, 1), None);
        let mut rng = Rng(42);
        for _ in 0..3000 {
            let i = rng.below(reply.len());
            reply[i] = rng.next() as u8;
            let cut = rng.below(reply.len() + 1);
            let _ = ack_for(&reply[..cut], 0x6b04_c33f);
        }
    }

    /// `ipset -exist add pfa4 10.0.0.2,tcp:80,10.213.1.2 timeout 30` and the
    /// IPv6 `… 2001:db8::1,udp:8000,fd00:213:1::2 timeout 90` into
    /// `hash:ip,port,ip` sets, as ipset 7.17 sent them (strace -xx): DATA
    /// verbatim but for the trailing `IPSET_ATTR_LINENO` (8 bytes).
    #[test]
    fn add_ip_port_ip_matches_ipset_captures() {
        #[rustfmt::skip]
        let data4: &[u8] = &[
            0x0c, 0x00, 0x01, 0x80, 0x08, 0x00, 0x01, 0x40, 0x0a, 0x00, 0x00, 0x02,
            0x06, 0x00, 0x04, 0x40, 0x00, 0x50, 0x00, 0x00, 0x08, 0x00, 0x06, 0x40,
            0x00, 0x00, 0x00, 0x1e, 0x05, 0x00, 0x07, 0x00, 0x06, 0x00, 0x00, 0x00,
            0x0c, 0x00, 0x14, 0x80, 0x08, 0x00, 0x01, 0x40, 0x0a, 0xd5, 0x01, 0x02,
        ];
        #[rustfmt::skip]
        let data6: &[u8] = &[
            0x18, 0x00, 0x01, 0x80, 0x14, 0x00, 0x02, 0x40, 0x20, 0x01, 0x0d, 0xb8,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
            0x06, 0x00, 0x04, 0x40, 0x1f, 0x40, 0x00, 0x00, 0x08, 0x00, 0x06, 0x40,
            0x00, 0x00, 0x00, 0x5a, 0x05, 0x00, 0x07, 0x00, 0x11, 0x00, 0x00, 0x00,
            0x18, 0x00, 0x14, 0x80, 0x14, 0x00, 0x02, 0x40, 0xfd, 0x00, 0x02, 0x13,
            0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02,
        ];
        let host = |captured: &[u8], attrs: &[usize]| {
            let mut v = captured.to_vec();
            for &at in attrs {
                let len = u16::from_le_bytes([v[at], v[at + 1]]);
                let ty = u16::from_le_bytes([v[at + 2], v[at + 3]]);
                v[at..at + 2].copy_from_slice(&len.to_ne_bytes());
                v[at + 2..at + 4].copy_from_slice(&ty.to_ne_bytes());
            }
            v
        };
        let data4 = host(data4, &[0, 4, 12, 20, 28, 36, 40]);
        let data6 = host(data6, &[0, 4, 24, 32, 40, 48, 52]);
        let lan6 = IpAddr::V6(Ipv6Addr::new(0xfd00, 0x213, 1, 0, 0, 0, 0, 2));
        for (addr, port, addr2, secs, data) in [
            (
                v4(),
                PortSpec::tcp(80),
                IpAddr::V4(Ipv4Addr::new(10, 213, 1, 2)),
                30,
                &data4,
            ),
            (v6(), PortSpec::udp(8000), lan6, 90, &data6),
        ] {
            let expected = cat(&[
                &head(
                    20 + 8 + 12 + 4 + data.len() as u32,
                    IPSET_CMD_ADD,
                    5,
                    "pfa4",
                ),
                &h16(4 + data.len() as u16),
                &h16(0x8007),
                data,
            ]);
            let r = IpPortIpRequest {
                op: ElemOp::Add {
                    timeout: Duration::from_secs(secs),
                },
                set: "pfa4",
                addr,
                port,
                addr2,
            };
            let mut buf = [0u8; REQUEST_BUF_LEN];
            let n = r.emit(5, &mut buf).unwrap();
            assert_eq!(&buf[..n], &expected[..], "{addr}");
        }
    }

    /// `ipset -exist del pfa4 10.0.0.2,tcp:80,10.213.1.2`: IP, PORT, PROTO,
    /// IP2 (no timeout), DATA verbatim from the capture.
    #[test]
    #[cfg(target_endian = "little")]
    fn delete_ip_port_ip_matches_ipset_capture() {
        #[rustfmt::skip]
        let data: &[u8] = &[
            // DATA: 44 (the capture's 52 less LINENO)
            0x2c, 0x00, 0x07, 0x80,
            0x0c, 0x00, 0x01, 0x80, 0x08, 0x00, 0x01, 0x40, 0x0a, 0x00, 0x00, 0x02,
            0x06, 0x00, 0x04, 0x40, 0x00, 0x50, 0x00, 0x00, 0x05, 0x00, 0x07, 0x00,
            0x06, 0x00, 0x00, 0x00, 0x0c, 0x00, 0x14, 0x80, 0x08, 0x00, 0x01, 0x40,
            0x0a, 0xd5, 0x01, 0x02,
        ];
        let expected = cat(&[&head(20 + 8 + 12 + 44, IPSET_CMD_DEL, 9, "pfa4"), data]);
        let r = IpPortIpRequest {
            op: ElemOp::Delete,
            set: "pfa4",
            addr: v4(),
            port: PortSpec::tcp(80),
            addr2: IpAddr::V4(Ipv4Addr::new(10, 213, 1, 2)),
        };
        let mut buf = [0u8; REQUEST_BUF_LEN];
        let n = r.emit(9, &mut buf).unwrap();
        assert_eq!(&buf[..n], expected);
        // The longest request fits REQUEST_BUF_LEN; shorter buffers are errors.
        let max = "z".repeat(SETNAME_MAX);
        let big = IpPortIpRequest {
            op: ElemOp::Add {
                timeout: Duration::from_secs(1),
            },
            set: &max,
            addr: v6(),
            addr2: v6(),
            ..r
        };
        let n = big.emit(0, &mut buf).unwrap();
        for small in 0..n {
            let mut b = vec![0u8; small];
            assert_eq!(big.emit(0, &mut b), Err(EncodeError::BufferTooSmall));
        }
    }
}
