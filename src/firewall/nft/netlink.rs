//! nf_tables netlink messages as bytes: set-element batches, set lookups, ack parsing.
//!
//! Owns the wire encoding of the few nfnetlink messages postern sends per grant.
//! Pure: no syscalls, no allocation, no panics on any input (kernel replies are
//! untrusted bytes). The socket that carries these bytes lives in
//! `socket` module; this module must never grow I/O, so that its byte-exact
//! tests also run under qemu-user, which refuses `NETLINK_NETFILTER` sockets.
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

use core::net::IpAddr;
use core::time::Duration;

use crate::port::PortSpec;

/// `NLMSG_NOOP`: nothing.
pub const NLMSG_NOOP: u16 = 1;
/// `NLMSG_ERROR`: an error or (errno 0) an acknowledgement.
pub const NLMSG_ERROR: u16 = 2;
/// `NLMSG_DONE`: end of a multipart dump.
pub const NLMSG_DONE: u16 = 3;
/// `NLM_F_REQUEST`: a request to the kernel.
pub const NLM_F_REQUEST: u16 = 0x1;
/// `NLM_F_ACK`: ask for an `NLMSG_ERROR` acknowledgement even on success.
pub const NLM_F_ACK: u16 = 0x4;
/// `NLM_F_CREATE`: create the object if it does not exist.
pub const NLM_F_CREATE: u16 = 0x400;
/// `NLA_F_NESTED`: the attribute holds attributes.
pub const NLA_F_NESTED: u16 = 0x8000;

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
/// `NFT_MSG_DELSETELEM`.
pub const NFT_MSG_DELSETELEM: u16 = 14;
/// `NFPROTO_INET`: the `inet` family of nf_tables tables.
pub const NFPROTO_INET: u8 = 1;
/// `NFNETLINK_V0`.
pub const NFNETLINK_V0: u8 = 0;

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
/// `NFTA_DATA_VALUE`.
pub const NFTA_DATA_VALUE: u16 = 1;

/// Size of `struct nlmsghdr`.
pub const NLMSG_HDRLEN: usize = 16;
/// Longest nf_tables object name, without the NUL (`NFT_NAME_MAXLEN` - 1).
pub const NAME_MAX: usize = 255;

/// Bytes that always suffice for one [`SetElemRequest`] batch or [`get_set`]
/// request with names up to [`NAME_MAX`].
pub const REQUEST_BUF_LEN: usize = 768;

/// The full nfnetlink message type of an nf_tables message.
pub const fn nft_type(msg: u16) -> u16 {
    (NFNL_SUBSYS_NFTABLES << 8) | msg
}

/// Why a request could not be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncodeError {
    /// The output buffer is too small (see [`REQUEST_BUF_LEN`]).
    BufferTooSmall,
    /// A table or set name is empty, longer than [`NAME_MAX`] or holds a NUL.
    BadName,
    /// A timeout of zero: the kernel would make the element permanent.
    ZeroTimeout,
}

impl core::fmt::Display for EncodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            EncodeError::BufferTooSmall => "netlink buffer too small",
            EncodeError::BadName => "bad nftables table or set name",
            EncodeError::ZeroTimeout => "zero timeout (would never expire)",
        })
    }
}

impl std::error::Error for EncodeError {}

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

/// A little writer of netlink messages into a caller's buffer (shared with
/// [`super::standalone`], which builds the table-setup batch).
pub(super) struct Writer<'a> {
    buf: &'a mut [u8],
    /// Bytes written so far.
    pub(super) len: usize,
}

