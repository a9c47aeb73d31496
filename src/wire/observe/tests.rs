//! Byte-array tests for [`observe`], plus a no-panic fuzz loop.

use super::*;
use crate::test_rng::Rng;
use crate::wire::testdata::*;

const V: Checksums = Checksums::Verify;
const SKIP: Checksums = Checksums::SkipTransport;

fn v4_addr(a: [u8; 4]) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(a))
}

fn v6_addr(a: [u8; 16]) -> IpAddr {
    IpAddr::V6(Ipv6Addr::from(a))
}

#[test]
fn builders_reproduce_the_literal_frames() {
    assert_eq!(v4(6, &tcp(40000, 22, 0x02, b"")), V4_TCP_SYN);
    assert_eq!(v4(17, &udp(40001, 8000, b"knock!")), V4_UDP);
    assert_eq!(v6(6, &tcp(40000, 22, 0x02, b"")), V6_TCP_SYN);
    assert_eq!(v6(17, &udp(40001, 8000, b"knock!")), V6_UDP);
}

#[test]
fn valid_v4_tcp_syn() {
    let o = observe(&V4_TCP_SYN, V).unwrap();
    assert_eq!(o.src, v4_addr(SRC4));
    assert_eq!(o.dst, v4_addr(DST4));
    assert_eq!(o.proto, L4Proto::Tcp);
    assert_eq!((o.src_port, o.dst_port), (40000, 22));
    assert_eq!(o.tcp_flags, TcpFlags(TcpFlags::SYN));
    assert!(o.tcp_flags.is_initial_syn());
    assert!(o.payload.is_empty());
}

#[test]
fn valid_v4_udp() {
    let o = observe(&V4_UDP, V).unwrap();
    assert_eq!(o.src, v4_addr(SRC4));
    assert_eq!(o.dst, v4_addr(DST4));
    assert_eq!(o.proto, L4Proto::Udp);
    assert_eq!((o.src_port, o.dst_port), (40001, 8000));
    assert_eq!(o.tcp_flags, TcpFlags(0));
    assert_eq!(o.payload, b"knock!");
    // Zero-copy: the payload is the tail of the frame itself.
    assert_eq!(o.payload.as_ptr(), V4_UDP[28..].as_ptr());
}

#[test]
fn valid_v6_tcp_syn() {
    let o = observe(&V6_TCP_SYN, V).unwrap();
    assert_eq!(o.src, v6_addr(SRC6));
    assert_eq!(o.dst, v6_addr(DST6));
    assert_eq!(o.proto, L4Proto::Tcp);
    assert_eq!((o.src_port, o.dst_port), (40000, 22));
    assert!(o.tcp_flags.is_initial_syn());
    assert!(o.payload.is_empty());
}

#[test]
fn valid_v6_udp() {
    let o = observe(&V6_UDP, V).unwrap();
    assert_eq!(o.src, v6_addr(SRC6));
    assert_eq!(o.dst, v6_addr(DST6));
    assert_eq!(o.proto, L4Proto::Udp);
    assert_eq!((o.src_port, o.dst_port), (40001, 8000));
    assert_eq!(o.payload, b"knock!");
    assert_eq!(o.payload.as_ptr(), V6_UDP[48..].as_ptr());
}

#[test]
fn tcp_flags_and_payload() {
    let f = v4(6, &tcp(22, 40000, 0x12, b"data"));
    let o = observe(&f, V).unwrap();
    assert_eq!(o.tcp_flags, TcpFlags(TcpFlags::SYN | TcpFlags::ACK));
    assert!(!o.tcp_flags.is_initial_syn());
    assert_eq!(o.payload, b"data");
    let f = v6(6, &tcp(1, 2, 0x18, b"xyz"));
    let o = observe(&f, V).unwrap();
    assert_eq!(o.tcp_flags.0, TcpFlags::PSH | TcpFlags::ACK);
    assert_eq!(o.payload, b"xyz");
}

#[test]
fn every_truncation_is_rejected() {
    for frame in [&V4_TCP_SYN[..], &V4_UDP, &V6_TCP_SYN, &V6_UDP] {
        for len in 0..frame.len() {
            assert_eq!(
                observe(&frame[..len], V),
                Err(Reject::Truncated),
                "len {len} of {frame:02x?}"
            );
        }
    }
}

