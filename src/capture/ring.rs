//! [`RxRing`]: a `PACKET_RX_RING` (TPACKET_V2) shared with the kernel.
//!
//! With a ring, the kernel writes each frame that passes the filter into a
//! slot of memory mapped into the daemon, in the receiving softirq; reading a
//! frame is a memory copy, not a `recvmsg` (which cost more than half of the
//! daemon's CPU under a flood: skb free, copies, the syscall itself). The
//! event loop still sleeps in `poll` until a slot is ready.
//!
//! Owns the mapping and the read position; unsafe code is confined here.
//! Slots are small (knocks and SPA packets are), so many fit in little
//! memory; a frame longer than a slot holds is also queued whole on the
//! socket (`PACKET_COPY_THRESH`), its slot says so (`TP_STATUS_COPY`), and
//! the caller reads that frame with `recvmsg` instead ([`Next::Copied`]).

use core::ffi::c_void;
use core::mem;
use core::ptr;
use core::sync::atomic::{fence, Ordering};
use std::cell::Cell;
use std::io;
use std::os::fd::RawFd;

use crate::wire::Checksums;

/// Bytes per slot: header and address (80 bytes), then up to 432 bytes of
/// frame: every knock, every native SPA packet (at most 344 bytes with an
/// IPv6 header), fwknop packets of up to ~400 characters. Longer frames are
/// read with `recvmsg` (see the module docs).
pub const SLOT_BYTES: usize = 512;
/// Slots in the ring: 25 ms of a 20,000 packets/s flood between two reads
/// (a busy router may not schedule the daemon for several milliseconds;
/// 128 slots lost a knock in the lab with both cores 100 % busy), in
/// 256 KiB of memory. The kernel maps the whole ring into the daemon when
/// it is created, so all of it is resident from the start: 512-byte slots
/// (1 KiB until 2026-11-24) halve that and keep every slot
/// (docs/performance.md).
pub const SLOTS: usize = 512;

static_assertions::const_assert!(SLOT_BYTES % libc::TPACKET_ALIGNMENT == 0);
static_assertions::const_assert!(SLOT_BYTES >= 512);
static_assertions::const_assert!(SLOTS * SLOT_BYTES <= 512 * 1024);

/// What [`RxRing::recv_into`] found in the next slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// No frame is ready.
    Empty,
    /// A frame, copied into the caller's buffer.
    Frame(Slot),
    /// A frame too long for its slot: the whole frame waits on the socket,
    /// to be read with `recvmsg` now (the slot was handed back).
    Copied,
}

/// What [`RxRing::recv_into`] copied out of one slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// Bytes copied into the caller's buffer.
    pub len: usize,
    /// Whether the transport checksum can be verified.
    pub checksums: Checksums,
    /// Sent by this host (`PACKET_OUTGOING`).
    pub outgoing: bool,
    /// Addressed to another host's link-layer address (`PACKET_OTHERHOST`).
    pub other_host: bool,
    /// The frame's EtherType (host order), e.g. `ETH_P_PPP_SES`.
    pub protocol: u16,
}

/// A receive ring mapped from a packet socket.
#[derive(Debug)]
pub struct RxRing {
    map: *mut u8,
    len: usize,
    next: Cell<usize>,
}

// SAFETY: the mapping is owned by the ring and only touched through `&self`
// methods of a single owner; moving it to another thread is sound (it is
// not `Sync`: `next` is a `Cell`).
unsafe impl Send for RxRing {}