impl<'a> Writer<'a> {
    pub(super) fn new(buf: &'a mut [u8]) -> Writer<'a> {
        Writer { buf, len: 0 }
    }

    pub(super) fn put(&mut self, bytes: &[u8]) -> Result<(), EncodeError> {
        let end = self
            .len
            .checked_add(bytes.len())
            .ok_or(EncodeError::BufferTooSmall)?;
        self.buf
            .get_mut(self.len..end)
            .ok_or(EncodeError::BufferTooSmall)?
            .copy_from_slice(bytes);
        self.len = end;
        Ok(())
    }

    /// Zero bytes up to the next multiple of 4 (`NLMSG_ALIGN` / `NLA_ALIGN`).
    pub(super) fn align(&mut self) -> Result<(), EncodeError> {
        let pad = (4 - self.len % 4) % 4;
        self.put(&[0u8; 3][..pad])
    }

    /// Writes a `u16` length at `at` (host order); the caller made room for it.
    fn patch_u16(&mut self, at: usize, v: u16) {
        self.buf[at..at + 2].copy_from_slice(&v.to_ne_bytes());
    }

    /// Starts a message: `nlmsghdr` (length patched by [`Writer::end_msg`]) and `nfgenmsg`.
    pub(super) fn begin_msg(
        &mut self,
        ty: u16,
        flags: u16,
        seq: u32,
        family: u8,
        res_id: u16,
    ) -> Result<usize, EncodeError> {
        let start = self.len;
        self.put(&0u32.to_ne_bytes())?; // nlmsg_len, patched later
        self.put(&ty.to_ne_bytes())?;
        self.put(&flags.to_ne_bytes())?;
        self.put(&seq.to_ne_bytes())?;
        self.put(&0u32.to_ne_bytes())?; // nlmsg_pid: 0, the kernel fills in ours
        self.put(&[family, NFNETLINK_V0])?;
        self.put(&res_id.to_be_bytes())?; // nfgenmsg.res_id is big-endian
        Ok(start)
    }

    pub(super) fn end_msg(&mut self, start: usize) -> Result<(), EncodeError> {
        self.align()?;
        let len = u32::try_from(self.len - start).map_err(|_| EncodeError::BufferTooSmall)?;
        self.buf[start..start + 4].copy_from_slice(&len.to_ne_bytes());
        Ok(())
    }

    /// An attribute with a payload: `nla_len` counts the payload unpadded.
    pub(super) fn attr(&mut self, ty: u16, payload: &[u8]) -> Result<(), EncodeError> {
        let len = u16::try_from(4 + payload.len()).map_err(|_| EncodeError::BufferTooSmall)?;
        self.put(&len.to_ne_bytes())?;
        self.put(&ty.to_ne_bytes())?;
        self.put(payload)?;
        self.align()
    }

    /// A NUL-terminated string attribute.
    pub(super) fn attr_name(&mut self, ty: u16, name: &str) -> Result<(), EncodeError> {
        check_name(name)?;
        let len = u16::try_from(4 + name.len() + 1).map_err(|_| EncodeError::BadName)?;
        self.put(&len.to_ne_bytes())?;
        self.put(&ty.to_ne_bytes())?;
        self.put(name.as_bytes())?;
        self.put(&[0])?;
        self.align()
    }

    pub(super) fn begin_nest(&mut self, ty: u16) -> Result<usize, EncodeError> {
        let start = self.len;
        self.put(&0u16.to_ne_bytes())?;
        self.put(&(ty | NLA_F_NESTED).to_ne_bytes())?;
        Ok(start)
    }

    pub(super) fn end_nest(&mut self, start: usize) -> Result<(), EncodeError> {
        let len = u16::try_from(self.len - start).map_err(|_| EncodeError::BufferTooSmall)?;
        self.patch_u16(start, len);
        Ok(())
    }
}

fn check_name(name: &str) -> Result<(), EncodeError> {
    if name.is_empty() || name.len() > NAME_MAX || name.as_bytes().contains(&0) {
        Err(EncodeError::BadName)
    } else {
        Ok(())
    }
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
        let timeout_ms = match self.op {
            ElemOp::Add { timeout } => {
                if timeout.is_zero() {
                    return Err(EncodeError::ZeroTimeout);
                }
                // Round up so that 1 µs is 1 ms, not 0 (= permanent). Too large
                // values saturate; the kernel refuses them with ERANGE.
                let ms = timeout.as_nanos().div_ceil(1_000_000);
                Some(u64::try_from(ms).unwrap_or(u64::MAX))
            }
            ElemOp::Delete => None,
        };
        let mut w = Writer::new(buf);

        let begin = w.begin_msg(
            NFNL_MSG_BATCH_BEGIN,
            NLM_F_REQUEST,
            seq,
            0,
            NFNL_SUBSYS_NFTABLES,
        )?;
        w.end_msg(begin)?;

        let (ty, flags) = match self.op {
            ElemOp::Add { .. } => (
                nft_type(NFT_MSG_NEWSETELEM),
                NLM_F_REQUEST | NLM_F_CREATE | NLM_F_ACK,
            ),
            ElemOp::Delete => (nft_type(NFT_MSG_DELSETELEM), NLM_F_REQUEST | NLM_F_ACK),
        };
        let msg = w.begin_msg(ty, flags, Self::ack_seq(seq), NFPROTO_INET, 0)?;
        w.attr_name(NFTA_SET_ELEM_LIST_TABLE, self.table)?;
        w.attr_name(NFTA_SET_ELEM_LIST_SET, self.set)?;
        let elements = w.begin_nest(NFTA_SET_ELEM_LIST_ELEMENTS)?;
        let elem = w.begin_nest(NFTA_LIST_ELEM)?;
        if let Some(ms) = timeout_ms {
            w.attr(NFTA_SET_ELEM_TIMEOUT, &ms.to_be_bytes())?;
        }
        let key = w.begin_nest(NFTA_SET_ELEM_KEY)?;
        let mut k = [0u8; 24];
        let klen = elem_key(self.addr, self.port, &mut k);
        w.attr(NFTA_DATA_VALUE, &k[..klen])?;
        w.end_nest(key)?;
        w.end_nest(elem)?;
        w.end_nest(elements)?;
        w.end_msg(msg)?;

        let end = w.begin_msg(
            NFNL_MSG_BATCH_END,
            NLM_F_REQUEST,
            seq.wrapping_add(2),
            0,
            NFNL_SUBSYS_NFTABLES,
        )?;
        w.end_msg(end)?;
        Ok(w.len)
    }
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
    w.attr_name(NFTA_SET_TABLE, table)?;
    w.attr_name(NFTA_SET_NAME, set)?;
    w.end_msg(msg)?;
    Ok(w.len)
}

