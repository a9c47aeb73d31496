//! The `NETLINK_NETFILTER` socket: sends bytes built by the backends' pure
//! builders (nf_tables, ipset), waits for acks.
//!
//! Owns one netlink socket and its sequence counter. It knows nothing about
//! message layouts beyond "find the ack for sequence N" (delegated to the pure
//! parser) and must not build messages itself. Waits are bounded: a missing ack
//! becomes `TimedOut`, never a hang.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{
    recv, sendto, socket, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType,
};

use super::wire::{ack_for, replies, Reply};

/// How long to wait for the kernel's ack.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(1);

/// An open `NETLINK_NETFILTER` socket.
#[derive(Debug)]
pub struct NfSocket {
    fd: OwnedFd,
    seq: u32,
}

impl NfSocket {
    /// Opens the socket in the calling thread's network namespace.
    pub fn open() -> io::Result<NfSocket> {
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkNetFilter,
        )?;
        // Start the sequence from the clock so that replies meant for an earlier
        // socket with the same port id can't be mistaken for ours.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let seq = (now.as_secs() as u32) ^ now.subsec_nanos() ^ std::process::id().rotate_left(16);
        Ok(NfSocket { fd, seq })
    }

    /// Reserves `n` consecutive sequence numbers and returns the first.
    pub fn next_seq(&mut self, n: u32) -> u32 {
        let s = self.seq;
        self.seq = self.seq.wrapping_add(n);
        s
    }

    /// Sends `msg` to the kernel and waits up to [`ACK_TIMEOUT`] for the ack of
    /// message `ack_seq`. `Ok(Err(errno))` is the kernel refusing the request;
    /// `Err(_)` is a socket failure or a timeout.
    pub fn request(&mut self, msg: &[u8], ack_seq: u32) -> io::Result<Result<(), i32>> {
        self.request_range(msg, ack_seq, ack_seq)
    }

    /// Sends a batch whose messages `first..=last` each ask for an ack, and
    /// waits (up to [`ACK_TIMEOUT`]) for all of them. The kernel checks every
    /// message of a failing batch and commits none of it; `Ok(Err(errno))` is
    /// the first refusal seen.
    pub fn request_range(
        &mut self,
        msg: &[u8],
        first: u32,
        last: u32,
    ) -> io::Result<Result<(), i32>> {
        self.send(msg)?;
        let mut left = last.wrapping_sub(first).wrapping_add(1);
        let in_range = |seq: u32| seq.wrapping_sub(first) <= last.wrapping_sub(first);
        self.wait(|buf| {
            if first == last {
                return ack_for(buf, first);
            }
            for r in replies(buf) {
                match r {
                    Reply::Error { seq, errno } if in_range(seq) => return Some(Err(errno)),
                    Reply::Ack { seq } if in_range(seq) => {
                        left -= 1;
                        if left == 0 {
                            return Some(Ok(()));
                        }
                    }
                    _ => {}
                }
            }
            None
        })
    }

    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        let kernel = NetlinkAddr::new(0, 0);
        let sent = sendto(self.fd.as_raw_fd(), msg, &kernel, MsgFlags::empty())?;
        if sent != msg.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "short netlink send",
            ));
        }
        Ok(())
    }

    /// Receives until `outcome` finds the answer in a datagram, or times out.
    fn wait(
        &mut self,
        mut outcome: impl FnMut(&[u8]) -> Option<Result<(), i32>>,
    ) -> io::Result<Result<(), i32>> {
        let deadline = Instant::now() + ACK_TIMEOUT;
        // Acks are small; a GETSET answer is a few hundred bytes. A datagram larger
        // than this is truncated, which the parser survives (it is not our ack).
        let mut buf = [0u8; 8192];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no netlink ack within 1 s",
                ));
            }
            let ms = u16::try_from(left.as_millis().max(1)).unwrap_or(u16::MAX);
            let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::from(ms)) {
                Ok(0) => continue,
                Ok(_) => {}
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
            let n = match recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::MSG_DONTWAIT) {
                Ok(n) => n,
                Err(Errno::EINTR | Errno::EAGAIN) => continue,
                Err(e) => return Err(e.into()),
            };
            if let Some(result) = outcome(&buf[..n.min(buf.len())]) {
                return Ok(result);
            }
        }
    }
}

/// A socket opened on first use (in the caller's network namespace) and
/// dropped after a socket failure, so that the next request starts afresh.
#[derive(Debug, Default)]
pub struct LazySocket {
    sock: Option<NfSocket>,
}

impl LazySocket {
    /// No socket yet.
    pub fn new() -> LazySocket {
        LazySocket { sock: None }
    }

    /// Closes the socket (if open); the next request reopens it.
    pub fn close(&mut self) {
        self.sock = None;
    }

    /// Reserves `seqs` sequence numbers, lets `build` write the request for the
    /// first of them into `buf` (returning its length and the sequence whose
    /// ack decides), sends it and waits for that ack. `Ok(Err(errno))` is the
    /// kernel refusing; `Err(_)` a build, socket or timeout failure.
    pub fn exchange(
        &mut self,
        seqs: u32,
        buf: &mut [u8],
        build: impl FnOnce(u32, &mut [u8]) -> io::Result<(usize, u32)>,
    ) -> io::Result<Result<(), i32>> {
        let sock = match self.sock {
            Some(ref mut sock) => sock,
            None => self.sock.insert(NfSocket::open()?),
        };
        let seq = sock.next_seq(seqs);
        let (n, ack_seq) = build(seq, buf)?;
        let msg = buf
            .get(..n)
            .ok_or_else(|| io::Error::other("request longer than its buffer"))?;
        let result = sock.request(msg, ack_seq);
        if result.is_err() {
            self.sock = None;
        }
        result
    }

    /// Like [`LazySocket::exchange`] for a batch whose messages `first..=last`
    /// each ask for an ack: `build` returns (length, first, last).
    pub fn exchange_batch(
        &mut self,
        seqs: u32,
        buf: &mut [u8],
        build: impl FnOnce(u32, &mut [u8]) -> io::Result<(usize, u32, u32)>,
    ) -> io::Result<Result<(), i32>> {
        let sock = match self.sock {
            Some(ref mut sock) => sock,
            None => self.sock.insert(NfSocket::open()?),
        };
        let seq = sock.next_seq(seqs);
        let (n, first, last) = build(seq, buf)?;
        let msg = buf
            .get(..n)
            .ok_or_else(|| io::Error::other("request longer than its buffer"))?;
        let result = sock.request_range(msg, first, last);
        if result.is_err() {
            self.sock = None;
        }
        result
    }
}
