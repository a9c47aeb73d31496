//! nf_tables netlink messages as bytes: set-element batches and set lookups.
//!
//! Owns the wire encoding of the few nf_tables messages postern sends per grant;
//! the framing (writer, ack parser) is shared with ipset in
//! [`crate::firewall::nfnetlink::wire`] and re-exported here.
//! Pure: no syscalls, no allocation, no panics. The socket that carries these
//! bytes lives in `nfnetlink::socket`; this module must never grow I/O, so that
//! its byte-exact tests also run under qemu-user, which refuses
//! `NETLINK_NETFILTER` sockets.
//!
//! Byte order, explicitly:
//! * `nlmsghdr` and `nlattr` header fields, and the `NLMSG_ERROR` errno: host order;
//! * `nfgenmsg.res_id`, the element timeout (`u64` ms) and the port inside the
//!   set key: network order (big-endian);
//! * addresses in the set key: network order as they appear in packets.
//!
//! A concatenated set key pads every field to 4 bytes:
//! `ipv4_addr . inet_proto . inet_service` is `addr(4) | proto(1) 0 0 0 | port(2, BE) 0 0`
//! (12 bytes); with an `ipv6_addr` it is 24 bytes.

use core::net::{IpAddr, Ipv4Addr};
use core::time::Duration;

use crate::cidr::Cidr;
use crate::firewall::nfnetlink::wire::Writer;
use crate::port::{L4Proto, PortSpec};

pub use crate::firewall::nfnetlink::wire::{
    ack_for, replies, EncodeError, Replies, Reply, NFNETLINK_V0, NLA_F_NESTED, NLMSG_DONE,
    NLMSG_ERROR, NLMSG_HDRLEN, NLMSG_NOOP, NLM_F_ACK, NLM_F_CREATE, NLM_F_REQUEST,
};

/// `NFNL_MSG_BATCH_BEGIN` (= `NLMSG_MIN_TYPE`).
pub const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
/// `NFNL_MSG_BATCH_END`.
pub const NFNL_MSG_BATCH_END: u16 = 0x11;
/// `NFNL_SUBSYS_NFTABLES`: the nf_tables subsystem id (high byte of the message type).
pub const NFNL_SUBSYS_NFTABLES: u16 = 10;
/// `NFT_MSG_NEWSET`.
pub const NFT_MSG_NEWSET: u16 = 9;
/// `NFT_MSG_GETSET`.
pub const NFT_MSG_GETSET: u16 = 10;
/// `NFT_MSG_NEWSETELEM`.
pub const NFT_MSG_NEWSETELEM: u16 = 12;
/// `NFT_MSG_GETSETELEM`.
pub const NFT_MSG_GETSETELEM: u16 = 13;
/// `NFT_MSG_DELSETELEM`.
pub const NFT_MSG_DELSETELEM: u16 = 14;
/// `NFPROTO_INET`: the `inet` family of nf_tables tables.
pub const NFPROTO_INET: u8 = 1;

/// `NFTA_SET_TABLE` (in set messages).
pub const NFTA_SET_TABLE: u16 = 1;
/// `NFTA_SET_NAME` (in set messages).
pub const NFTA_SET_NAME: u16 = 2;
/// `NFTA_SET_ELEM_LIST_TABLE`.
pub const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
/// `NFTA_SET_ELEM_LIST_SET`.
pub const NFTA_SET_ELEM_LIST_SET: u16 = 2;
/// `NFTA_SET_ELEM_LIST_ELEMENTS` (nested).
pub const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
/// `NFTA_LIST_ELEM` (nested, one element).
pub const NFTA_LIST_ELEM: u16 = 1;
/// `NFTA_SET_ELEM_KEY` (nested data).
pub const NFTA_SET_ELEM_KEY: u16 = 1;
/// `NFTA_SET_ELEM_TIMEOUT` (`u64` milliseconds, big-endian).
pub const NFTA_SET_ELEM_TIMEOUT: u16 = 4;
/// `NFTA_SET_ELEM_DATA` (nested data: the value of a map element).
pub const NFTA_SET_ELEM_DATA: u16 = 2;
/// `NFTA_DATA_VALUE`.
pub const NFTA_DATA_VALUE: u16 = 1;

/// Longest nf_tables object name, without the NUL (`NFT_NAME_MAXLEN` - 1).
pub const NAME_MAX: usize = 255;

/// Bytes that always suffice for one [`SetElemRequest`] or [`NetElemRequest`]
/// batch or [`get_set`] request with names up to [`NAME_MAX`].
pub const REQUEST_BUF_LEN: usize = 768;

/// Bytes that always suffice for an [`elem_batch`] of two forward elements
/// (keys up to 40 bytes, values up to 8) with names up to [`NAME_MAX`].
pub const FORWARD_BUF_LEN: usize = 1536;

/// The full nfnetlink message type of an nf_tables message.
pub const fn nft_type(msg: u16) -> u16 {
    (NFNL_SUBSYS_NFTABLES << 8) | msg
}

/// The concatenated set key `addr . proto . port`, padded as the kernel stores it.
///
/// Returns the key bytes in `out` and their length: 12 for IPv4, 24 for IPv6.
pub fn elem_key(addr: IpAddr, port: PortSpec, out: &mut [u8; 24]) -> usize {
    *out = [0; 24];
    let a = match addr {
        IpAddr::V4(v4) => {
            out[..4].copy_from_slice(&v4.octets());
            4
        }
        IpAddr::V6(v6) => {
            out[..16].copy_from_slice(&v6.octets());
            16
        }
    };
    out[a] = port.proto.number(); // inet_proto: 1 byte, 3 bytes padding
    out[a + 4..a + 6].copy_from_slice(&port.port.to_be_bytes()); // inet_service: BE, 2 padding
    a + 8
}

/// Add or delete a set element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElemOp {
    /// `NFT_MSG_NEWSETELEM` with `NLM_F_CREATE` and a timeout. Adding an element
    /// that exists succeeds but does **not** restart its timeout.
    Add {
        /// How long the element lives (rounded up to whole milliseconds; not zero).
        timeout: Duration,
    },
    /// `NFT_MSG_DELSETELEM`; fails with `ENOENT` if the element is absent.
    Delete,
}

