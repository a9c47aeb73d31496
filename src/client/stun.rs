//! A STUN client (RFC 8489, formerly 5389): one Binding request to learn the
//! address this machine's packets come from, as the outside sees it.
//!
//! `postern spa --resolve stun:HOST[:PORT]` seals that address into the SPA
//! packet (as `-a` would), so a packet stolen on the way and re-sent from
//! another address opens nothing for the thief (docs/spa-protocol.md,
//! "Address binding"). The message format is pure and tested
//! ([`binding_request`], [`parse_binding_response`], [`parse_server`]); only
//! [`query`] touches the network. Only the attributes a Binding success
//! response carries for a plain request are read: XOR-MAPPED-ADDRESS, or
//! MAPPED-ADDRESS from RFC 3489 servers; others are skipped.

use core::fmt;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use core::time::Duration;
use std::io;
use std::net::{ToSocketAddrs, UdpSocket};
use std::time::Instant;

/// The default STUN port.
pub const DEFAULT_PORT: u16 = 3478;
/// The magic cookie of every RFC 5389/8489 message.
pub const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];
/// Bytes in a transaction id.
pub const TXID_LEN: usize = 12;
/// Bytes in a message header.
pub const HEADER_LEN: usize = 20;

const BINDING_REQUEST: u16 = 0x0001;
const BINDING_SUCCESS: u16 = 0x0101;
const BINDING_ERROR: u16 = 0x0111;
const MAPPED_ADDRESS: u16 = 0x0001;
const XOR_MAPPED_ADDRESS: u16 = 0x0020;
const ERROR_CODE: u16 = 0x0009;

/// Why a datagram is not the Binding success response to our request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StunError {
    /// Shorter than a header, or the header's length disagrees with the datagram.
    Length,
    /// Not a STUN message (the top bits, the length's alignment or the magic cookie).
    NotStun,
    /// Another transaction (not the answer to our request).
    Transaction,
    /// A STUN message, but not a Binding success response (its type).
    Type(u16),
    /// A Binding error response (its ERROR-CODE, 0 if none).
    ErrorResponse(u16),
    /// An attribute runs past the end of the message.
    Truncated,
    /// A mapped address attribute with a bad family or length.
    BadAddress,
    /// No mapped address attribute.
    NoAddress,
}

impl fmt::Display for StunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StunError::Length => f.write_str("bad length"),
            StunError::NotStun => f.write_str("not a STUN message"),
            StunError::Transaction => f.write_str("another transaction's answer"),
            StunError::Type(t) => write!(f, "message type {t:#06x}, not a Binding success"),
            StunError::ErrorResponse(code) => write!(f, "the server answered error {code}"),
            StunError::Truncated => f.write_str("an attribute runs past the message"),
            StunError::BadAddress => f.write_str("a mapped address with a bad family or length"),
            StunError::NoAddress => f.write_str("no mapped address in the answer"),
        }
    }
}

