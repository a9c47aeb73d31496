//! PPPoE session frames ([RFC 2516]) as a `SOCK_DGRAM` packet socket on the
//! Ethernet under a PPPoE link delivers them (EtherType 0x8864): a 6-byte
//! PPPoE header, the 2-byte PPP protocol, then the IP packet.
//!
//! [`session_ip`] finds the IP packet in one, so that a capture on `eth0.2`
//! sees the knocks and SPA packets carried in the PPPoE session to
//! `pppoe-wan`. Pure; anything else is `None` (the caller then hands the
//! frame on as it is, and [`super::observe`] rejects and counts it).
//!
//! [RFC 2516]: https://www.rfc-editor.org/rfc/rfc2516

/// EtherType of PPPoE session frames (`ETH_P_PPP_SES`).
pub const ETH_P_PPP_SES: u16 = 0x8864;
/// Version 1, type 1 (the only ones defined).
const VERSION_TYPE: u8 = 0x11;
/// Code of session data.
const SESSION_DATA: u8 = 0x00;
/// PPP protocol numbers of IPv4 and IPv6.
const PPP_IP: u16 = 0x0021;
const PPP_IPV6: u16 = 0x0057;

/// The IPv4 or IPv6 packet in PPPoE session frame `frame`: after the PPPoE
/// header and the PPP protocol, as long as the header's length field says
/// (the rest is Ethernet padding). `None` when the frame is not PPPoE
/// session data carrying IP, or its length field claims more than is there.
pub fn session_ip(frame: &[u8]) -> Option<&[u8]> {
    let header = frame.get(..8)?;
    if header[0] != VERSION_TYPE || header[1] != SESSION_DATA {
        return None;
    }
    // The length counts the PPP protocol field and the payload.
    let len = usize::from(u16::from_be_bytes([header[4], header[5]]));
    let protocol = u16::from_be_bytes([header[6], header[7]]);
    if protocol != PPP_IP && protocol != PPP_IPV6 {
        return None;
    }
    frame
        .get(8..6usize.checked_add(len)?)
        .filter(|ip| !ip.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::testdata::*;
    use crate::wire::{observe, Checksums};

    fn frame(ip: &[u8], ppp: u16) -> Vec<u8> {
        let mut f = vec![0x11, 0x00, 0xbe, 0xef];
        f.extend_from_slice(&((ip.len() + 2) as u16).to_be_bytes());
        f.extend_from_slice(&ppp.to_be_bytes());
        f.extend_from_slice(ip);
        f
    }

    #[test]
    fn finds_the_ip_packet_and_observe_reads_it() {
        for (ip, ppp) in [(&V4_UDP[..], PPP_IP), (&V6_TCP_SYN, PPP_IPV6)] {
            let f = frame(ip, ppp);
            assert_eq!(session_ip(&f), Some(ip));
            let direct = observe(ip, Checksums::Verify).unwrap();
            let inside = observe(session_ip(&f).unwrap(), Checksums::Verify).unwrap();
            assert_eq!(inside, direct);
            // Ethernet pads short frames: the length field cuts it off.
            let mut padded = f.clone();
            padded.resize(f.len() + 10, 0);
            assert_eq!(session_ip(&padded), Some(ip));
        }
    }

    #[test]
    fn anything_else_is_none() {
        let good = frame(&V4_UDP, PPP_IP);
        let mut padt = good.clone();
        padt[1] = 0xa7;
        let mut version = good.clone();
        version[0] = 0x12;
        let mut lcp = good.clone();
        lcp[6..8].copy_from_slice(&0xc021u16.to_be_bytes());
        let mut too_long = good.clone();
        too_long[5] += 1;
        let mut empty = good[..8].to_vec();
        empty[4..6].copy_from_slice(&2u16.to_be_bytes());
        let mut short_len = good.clone();
        short_len[4..6].copy_from_slice(&1u16.to_be_bytes());
        for f in [padt, version, lcp, too_long, empty, short_len] {
            assert_eq!(session_ip(&f), None, "{f:02x?}");
        }
        for len in 0..good.len() {
            assert_eq!(session_ip(&good[..len]), None, "cut to {len}");
        }
    }
}
