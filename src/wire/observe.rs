//! [`observe`]: one network-layer packet into an [`Observation`].
//!
//! Owns the parsing of IPv4/IPv6 + TCP/UDP headers as captured by an AF_PACKET
//! `SOCK_DGRAM` socket. Must not do I/O, allocate, or panic on any input: every
//! length is checked before a field is read, and smoltcp's views are only built
//! with `new_checked`.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use smoltcp::wire::{IpAddress, Ipv4Packet, Ipv6Packet, TcpPacket, UdpPacket};

use super::{Checksums, Observation, Reject, TcpFlags};
use crate::port::L4Proto;

/// Length of an IPv4 header without options.
const IPV4_MIN_HEADER: usize = 20;
/// Length of the fixed IPv6 header.
const IPV6_HEADER: usize = 40;
/// Length of a TCP header without options.
const TCP_MIN_HEADER: usize = 20;
/// Length of the UDP header.
const UDP_HEADER: usize = 8;
/// Offset of the TCP flags byte.
const TCP_FLAGS: usize = 13;

/// IPv6 "next header" values of extension headers (IANA registry), except the
/// fragment header (44), which is reported as [`Reject::Fragment`].
const IPV6_EXTENSION_HEADERS: [u8; 10] = [
    0,   // hop-by-hop options
    43,  // routing
    50,  // ESP
    51,  // AH
    60,  // destination options
    135, // mobility
    139, // HIP
    140, // shim6
    253, // experimental
    254, // experimental
];
/// IPv6 fragment header.
const IPV6_FRAGMENT: u8 = 44;

/// Parses one network-layer packet (no link header) into an [`Observation`].
///
/// The frame may carry trailing bytes after the IP packet (Ethernet padding):
/// they are ignored. The IPv4 header checksum is always verified; the TCP/UDP
/// checksum only with [`Checksums::Verify`]. The returned payload borrows from
/// `frame`.
///
/// Rejects, in this order of checks: empty frame or a frame shorter than its IP
/// header or total length ([`Reject::Truncated`]), version not 4/6, bad IPv4 IHL
/// or total length, bad IPv4 header checksum, fragments, IPv6 extension headers,
/// a bad source address (unspecified, loopback, multicast, IPv4 broadcast, and
/// IPv4-mapped IPv6, which never appears on the wire), non-TCP/UDP protocols,
/// bad transport headers and bad transport checksums.
pub fn observe(frame: &[u8], checksums: Checksums) -> Result<Observation<'_>, Reject> {
    let first = *frame.first().ok_or(Reject::Truncated)?;
    match first >> 4 {
        4 => observe_v4(frame, checksums),
        6 => observe_v6(frame, checksums),
        _ => Err(Reject::BadIpVersion),
    }
}

/// Reads a big-endian `u16` at `at`, if the slice is long enough.
fn be16(bytes: &[u8], at: usize) -> Option<u16> {
    match bytes.get(at..at.checked_add(2)?)? {
        [hi, lo] => Some(u16::from_be_bytes([*hi, *lo])),
        _ => None,
    }
}

/// IPv4: header checks, then the transport.
fn observe_v4(frame: &[u8], checksums: Checksums) -> Result<Observation<'_>, Reject> {
    if frame.len() < IPV4_MIN_HEADER {
        return Err(Reject::Truncated);
    }
    let ihl = usize::from(frame.first().ok_or(Reject::Truncated)? & 0x0f) * 4;
    let total = usize::from(be16(frame, 2).ok_or(Reject::Truncated)?);
    if ihl < IPV4_MIN_HEADER || total < ihl {
        return Err(Reject::BadIpHeader);
    }
    // Trailing bytes past the total length are link padding: trim them.
    let packet = frame.get(..total).ok_or(Reject::Truncated)?;
    let ip = Ipv4Packet::new_checked(packet).map_err(|_| Reject::BadIpHeader)?;
    if !ip.verify_checksum() {
        return Err(Reject::BadIpChecksum);
    }
    if ip.more_frags() || ip.frag_offset() != 0 {
        return Err(Reject::Fragment);
    }
    let src = ip.src_addr();
    let dst = ip.dst_addr();
    if bad_source_v4(src) {
        return Err(Reject::BadSourceAddress);
    }
    let proto =
        L4Proto::from_number(u8::from(ip.next_header())).ok_or(Reject::UnsupportedProtocol)?;
    let l4 = transport(
        IpAddress::Ipv4(src),
        IpAddress::Ipv4(dst),
        proto,
        ip.payload(),
        checksums,
    )?;
    Ok(Observation {
        src: IpAddr::V4(src),
        dst: IpAddr::V4(dst),
        proto,
        src_port: l4.src_port,
        dst_port: l4.dst_port,
        tcp_flags: l4.flags,
        payload: l4.payload,
    })
}

