//! Builds well-formed IPv4/IPv6 TCP/UDP frames (all checksums right) so that
//! fuzz inputs can reach past the wire parser, and checksums them independently
//! of postern (RFC 1071).

use core::net::IpAddr;

/// Protocol number of TCP.
pub const TCP: u8 = 6;
/// Protocol number of UDP.
pub const UDP: u8 = 17;

/// One's-complement sum of `data` as big-endian 16-bit words, added to `sum`.
fn sum16(mut sum: u32, data: &[u8]) -> u32 {
    for pair in data.chunks(2) {
        let word = match pair {
            [hi, lo] => u16::from_be_bytes([*hi, *lo]),
            [hi] => u16::from_be_bytes([*hi, 0]),
            _ => 0,
        };
        sum += u32::from(word);
    }
    sum
}

/// Folds a sum into the 16-bit checksum field value.
fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// A frame `src → dst`, protocol `proto` (TCP gets a 20-byte header with
/// `flags`, UDP an 8-byte one), `payload` after it. Source and destination must
/// be the same family (else the destination is replaced by one of `src`'s).
pub fn frame(
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    sport: u16,
    dport: u16,
    flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    let mut l4 = Vec::with_capacity(20 + payload.len());
    l4.extend_from_slice(&sport.to_be_bytes());
    l4.extend_from_slice(&dport.to_be_bytes());
    if proto == TCP {
        l4.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags, 0xfa, 0xf0, 0, 0, 0, 0]);
    } else {
        let len = (8 + payload.len()) as u16;
        l4.extend_from_slice(&len.to_be_bytes());
        l4.extend_from_slice(&[0, 0]);
    }
    l4.extend_from_slice(payload);
    let l4_len = l4.len() as u16;
    let (mut pseudo, mut out) = match (src, dst) {
        (IpAddr::V4(s), d) => {
            let d = match d {
                IpAddr::V4(d) => d,
                IpAddr::V6(_) => [198, 51, 100, 1].into(),
            };
            let mut h = vec![0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 64, proto, 0, 0];
            h[2..4].copy_from_slice(&(20 + l4_len).to_be_bytes());
            h.extend_from_slice(&s.octets());
            h.extend_from_slice(&d.octets());
            let c = fold(sum16(0, &h));
            h[10..12].copy_from_slice(&c.to_be_bytes());
            let pseudo = sum16(sum16(sum16(0, &s.octets()), &d.octets()), &[0, proto]);
            (pseudo, h)
        }
        (IpAddr::V6(s), d) => {
            let d = match d {
                IpAddr::V6(d) => d,
                IpAddr::V4(_) => "2001:db8:1::1".parse().unwrap_or(s),
            };
            let mut h = vec![0x60, 0, 0, 0];
            h.extend_from_slice(&l4_len.to_be_bytes());
            h.extend_from_slice(&[proto, 64]);
            h.extend_from_slice(&s.octets());
            h.extend_from_slice(&d.octets());
            let pseudo = sum16(sum16(sum16(0, &s.octets()), &d.octets()), &[0, proto]);
            (pseudo, h)
        }
    };
    pseudo = sum16(pseudo, &l4_len.to_be_bytes());
    let mut c = fold(sum16(pseudo, &l4));
    if proto == UDP && c == 0 {
        c = 0xffff;
    }
    let at = if proto == TCP { 16 } else { 6 };
    l4[at..at + 2].copy_from_slice(&c.to_be_bytes());
    out.extend_from_slice(&l4);
    out
}