/// A Binding request with no attributes.
pub fn binding_request(txid: &[u8; TXID_LEN]) -> [u8; HEADER_LEN] {
    let mut m = [0u8; HEADER_LEN];
    m[..2].copy_from_slice(&BINDING_REQUEST.to_be_bytes());
    // Length 0: no attributes.
    m[4..8].copy_from_slice(&MAGIC_COOKIE);
    m[8..].copy_from_slice(txid);
    m
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// The mapped address in a Binding success response to the request with `txid`.
pub fn parse_binding_response(msg: &[u8], txid: &[u8; TXID_LEN]) -> Result<SocketAddr, StunError> {
    if msg.len() < HEADER_LEN {
        return Err(StunError::Length);
    }
    let kind = be16(msg, 0);
    let len = usize::from(be16(msg, 2));
    if kind & 0xc000 != 0 || len % 4 != 0 || msg[4..8] != MAGIC_COOKIE {
        return Err(StunError::NotStun);
    }
    if HEADER_LEN + len != msg.len() {
        return Err(StunError::Length);
    }
    if msg[8..HEADER_LEN] != txid[..] {
        return Err(StunError::Transaction);
    }
    let attrs = &msg[HEADER_LEN..];
    if kind == BINDING_ERROR {
        let code = find(attrs, ERROR_CODE)?
            .filter(|v| v.len() >= 4)
            .map_or(0, |v| u16::from(v[2] & 0x07) * 100 + u16::from(v[3]));
        return Err(StunError::ErrorResponse(code));
    }
    if kind != BINDING_SUCCESS {
        return Err(StunError::Type(kind));
    }
    if let Some(v) = find(attrs, XOR_MAPPED_ADDRESS)? {
        return address(v, Some(txid));
    }
    match find(attrs, MAPPED_ADDRESS)? {
        Some(v) => address(v, None),
        None => Err(StunError::NoAddress),
    }
}

/// The value of the first attribute of type `want`; walks (and checks) all.
fn find(mut attrs: &[u8], want: u16) -> Result<Option<&[u8]>, StunError> {
    let mut found = None;
    while !attrs.is_empty() {
        if attrs.len() < 4 {
            return Err(StunError::Truncated);
        }
        let (kind, len) = (be16(attrs, 0), usize::from(be16(attrs, 2)));
        let padded = (len + 3) & !3;
        let value = attrs.get(4..4 + len).ok_or(StunError::Truncated)?;
        if kind == want && found.is_none() {
            found = Some(value);
        }
        attrs = attrs.get(4 + padded..).ok_or(StunError::Truncated)?;
    }
    Ok(found)
}

/// A (XOR-)MAPPED-ADDRESS value: reserved, family, port, address; XORed
/// with the cookie (and the transaction id for IPv6) when `txid` is given.
fn address(v: &[u8], txid: Option<&[u8; TXID_LEN]>) -> Result<SocketAddr, StunError> {
    let mut mask = [0u8; 16];
    if let Some(t) = txid {
        mask[..4].copy_from_slice(&MAGIC_COOKIE);
        mask[4..].copy_from_slice(t);
    }
    let port =
        be16(v.get(..4).ok_or(StunError::BadAddress)?, 2) ^ u16::from_be_bytes([mask[0], mask[1]]);
    let ip = match (v[1], v.len()) {
        (0x01, 8) => {
            let mut a = [0u8; 4];
            for (i, b) in a.iter_mut().enumerate() {
                *b = v[4 + i] ^ mask[i];
            }
            IpAddr::V4(Ipv4Addr::from(a))
        }
        (0x02, 20) => {
            let mut a = [0u8; 16];
            for (i, b) in a.iter_mut().enumerate() {
                *b = v[4 + i] ^ mask[i];
            }
            IpAddr::V6(Ipv6Addr::from(a))
        }
        _ => return Err(StunError::BadAddress),
    };
    Ok(SocketAddr::new(ip, port))
}

/// Parses `stun:HOST[:PORT]` (RFC 7064; an IPv6 address in brackets) into
/// host and port.
pub fn parse_server(uri: &str) -> Result<(String, u16), String> {
    let rest = uri
        .strip_prefix("stun:")
        .ok_or_else(|| format!("'{uri}' is not stun:HOST[:PORT]"))?;
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("'{uri}': no ']' after the IPv6 address"))?;
        (h, after.strip_prefix(':'))
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h, Some(p)),
            _ => (rest, None),
        }
    };
    if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c == '/') {
        return Err(format!("'{uri}': no host"));
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => crate::port::parse_port(p).ok_or_else(|| format!("'{uri}': bad port '{p}'"))?,
    };
    Ok((host.to_string(), port))
}