impl RxRing {
    /// Switches packet socket `fd` to TPACKET_V2 and maps a ring of
    /// [`SLOTS`] slots. Call before `bind`. On error the socket is unchanged
    /// enough to be used with `recvmsg` (the caller falls back).
    pub fn new(fd: RawFd) -> io::Result<RxRing> {
        let version = libc::tpacket_versions::TPACKET_V2 as libc::c_int;
        setsockopt(fd, libc::PACKET_VERSION, &version)?;
        // SAFETY: sysconf has no preconditions.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
        let block = page.max(SLOT_BYTES);
        let len = SLOTS * SLOT_BYTES;
        if block % SLOT_BYTES != 0 || len % block != 0 {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("page size {page} does not fit the capture ring"),
            ));
        }
        let req = libc::tpacket_req {
            tp_block_size: block as libc::c_uint,
            tp_block_nr: (len / block) as libc::c_uint,
            tp_frame_size: SLOT_BYTES as libc::c_uint,
            tp_frame_nr: SLOTS as libc::c_uint,
        };
        setsockopt(fd, libc::PACKET_RX_RING, &req)?;
        // Frames that do not fit a slot are also queued whole on the socket.
        let copy_thresh: libc::c_int = 1;
        setsockopt(fd, libc::PACKET_COPY_THRESH, &copy_thresh)?;
        // SAFETY: maps the ring the kernel just allocated for `fd`, at a
        // fresh address chosen by the kernel; the result is checked.
        let map = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(RxRing {
            map: map.cast::<u8>(),
            len,
            next: Cell::new(0),
        })
    }

    /// Copies the next ready frame into `buf` (cut to its length) and hands
    /// the slot back to the kernel.
    pub fn recv_into(&self, buf: &mut [u8]) -> Next {
        let i = self.next.get();
        // SAFETY: `i < SLOTS`, so the slot lies inside the mapping; the
        // header is read and written with volatile accesses because the
        // kernel writes it concurrently, and the slot's other bytes are read
        // only after the status says the kernel is done with them (acquire
        // fence), and handed back after we are done (release fence). The
        // offsets the kernel wrote are bounded by the slot before use.
        unsafe {
            let slot = self.map.add(i * SLOT_BYTES);
            let hdr = slot.cast::<libc::tpacket2_hdr>();
            let status = ptr::read_volatile(ptr::addr_of!((*hdr).tp_status));
            if status & libc::TP_STATUS_USER == 0 {
                return Next::Empty;
            }
            fence(Ordering::Acquire);
            let net = usize::from(ptr::read_volatile(ptr::addr_of!((*hdr).tp_net)));
            let snap = ptr::read_volatile(ptr::addr_of!((*hdr).tp_snaplen)) as usize;
            let len = snap.min(SLOT_BYTES.saturating_sub(net)).min(buf.len());
            if net < SLOT_BYTES {
                ptr::copy_nonoverlapping(slot.add(net), buf.as_mut_ptr(), len);
            }
            let addr_at = align(mem::size_of::<libc::tpacket2_hdr>());
            let addr: libc::sockaddr_ll = ptr::read_unaligned(slot.add(addr_at).cast());
            fence(Ordering::Release);
            ptr::write_volatile(ptr::addr_of_mut!((*hdr).tp_status), libc::TP_STATUS_KERNEL);
            self.next.set((i + 1) % SLOTS);
            if status & libc::TP_STATUS_COPY != 0 {
                return Next::Copied;
            }
            Next::Frame(Slot {
                len: if net < SLOT_BYTES { len } else { 0 },
                checksums: if status & libc::TP_STATUS_CSUMNOTREADY != 0 {
                    Checksums::SkipTransport
                } else {
                    Checksums::Verify
                },
                outgoing: addr.sll_pkttype == libc::PACKET_OUTGOING,
                other_host: addr.sll_pkttype == libc::PACKET_OTHERHOST,
                protocol: u16::from_be(addr.sll_protocol),
            })
        }
    }
}

impl Drop for RxRing {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `new`, once.
        unsafe {
            libc::munmap(self.map.cast::<c_void>(), self.len);
        }
    }
}

/// `TPACKET_ALIGN`.
const fn align(n: usize) -> usize {
    (n + libc::TPACKET_ALIGNMENT - 1) & !(libc::TPACKET_ALIGNMENT - 1)
}

/// `setsockopt(SOL_PACKET, name, value)`.
fn setsockopt<T>(fd: RawFd, name: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` points at a live `T` and its exact size is passed.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_PACKET,
            name,
            (value as *const T).cast::<c_void>(),
            mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