/// One set-element change, sent as a batch of three messages:
/// `BATCH_BEGIN` (seq), the element message (seq + 1, `NLM_F_ACK`), `BATCH_END` (seq + 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetElemRequest<'a> {
    /// Add (with timeout) or delete.
    pub op: ElemOp,
    /// Table in family `inet`, e.g. `postern` or `fw4`.
    pub table: &'a str,
    /// Set name, e.g. `allow4`.
    pub set: &'a str,
    /// Source address of the element.
    pub addr: IpAddr,
    /// Protocol and destination port of the element.
    pub port: PortSpec,
}

impl SetElemRequest<'_> {
    /// The sequence number of the element message (the one whose ack matters)
    /// when the batch is emitted with `seq`.
    pub const fn ack_seq(seq: u32) -> u32 {
        seq.wrapping_add(1)
    }

    /// Writes the batch into `buf` with sequence numbers `seq..=seq+2`;
    /// returns the number of bytes written.
    pub fn emit(&self, seq: u32, buf: &mut [u8]) -> Result<usize, EncodeError> {
        let mut k = [0u8; 24];
        let klen = elem_key(self.addr, self.port, &mut k);
        emit_elem(self.op, self.table, self.set, &k[..klen], seq, buf)
    }
}

/// `NFTA_SET_ELEM_FLAGS` (`u32`, big-endian).
pub const NFTA_SET_ELEM_FLAGS: u16 = 3;
/// `NFTA_SET_ELEM_USERDATA` (libnftnl TLVs).
pub const NFTA_SET_ELEM_USERDATA: u16 = 6;
/// `NFT_SET_ELEM_INTERVAL_END`: the element ends an interval (its key is the
/// first address after it).
pub const NFT_SET_ELEM_INTERVAL_END: u32 = 1;

/// The interval keys of a network: its first address and the first address
/// after it (`None` when the network reaches the top of the address space,
/// e.g. `255.255.255.255/32`: an interval that stays open to the end).
/// Address bytes in network order (4 or 16 bytes, the first `len` of each array).
pub fn net_interval(net: Cidr) -> ([u8; 16], Option<[u8; 16]>, usize) {
    let mut start = [0u8; 16];
    let mut end = [0u8; 16];
    match net.addr() {
        IpAddr::V4(a) => {
            let first = u32::from(a);
            start[..4].copy_from_slice(&first.to_be_bytes());
            let size = 1u64 << (32 - u32::from(net.len().min(32)));
            match u32::try_from(u64::from(first) + size) {
                Ok(next) => {
                    end[..4].copy_from_slice(&next.to_be_bytes());
                    (start, Some(end), 4)
                }
                Err(_) => (start, None, 4),
            }
        }
        IpAddr::V6(a) => {
            let first = u128::from(a);
            start.copy_from_slice(&first.to_be_bytes());
            let shift = 128 - u32::from(net.len().min(128));
            let next = if shift == 128 {
                None
            } else {
                first.checked_add(1u128 << shift)
            };
            match next {
                Some(next) => {
                    end.copy_from_slice(&next.to_be_bytes());
                    (start, Some(end), 16)
                }
                None => (start, None, 16),
            }
        }
    }
}

/// A change to a set of networks (`type ipv4_addr` or `ipv6_addr` with
/// `flags interval, timeout`, e.g. the ban sets): one element message in a
/// batch, as [`SetElemRequest`], holding the interval's start (with the
/// timeout) and its end (`NFT_SET_ELEM_INTERVAL_END`, no timeout), as `nft`
/// 1.0.6 sends them. A network reaching the top of the address space has no
/// end element; nft marks its start "open" in the element's user data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetElemRequest<'a> {
    /// Add (with timeout) or delete.
    pub op: ElemOp,
    /// Table in family `inet`.
    pub table: &'a str,
    /// Set name, e.g. `ban4`; its type must match the address family.
    pub set: &'a str,
    /// The network (a /32 for one IPv4 address).
    pub net: Cidr,
}

impl NetElemRequest<'_> {
    /// Writes the batch into `buf` with sequence numbers `seq..=seq+2`
    /// (the element message is `seq + 1`, see [`SetElemRequest::ack_seq`]).
    pub fn emit(&self, seq: u32, buf: &mut [u8]) -> Result<usize, EncodeError> {
        let timeout_ms = match self.op {
            ElemOp::Add { timeout } => Some(timeout_ms(timeout)?),
            ElemOp::Delete => None,
        };
        let (start, end, n) = net_interval(self.net);
        let mut w = Writer::new(buf);
        batch_marker(&mut w, NFNL_MSG_BATCH_BEGIN, seq)?;
        let (ty, flags) = match self.op {
            ElemOp::Add { .. } => (
                nft_type(NFT_MSG_NEWSETELEM),
                NLM_F_REQUEST | NLM_F_CREATE | NLM_F_ACK,
            ),
            ElemOp::Delete => (nft_type(NFT_MSG_DELSETELEM), NLM_F_REQUEST | NLM_F_ACK),
        };
        let msg = w.begin_msg(ty, flags, seq.wrapping_add(1), NFPROTO_INET, 0)?;
        w.attr_name(NFTA_SET_ELEM_LIST_TABLE, self.table, NAME_MAX)?;
        w.attr_name(NFTA_SET_ELEM_LIST_SET, self.set, NAME_MAX)?;
        let elements = w.begin_nest(NFTA_SET_ELEM_LIST_ELEMENTS)?;
        let elem = w.begin_nest(NFTA_LIST_ELEM)?;
        if let Some(ms) = timeout_ms {
            w.attr(NFTA_SET_ELEM_TIMEOUT, &ms.to_be_bytes())?;
        }
        let key = w.begin_nest(NFTA_SET_ELEM_KEY)?;
        w.attr(NFTA_DATA_VALUE, &start[..n])?;
        w.end_nest(key)?;
        if end.is_none() && timeout_ms.is_some() {
            // NFTNL_UDATA_SET_ELEM_FLAGS (1), 4 bytes, NFTNL_SET_ELEM_F_INTERVAL_OPEN (1).
            let mut u = [1, 4, 0, 0, 0, 0];
            u[2..6].copy_from_slice(&1u32.to_ne_bytes());
            w.attr(NFTA_SET_ELEM_USERDATA, &u)?;
        }
        w.end_nest(elem)?;
        if let Some(end) = end {
            let elem = w.begin_nest(NFTA_LIST_ELEM + 1)?;
            w.attr(
                NFTA_SET_ELEM_FLAGS,
                &NFT_SET_ELEM_INTERVAL_END.to_be_bytes(),
            )?;
            let key = w.begin_nest(NFTA_SET_ELEM_KEY)?;
            w.attr(NFTA_DATA_VALUE, &end[..n])?;
            w.end_nest(key)?;
            w.end_nest(elem)?;
        }
        w.end_nest(elements)?;
        w.end_msg(msg)?;
        batch_marker(&mut w, NFNL_MSG_BATCH_END, seq.wrapping_add(2))?;
        Ok(w.len())
    }
}

