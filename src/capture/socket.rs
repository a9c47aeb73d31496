//! [`Capture`]: one AF_PACKET `SOCK_DGRAM` socket on one interface.

use core::ffi::c_void;
use core::mem;
use std::cell::Cell;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use super::bpf::{SockFilter, MAX_INSNS};
use super::ring::{Next, RxRing};
use super::stats::Statistics;
use crate::wire::{pppoe, Checksums};

/// Receive buffer asked for each socket (the kernel doubles it for its
/// bookkeeping). A small frame costs about 768 bytes of it, so 512 KiB
/// queue ~1,300 frames: 65 ms of a 20,000 packets/s flood while the daemon
/// is not scheduled (the default, 208 KiB, is ~13 ms on a busy router).
/// Kernel memory, used only while frames wait.
pub const RECV_BUFFER: libc::c_int = 512 * 1024;

/// One captured frame, borrowed from the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'b> {
    /// The network-layer packet (no link header; of a PPPoE session frame,
    /// the IP packet inside), as long as it was received; cut to the buffer
    /// if the buffer was too small (`wire::observe` then reports it as
    /// truncated).
    pub data: &'b [u8],
    /// Whether the transport checksum can be verified: the kernel marks
    /// packets whose checksum is not computed yet (`TP_STATUS_CSUMNOTREADY`,
    /// e.g. sent by this host, or through a veth) and those get
    /// [`Checksums::SkipTransport`].
    pub checksums: Checksums,
    /// Sent by this host (`PACKET_OUTGOING`), not received: the daemon skips
    /// these.
    pub outgoing: bool,
}

/// Most frames for another host [`Capture::recv`] skips in one call: a flood
/// of them cannot keep one call looping.
pub const OTHER_HOST_SKIPS: usize = 64;

/// What one read found, before [`Capture::recv`] judges it.
struct Meta {
    len: usize,
    /// EtherType, host order.
    protocol: u16,
    checksums: Checksums,
    outgoing: bool,
    other_host: bool,
}

/// An AF_PACKET `SOCK_DGRAM` socket bound to one interface, with a classic
/// BPF filter attached. Non-blocking and close-on-exec; poll [`Capture::fd`]
/// for readability, then call [`Capture::recv`] until it returns `None`.
#[derive(Debug)]
pub struct Capture {
    fd: OwnedFd,
    ifname: String,
    ifindex: u32,
    /// The receive ring, when the kernel granted one (else `recvmsg`).
    ring: Option<RxRing>,
    /// The kernel's counters so far (it resets them on every read).
    stats: Cell<Statistics>,
}

/// An error that names the interface and the failed step, keeping the kind.
fn context(ifname: &str, what: &str, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("capture on '{ifname}': {what}: {e}"))
}

/// `if_nametoindex`, with the error users understand.
fn if_index(ifname: &str) -> io::Result<u32> {
    match nix::net::if_::if_nametoindex(ifname) {
        Ok(i) if i != 0 => Ok(i),
        _ => Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no such interface '{ifname}'"),
        )),
    }
}