/// IPv6: header checks, then the transport (which must follow directly).
fn observe_v6(frame: &[u8], checksums: Checksums) -> Result<Observation<'_>, Reject> {
    if frame.len() < IPV6_HEADER {
        return Err(Reject::Truncated);
    }
    let payload_len = usize::from(be16(frame, 4).ok_or(Reject::Truncated)?);
    let packet = frame
        .get(..IPV6_HEADER + payload_len)
        .ok_or(Reject::Truncated)?;
    let ip = Ipv6Packet::new_checked(packet).map_err(|_| Reject::BadIpHeader)?;
    let src = ip.src_addr();
    let dst = ip.dst_addr();
    let next = u8::from(ip.next_header());
    if next == IPV6_FRAGMENT {
        return Err(Reject::Fragment);
    }
    if IPV6_EXTENSION_HEADERS.contains(&next) {
        return Err(Reject::ExtensionHeader);
    }
    if bad_source_v6(src) {
        return Err(Reject::BadSourceAddress);
    }
    let proto = L4Proto::from_number(next).ok_or(Reject::UnsupportedProtocol)?;
    let l4 = transport(
        IpAddress::Ipv6(src),
        IpAddress::Ipv6(dst),
        proto,
        ip.payload(),
        checksums,
    )?;
    Ok(Observation {
        src: IpAddr::V6(src),
        dst: IpAddr::V6(dst),
        proto,
        src_port: l4.src_port,
        dst_port: l4.dst_port,
        tcp_flags: l4.flags,
        payload: l4.payload,
    })
}

/// An IPv4 source that cannot be a real client.
fn bad_source_v4(a: Ipv4Addr) -> bool {
    a.is_unspecified() || a.is_loopback() || a.is_multicast() || a.is_broadcast()
}

/// An IPv6 source that cannot be a real client.
fn bad_source_v6(a: Ipv6Addr) -> bool {
    a.is_unspecified() || a.is_loopback() || a.is_multicast() || a.to_ipv4_mapped().is_some()
}

/// The transport fields of an observation.
struct Transport<'a> {
    src_port: u16,
    dst_port: u16,
    flags: TcpFlags,
    payload: &'a [u8],
}

/// Parses the TCP or UDP segment `l4` (exactly the IP payload).
fn transport<'a>(
    src: IpAddress,
    dst: IpAddress,
    proto: L4Proto,
    l4: &'a [u8],
    checksums: Checksums,
) -> Result<Transport<'a>, Reject> {
    let verify = checksums == Checksums::Verify;
    match proto {
        L4Proto::Tcp => {
            let data_offset = usize::from(l4.get(12).ok_or(Reject::BadTransportHeader)? >> 4) * 4;
            if l4.len() < TCP_MIN_HEADER || data_offset < TCP_MIN_HEADER || data_offset > l4.len() {
                return Err(Reject::BadTransportHeader);
            }
            let tcp = TcpPacket::new_checked(l4).map_err(|_| Reject::BadTransportHeader)?;
            if verify && !tcp.verify_checksum(&src, &dst) {
                return Err(Reject::BadTransportChecksum);
            }
            Ok(Transport {
                src_port: tcp.src_port(),
                dst_port: tcp.dst_port(),
                flags: TcpFlags(*l4.get(TCP_FLAGS).ok_or(Reject::BadTransportHeader)?),
                payload: tcp.payload(),
            })
        }
        L4Proto::Udp => {
            let len = usize::from(be16(l4, 4).ok_or(Reject::BadTransportHeader)?);
            // The UDP length must say exactly what the IP header says.
            if l4.len() < UDP_HEADER || len != l4.len() {
                return Err(Reject::BadTransportHeader);
            }
            let udp = UdpPacket::new_checked(l4).map_err(|_| Reject::BadTransportHeader)?;
            if verify {
                if udp.checksum() == 0 {
                    // "No checksum" exists for IPv4 only (RFC 768 vs RFC 8200 §8.1).
                    if matches!(dst, IpAddress::Ipv6(_)) {
                        return Err(Reject::BadTransportChecksum);
                    }
                } else if !udp.verify_checksum(&src, &dst) {
                    return Err(Reject::BadTransportChecksum);
                }
            }
            Ok(Transport {
                src_port: udp.src_port(),
                dst_port: udp.dst_port(),
                flags: TcpFlags(0),
                payload: udp.payload(),
            })
        }
    }
}

#[cfg(test)]
mod tests;
