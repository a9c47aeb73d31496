//! nfnetlink framing as bytes: a message writer and the reply/ack parser.
//!
//! Owns what every netfilter netlink message shares: the `nlmsghdr` +
//! `nfgenmsg` header, `nlattr` attributes (plain, string, nested), alignment,
//! and reading the kernel's `NLMSG_ERROR` acks. Pure: no syscalls, no
//! allocation, no panics on any input (kernel replies are untrusted bytes).
//! It must not know any subsystem's message types or attributes.
//!
//! Byte order: `nlmsghdr` and `nlattr` header fields and the `NLMSG_ERROR`
//! errno are in host order; `nfgenmsg.res_id` is big-endian. Payloads are
//! written as the caller gives them.

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
/// `NLM_F_EXCL`: fail if the object exists (for ipset: no `-exist`).
pub const NLM_F_EXCL: u16 = 0x200;
/// `NLM_F_CREATE`: create the object if it does not exist.
pub const NLM_F_CREATE: u16 = 0x400;
/// `NLA_F_NESTED`: the attribute holds attributes.
pub const NLA_F_NESTED: u16 = 0x8000;
/// `NLA_F_NET_BYTEORDER`: the attribute's payload is in network byte order.
pub const NLA_F_NET_BYTEORDER: u16 = 0x4000;
/// `NFNETLINK_V0`: the `nfgenmsg.version` every subsystem uses.
pub const NFNETLINK_V0: u8 = 0;
/// Size of `struct nlmsghdr`.
pub const NLMSG_HDRLEN: usize = 16;

/// Why a request could not be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncodeError {
    /// The output buffer is too small for the request.
    BufferTooSmall,
    /// A table or set name is empty, too long or holds a NUL.
    BadName,
    /// A timeout of zero: the kernel would make the element permanent.
    ZeroTimeout,
}

impl core::fmt::Display for EncodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            EncodeError::BufferTooSmall => "netlink buffer too small",
            EncodeError::BadName => "bad table or set name",
            EncodeError::ZeroTimeout => "zero timeout (would never expire)",
        })
    }
}

impl std::error::Error for EncodeError {}