impl Capture {
    /// Opens a packet socket on interface `ifname`, attaches `program`
    /// (see [`super::bpf::build`]), enables `PACKET_AUXDATA`, binds to the
    /// interface for all protocols and drops anything queued before the
    /// filter took effect.
    ///
    /// Needs `CAP_NET_RAW`. Errors name the interface; an unknown interface
    /// gives `NotFound` with "no such interface 'X'".
    pub fn open(ifname: &str, program: &[SockFilter]) -> io::Result<Capture> {
        let ifindex = if_index(ifname)?;
        // Protocol 0: the socket receives nothing until `bind` names a
        // protocol, so nothing unfiltered can be queued in between.
        // SAFETY: plain syscall; the result is checked before use.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
            )
        };
        if raw < 0 {
            return Err(context(
                ifname,
                "socket(AF_PACKET)",
                io::Error::last_os_error(),
            ));
        }
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut capture = Capture {
            fd,
            ifname: ifname.to_owned(),
            ifindex,
            ring: None,
            stats: Cell::new(Statistics::default()),
        };
        capture.set_filter(program)?;
        capture.set_recv_buffer(RECV_BUFFER);
        let one: libc::c_int = 1;
        capture.setsockopt(
            libc::SOL_PACKET,
            libc::PACKET_AUXDATA,
            &one,
            "PACKET_AUXDATA",
        )?;
        // A receive ring saves a syscall per frame; without one (the kernel
        // refused it), frames are read with recvmsg.
        capture.ring = RxRing::new(capture.raw()).ok();

        // SAFETY: all-zero is a valid `sockaddr_ll`.
        let mut sll: libc::sockaddr_ll = unsafe { mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        sll.sll_ifindex = ifindex as libc::c_int;
        // SAFETY: `sll` is a valid `sockaddr_ll` and its size is passed.
        let rc = unsafe {
            libc::bind(
                capture.raw(),
                (&sll as *const libc::sockaddr_ll).cast(),
                mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(context(ifname, "bind", io::Error::last_os_error()));
        }
        capture.drain();
        // Totals start now: whatever the kernel counted so far is forgotten.
        let _ = capture.read_statistics();
        capture.stats.set(Statistics::default());
        Ok(capture)
    }

    /// Replaces the filter (atomically, e.g. on reload). Frames already
    /// queued under the old filter stay queued; `wire` and the engine judge
    /// them as usual.
    pub fn set_filter(&self, program: &[SockFilter]) -> io::Result<()> {
        if program.is_empty() || program.len() > MAX_INSNS {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "capture on '{}': filter of {} instructions (must be 1 to {MAX_INSNS}): too many ports",
                    self.ifname,
                    program.len()
                ),
            ));
        }
        let prog = libc::sock_fprog {
            len: program.len() as u16,
            // The kernel only reads through this pointer (it copies the
            // program); `SockFilter` has `sock_filter`'s layout (asserted).
            filter: program.as_ptr() as *mut libc::sock_filter,
        };
        self.setsockopt(
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            &prog,
            "SO_ATTACH_FILTER",
        )
    }

    /// Sets the receive buffer to `bytes`: `SO_RCVBUFFORCE` (needs
    /// `CAP_NET_ADMIN`, which the daemon has for the firewall) past the
    /// `rmem_max` limit, else `SO_RCVBUF` (capped by the kernel). Best
    /// effort: the default buffer works, it only drops sooner under a flood.
    fn set_recv_buffer(&self, bytes: libc::c_int) {
        if self
            .setsockopt(
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                &bytes,
                "SO_RCVBUFFORCE",
            )
            .is_err()
        {
            let _ = self.setsockopt(libc::SOL_SOCKET, libc::SO_RCVBUF, &bytes, "SO_RCVBUF");
        }
    }

    /// The receive buffer the kernel granted (`SO_RCVBUF`, doubled by the kernel).
    pub fn recv_buffer(&self) -> io::Result<usize> {
        let mut v: libc::c_int = 0;
        let mut len = mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `v` and `len` are live and describe a c_int buffer.
        let rc = unsafe {
            libc::getsockopt(
                self.raw(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                (&mut v as *mut libc::c_int).cast::<c_void>(),
                &mut len,
            )
        };
        if rc < 0 {
            return Err(context(
                &self.ifname,
                "getsockopt(SO_RCVBUF)",
                io::Error::last_os_error(),
            ));
        }
        Ok(usize::try_from(v).unwrap_or(0))
    }

    /// Receives one frame into `buf` without blocking: `Ok(None)` when no
    /// frame is queued. A buffer of 65535 bytes holds any IP packet the
    /// filter lets through. No allocation.
    ///
    /// Frames addressed to another host (`PACKET_OTHERHOST`: a promiscuous
    /// or bridged device) are never returned: the daemon's filter drops them
    /// in the kernel, and any that a filter lets through are skipped here and
    /// counted ([`Statistics::other_host`]). At most [`OTHER_HOST_SKIPS`] are
    /// skipped per call (then `Ok(None)`; the rest wait for the next call).
    ///
    /// Errors (other than "would block" and EINTR, handled here) are the
    /// socket's, e.g. `ENETDOWN` after the interface went down.
    pub fn recv<'b>(&self, buf: &'b mut [u8]) -> io::Result<Option<Frame<'b>>> {
        for _ in 0..OTHER_HOST_SKIPS {
            let Some(meta) = self.recv_meta(buf)? else {
                return Ok(None);
            };
            if meta.other_host {
                let mut s = self.stats.get();
                s.other_host = s.other_host.saturating_add(1);
                self.stats.set(s);
                continue;
            }
            let mut data: &[u8] = buf.get(..meta.len).unwrap_or_default();
            if meta.protocol == pppoe::ETH_P_PPP_SES {
                // Capturing on the Ethernet under a PPPoE link. A frame that
                // is not IP in a session goes on as it is: `wire` rejects it.
                data = pppoe::session_ip(data).unwrap_or(data);
            }
            return Ok(Some(Frame {
                data,
                checksums: meta.checksums,
                outgoing: meta.outgoing,
            }));
        }
        Ok(None)
    }

    /// One frame into `buf`, described but not yet judged.
    fn recv_meta(&self, buf: &mut [u8]) -> io::Result<Option<Meta>> {
        if let Some(ring) = &self.ring {
            match ring.recv_into(buf) {
                Next::Empty => return Ok(None),
                Next::Frame(slot) => {
                    return Ok(Some(Meta {
                        len: slot.len,
                        checksums: slot.checksums,
                        outgoing: slot.outgoing,
                        other_host: slot.other_host,
                        protocol: slot.protocol,
                    }))
                }
                // Too long for a slot: the whole frame is on the socket.
                Next::Copied => {}
            }
        }
        // SAFETY: all-zero is a valid `sockaddr_ll`.
        let mut addr: libc::sockaddr_ll = unsafe { mem::zeroed() };
        // Room for the PACKET_AUXDATA message (40 bytes on 64-bit), aligned
        // for `cmsghdr`.
        let mut control = [0u64; 16];
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast::<c_void>(),
            iov_len: buf.len(),
        };
        // SAFETY: all-zero is a valid `msghdr` (null pointers, zero lengths);
        // the fields are set below.
        let mut msg: libc::msghdr = unsafe { mem::zeroed() };
        msg.msg_name = (&mut addr as *mut libc::sockaddr_ll).cast::<c_void>();
        msg.msg_namelen = mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast::<c_void>();
        msg.msg_controllen = mem::size_of_val(&control) as _;

        let n = loop {
            // SAFETY: `msg` points at `addr`, `iov` (→ `buf`) and `control`,
            // all alive and exclusively borrowed for this call; the lengths
            // given are theirs.
            let n = unsafe { libc::recvmsg(self.raw(), &mut msg, libc::MSG_DONTWAIT) };
            if n >= 0 {
                break n as usize;
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::WouldBlock => return Ok(None),
                io::ErrorKind::Interrupted => continue,
                _ => return Err(context(&self.ifname, "recvmsg", e)),
            }
        };

        let mut checksums = Checksums::Verify;
        // SAFETY: `msg` was filled by the kernel; the CMSG_* macros walk its
        // control buffer within `msg_controllen`, and the auxdata payload is
        // read unaligned after checking its length.
        unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
            while !cmsg.is_null() {
                let c = &*cmsg;
                if c.cmsg_level == libc::SOL_PACKET
                    && c.cmsg_type == libc::PACKET_AUXDATA
                    && c.cmsg_len as usize
                        >= libc::CMSG_LEN(mem::size_of::<libc::tpacket_auxdata>() as u32) as usize
                {
                    let aux: libc::tpacket_auxdata =
                        core::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                    if aux.tp_status & libc::TP_STATUS_CSUMNOTREADY != 0 {
                        checksums = Checksums::SkipTransport;
                    }
                }
                cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
            }
        }

        Ok(Some(Meta {
            len: n.min(buf.len()),
            checksums,
            outgoing: addr.sll_pkttype == libc::PACKET_OUTGOING,
            other_host: addr.sll_pkttype == libc::PACKET_OTHERHOST,
            protocol: u16::from_be(addr.sll_protocol),
        }))
    }

    /// Reads the kernel's counters (`PACKET_STATISTICS`, which resets them),
    /// adds them to the socket's totals and returns the new totals. Cheap (one
    /// `getsockopt`); the daemon calls it once a second and for `postern status`.
    pub fn read_statistics(&self) -> io::Result<Statistics> {
        // TPACKET_V1/V2 (and recvmsg-only sockets) report `tpacket_stats`;
        // `tp_packets` already includes `tp_drops`.
        let mut st = libc::tpacket_stats {
            tp_packets: 0,
            tp_drops: 0,
        };
        let mut len = mem::size_of::<libc::tpacket_stats>() as libc::socklen_t;
        // SAFETY: `st` and `len` are live and describe a `tpacket_stats`
        // buffer; the kernel writes at most `len` bytes.
        let rc = unsafe {
            libc::getsockopt(
                self.raw(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&mut st as *mut libc::tpacket_stats).cast::<c_void>(),
                &mut len,
            )
        };
        if rc < 0 {
            return Err(context(
                &self.ifname,
                "getsockopt(PACKET_STATISTICS)",
                io::Error::last_os_error(),
            ));
        }
        let mut total = self.stats.get();
        total.add_reading(st.tp_packets, st.tp_drops);
        self.stats.set(total);
        Ok(total)
    }

    /// Takes the socket's pending error (`SO_ERROR`, which clears it): after
    /// the device went down the kernel leaves `ENETDOWN` on the socket, and
    /// until it is taken `poll` reports `POLLERR` at once, every time (a ring
    /// socket is never read with `recvmsg`, which would take it). `None` when
    /// there was none.
    pub fn take_error(&self) -> Option<io::Error> {
        let mut v: libc::c_int = 0;
        let mut len = mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `v` and `len` are live and describe a c_int buffer.
        let rc = unsafe {
            libc::getsockopt(
                self.raw(),
                libc::SOL_SOCKET,
                libc::SO_ERROR,
                (&mut v as *mut libc::c_int).cast::<c_void>(),
                &mut len,
            )
        };
        if rc < 0 {
            return Some(io::Error::last_os_error());
        }
        (v != 0).then(|| io::Error::from_raw_os_error(v))
    }

    /// Whether the device is up with a carrier (`IFF_UP` and `IFF_RUNNING`,
    /// `SIOCGIFFLAGS` by name: one syscall). `NotFound` when no device has the
    /// name any more.
    pub fn link_up(&self) -> io::Result<bool> {
        // SAFETY: all-zero is a valid `ifreq`.
        let mut ifr: libc::ifreq = unsafe { mem::zeroed() };
        let name = self.ifname.as_bytes();
        if name.len() >= ifr.ifr_name.len() {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        for (d, s) in ifr.ifr_name.iter_mut().zip(name) {
            *d = *s as libc::c_char;
        }
        // SAFETY: SIOCGIFFLAGS reads the NUL-terminated name of `ifr` and
        // writes its flags member; `ifr` is live and exclusively borrowed.
        let rc = unsafe { libc::ioctl(self.raw(), libc::SIOCGIFFLAGS as _, &mut ifr) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            return Err(match e.raw_os_error() {
                Some(libc::ENODEV) => io::Error::from(io::ErrorKind::NotFound),
                _ => e,
            });
        }
        // SAFETY: the kernel filled the flags member of the union.
        let flags = i32::from(unsafe { ifr.ifr_ifru.ifru_flags });
        let want = libc::IFF_UP | libc::IFF_RUNNING;
        Ok(flags & want == want)
    }

    /// Adds `earlier` to the totals (the counts of the socket this one
    /// replaces, so that they survive a reopen).
    pub fn carry_statistics(&self, earlier: Statistics) {
        self.stats.set(self.stats.get().plus(earlier));
    }

    /// The totals as of the last [`Capture::read_statistics`].
    pub fn statistics(&self) -> Statistics {
        self.stats.get()
    }

    /// Whether frames come through a receive ring (`PACKET_RX_RING`) rather
    /// than `recvmsg`.
    pub fn uses_ring(&self) -> bool {
        self.ring.is_some()
    }

    /// The socket, for `poll`.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The interface name given to [`Capture::open`].
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// The interface index the socket is bound to.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Discards every queued frame; returns how many (bounded, so a flood
    /// cannot keep it looping).
    pub(crate) fn drain(&self) -> usize {
        let mut scratch = [0u8; 64];
        let mut n = 0;
        while n < 100_000 {
            // SAFETY: `scratch` is a valid writable buffer of the given
            // length; longer frames are cut, which is what draining wants.
            let rc = unsafe {
                libc::recv(
                    self.raw(),
                    scratch.as_mut_ptr().cast::<c_void>(),
                    scratch.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if rc < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                break;
            }
            n += 1;
        }
        n
    }

    fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// `setsockopt` with a typed value, errors in context.
    fn setsockopt<T>(&self, level: i32, name: i32, value: &T, what: &str) -> io::Result<()> {
        // SAFETY: `value` points at a live `T` and its exact size is passed.
        let rc = unsafe {
            libc::setsockopt(
                self.raw(),
                level,
                name,
                (value as *const T).cast::<c_void>(),
                mem::size_of::<T>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(context(&self.ifname, what, io::Error::last_os_error()));
        }
        Ok(())
    }
}

impl AsFd for Capture {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for Capture {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}