/// Writes a batch marker (`NFNL_MSG_BATCH_BEGIN` or `_END`) with sequence
/// number `seq`: every nf_tables batch starts and ends with one.
pub(crate) fn batch_marker(w: &mut Writer<'_>, ty: u16, seq: u32) -> Result<(), EncodeError> {
    let m = w.begin_msg(ty, NLM_F_REQUEST, seq, 0, NFNL_SUBSYS_NFTABLES)?;
    w.end_msg(m)
}

/// An element timeout in whole milliseconds, rounded up so that 1 µs is 1 ms,
/// not 0 (= permanent); zero is refused. Too large values saturate (the
/// kernel refuses them with `ERANGE`).
fn timeout_ms(timeout: Duration) -> Result<u64, EncodeError> {
    if timeout.is_zero() {
        return Err(EncodeError::ZeroTimeout);
    }
    // Whole seconds and the rounded-up rest, without u128 arithmetic (its
    // division routine costs 2 KiB in a 32-bit router build).
    let ms = timeout
        .as_secs()
        .saturating_mul(1000)
        .saturating_add(u64::from(timeout.subsec_nanos().div_ceil(1_000_000)));
    Ok(ms)
}

/// The element batch for any key (see [`SetElemRequest`] for its shape).
fn emit_elem(
    op: ElemOp,
    table: &str,
    set: &str,
    key: &[u8],
    seq: u32,
    buf: &mut [u8],
) -> Result<usize, EncodeError> {
    let elem = KeyElem {
        set,
        key,
        data: None,
    };
    elem_batch(op, table, &[elem], seq, buf)
}

/// One element of an [`elem_batch`]: a set (or map) and the raw key bytes,
/// with the map value for a map element (`NFTA_SET_ELEM_DATA`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyElem<'a> {
    /// Set or map name in the table.
    pub set: &'a str,
    /// The key as the kernel stores it (see [`elem_key`], [`fwd_allow_key`]).
    pub key: &'a [u8],
    /// The map value (see [`fwd_map_value`]); `None` for a set. Ignored by deletes.
    pub data: Option<&'a [u8]>,
}

/// Writes one transaction changing every element of `elems` the same way:
/// `BATCH_BEGIN` (seq), one element message per element (seq + 1 ..= seq + n,
/// each with `NLM_F_ACK`), `BATCH_END` (seq + n + 1). The kernel applies all or
/// none. Returns the bytes written.
pub fn elem_batch(
    op: ElemOp,
    table: &str,
    elems: &[KeyElem<'_>],
    seq: u32,
    buf: &mut [u8],
) -> Result<usize, EncodeError> {
    let timeout_ms = match op {
        ElemOp::Add { timeout } => Some(timeout_ms(timeout)?),
        ElemOp::Delete => None,
    };
    let mut w = Writer::new(buf);

    batch_marker(&mut w, NFNL_MSG_BATCH_BEGIN, seq)?;

    let (ty, flags) = match op {
        ElemOp::Add { .. } => (
            nft_type(NFT_MSG_NEWSETELEM),
            NLM_F_REQUEST | NLM_F_CREATE | NLM_F_ACK,
        ),
        ElemOp::Delete => (nft_type(NFT_MSG_DELSETELEM), NLM_F_REQUEST | NLM_F_ACK),
    };
    let mut msg_seq = seq;
    for e in elems {
        msg_seq = msg_seq.wrapping_add(1);
        let msg = w.begin_msg(ty, flags, msg_seq, NFPROTO_INET, 0)?;
        w.attr_name(NFTA_SET_ELEM_LIST_TABLE, table, NAME_MAX)?;
        w.attr_name(NFTA_SET_ELEM_LIST_SET, e.set, NAME_MAX)?;
        let elements = w.begin_nest(NFTA_SET_ELEM_LIST_ELEMENTS)?;
        let elem = w.begin_nest(NFTA_LIST_ELEM)?;
        if let Some(ms) = timeout_ms {
            w.attr(NFTA_SET_ELEM_TIMEOUT, &ms.to_be_bytes())?;
        }
        let nest = w.begin_nest(NFTA_SET_ELEM_KEY)?;
        w.attr(NFTA_DATA_VALUE, e.key)?;
        w.end_nest(nest)?;
        if let (Some(data), ElemOp::Add { .. }) = (e.data, op) {
            let nest = w.begin_nest(NFTA_SET_ELEM_DATA)?;
            w.attr(NFTA_DATA_VALUE, data)?;
            w.end_nest(nest)?;
        }
        w.end_nest(elem)?;
        w.end_nest(elements)?;
        w.end_msg(msg)?;
    }

    batch_marker(&mut w, NFNL_MSG_BATCH_END, msg_seq.wrapping_add(1))?;
    Ok(w.len())
}

/// The forward map key `src . proto . port` (`ipv4_addr . inet_proto .
/// inet_service`, 12 bytes, padded like [`elem_key`]).
pub fn fwd_map_key(src: Ipv4Addr, proto: L4Proto, port: u16) -> [u8; 12] {
    let mut k = [0u8; 24];
    elem_key(IpAddr::V4(src), PortSpec { proto, port }, &mut k);
    let mut out = [0u8; 12];
    out.copy_from_slice(&k[..12]);
    out
}

/// The forward map value `to . port` (`ipv4_addr . inet_service`):
/// `addr(4) | port(2, BE) 0 0`, 8 bytes.
pub fn fwd_map_value(to: Ipv4Addr, port: u16) -> [u8; 8] {
    let mut v = [0u8; 8];
    v[..4].copy_from_slice(&to.octets());
    v[4..6].copy_from_slice(&port.to_be_bytes());
    v
}

/// The forward allow-set key `src . dst . proto . port` (`ipv4_addr .
/// ipv4_addr . inet_proto . inet_service`: 16 bytes; with `ipv6_addr`: 40).
/// `None` when `src` and `dst` are of different families.
pub fn fwd_allow_key(
    src: IpAddr,
    dst: IpAddr,
    proto: L4Proto,
    port: u16,
    out: &mut [u8; 40],
) -> Option<usize> {
    *out = [0; 40];
    let a = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            out[..4].copy_from_slice(&s.octets());
            out[4..8].copy_from_slice(&d.octets());
            8
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            out[..16].copy_from_slice(&s.octets());
            out[16..32].copy_from_slice(&d.octets());
            32
        }
        _ => return None,
    };
    out[a] = proto.number(); // 1 byte, 3 bytes padding
    out[a + 4..a + 6].copy_from_slice(&port.to_be_bytes()); // 2 bytes, 2 padding
    Some(a + 8)
}