#[test]
fn trailing_padding_is_ignored() {
    for frame in [&V4_TCP_SYN[..], &V4_UDP, &V6_TCP_SYN, &V6_UDP] {
        let mut padded = frame.to_vec();
        padded.extend_from_slice(&[0xee; 18]);
        let o = observe(&padded, V).unwrap();
        assert_eq!(o, observe(frame, V).unwrap());
    }
    // Ethernet minimum: a 34-byte IPv4/UDP packet padded to 46.
    let mut padded = V4_UDP.to_vec();
    padded.resize(46, 0);
    assert_eq!(observe(&padded, V).unwrap().payload, b"knock!");
}

#[test]
fn bad_version() {
    for first in [0x00, 0x15, 0x55, 0xf5] {
        let mut f = V4_UDP;
        f[0] = first;
        assert_eq!(observe(&f, V), Err(Reject::BadIpVersion));
    }
    assert_eq!(observe(&[0x45], V), Err(Reject::Truncated));
    assert_eq!(observe(&[], V), Err(Reject::Truncated));
}

#[test]
fn bad_ihl() {
    for ihl in 0..5 {
        let mut f = V4_TCP_SYN;
        f[0] = 0x40 | ihl;
        assert_eq!(observe(&f, V), Err(Reject::BadIpHeader), "ihl {ihl}");
    }
    // IHL past the total length (60 > 44).
    let mut f = V4_TCP_SYN;
    f[0] = 0x4f;
    assert_eq!(observe(&f, V), Err(Reject::BadIpHeader));
}

#[test]
fn ipv4_options_are_accepted() {
    // IHL 6: one word of NOP options.
    let mut f = V4_UDP[..20].to_vec();
    f[0] = 0x46;
    f.extend_from_slice(&[1, 1, 1, 0]);
    f.extend_from_slice(&udp(40001, 8000, b"opt"));
    let total = f.len() as u16;
    f[2..4].copy_from_slice(&total.to_be_bytes());
    fix_checksums(&mut f);
    let o = observe(&f, V).unwrap();
    assert_eq!(o.payload, b"opt");
}

#[test]
fn bad_total_length() {
    // Below the header length.
    let mut f = V4_UDP;
    f[2..4].copy_from_slice(&10u16.to_be_bytes());
    assert_eq!(observe(&f, V), Err(Reject::BadIpHeader));
    // Past the frame.
    let mut f = V4_UDP;
    f[2..4].copy_from_slice(&35u16.to_be_bytes());
    fix_checksums(&mut f);
    assert_eq!(observe(&f, V), Err(Reject::Truncated));
    // Shorter than the UDP length says (the rest looks like padding).
    let mut f = V4_UDP;
    f[2..4].copy_from_slice(&30u16.to_be_bytes());
    fix_checksums(&mut f);
    assert_eq!(observe(&f, V), Err(Reject::BadTransportHeader));
    // IPv6 payload length past the frame.
    let mut f = V6_UDP;
    f[5] += 1;
    assert_eq!(observe(&f, V), Err(Reject::Truncated));
    // IPv6 payload length 0 (a jumbogram needs hop-by-hop options).
    let mut f = V6_TCP_SYN;
    f[4..6].copy_from_slice(&[0, 0]);
    assert_eq!(observe(&f, V), Err(Reject::BadTransportHeader));
}

#[test]
fn bad_ip_checksum() {
    let mut f = V4_TCP_SYN;
    f[11] ^= 1;
    assert_eq!(observe(&f, V), Err(Reject::BadIpChecksum));
    // Checked even when transport checksums are skipped.
    assert_eq!(observe(&f, SKIP), Err(Reject::BadIpChecksum));
    // A changed TTL without a new checksum.
    let mut f = V4_UDP;
    f[8] -= 1;
    assert_eq!(observe(&f, SKIP), Err(Reject::BadIpChecksum));
}

#[test]
fn bad_transport_checksums() {
    let cases: [(&[u8], usize); 4] = [
        (&V4_TCP_SYN, 20 + 16),
        (&V4_UDP, 20 + 6),
        (&V6_TCP_SYN, 40 + 16),
        (&V6_UDP, 40 + 6),
    ];
    for (frame, at) in cases {
        let mut f = frame.to_vec();
        f[at] ^= 0x40;
        assert_eq!(observe(&f, V), Err(Reject::BadTransportChecksum));
        assert!(observe(&f, SKIP).is_ok());
        // A changed payload or port with the old checksum.
        let mut f = frame.to_vec();
        let last = f.len() - 1;
        f[last] ^= 1;
        assert_eq!(observe(&f, V), Err(Reject::BadTransportChecksum));
    }
}

