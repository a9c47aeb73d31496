//! Packet capture: AF_PACKET sockets with an in-kernel classic BPF filter.
//!
//! Owns the I/O edge where packets enter: [`bpf`] builds the filter from the
//! guarded ports (pure), [`Capture`] is one non-blocking `SOCK_DGRAM` socket per
//! interface (no link header, so Ethernet and PPPoE look alike; on the
//! Ethernet under a PPPoE link, the IP packets inside PPPoE session frames are
//! captured too) that reports per frame whether the transport checksum can be
//! verified, and what the kernel counted on it ([`Statistics`]: frames, drops,
//! frames for other hosts).
//!
//! Must not parse packets beyond what the filter does (that is
//! [`crate::wire`]'s job), keep state about them, or allocate per packet.

pub mod bpf;
pub mod pacing;
pub mod ring;
mod socket;
pub mod stats;

pub use bpf::SockFilter;
pub use pacing::Pacer;
pub use socket::{Capture, Frame};
pub use stats::Statistics;

#[cfg(test)]
mod netns_tests;
