//! Captured frames into [`Observation`]s.
//!
//! Input is what an AF_PACKET `SOCK_DGRAM` socket delivers: the network-layer
//! packet with no link header (so Ethernet, PPPoE and tunnels look alike).
//! Parsing uses `smoltcp::wire`'s checked views, zero-copy. Anything malformed,
//! truncated, fragmented or odd is rejected with a [`Reject`] reason, never a
//! panic. No I/O, no allocation.

use core::net::IpAddr;

use crate::port::L4Proto;

mod observe;
pub mod pppoe;
#[cfg(test)]
pub(crate) mod testdata;

pub use observe::observe;

/// TCP header flags as the raw 8-bit field (FIN=0x01 … CWR=0x80); zero for UDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// PSH.
    pub const PSH: u8 = 0x08;
    /// ACK.
    pub const ACK: u8 = 0x10;

    /// A connection opening: SYN set, ACK clear (what a TCP knock is).
    pub const fn is_initial_syn(self) -> bool {
        self.0 & (Self::SYN | Self::ACK) == Self::SYN
    }
}

/// What postern needs to know of one IP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observation<'a> {
    /// Source address (the knocking client).
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Transport protocol.
    pub proto: L4Proto,
    /// Transport source port.
    pub src_port: u16,
    /// Transport destination port (the knock port).
    pub dst_port: u16,
    /// TCP flags (zero for UDP).
    pub tcp_flags: TcpFlags,
    /// Transport payload (UDP data; TCP data after options).
    pub payload: &'a [u8],
}

/// Whether transport checksums are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checksums {
    /// Verify the IPv4 header checksum and the TCP/UDP checksum.
    Verify,
    /// Verify the IPv4 header checksum only: the kernel reported the transport
    /// checksum as not yet computed (offloaded, e.g. a packet from a local veth).
    SkipTransport,
}

/// Why a frame was not turned into an observation. Each reason is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reject {
    /// Shorter than the headers it claims, or than any IP header.
    Truncated,
    /// The IP version nibble is neither 4 nor 6.
    BadIpVersion,
    /// IPv4 IHL below 5 or past the packet, or total/payload length inconsistent.
    BadIpHeader,
    /// The IPv4 header checksum does not match.
    BadIpChecksum,
    /// A fragment (IPv4 MF or offset, or an IPv6 fragment header).
    Fragment,
    /// An IPv6 extension header before the transport header.
    ExtensionHeader,
    /// A transport protocol other than TCP or UDP.
    UnsupportedProtocol,
    /// A TCP or UDP header that is short or has an impossible length field.
    BadTransportHeader,
    /// The TCP or UDP checksum does not match.
    BadTransportChecksum,
    /// A source address that cannot be a real client (unspecified, multicast,
    /// broadcast, loopback).
    BadSourceAddress,
}

impl Reject {
    /// Every reason, in counter order.
    pub const ALL: [Reject; 10] = [
        Reject::Truncated,
        Reject::BadIpVersion,
        Reject::BadIpHeader,
        Reject::BadIpChecksum,
        Reject::Fragment,
        Reject::ExtensionHeader,
        Reject::UnsupportedProtocol,
        Reject::BadTransportHeader,
        Reject::BadTransportChecksum,
        Reject::BadSourceAddress,
    ];

    /// Position in [`Reject::ALL`], for counter arrays.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// A short snake_case name for logs and status output.
    pub const fn name(self) -> &'static str {
        match self {
            Reject::Truncated => "truncated",
            Reject::BadIpVersion => "bad_ip_version",
            Reject::BadIpHeader => "bad_ip_header",
            Reject::BadIpChecksum => "bad_ip_checksum",
            Reject::Fragment => "fragment",
            Reject::ExtensionHeader => "extension_header",
            Reject::UnsupportedProtocol => "unsupported_protocol",
            Reject::BadTransportHeader => "bad_transport_header",
            Reject::BadTransportChecksum => "bad_transport_checksum",
            Reject::BadSourceAddress => "bad_source_address",
        }
    }
}

/// Counts of rejected frames by reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RejectCounters(pub [u64; Reject::ALL.len()]);

impl RejectCounters {
    /// Counts one rejection.
    pub fn count(&mut self, r: Reject) {
        self.0[r.index()] += 1;
    }

    /// The count for one reason.
    pub fn get(&self, r: Reject) -> u64 {
        self.0[r.index()]
    }

    /// Sum over all reasons.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }
}