#[test]
fn udp_zero_checksum() {
    let mut f = V4_UDP;
    f[26..28].copy_from_slice(&[0, 0]);
    assert!(observe(&f, V).is_ok(), "IPv4: zero means no checksum");
    let mut f = V6_UDP;
    f[46..48].copy_from_slice(&[0, 0]);
    assert_eq!(observe(&f, V), Err(Reject::BadTransportChecksum));
    assert!(observe(&f, SKIP).is_ok());
}

#[test]
fn fragments() {
    // More-fragments flag.
    let mut f = V4_UDP;
    f[6] = 0x20;
    fix_checksums(&mut f);
    assert_eq!(observe(&f, V), Err(Reject::Fragment));
    // Non-zero offset (the last fragment: MF clear).
    for (hi, lo) in [(0x00, 0x01), (0x40, 0x10), (0x1f, 0xff)] {
        let mut f = V4_UDP;
        f[6] = hi;
        f[7] = lo;
        fix_checksums(&mut f);
        assert_eq!(observe(&f, V), Err(Reject::Fragment));
    }
    // DF alone is fine (the literal frames carry it).
    assert_eq!(V4_UDP[6], 0x40);
    // IPv6 fragment header.
    let mut l = vec![17, 0, 0, 0, 0, 0, 0, 1];
    l.extend_from_slice(&udp(1, 2, b"x"));
    assert_eq!(observe(&v6(44, &l), V), Err(Reject::Fragment));
}

#[test]
fn ipv6_extension_headers() {
    for next in [0u8, 43, 60, 51, 135] {
        let mut l = vec![17, 0, 1, 4, 0, 0, 0, 0];
        l.extend_from_slice(&udp(1, 2, b"x"));
        assert_eq!(
            observe(&v6(next, &l), V),
            Err(Reject::ExtensionHeader),
            "next header {next}"
        );
    }
}

#[test]
fn unsupported_protocols() {
    // ICMP echo request.
    let icmp = [8, 0, 0xf7, 0xff, 0, 0, 0, 0];
    assert_eq!(observe(&v4(1, &icmp), V), Err(Reject::UnsupportedProtocol));
    // ICMPv6, SCTP, no next header.
    for next in [58u8, 132, 59] {
        assert_eq!(
            observe(&v6(next, &icmp), V),
            Err(Reject::UnsupportedProtocol)
        );
    }
    assert_eq!(
        observe(&v4(132, &icmp), V),
        Err(Reject::UnsupportedProtocol)
    );
}

#[test]
fn bad_source_addresses() {
    for src in [
        [0, 0, 0, 0],
        [127, 0, 0, 1],
        [224, 0, 0, 1],
        [239, 1, 2, 3],
        [255; 4],
    ] {
        let mut f = V4_UDP;
        f[12..16].copy_from_slice(&src);
        fix_checksums(&mut f);
        assert_eq!(observe(&f, V), Err(Reject::BadSourceAddress), "{src:?}");
    }
    let mapped = Ipv4Addr::new(198, 51, 100, 7).to_ipv6_mapped();
    for src in [
        Ipv6Addr::UNSPECIFIED,
        Ipv6Addr::LOCALHOST,
        Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1),
        mapped,
    ] {
        let mut f = V6_TCP_SYN;
        f[8..24].copy_from_slice(&src.octets());
        fix_checksums(&mut f);
        assert_eq!(observe(&f, V), Err(Reject::BadSourceAddress), "{src}");
    }
    // Private and link-local sources are real clients.
    let mut f = V6_UDP;
    f[8..24].copy_from_slice(&Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1).octets());
    fix_checksums(&mut f);
    assert!(observe(&f, V).is_ok());
}