/// One message of a kernel reply, as far as postern cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// `NLMSG_ERROR` with errno 0: request `seq` succeeded.
    Ack {
        /// Sequence number of the acknowledged request.
        seq: u32,
    },
    /// `NLMSG_ERROR` with an errno: request `seq` failed.
    Error {
        /// Sequence number of the failed request.
        seq: u32,
        /// Positive errno, in the kernel's (= host's) numbering.
        errno: i32,
    },
    /// `NLMSG_DONE`: end of a multipart reply.
    Done {
        /// Sequence number of the dump it ends.
        seq: u32,
    },
    /// Any other message (data, `NLMSG_NOOP`, multipart parts).
    Other {
        /// `nlmsg_type`.
        ty: u16,
        /// `nlmsg_seq`.
        seq: u32,
    },
    /// Bytes that are not a well-formed message; iteration stops after this.
    Malformed,
}

/// Iterates over the netlink messages in one received datagram. Never panics;
/// a truncated or garbled message yields [`Reply::Malformed`] and ends the walk.
#[derive(Debug, Clone)]
pub struct Replies<'a> {
    buf: &'a [u8],
}

/// Walks the messages in `buf` (one `recv` worth of bytes).
pub fn replies(buf: &[u8]) -> Replies<'_> {
    Replies { buf }
}

fn read_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn read_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

impl Iterator for Replies<'_> {
    type Item = Reply;

    fn next(&mut self) -> Option<Reply> {
        if self.buf.is_empty() {
            return None;
        }
        let parsed = (|| {
            let len = usize::try_from(read_u32(self.buf, 0)?).ok()?;
            if len < NLMSG_HDRLEN || len > self.buf.len() {
                return None;
            }
            let ty = read_u16(self.buf, 4)?;
            let seq = read_u32(self.buf, 8)?;
            let reply = match ty {
                NLMSG_ERROR => {
                    // struct nlmsgerr { int error; struct nlmsghdr msg; ... }
                    let err = read_u32(&self.buf[..len], NLMSG_HDRLEN)? as i32;
                    match err {
                        0 => Reply::Ack { seq },
                        e if e < 0 => Reply::Error {
                            seq,
                            errno: e.checked_neg().unwrap_or(libc::EINVAL),
                        },
                        e => Reply::Error { seq, errno: e },
                    }
                }
                NLMSG_DONE => Reply::Done { seq },
                _ => Reply::Other { ty, seq },
            };
            // NLMSG_ALIGN(len); the last message may end unpadded.
            let next = len.saturating_add(3) & !3;
            Some((reply, next.min(self.buf.len())))
        })();
        match parsed {
            Some((reply, next)) => {
                self.buf = &self.buf[next..];
                Some(reply)
            }
            None => {
                self.buf = &[];
                Some(Reply::Malformed)
            }
        }
    }
}