/// Writes an `NFT_MSG_GETSETELEM` request (not batched, so no transaction;
/// `NLM_F_ACK`) for the element `addr . proto . port` of set `set` in `inet`
/// table `table`. The kernel answers with the element and an ack, or with
/// `ENOENT` when the element is absent (or expired).
pub fn get_elem(
    table: &str,
    set: &str,
    addr: IpAddr,
    port: PortSpec,
    seq: u32,
    buf: &mut [u8],
) -> Result<usize, EncodeError> {
    let mut k = [0u8; 24];
    let klen = elem_key(addr, port, &mut k);
    get_elem_key(table, set, &k[..klen], seq, buf)
}

/// [`get_elem`] for any key bytes (e.g. a forward map or allow-set key).
pub fn get_elem_key(
    table: &str,
    set: &str,
    key: &[u8],
    seq: u32,
    buf: &mut [u8],
) -> Result<usize, EncodeError> {
    let mut w = Writer::new(buf);
    let msg = w.begin_msg(
        nft_type(NFT_MSG_GETSETELEM),
        NLM_F_REQUEST | NLM_F_ACK,
        seq,
        NFPROTO_INET,
        0,
    )?;
    w.attr_name(NFTA_SET_ELEM_LIST_TABLE, table, NAME_MAX)?;
    w.attr_name(NFTA_SET_ELEM_LIST_SET, set, NAME_MAX)?;
    let elements = w.begin_nest(NFTA_SET_ELEM_LIST_ELEMENTS)?;
    let elem = w.begin_nest(NFTA_LIST_ELEM)?;
    let key_nest = w.begin_nest(NFTA_SET_ELEM_KEY)?;
    w.attr(NFTA_DATA_VALUE, key)?;
    w.end_nest(key_nest)?;
    w.end_nest(elem)?;
    w.end_nest(elements)?;
    w.end_msg(msg)?;
    Ok(w.len())
}

