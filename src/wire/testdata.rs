//! Test frames shared by the `wire` and `capture` tests: literal byte arrays
//! (checksums computed independently) and small builders for variations.
//! Test-only; builders may allocate and panic.

use smoltcp::wire::{IpAddress, Ipv4Packet, Ipv6Packet, TcpPacket, UdpPacket};

/// Source address of the IPv4 test frames.
pub(crate) const SRC4: [u8; 4] = [192, 0, 2, 10];
/// Destination address of the IPv4 test frames.
pub(crate) const DST4: [u8; 4] = [198, 51, 100, 1];
/// Source address of the IPv6 test frames (2001:db8::10).
pub(crate) const SRC6: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];
/// Destination address of the IPv6 test frames (2001:db8:1::1).
pub(crate) const DST6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];

// IPv4 192.0.2.10 -> 198.51.100.1, ident 0x1234, DF, TTL 64.
// TCP 40000 -> 22, SYN, seq 0x01020304, window 64240, MSS 1460.
// UDP 40001 -> 8000, payload "knock!".
// IPv6 2001:db8::10 -> 2001:db8:1::1, hop limit 64, same transports.
/// A valid frame (see the comment above).
pub(crate) const V4_TCP_SYN: [u8; 44] = [
    0x45, 0x00, 0x00, 0x2c, 0x12, 0x34, 0x40, 0x00, 0x40, 0x06, 0x3c, 0x59, 0xc0, 0x00, 0x02, 0x0a,
    0xc6, 0x33, 0x64, 0x01, 0x9c, 0x40, 0x00, 0x16, 0x01, 0x02, 0x03, 0x04, 0x00, 0x00, 0x00, 0x00,
    0x60, 0x02, 0xfa, 0xf0, 0x10, 0x9a, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4,
];
/// A valid frame (see the comment above).
pub(crate) const V4_UDP: [u8; 34] = [
    0x45, 0x00, 0x00, 0x22, 0x12, 0x34, 0x40, 0x00, 0x40, 0x11, 0x3c, 0x58, 0xc0, 0x00, 0x02, 0x0a,
    0xc6, 0x33, 0x64, 0x01, 0x9c, 0x41, 0x1f, 0x40, 0x00, 0x0e, 0x12, 0x1e, 0x6b, 0x6e, 0x6f, 0x63,
    0x6b, 0x21,
];
/// A valid frame (see the comment above).
pub(crate) const V6_TCP_SYN: [u8; 64] = [
    0x60, 0x00, 0x00, 0x00, 0x00, 0x18, 0x06, 0x40, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x9c, 0x40, 0x00, 0x16, 0x01, 0x02, 0x03, 0x04,
    0x00, 0x00, 0x00, 0x00, 0x60, 0x02, 0xfa, 0xf0, 0xa1, 0x55, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4,
];
/// A valid frame (see the comment above).
pub(crate) const V6_UDP: [u8; 54] = [
    0x60, 0x00, 0x00, 0x00, 0x00, 0x0e, 0x11, 0x40, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x9c, 0x41, 0x1f, 0x40, 0x00, 0x0e, 0xa2, 0xd9,
    0x6b, 0x6e, 0x6f, 0x63, 0x6b, 0x21,
];

/// A TCP header (+ MSS option when SYN is set) and payload, checksum zero.
pub(crate) fn tcp(sport: u16, dport: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    let opts: &[u8] = if flags & 0x02 != 0 {
        &[2, 4, 5, 0xb4]
    } else {
        &[]
    };
    let ack: u32 = if flags & 0x10 != 0 { 0x0a0b_0c0d } else { 0 };
    let mut v = Vec::new();
    v.extend_from_slice(&sport.to_be_bytes());
    v.extend_from_slice(&dport.to_be_bytes());
    v.extend_from_slice(&0x0102_0304u32.to_be_bytes());
    v.extend_from_slice(&ack.to_be_bytes());
    v.push((((20 + opts.len()) / 4) as u8) << 4);
    v.push(flags);
    v.extend_from_slice(&64240u16.to_be_bytes());
    v.extend_from_slice(&[0, 0, 0, 0]);
    v.extend_from_slice(opts);
    v.extend_from_slice(payload);
    v
}

/// A UDP header and payload, checksum zero.
pub(crate) fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&sport.to_be_bytes());
    v.extend_from_slice(&dport.to_be_bytes());
    v.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    v.extend_from_slice(&[0, 0]);
    v.extend_from_slice(payload);
    v
}

/// An IPv4 packet (header as in the literal frames) around `l4`, all
/// checksums filled.
pub(crate) fn v4(proto: u8, l4: &[u8]) -> Vec<u8> {
    let mut v = V4_UDP[..20].to_vec();
    v[9] = proto;
    v[2..4].copy_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
    v.extend_from_slice(l4);
    fix_checksums(&mut v);
    v
}

/// An IPv6 packet (header as in the literal frames) around `l4`, transport
/// checksum filled.
pub(crate) fn v6(next: u8, l4: &[u8]) -> Vec<u8> {
    let mut v = V6_UDP[..40].to_vec();
    v[6] = next;
    v[4..6].copy_from_slice(&(l4.len() as u16).to_be_bytes());
    v.extend_from_slice(l4);
    fix_checksums(&mut v);
    v
}

/// Recomputes the IPv4 header checksum and, for unfragmented TCP/UDP without
/// extension headers, the transport checksum (when its header is whole).
/// Lengths are taken as they are.
pub(crate) fn fix_checksums(f: &mut [u8]) {
    let len = f.len();
    let (src, dst, proto, l4) = match f[0] >> 4 {
        4 => {
            let ihl = usize::from(f[0] & 15) * 4;
            let total = usize::from(u16::from_be_bytes([f[2], f[3]]));
            let mut ip = Ipv4Packet::new_unchecked(&mut f[..]);
            ip.fill_checksum();
            let (s, d, p) = (ip.src_addr(), ip.dst_addr(), f[9]);
            if f[6] & 0x3f != 0 || f[7] != 0 {
                return;
            }
            (
                IpAddress::Ipv4(s),
                IpAddress::Ipv4(d),
                p,
                &mut f[ihl..total.min(len)],
            )
        }
        _ => {
            let total = 40 + usize::from(u16::from_be_bytes([f[4], f[5]]));
            let ip = Ipv6Packet::new_unchecked(&f[..]);
            let (s, d, p) = (ip.src_addr(), ip.dst_addr(), f[6]);
            (
                IpAddress::Ipv6(s),
                IpAddress::Ipv6(d),
                p,
                &mut f[40..total.min(len)],
            )
        }
    };
    match proto {
        6 if TcpPacket::new_checked(&l4[..]).is_err() => {}
        17 if UdpPacket::new_checked(&l4[..]).is_err() => {}
        6 => TcpPacket::new_unchecked(l4).fill_checksum(&src, &dst),
        17 => UdpPacket::new_unchecked(l4).fill_checksum(&src, &dst),
        _ => {}
    }
}