/// The outcome of request `seq` if `buf` holds its ack: `Some(Ok(()))`,
/// `Some(Err(errno))`, or `None` when `buf` says nothing about it.
pub fn ack_for(buf: &[u8], seq: u32) -> Option<Result<(), i32>> {
    replies(buf).find_map(|r| match r {
        Reply::Ack { seq: s } if s == seq => Some(Ok(())),
        Reply::Error { seq: s, errno } if s == seq => Some(Err(errno)),
        _ => None,
    })
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

    fn error_msg(seq: u32, err: i32, echo: &[u8]) -> Vec<u8> {
        let len = 16 + 4 + echo.len();
        cat(&[
            &h32(len as u32),
            &h16(NLMSG_ERROR),
            &h16(0x100), // NLM_F_CAPPED
            &h32(seq),
            &h32(1234),
            &err.to_ne_bytes(),
            echo,
        ])
    }

    #[test]
    fn parses_acks_errors_and_others() {
        let echo = cat(&[&h32(64), &h16(0x0a0e), &h16(5), &h32(8), &h32(0)]);
        let mut buf = error_msg(8, -libc::ENOENT, &echo);
        buf.extend(error_msg(9, 0, &echo));
        // A NEWSET data message (as for GETSET), 21 bytes long then padded.
        buf.extend(cat(&[
            &h32(21),
            &h16(nft_type(NFT_MSG_NEWSET)),
            &h16(0),
            &h32(3),
            &h32(0),
            &[1, 0, 0, 0, 0xaa, 0, 0, 0],
        ]));
        buf.extend(cat(&[
            &h32(16),
            &h16(NLMSG_DONE),
            &h16(2),
            &h32(3),
            &h32(0),
        ]));
        let all: Vec<Reply> = replies(&buf).collect();
        assert_eq!(
            all,
            vec![
                Reply::Error {
                    seq: 8,
                    errno: libc::ENOENT
                },
                Reply::Ack { seq: 9 },
                Reply::Other {
                    ty: nft_type(NFT_MSG_NEWSET),
                    seq: 3
                },
                Reply::Done { seq: 3 },
            ]
        );
        assert_eq!(ack_for(&buf, 8), Some(Err(libc::ENOENT)));
        assert_eq!(ack_for(&buf, 9), Some(Ok(())));
        assert_eq!(ack_for(&buf, 3), None);
    }

    #[test]
    fn garbage_never_panics() {
        let good = error_msg(5, 0, &[]);
        assert_eq!(
            replies(&good).collect::<Vec<_>>(),
            vec![Reply::Ack { seq: 5 }]
        );
        // Every truncation of a valid reply, and lengths that lie.
        for cut in 0..good.len() {
            let r: Vec<Reply> = replies(&good[..cut]).collect();
            assert!(
                cut == 0 && r.is_empty() || r == vec![Reply::Malformed],
                "{cut}"
            );
            assert_eq!(ack_for(&good[..cut], 5), None);
        }
        for bad_len in [0u32, 1, 15, 21, u32::MAX] {
            let mut b = good.clone();
            b[..4].copy_from_slice(&bad_len.to_ne_bytes());
            let _ = replies(&b).count();
            assert_eq!(ack_for(&b, 5), None);
        }
        // An NLMSG_ERROR too short for its errno; an errno of i32::MIN; positive errno.
        let short = cat(&[
            &h32(18),
            &h16(NLMSG_ERROR),
            &h16(0),
            &h32(1),
            &h32(0),
            &[0, 0],
        ]);
        assert_eq!(replies(&short).collect::<Vec<_>>(), vec![Reply::Malformed]);
        let min = error_msg(1, i32::MIN, &[]);
        assert_eq!(ack_for(&min, 1), Some(Err(libc::EINVAL)));
        let pos = error_msg(1, 17, &[]);
        assert_eq!(ack_for(&pos, 1), Some(Err(17)));
        // Pseudo-random bytes.
        let mut x: u32 = 0x1234_5678;
        for _ in 0..2000 {
            let mut b = [0u8; 64];
            for byte in b.iter_mut() {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                *byte = x as u8;
            }
            b[..4].copy_from_slice(&(x % 70).to_ne_bytes());
            let _ = replies(&b).count();
            let _ = ack_for(&b, x);
        }
    }
}