/// A little writer of netlink messages into a caller's buffer.
pub(crate) struct Writer<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl<'a> Writer<'a> {
    /// Writes from the start of `buf`.
    pub(crate) fn new(buf: &'a mut [u8]) -> Writer<'a> {
        Writer { buf, len: 0 }
    }

    /// Bytes written so far.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    fn put(&mut self, bytes: &[u8]) -> Result<(), EncodeError> {
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
    fn align(&mut self) -> Result<(), EncodeError> {
        let pad = (4 - self.len % 4) % 4;
        self.put(&[0u8; 3][..pad])
    }

    /// Writes a `u16` length at `at` (host order); the caller made room for it.
    fn patch_u16(&mut self, at: usize, v: u16) {
        self.buf[at..at + 2].copy_from_slice(&v.to_ne_bytes());
    }

    /// Starts a message: `nlmsghdr` (length patched by [`Writer::end_msg`]) and
    /// `nfgenmsg`; returns where it starts.
    pub(crate) fn begin_msg(
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

    /// Ends the message begun at `start`: pads it and patches its length.
    pub(crate) fn end_msg(&mut self, start: usize) -> Result<(), EncodeError> {
        self.align()?;
        let len = u32::try_from(self.len - start).map_err(|_| EncodeError::BufferTooSmall)?;
        self.buf[start..start + 4].copy_from_slice(&len.to_ne_bytes());
        Ok(())
    }

    /// An attribute with a payload: `nla_len` counts the payload unpadded.
    pub(crate) fn attr(&mut self, ty: u16, payload: &[u8]) -> Result<(), EncodeError> {
        let len = u16::try_from(4 + payload.len()).map_err(|_| EncodeError::BufferTooSmall)?;
        self.put(&len.to_ne_bytes())?;
        self.put(&ty.to_ne_bytes())?;
        self.put(payload)?;
        self.align()
    }

    /// A NUL-terminated string attribute; `name` must be 1..=`max` bytes without NUL.
    pub(crate) fn attr_name(&mut self, ty: u16, name: &str, max: usize) -> Result<(), EncodeError> {
        if name.is_empty() || name.len() > max || name.as_bytes().contains(&0) {
            return Err(EncodeError::BadName);
        }
        let len = u16::try_from(4 + name.len() + 1).map_err(|_| EncodeError::BadName)?;
        self.put(&len.to_ne_bytes())?;
        self.put(&ty.to_ne_bytes())?;
        self.put(name.as_bytes())?;
        self.put(&[0])?;
        self.align()
    }

    /// Starts a nested attribute (type `ty | NLA_F_NESTED`); returns where it starts.
    pub(crate) fn begin_nest(&mut self, ty: u16) -> Result<usize, EncodeError> {
        let start = self.len;
        self.put(&0u16.to_ne_bytes())?;
        self.put(&(ty | NLA_F_NESTED).to_ne_bytes())?;
        Ok(start)
    }

    /// Ends the nested attribute begun at `start` (patches its length).
    pub(crate) fn end_nest(&mut self, start: usize) -> Result<(), EncodeError> {
        let len = u16::try_from(self.len - start).map_err(|_| EncodeError::BufferTooSmall)?;
        self.patch_u16(start, len);
        Ok(())
    }
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
        /// Positive errno, in the kernel's (= host's) numbering; ipset's own
        /// codes are 4096 and above.
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

/// The host-order `u16` at `at`, if `b` is long enough.
pub fn read_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

/// The host-order `u32` at `at`, if `b` is long enough.
pub fn read_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
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
    use crate::test_rng::Rng;

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
    fn writer_frames_pads_and_nests() {
        let mut buf = [0xeeu8; 64];
        let mut w = Writer::new(&mut buf);
        let m = w.begin_msg(0x0609, NLM_F_REQUEST, 7, 2, 10).unwrap();
        w.attr(1, &[6]).unwrap();
        let n = w.begin_nest(7).unwrap();
        w.attr(4 | NLA_F_NET_BYTEORDER, &22u16.to_be_bytes())
            .unwrap();
        w.end_nest(n).unwrap();
        w.attr_name(2, "ab", 31).unwrap();
        w.end_msg(m).unwrap();
        let len = w.len();
        let expected = cat(&[
            &h32(48),
            &h16(0x0609),
            &h16(1),
            &h32(7),
            &h32(0),
            &[2, 0, 0, 10],
            &h16(5),
            &h16(1),
            &[6, 0, 0, 0],
            &h16(12),
            &h16(0x8007),
            &h16(6),
            &h16(0x4004),
            &[0, 22, 0, 0],
            &h16(7),
            &h16(2),
            b"ab\0\0",
        ]);
        assert_eq!(&buf[..len], &expected[..]);
    }

    #[test]
    fn writer_refuses_bad_names_and_small_buffers() {
        let mut buf = [0u8; 64];
        for (name, max) in [("", 31), ("a\0b", 31), ("abcd", 3)] {
            let mut w = Writer::new(&mut buf);
            assert_eq!(w.attr_name(2, name, max), Err(EncodeError::BadName));
        }
        for small in 0..24 {
            let mut b = vec![0u8; small];
            let mut w = Writer::new(&mut b);
            let r = w
                .begin_msg(1, 1, 1, 0, 0)
                .and_then(|m| w.attr(1, &[1, 2, 3, 4]).and_then(|()| w.end_msg(m)));
            assert_eq!(r, Err(EncodeError::BufferTooSmall), "{small}");
        }
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
        // A data message (e.g. an ipset HEADER reply), 21 bytes long then padded.
        buf.extend(cat(&[
            &h32(21),
            &h16(0x060c),
            &h16(0),
            &h32(3),
            &h32(0),
            &[2, 0, 0, 0, 0xaa, 0, 0, 0],
        ]));
        buf.extend(cat(&[
            &h32(16),
            &h16(NLMSG_DONE),
            &h16(2),
            &h32(3),
            &h32(0),
        ]));
        // ipset's own errno space (IPSET_ERR_EXIST).
        buf.extend(error_msg(10, -4103, &[]));
        let all: Vec<Reply> = replies(&buf).collect();
        assert_eq!(
            all,
            vec![
                Reply::Error {
                    seq: 8,
                    errno: libc::ENOENT
                },
                Reply::Ack { seq: 9 },
                Reply::Other { ty: 0x060c, seq: 3 },
                Reply::Done { seq: 3 },
                Reply::Error {
                    seq: 10,
                    errno: 4103
                },
            ]
        );
        assert_eq!(ack_for(&buf, 8), Some(Err(libc::ENOENT)));
        assert_eq!(ack_for(&buf, 9), Some(Ok(())));
        assert_eq!(ack_for(&buf, 10), Some(Err(4103)));
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
        // Pseudo-random bytes with plausible lengths.
        let mut rng = Rng(0x1234_5678);
        for _ in 0..2000 {
            let mut b = [0u8; 64];
            for byte in b.iter_mut() {
                *byte = rng.next() as u8;
            }
            let x = rng.next() as u32;
            b[..4].copy_from_slice(&(x % 70).to_ne_bytes());
            let cut = rng.below(65);
            let _ = replies(&b[..cut]).count();
            let _ = ack_for(&b[..cut], x);
        }
        assert_eq!(read_u16(&[1], usize::MAX), None);
        assert_eq!(read_u32(&[1, 2, 3, 4], usize::MAX), None);
    }
}