/// Asks the STUN server `uri` (`stun:HOST[:PORT]`) for this machine's
/// address as the outside sees it, over the address family of `family`
/// (the router's address: the answer must be comparable with the source the
/// router will see). Retransmits after 0.5, 1 and 2 s; gives up after 4 s.
pub fn query(uri: &str, family: IpAddr) -> io::Result<IpAddr> {
    let invalid = |m: String| io::Error::new(io::ErrorKind::InvalidInput, m);
    let (host, port) = parse_server(uri).map_err(invalid)?;
    let server = (host.as_str(), port)
        .to_socket_addrs()?
        .find(|a| a.is_ipv4() == family.is_ipv4())
        .ok_or_else(|| {
            let fam = if family.is_ipv4() { "IPv4" } else { "IPv6" };
            invalid(format!(
                "STUN server '{host}' has no {fam} address (the router's is {fam})"
            ))
        })?;
    let bind: SocketAddr = match server {
        SocketAddr::V4(_) => SocketAddr::from(([0, 0, 0, 0], 0)),
        SocketAddr::V6(_) => SocketAddr::from(([0u16; 8], 0)),
    };
    let sock = UdpSocket::bind(bind)?;
    let mut txid = [0u8; TXID_LEN];
    crate::random::fill(&mut txid)?;
    let request = binding_request(&txid);
    let mut last = None;
    let mut buf = [0u8; 576];
    for wait_ms in [500u64, 1000, 2500] {
        sock.send_to(&request, server)?;
        let until = Instant::now() + Duration::from_millis(wait_ms);
        while let Some(left) = until
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
        {
            sock.set_read_timeout(Some(left))?;
            match sock.recv_from(&mut buf) {
                Ok((n, from)) if from == server => match parse_binding_response(&buf[..n], &txid) {
                    Ok(a) => return Ok(a.ip()),
                    Err(StunError::ErrorResponse(code)) => {
                        return Err(io::Error::other(format!(
                            "STUN server {server}: error {code}"
                        )))
                    }
                    Err(e) => last = Some(e),
                },
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    break
                }
                Err(e) => return Err(e),
            }
        }
    }
    Err(io::Error::new(
        io::ErrorKind::TimedOut,
        match last {
            Some(e) => format!("STUN server {server}: {e}"),
            None => format!("STUN server {server}: no answer in 4 s"),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 5769 section 2.2, "Sample IPv4 Response" (SOFTWARE,
    /// XOR-MAPPED-ADDRESS 192.0.2.1:32853, MESSAGE-INTEGRITY, FINGERPRINT).
    const RFC5769_V4: [u8; 80] = [
        0x01, 0x01, 0x00, 0x3c, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6,
        0x86, 0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74, 0x20, 0x76,
        0x65, 0x63, 0x74, 0x6f, 0x72, 0x20, 0x00, 0x20, 0x00, 0x08, 0x00, 0x01, 0xa1, 0x47, 0xe1,
        0x12, 0xa6, 0x43, 0x00, 0x08, 0x00, 0x14, 0x2b, 0x91, 0xf5, 0x99, 0xfd, 0x9e, 0x90, 0xc3,
        0x8c, 0x74, 0x89, 0xf9, 0x2a, 0xf9, 0xba, 0x53, 0xf0, 0x6b, 0xe7, 0xd7, 0x80, 0x28, 0x00,
        0x04, 0xc0, 0x7d, 0x4c, 0x96,
    ];
    /// RFC 5769 section 2.3, "Sample IPv6 Response" (XOR-MAPPED-ADDRESS
    /// [2001:db8:1234:5678:11:2233:4455:6677]:32853).
    const RFC5769_V6: [u8; 92] = [
        0x01, 0x01, 0x00, 0x48, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6,
        0x86, 0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74, 0x20, 0x76,
        0x65, 0x63, 0x74, 0x6f, 0x72, 0x20, 0x00, 0x20, 0x00, 0x14, 0x00, 0x02, 0xa1, 0x47, 0x01,
        0x13, 0xa9, 0xfa, 0xa5, 0xd3, 0xf1, 0x79, 0xbc, 0x25, 0xf4, 0xb5, 0xbe, 0xd2, 0xb9, 0xd9,
        0x00, 0x08, 0x00, 0x14, 0xa3, 0x82, 0x95, 0x4e, 0x4b, 0xe6, 0x7b, 0xf1, 0x17, 0x84, 0xc9,
        0x7c, 0x82, 0x92, 0xc2, 0x75, 0xbf, 0xe3, 0xed, 0x41, 0x80, 0x28, 0x00, 0x04, 0xc8, 0xfb,
        0x0b, 0x4c,
    ];
    const TXID: [u8; 12] = [
        0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae,
    ];

    #[test]
    fn rfc5769_sample_responses() {
        assert_eq!(
            parse_binding_response(&RFC5769_V4, &TXID),
            Ok("192.0.2.1:32853".parse().unwrap())
        );
        assert_eq!(
            parse_binding_response(&RFC5769_V6, &TXID),
            Ok("[2001:db8:1234:5678:11:2233:4455:6677]:32853"
                .parse()
                .unwrap())
        );
    }

    #[test]
    fn the_request() {
        let r = binding_request(&TXID);
        assert_eq!(r[..8], [0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42]);
        assert_eq!(r[8..], TXID);
    }

    #[test]
    fn bad_and_short_responses_are_refused() {
        let p = |m: &[u8]| parse_binding_response(m, &TXID);
        for n in [0, 1, 19] {
            assert_eq!(p(&RFC5769_V4[..n]), Err(StunError::Length), "{n} bytes");
        }
        assert_eq!(p(&RFC5769_V4[..79]), Err(StunError::Length), "cut short");
        let mut longer = RFC5769_V4.to_vec();
        longer.extend_from_slice(&[0; 4]);
        assert_eq!(p(&longer), Err(StunError::Length), "trailing bytes");
        let with = |at: usize, v: u8| {
            let mut m = RFC5769_V4;
            m[at] = v;
            p(&m)
        };
        assert_eq!(with(4, 0x22), Err(StunError::NotStun), "cookie");
        assert_eq!(with(0, 0x41), Err(StunError::NotStun), "top bits");
        assert_eq!(with(19, 0), Err(StunError::Transaction));
        assert_eq!(with(1, 0x11), Err(StunError::ErrorResponse(0)), "0x0111");
        assert_eq!(with(0, 0x00), Err(StunError::Type(0x0001)), "a request");
        // XOR-MAPPED-ADDRESS family 3, and a length that runs past the end.
        assert_eq!(with(41, 0x03), Err(StunError::BadAddress));
        assert_eq!(with(39, 0x40), Err(StunError::Truncated));
        // Only SOFTWARE: no address.
        let mut only = RFC5769_V4[..36].to_vec();
        only[3] = 16;
        assert_eq!(p(&only), Err(StunError::NoAddress));
        // An IPv6 family with an IPv4-sized value.
        let mut v6 = RFC5769_V6;
        v6[41] = 0x01;
        assert_eq!(p(&v6), Err(StunError::BadAddress));
    }

    #[test]
    fn plain_mapped_address_and_error_codes() {
        // A MAPPED-ADDRESS only answer (RFC 3489 servers): not XORed.
        let mut m = vec![0x01, 0x01, 0x00, 0x0c];
        m.extend_from_slice(&MAGIC_COOKIE);
        m.extend_from_slice(&TXID);
        m.extend_from_slice(&[
            0x00, 0x01, 0x00, 0x08, 0x00, 0x01, 0x0d, 0x96, 203, 0, 113, 7,
        ]);
        assert_eq!(
            parse_binding_response(&m, &TXID),
            Ok("203.0.113.7:3478".parse().unwrap())
        );
        // An error response with ERROR-CODE 400.
        let mut e = vec![0x01, 0x11, 0x00, 0x08];
        e.extend_from_slice(&MAGIC_COOKIE);
        e.extend_from_slice(&TXID);
        e.extend_from_slice(&[0x00, 0x09, 0x00, 0x04, 0x00, 0x00, 0x04, 0x00]);
        assert_eq!(
            parse_binding_response(&e, &TXID),
            Err(StunError::ErrorResponse(400))
        );
    }

    #[test]
    fn never_panics_on_prefixes_and_flips() {
        for msg in [&RFC5769_V4[..], &RFC5769_V6[..]] {
            for n in 0..=msg.len() {
                let _ = parse_binding_response(&msg[..n], &TXID);
            }
            for i in 0..msg.len() {
                for bit in 0..8 {
                    let mut m = msg.to_vec();
                    m[i] ^= 1 << bit;
                    let _ = parse_binding_response(&m, &TXID);
                }
            }
        }
    }

    #[test]
    fn server_uris() {
        assert_eq!(
            parse_server("stun:stun.example.org"),
            Ok(("stun.example.org".into(), 3478))
        );
        assert_eq!(
            parse_server("stun:192.0.2.1:19302"),
            Ok(("192.0.2.1".into(), 19302))
        );
        assert_eq!(
            parse_server("stun:[2001:db8::1]:5349"),
            Ok(("2001:db8::1".into(), 5349))
        );
        assert_eq!(
            parse_server("stun:[2001:db8::1]"),
            Ok(("2001:db8::1".into(), 3478))
        );
        assert!(parse_server("stun.example.org").is_err(), "scheme required");
        assert!(parse_server("stun:").is_err());
        assert!(parse_server("stun:host:0").is_err());
        assert!(parse_server("stun:host:http").is_err());
        assert!(parse_server("stun:[2001:db8::1").is_err());
    }

    /// A responder on loopback answering like a server would (written from
    /// RFC 8489 section 14.2, independently of the parser above).
    #[test]
    fn query_against_a_loopback_responder() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap();
        let t = std::thread::spawn(move || {
            let mut buf = [0u8; 100];
            // Drop the first request: the client retransmits.
            let _ = server.recv_from(&mut buf).unwrap();
            let (n, from) = server.recv_from(&mut buf).unwrap();
            assert_eq!(n, 20);
            let SocketAddr::V4(from) = from else {
                panic!("v4")
            };
            let mut resp = vec![0x01, 0x01, 0x00, 0x0c];
            resp.extend_from_slice(&buf[4..20]);
            let port = from.port() ^ 0x2112;
            let ip = u32::from(*from.ip()) ^ 0x2112_a442;
            resp.extend_from_slice(&[0x00, 0x20, 0x00, 0x08, 0x00, 0x01]);
            resp.extend_from_slice(&port.to_be_bytes());
            resp.extend_from_slice(&ip.to_be_bytes());
            server.send_to(&resp, from).unwrap();
        });
        let got = query(&format!("stun:{addr}"), "127.0.0.1".parse().unwrap()).unwrap();
        assert_eq!(got, "127.0.0.1".parse::<IpAddr>().unwrap());
        t.join().unwrap();
    }
}