/// Writes an `NFT_MSG_GETSET` request (not batched; `NLM_F_ACK`) for set `set`
/// of `inet` table `table`. The kernel answers with a `NEWSET` message and an
/// ack, or with an error (`ENOENT` when the table or set is missing).
pub fn get_set(table: &str, set: &str, seq: u32, buf: &mut [u8]) -> Result<usize, EncodeError> {
    let mut w = Writer::new(buf);
    let msg = w.begin_msg(
        nft_type(NFT_MSG_GETSET),
        NLM_F_REQUEST | NLM_F_ACK,
        seq,
        NFPROTO_INET,
        0,
    )?;
    w.attr_name(NFTA_SET_TABLE, table, NAME_MAX)?;
    w.attr_name(NFTA_SET_NAME, set, NAME_MAX)?;
    w.end_msg(msg)?;
    Ok(w.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::{Ipv4Addr, Ipv6Addr};

    fn v4() -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2))
    }

    fn v6() -> IpAddr {
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1))
    }

    /// Builds expected bytes from pieces; header fields go through `h16`/`h32`
    /// (host order) so the same expectation holds on big-endian MIPS.
    fn cat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }
    fn h16(v: u16) -> [u8; 2] {
        v.to_ne_bytes()
    }
    fn h32(v: u32) -> [u8; 4] {
        v.to_ne_bytes()
    }

    #[test]
    fn keys_are_padded_concatenations() {
        let mut k = [0xffu8; 24];
        let n = elem_key(v4(), PortSpec::tcp(22), &mut k);
        assert_eq!(&k[..n], &[10, 0, 0, 2, 6, 0, 0, 0, 0, 22, 0, 0]);
        let n = elem_key(v6(), PortSpec::udp(8000), &mut k);
        assert_eq!(
            &k[..n],
            &[
                0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, // addr
                17, 0, 0, 0, // udp + pad
                0x1f, 0x40, 0, 0, // 8000 BE + pad
            ]
        );
    }

    /// The batch `nft add element inet postern allow4 { 10.0.0.2 . tcp . 22 timeout 30s }`
    /// sends (captured with `strace -e sendmsg -xx` from nft 1.0.6 on x86_64), with
    /// postern's two differences: no `NFTA_SET_ELEM_LIST_SET_ID` (nft's cache id;
    /// the kernel finds the set by name) and `NLM_F_ACK` on the element message.
    #[test]
    #[cfg(target_endian = "little")]
    fn add_v4_matches_nft_capture() {
        #[rustfmt::skip]
        let expected: &[u8] = &[
            // BATCH_BEGIN: len 20, type 0x10, flags REQUEST, seq 0, pid 0; AF_UNSPEC, v0, res_id htons(10)
            0x14, 0, 0, 0, 0x10, 0, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x0a,
            // NEWSETELEM: len 84, type 0x0a0c, flags REQUEST|ACK|CREATE, seq 1; NFPROTO_INET
            0x54, 0, 0, 0, 0x0c, 0x0a, 0x05, 0x04, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
            // TABLE "postern"
            12, 0, 1, 0, b'p', b'o', b's', b't', b'e', b'r', b'n', 0,
            // SET "allow4" (len 11 + 1 pad)
            11, 0, 2, 0, b'a', b'l', b'l', b'o', b'w', b'4', 0, 0,
            // ELEMENTS (nested, 40) — verbatim from the capture
            0x28, 0x00, 0x03, 0x80,
            0x24, 0x00, 0x01, 0x80, 0x0c, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x75, 0x30, 0x14, 0x00, 0x01, 0x80, 0x10, 0x00, 0x01, 0x00,
            0x0a, 0x00, 0x00, 0x02, 0x06, 0x00, 0x00, 0x00, 0x00, 0x16, 0x00, 0x00,
            // BATCH_END: seq 2
            0x14, 0, 0, 0, 0x11, 0, 0x01, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x0a,
        ];
        let req = SetElemRequest {
            op: ElemOp::Add {
                timeout: Duration::from_secs(30),
            },
            table: "postern",
            set: "allow4",
            addr: v4(),
            port: PortSpec::tcp(22),
        };
        let mut buf = [0u8; REQUEST_BUF_LEN];
        let n = req.emit(0, &mut buf).unwrap();
        assert_eq!(&buf[..n], expected);
    }

    /// `nft delete element inet postern allow4 { 10.0.0.2 . tcp . 22 }` as captured,
    /// plus `NLM_F_ACK`, with sequence numbers starting at 7.
    #[test]
    fn delete_v4_bytes() {
        let expected = cat(&[
            &h32(20),
            &h16(0x10),
            &h16(0x1),
            &h32(7),
            &h32(0),
            &[0, 0, 0x00, 0x0a],
            // DELSETELEM, 72 bytes (as captured)
            &h32(72),
            &h16(0x0a0e),
            &h16(0x5),
            &h32(8),
            &h32(0),
            &[1, 0, 0, 0],
            &h16(12),
            &h16(1),
            b"postern\0",
            &h16(11),
            &h16(2),
            b"allow4\0\0",
            &h16(28),
            &h16(0x8003),
            &h16(24),
            &h16(0x8001),
            &h16(20),
            &h16(0x8001),
            &h16(16),
            &h16(1),
            &[10, 0, 0, 2, 6, 0, 0, 0, 0, 0x16, 0, 0],
            &h32(20),
            &h16(0x11),
            &h16(0x1),
            &h32(9),
            &h32(0),
            &[0, 0, 0x00, 0x0a],
        ]);
        let req = SetElemRequest {
            op: ElemOp::Delete,
            table: "postern",
            set: "allow4",
            addr: v4(),
            port: PortSpec::tcp(22),
        };
        let mut buf = [0u8; REQUEST_BUF_LEN];
        let n = req.emit(7, &mut buf).unwrap();
        assert_eq!(&buf[..n], &expected[..]);
        assert_eq!(SetElemRequest::ack_seq(7), 8);
    }

    #[test]
    fn get_elem_is_the_delete_message_alone_with_the_get_type() {
        for (addr, port) in [(v4(), PortSpec::tcp(22)), (v6(), PortSpec::udp(8000))] {
            let req = SetElemRequest {
                op: ElemOp::Delete,
                table: "postern",
                set: "allow4",
                addr,
                port,
            };
            let mut batch = [0u8; REQUEST_BUF_LEN];
            let n = req.emit(7, &mut batch).unwrap();
            // The element message sits between the 20-byte batch begin and end.
            let mut expected = batch[20..n - 20].to_vec();
            expected[4..6].copy_from_slice(&h16(nft_type(NFT_MSG_GETSETELEM)));
            let mut buf = [0u8; REQUEST_BUF_LEN];
            let m = get_elem("postern", "allow4", addr, port, 8, &mut buf).unwrap();
            assert_eq!(&buf[..m], &expected[..]);
            // Same flags (REQUEST | ACK), same sequence number (8 = ack_seq(7)).
            assert_eq!(&buf[6..8], &h16(NLM_F_REQUEST | NLM_F_ACK));
            assert_eq!(&buf[8..12], &h32(8));
        }
        let mut small = [0u8; 40];
        assert!(get_elem("postern", "allow4", v4(), PortSpec::tcp(22), 1, &mut small).is_err());
    }

    /// `nft add element inet postern allow6 { 2001:db8::1 . udp . 8000 timeout 90s }`:
    /// the ELEMENTS attribute payload is verbatim from the capture.
    #[test]
    fn add_v6_bytes() {
        #[rustfmt::skip]
        let captured_elements: &[u8] = &[
            0x30, 0x00, 0x01, 0x80, 0x0c, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x01, 0x5f, 0x90, 0x20, 0x00, 0x01, 0x80, 0x1c, 0x00, 0x01, 0x00,
            0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x01, 0x11, 0x00, 0x00, 0x00, 0x1f, 0x40, 0x00, 0x00,
        ];
        // The capture is little-endian; turn its nlattr headers into host order.
        let mut elements = captured_elements.to_vec();
        for at in [0usize, 4, 16, 20] {
            let len = u16::from_le_bytes([elements[at], elements[at + 1]]);
            let ty = u16::from_le_bytes([elements[at + 2], elements[at + 3]]);
            elements[at..at + 2].copy_from_slice(&len.to_ne_bytes());
            elements[at + 2..at + 4].copy_from_slice(&ty.to_ne_bytes());
        }
        let expected = cat(&[
            &h32(20),
            &h16(0x10),
            &h16(0x1),
            &h32(0xffff_fffe),
            &h32(0),
            &[0, 0, 0x00, 0x0a],
            &h32(20 + 12 + 12 + 4 + 48),
            &h16(0x0a0c),
            &h16(0x405),
            &h32(0xffff_ffff),
            &h32(0),
            &[1, 0, 0, 0],
            &h16(12),
            &h16(1),
            b"postern\0",
            &h16(11),
            &h16(2),
            b"allow6\0\0",
            &h16(52),
            &h16(0x8003),
            &elements,
            &h32(20),
            &h16(0x11),
            &h16(0x1),
            &h32(0), // sequence numbers wrap
            &h32(0),
            &[0, 0, 0x00, 0x0a],
        ]);
        let req = SetElemRequest {
            op: ElemOp::Add {
                timeout: Duration::from_secs(90),
            },
            table: "postern",
            set: "allow6",
            addr: v6(),
            port: PortSpec::udp(8000),
        };
        let mut buf = [0u8; REQUEST_BUF_LEN];
        let n = req.emit(0xffff_fffe, &mut buf).unwrap();
        assert_eq!(&buf[..n], &expected[..]);
    }

    #[test]
    fn timeouts_round_up_and_zero_is_refused() {
        let mut buf = [0u8; REQUEST_BUF_LEN];
        let mut req = SetElemRequest {
            op: ElemOp::Add {
                timeout: Duration::from_micros(1),
            },
            table: "fw4",
            set: "postern_allow4",
            addr: v4(),
            port: PortSpec::tcp(22),
        };
        let n = req.emit(0, &mut buf).unwrap();
        // Timeout attribute: after batch begin (20), msg header (20), table (8), set (20),
        // ELEMENTS (4), LIST_ELEM (4), attr header (4).
        let at = 20 + 20 + 8 + 20 + 4 + 4 + 4;
        assert_eq!(&buf[at..at + 8], &1u64.to_be_bytes());
        assert!(n > at);
        req.op = ElemOp::Add {
            timeout: Duration::ZERO,
        };
        assert_eq!(req.emit(0, &mut buf), Err(EncodeError::ZeroTimeout));
    }

    #[test]
    fn bad_names_and_small_buffers_are_errors() {
        let mut buf = [0u8; REQUEST_BUF_LEN];
        let long = "x".repeat(NAME_MAX + 1);
        for (table, set) in [("", "s"), ("t", "a\0b"), (long.as_str(), "s")] {
            let req = SetElemRequest {
                op: ElemOp::Delete,
                table,
                set,
                addr: v4(),
                port: PortSpec::tcp(22),
            };
            assert_eq!(req.emit(0, &mut buf), Err(EncodeError::BadName));
        }
        let max = "y".repeat(NAME_MAX);
        let req = SetElemRequest {
            op: ElemOp::Add {
                timeout: Duration::from_secs(u64::MAX),
            },
            table: &max,
            set: &max,
            addr: v6(),
            port: PortSpec::udp(65535),
        };
        assert!(req.emit(0, &mut buf).is_ok(), "REQUEST_BUF_LEN suffices");
        assert!(get_set(&max, &max, 0, &mut buf).is_ok());
        for small in 0..120 {
            let mut b = vec![0u8; small];
            let r = SetElemRequest {
                table: "postern",
                set: "allow6",
                ..req
            };
            assert_eq!(r.emit(0, &mut b), Err(EncodeError::BufferTooSmall));
        }
    }

    /// `nft add element inet postern ban6 { 2001:db8:1:2::/64 timeout 30s }`
    /// and `… ban4 { 10.0.0.2 timeout 30s }` into sets with `flags interval,
    /// timeout` (strace -xx, nft 1.0.6, x86_64): the interval's start with
    /// the timeout and its end flagged `INTERVAL_END`, verbatim. (nft also
    /// sends a leading end element at `::`/`0.0.0.0` when the set is empty,
    /// which the kernel does not need; and numbers the list entries 2, 3.)
    #[test]
    fn ban_networks_match_nft_captures() {
        #[rustfmt::skip]
        let v6_elements: &[u8] = &[
            0x28, 0x00, 0x01, 0x80, 0x0c, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x75, 0x30, 0x18, 0x00, 0x01, 0x80, 0x14, 0x00, 0x01, 0x00,
            0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00,
            0x24, 0x00, 0x02, 0x80, 0x08, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01,
            0x18, 0x00, 0x01, 0x80, 0x14, 0x00, 0x01, 0x00, 0x20, 0x01, 0x0d, 0xb8,
            0x00, 0x01, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        ];
        #[rustfmt::skip]
        let v4_elements: &[u8] = &[
            0x1c, 0x00, 0x01, 0x80, 0x0c, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x75, 0x30, 0x0c, 0x00, 0x01, 0x80, 0x08, 0x00, 0x01, 0x00,
            0x0a, 0x00, 0x00, 0x02,
            0x18, 0x00, 0x02, 0x80, 0x08, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01,
            0x0c, 0x00, 0x01, 0x80, 0x08, 0x00, 0x01, 0x00, 0x0a, 0x00, 0x00, 0x03,
        ];
        let add = nft_type(NFT_MSG_NEWSETELEM);
        let flags = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_ACK;
        let op = ElemOp::Add {
            timeout: Duration::from_secs(30),
        };
        let net6 = Cidr::network_of(v6_net_member(), 64);
        for (set, net, captured, attrs) in [
            (
                "ban6",
                net6,
                v6_elements,
                &[0, 4, 16, 20, 40, 44, 52, 56][..],
            ),
            (
                "ban4",
                Cidr::host(v4()),
                v4_elements,
                &[0, 4, 16, 20, 28, 32, 40, 44],
            ),
        ] {
            let elements = host_order(captured, attrs);
            let expected = cat(&[
                &batch_msg(0x10, 7),
                &elem_msg(add, flags, 8, set, &elements),
                &batch_msg(0x11, 9),
            ]);
            let req = NetElemRequest {
                op,
                table: "postern",
                set,
                net,
            };
            let mut buf = [0u8; REQUEST_BUF_LEN];
            let n = req.emit(7, &mut buf).unwrap();
            assert_eq!(&buf[..n], &expected[..], "{set}");
            // The delete names the same two elements, without the timeout
            // (nft echoes the listed timeout and expiry; the kernel ignores them).
            let del = NetElemRequest {
                op: ElemOp::Delete,
                ..req
            };
            let start_len = if set == "ban6" { 40 } else { 28 };
            let mut del_elements = elements[..4].to_vec();
            del_elements[..2].copy_from_slice(&h16(start_len as u16 - 12));
            del_elements.extend_from_slice(&elements[16..]);
            let expected = cat(&[
                &batch_msg(0x10, 7),
                &elem_msg(
                    nft_type(NFT_MSG_DELSETELEM),
                    NLM_F_REQUEST | NLM_F_ACK,
                    8,
                    set,
                    &del_elements,
                ),
                &batch_msg(0x11, 9),
            ]);
            let n = del.emit(7, &mut buf).unwrap();
            assert_eq!(&buf[..n], &expected[..], "{set} delete");
            // Too small a buffer is an error at every length, never a panic.
            for small in 0..n {
                assert_eq!(
                    del.emit(7, &mut buf[..small]),
                    Err(EncodeError::BufferTooSmall)
                );
            }
        }
        // REQUEST_BUF_LEN suffices for the longest names and an IPv6 network.
        let max = "z".repeat(NAME_MAX);
        let long = NetElemRequest {
            op,
            table: &max,
            set: &max,
            net: net6,
        };
        assert!(long.emit(0, &mut [0u8; REQUEST_BUF_LEN]).is_ok());
        // Zero timeouts are refused like for grants.
        let zero = NetElemRequest {
            op: ElemOp::Add {
                timeout: Duration::ZERO,
            },
            table: "postern",
            set: "ban4",
            net: Cidr::host(v4()),
        };
        assert_eq!(
            zero.emit(0, &mut [0u8; REQUEST_BUF_LEN]),
            Err(EncodeError::ZeroTimeout)
        );
    }

    /// `nft add element inet postern ban4 { 255.255.255.255 timeout 30s }`:
    /// a network at the top of the address space has no end element; nft
    /// marks the start open in the element's user data (a host-order flag).
    #[test]
    fn ban_network_at_the_top_is_an_open_interval() {
        #[rustfmt::skip]
        let captured: &[u8] = &[
            0x28, 0x00, 0x01, 0x80, 0x0c, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x75, 0x30, 0x0c, 0x00, 0x01, 0x80, 0x08, 0x00, 0x01, 0x00,
            0xff, 0xff, 0xff, 0xff, 0x0a, 0x00, 0x06, 0x00, 0x01, 0x04, 0x01, 0x00,
            0x00, 0x00, 0x00, 0x00,
        ];
        let mut elements = host_order(captured, &[0, 4, 16, 20, 28]);
        elements[34..38].copy_from_slice(&1u32.to_ne_bytes());
        let expected = cat(&[
            &batch_msg(0x10, 0),
            &elem_msg(
                nft_type(NFT_MSG_NEWSETELEM),
                NLM_F_REQUEST | NLM_F_CREATE | NLM_F_ACK,
                1,
                "ban4",
                &elements,
            ),
            &batch_msg(0x11, 2),
        ]);
        let req = NetElemRequest {
            op: ElemOp::Add {
                timeout: Duration::from_secs(30),
            },
            table: "postern",
            set: "ban4",
            net: Cidr::host(IpAddr::V4(Ipv4Addr::BROADCAST)),
        };
        let mut buf = [0u8; REQUEST_BUF_LEN];
        let n = req.emit(0, &mut buf).unwrap();
        assert_eq!(&buf[..n], &expected[..]);
    }

    #[test]
    fn network_intervals() {
        let iv = |net: Cidr| {
            let (s, e, n) = net_interval(net);
            (s[..n].to_vec(), e.map(|e| e[..n].to_vec()))
        };
        assert_eq!(
            iv(Cidr::host(v4())),
            (vec![10, 0, 0, 2], Some(vec![10, 0, 0, 3]))
        );
        let v4net = |a: [u8; 4], len| Cidr::new(IpAddr::V4(a.into()), len).unwrap();
        assert_eq!(
            iv(v4net([10, 0, 0, 0], 8)),
            (vec![10, 0, 0, 0], Some(vec![11, 0, 0, 0]))
        );
        assert_eq!(iv(v4net([0, 0, 0, 0], 0)), (vec![0; 4], None));
        assert_eq!(iv(v4net([255, 0, 0, 0], 8)), (vec![255, 0, 0, 0], None));
        let (s, e) = iv(Cidr::network_of(v6_net_member(), 64));
        assert_eq!(
            (s, e.unwrap()),
            (
                Ipv6Addr::new(0x2001, 0xdb8, 1, 2, 0, 0, 0, 0)
                    .octets()
                    .to_vec(),
                Ipv6Addr::new(0x2001, 0xdb8, 1, 3, 0, 0, 0, 0)
                    .octets()
                    .to_vec()
            )
        );
        let v6host = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0xffff));
        assert_eq!(
            iv(Cidr::host(v6host)).1.unwrap(),
            Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 1, 0)
                .octets()
                .to_vec()
        );
        let top = Cidr::network_of(IpAddr::V6(Ipv6Addr::from(u128::MAX)), 64);
        assert_eq!(iv(top).1, None);
        let all = Cidr::network_of(v6_net_member(), 0);
        assert_eq!(iv(all), (vec![0; 16], None));
    }

    /// An address inside `2001:db8:1:2::/64`.
    fn v6_net_member() -> IpAddr {
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 2, 0, 0, 0, 0x99))
    }

    #[test]
    fn get_set_bytes() {
        let expected = cat(&[
            &h32(48),
            &h16(0x0a0a),
            &h16(0x5),
            &h32(3),
            &h32(0),
            &[1, 0, 0, 0],
            &h16(8),
            &h16(1),
            b"fw4\0",
            &h16(19),
            &h16(2),
            b"postern_allow4\0\0",
        ]);
        let mut buf = [0u8; REQUEST_BUF_LEN];
        let n = get_set("fw4", "postern_allow4", 3, &mut buf).unwrap();
        assert_eq!(&buf[..n], &expected[..]);
    }

    /// Little-endian captured nlattr bytes turned into host order at the
    /// given attribute offsets (the captures are from x86_64).
    fn host_order(captured: &[u8], attrs: &[usize]) -> Vec<u8> {
        let mut v = captured.to_vec();
        for &at in attrs {
            let len = u16::from_le_bytes([v[at], v[at + 1]]);
            let ty = u16::from_le_bytes([v[at + 2], v[at + 3]]);
            v[at..at + 2].copy_from_slice(&len.to_ne_bytes());
            v[at + 2..at + 4].copy_from_slice(&ty.to_ne_bytes());
        }
        v
    }

    /// One element message as postern sends it: the captured ELEMENTS
    /// payload behind the header, table and set (no `SET_ID`, plus `NLM_F_ACK`).
    fn elem_msg(ty: u16, flags: u16, seq: u32, set: &str, elements: &[u8]) -> Vec<u8> {
        let mut name = format!("{set}\0").into_bytes();
        let name_len = 4 + name.len() as u16;
        name.resize(name.len().div_ceil(4) * 4, 0);
        let len = 20 + 12 + 4 + name.len() + 4 + elements.len();
        cat(&[
            &h32(len as u32),
            &h16(ty),
            &h16(flags),
            &h32(seq),
            &h32(0),
            &[1, 0, 0, 0],
            &h16(12),
            &h16(1),
            b"postern\0",
            &h16(name_len),
            &h16(2),
            &name,
            &h16(4 + elements.len() as u16),
            &h16(0x8003),
            elements,
        ])
    }

    fn batch_msg(ty: u16, seq: u32) -> Vec<u8> {
        cat(&[
            &h32(20),
            &h16(ty),
            &h16(0x1),
            &h32(seq),
            &h32(0),
            &[0, 0, 0x00, 0x0a],
        ])
    }

    /// `nft add element inet postern fwd4 { 10.0.0.2 . tcp . 8080 timeout 30s
    /// : 10.213.1.2 . 80 }` and `nft add element inet postern fwd_allow4 {
    /// 10.0.0.2 . 10.213.1.2 . tcp . 80 timeout 30s }` (strace -xx, nft 1.0.6,
    /// x86_64): ELEMENTS payloads verbatim, sent as one transaction.
    #[test]
    fn forward_v4_batch_matches_nft_captures() {
        #[rustfmt::skip]
        let map_elements: &[u8] = &[
            0x34, 0x00, 0x01, 0x80, 0x0c, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x75, 0x30, 0x14, 0x00, 0x01, 0x80, 0x10, 0x00, 0x01, 0x00,
            0x0a, 0x00, 0x00, 0x02, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x90, 0x00, 0x00,
            0x10, 0x00, 0x02, 0x80, 0x0c, 0x00, 0x01, 0x00, 0x0a, 0xd5, 0x01, 0x02,
            0x00, 0x50, 0x00, 0x00,
        ];
        #[rustfmt::skip]
        let allow_elements: &[u8] = &[
            0x28, 0x00, 0x01, 0x80, 0x0c, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x75, 0x30, 0x18, 0x00, 0x01, 0x80, 0x14, 0x00, 0x01, 0x00,
            0x0a, 0x00, 0x00, 0x02, 0x0a, 0xd5, 0x01, 0x02, 0x06, 0x00, 0x00, 0x00,
            0x00, 0x50, 0x00, 0x00,
        ];
        let map_elements = host_order(map_elements, &[0, 4, 16, 20, 36, 40]);
        let allow_elements = host_order(allow_elements, &[0, 4, 16, 20]);
        let add = nft_type(NFT_MSG_NEWSETELEM);
        let flags = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_ACK;
        let expected = cat(&[
            &batch_msg(0x10, 40),
            &elem_msg(add, flags, 41, "fwd4", &map_elements),
            &elem_msg(add, flags, 42, "fwd_allow4", &allow_elements),
            &batch_msg(0x11, 43),
        ]);
        let (src, to) = (Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::new(10, 213, 1, 2));
        let key = fwd_map_key(src, L4Proto::Tcp, 8080);
        let value = fwd_map_value(to, 80);
        let mut allow = [0u8; 40];
        let n = fwd_allow_key(src.into(), to.into(), L4Proto::Tcp, 80, &mut allow).unwrap();
        assert_eq!(n, 16);
        let elems = [
            KeyElem {
                set: "fwd4",
                key: &key,
                data: Some(&value),
            },
            KeyElem {
                set: "fwd_allow4",
                key: &allow[..n],
                data: None,
            },
        ];
        let op = ElemOp::Add {
            timeout: Duration::from_secs(30),
        };
        let mut buf = [0u8; FORWARD_BUF_LEN];
        let len = elem_batch(op, "postern", &elems, 40, &mut buf).unwrap();
        assert_eq!(&buf[..len], &expected[..]);
        // Too small a buffer is an error at every length, never a panic.
        for small in 0..len {
            let mut b = vec![0u8; small];
            assert_eq!(
                elem_batch(op, "postern", &elems, 40, &mut b),
                Err(EncodeError::BufferTooSmall)
            );
        }
    }

    /// `nft add element inet postern fwd_allow6 { 2001:db8::1 . fd00:213:1::2
    /// . udp . 8000 timeout 90s }`: the 40-byte key, ELEMENTS verbatim.
    #[test]
    fn forward_v6_allow_matches_nft_capture() {
        #[rustfmt::skip]
        let captured: &[u8] = &[
            0x40, 0x00, 0x01, 0x80, 0x0c, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x01, 0x5f, 0x90, 0x30, 0x00, 0x01, 0x80, 0x2c, 0x00, 0x01, 0x00,
            0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x01, 0xfd, 0x00, 0x02, 0x13, 0x00, 0x01, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x11, 0x00, 0x00, 0x00,
            0x1f, 0x40, 0x00, 0x00,
        ];
        let elements = host_order(captured, &[0, 4, 16, 20]);
        let expected = cat(&[
            &batch_msg(0x10, 0),
            &elem_msg(
                nft_type(NFT_MSG_NEWSETELEM),
                NLM_F_REQUEST | NLM_F_CREATE | NLM_F_ACK,
                1,
                "fwd_allow6",
                &elements,
            ),
            &batch_msg(0x11, 2),
        ]);
        let dst = IpAddr::V6(Ipv6Addr::new(0xfd00, 0x213, 1, 0, 0, 0, 0, 2));
        let mut key = [0u8; 40];
        let n = fwd_allow_key(v6(), dst, L4Proto::Udp, 8000, &mut key).unwrap();
        assert_eq!(n, 40);
        let elem = KeyElem {
            set: "fwd_allow6",
            key: &key[..n],
            data: None,
        };
        let op = ElemOp::Add {
            timeout: Duration::from_secs(90),
        };
        let mut buf = [0u8; FORWARD_BUF_LEN];
        let len = elem_batch(op, "postern", &[elem], 0, &mut buf).unwrap();
        assert_eq!(&buf[..len], &expected[..]);
        // Mixed families have no key.
        assert_eq!(fwd_allow_key(v4(), dst, L4Proto::Udp, 1, &mut key), None);
    }

    /// `nft delete element inet postern fwd4 { 10.0.0.2 . tcp . 8080 }`: no
    /// timeout and no value (the key alone names a map element), plus `NLM_F_ACK`.
    #[test]
    fn forward_map_delete_matches_nft_capture() {
        #[rustfmt::skip]
        let captured: &[u8] = &[
            0x18, 0x00, 0x01, 0x80, 0x14, 0x00, 0x01, 0x80, 0x10, 0x00, 0x01, 0x00,
            0x0a, 0x00, 0x00, 0x02, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x90, 0x00, 0x00,
        ];
        let elements = host_order(captured, &[0, 4, 8]);
        let expected = cat(&[
            &batch_msg(0x10, 9),
            &elem_msg(
                nft_type(NFT_MSG_DELSETELEM),
                NLM_F_REQUEST | NLM_F_ACK,
                10,
                "fwd4",
                &elements,
            ),
            &batch_msg(0x11, 11),
        ]);
        let key = fwd_map_key(Ipv4Addr::new(10, 0, 0, 2), L4Proto::Tcp, 8080);
        let value = fwd_map_value(Ipv4Addr::new(10, 213, 1, 2), 80);
        // The value is left out of a delete even when given.
        let elem = KeyElem {
            set: "fwd4",
            key: &key,
            data: Some(&value),
        };
        let mut buf = [0u8; FORWARD_BUF_LEN];
        let len = elem_batch(ElemOp::Delete, "postern", &[elem], 9, &mut buf).unwrap();
        assert_eq!(&buf[..len], &expected[..]);
        // The lookup is the element message alone, with the GET type.
        let mut get = [0u8; REQUEST_BUF_LEN];
        let m = get_elem_key("postern", "fwd4", &key, 10, &mut get).unwrap();
        let mut want = expected[20..len - 20].to_vec();
        want[4..6].copy_from_slice(&h16(nft_type(NFT_MSG_GETSETELEM)));
        assert_eq!(&get[..m], &want[..]);
    }
}