#[test]
fn bad_transport_headers() {
    // TCP data offset below 5 and past the segment.
    for off in [0u8, 4, 7, 15] {
        let mut f = V4_TCP_SYN;
        f[32] = off << 4;
        fix_checksums(&mut f);
        assert_eq!(observe(&f, SKIP), Err(Reject::BadTransportHeader), "{off}");
    }
    // Segments shorter than the header.
    for len in [0usize, 1, 12, 13, 19] {
        let f = v4(6, &V4_TCP_SYN[20..20 + len]);
        assert_eq!(observe(&f, SKIP), Err(Reject::BadTransportHeader), "{len}");
        let f = v6(6, &V6_TCP_SYN[40..40 + len]);
        assert_eq!(observe(&f, SKIP), Err(Reject::BadTransportHeader), "{len}");
    }
    for len in [0usize, 3, 5, 7] {
        let f = v4(17, &V4_UDP[20..20 + len]);
        assert_eq!(observe(&f, SKIP), Err(Reject::BadTransportHeader), "{len}");
    }
    // UDP length field not equal to the IP payload length.
    for ulen in [0u16, 7, 8, 13, 15, 0xffff] {
        let mut f = V4_UDP;
        f[24..26].copy_from_slice(&ulen.to_be_bytes());
        assert_eq!(observe(&f, SKIP), Err(Reject::BadTransportHeader), "{ulen}");
        let mut f = V6_UDP;
        f[44..46].copy_from_slice(&ulen.to_be_bytes());
        assert_eq!(observe(&f, SKIP), Err(Reject::BadTransportHeader), "{ulen}");
    }
    // An empty UDP datagram is fine.
    let f = v6(17, &udp(1, 2, b""));
    let o = observe(&f, V).unwrap();
    assert!(o.payload.is_empty());
}

/// Makes the IPv4 header checksum right again if the header is complete, so
/// that mutations reach the checks behind it.
fn fix_ip_header(f: &mut [u8]) {
    if f.len() < 20 || f[0] >> 4 != 4 {
        return;
    }
    let ihl = usize::from(f[0] & 15) * 4;
    if ihl < 20 || ihl > f.len() {
        return;
    }
    f[10] = 0;
    f[11] = 0;
    let c = !smoltcp::wire::checksum::data(&f[..ihl]);
    f[10..12].copy_from_slice(&c.to_be_bytes());
}

#[test]
fn never_panics_on_random_or_mutated_frames() {
    let seeds: Vec<Vec<u8>> = vec![
        V4_TCP_SYN.to_vec(),
        V4_UDP.to_vec(),
        V6_TCP_SYN.to_vec(),
        V6_UDP.to_vec(),
        v4(6, &tcp(1, 2, 0x18, b"some tcp data")),
        v6(17, &udp(3, 4, &[0xab; 40])),
        v6(44, &[17, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 2, 0, 9, 0, 0, 7]),
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut buf = [0u8; 128];
    let mut oks = 0u32;
    let mut seen = [false; Reject::ALL.len()];
    for i in 0..200_000 {
        let len;
        if i % 4 == 0 {
            // Random bytes, usually with a plausible version nibble.
            len = rng.below(buf.len() + 1);
            for b in &mut buf[..len] {
                *b = rng.next() as u8;
            }
            if len > 0 && rng.below(4) != 0 {
                buf[0] = (buf[0] & 0x0f) | if rng.below(2) == 0 { 0x40 } else { 0x60 };
            }
        } else {
            // A valid frame with a few bytes changed, maybe cut or extended.
            let seed = &seeds[rng.below(seeds.len())];
            buf[..seed.len()].copy_from_slice(seed);
            let mut l = seed.len();
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(l);
                buf[at] = match rng.below(3) {
                    0 => rng.next() as u8,
                    1 => buf[at] ^ (1 << rng.below(8)),
                    _ => [0, 0xff, 0x40, 0x60, 5, 6, 17, 44][rng.below(8)],
                };
            }
            match rng.below(4) {
                0 => l = rng.below(l + 1),
                1 => {
                    let extra = rng.below(buf.len() - l + 1);
                    for b in &mut buf[l..l + extra] {
                        *b = rng.next() as u8;
                    }
                    l += extra;
                }
                _ => {}
            }
            if i % 4 != 1 {
                fix_ip_header(&mut buf[..l]);
            }
            len = l;
        }
        let frame = &buf[..len];
        for mode in [V, SKIP] {
            match observe(frame, mode) {
                Ok(o) => {
                    oks += 1;
                    // The payload lies inside the frame.
                    let start = o.payload.as_ptr() as usize - frame.as_ptr() as usize;
                    assert!(start + o.payload.len() <= frame.len());
                }
                Err(r) => seen[r.index()] = true,
            }
        }
    }
    assert!(oks > 1000, "fuzz reached too few valid frames: {oks}");
    for r in Reject::ALL {
        assert!(seen[r.index()], "fuzz never produced {r:?}");
    }
}
