//! The items a peer datagram carries, and their byte form (inside the seal).
//!
//! Every item is a tag byte and fixed fields: addresses as a family byte
//! (4 or 6) and 4 or 16 bytes, ports as protocol number and big-endian u16,
//! times as **remaining** milliseconds (u32; the routers' monotonic clocks
//! are unrelated), names as a length byte and at most [`NAME_MAX`] bytes of
//! UTF-8. A replay-cache entry carries the SPA packet's own timestamp (unix
//! seconds, a property of the packet). Decoding checks every length and
//! value and never allocates: a malformed item ends the datagram.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use core::time::Duration;

use crate::cidr::Cidr;
use crate::port::{L4Proto, PortSpec};
use crate::spa::seal::NONCE_LEN;
use crate::spa::ReplayEntry;

/// Longest name carried (client, sequence, forward); longer origins are cut.
pub const NAME_MAX: usize = 32;

/// A name as carried in an item.
pub type Name = heapless::String<NAME_MAX>;

/// One state change (or request) sent to a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// `addr` may open new connections to `port` for `remaining`.
    Grant {
        /// The address allowed in.
        addr: IpAddr,
        /// The port.
        port: PortSpec,
        /// Time left on the sender's grant.
        remaining: Duration,
        /// Who asked (sequence or client name), for status and logs.
        origin: Name,
    },
    /// `addr`'s grant on `port` ends now.
    Close {
        /// The address.
        addr: IpAddr,
        /// The port.
        port: PortSpec,
    },
    /// `addr` may pass the forward named `forward` for `remaining`.
    Forward {
        /// The address allowed through.
        addr: IpAddr,
        /// The forward's section name.
        forward: Name,
        /// The client that asked.
        client: Name,
        /// Time left on the sender's forward grant.
        remaining: Duration,
    },
    /// `net` is banned for `remaining`.
    Ban {
        /// The banned network.
        net: Cidr,
        /// Time left on the sender's ban.
        remaining: Duration,
    },
    /// The ban of `net` was lifted.
    Unban {
        /// The network.
        net: Cidr,
    },
    /// An SPA packet was recorded against replay: refuse it here too.
    Replay {
        /// The client whose key authenticated it, if known.
        client: Option<Name>,
        /// The packet's replay id and timestamp.
        entry: ReplayEntry,
    },
    /// The sender (re)started or became master: send it the live state.
    ResyncRequest,
    /// Nothing changed; the sender is alive (marks the peer reachable).
    Keepalive,
}

const GRANT: u8 = 1;
const CLOSE: u8 = 2;
const FORWARD: u8 = 3;
const BAN: u8 = 4;
const UNBAN: u8 = 5;
const REPLAY: u8 = 6;
const RESYNC_REQUEST: u8 = 7;
const KEEPALIVE: u8 = 8;

/// Longest encoded item (a forward from an IPv6 address with two full names).
pub const MAX_ITEM_LEN: usize = 1 + 17 + 2 * (1 + NAME_MAX) + 4;

static_assertions::const_assert!(MAX_ITEM_LEN >= 1 + 2 + NAME_MAX + NONCE_LEN + 8);
static_assertions::const_assert!(MAX_ITEM_LEN >= 1 + 17 + 3 + 4 + 1 + NAME_MAX);

/// Remaining time in wire form (milliseconds, saturating).
fn millis(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

/// Appends bytes to a fixed buffer; false (nothing written) when they do not fit.
struct Writer<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) {
        self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }

    fn addr(&mut self, a: IpAddr) {
        match a {
            IpAddr::V4(v4) => {
                self.put(&[4]);
                self.put(&v4.octets());
            }
            IpAddr::V6(v6) => {
                self.put(&[6]);
                self.put(&v6.octets());
            }
        }
    }

    fn port(&mut self, p: PortSpec) {
        self.put(&[p.proto.number()]);
        self.put(&p.port.to_be_bytes());
    }

    fn name(&mut self, n: &str) {
        self.put(&[n.len() as u8]);
        self.put(n.as_bytes());
    }
}

impl Item {
    /// Writes the item at the start of `out`; its length, or `None` when
    /// `out` is too short (nothing is meaningful in `out` then).
    pub fn encode(&self, out: &mut [u8]) -> Option<usize> {
        if out.len() < self.encoded_len() {
            return None;
        }
        let mut w = Writer { buf: out, len: 0 };
        match self {
            Item::Grant {
                addr,
                port,
                remaining,
                origin,
            } => {
                w.put(&[GRANT]);
                w.addr(*addr);
                w.port(*port);
                w.put(&millis(*remaining).to_be_bytes());
                w.name(origin);
            }
            Item::Close { addr, port } => {
                w.put(&[CLOSE]);
                w.addr(*addr);
                w.port(*port);
            }
            Item::Forward {
                addr,
                forward,
                client,
                remaining,
            } => {
                w.put(&[FORWARD]);
                w.addr(*addr);
                w.name(forward);
                w.name(client);
                w.put(&millis(*remaining).to_be_bytes());
            }
            Item::Ban { net, remaining } => {
                w.put(&[BAN]);
                w.addr(net.addr());
                w.put(&[net.len()]);
                w.put(&millis(*remaining).to_be_bytes());
            }
            Item::Unban { net } => {
                w.put(&[UNBAN]);
                w.addr(net.addr());
                w.put(&[net.len()]);
            }
            Item::Replay { client, entry } => {
                w.put(&[REPLAY]);
                match client {
                    Some(c) => {
                        w.put(&[1]);
                        w.name(c);
                    }
                    None => w.put(&[0]),
                }
                w.put(&entry.nonce);
                w.put(&entry.timestamp.to_be_bytes());
            }
            Item::ResyncRequest => w.put(&[RESYNC_REQUEST]),
            Item::Keepalive => w.put(&[KEEPALIVE]),
        }
        Some(w.len)
    }

    /// Bytes [`Item::encode`] writes.
    pub fn encoded_len(&self) -> usize {
        let addr = |a: &IpAddr| if a.is_ipv4() { 5 } else { 17 };
        match self {
            Item::Grant {
                addr: a, origin, ..
            } => 1 + addr(a) + 3 + 4 + 1 + origin.len(),
            Item::Close { addr: a, .. } => 1 + addr(a) + 3,
            Item::Forward {
                addr: a,
                forward,
                client,
                ..
            } => 1 + addr(a) + 2 + forward.len() + client.len() + 4,
            Item::Ban { net, .. } => 1 + addr(&net.addr()) + 1 + 4,
            Item::Unban { net } => 1 + addr(&net.addr()) + 1,
            Item::Replay { client, .. } => {
                2 + client.as_ref().map_or(0, |c| 1 + c.len()) + NONCE_LEN + 8
            }
            Item::ResyncRequest | Item::Keepalive => 1,
        }
    }
}

/// Reads items from a decrypted payload; stops (with [`Items::malformed`]
/// set) at the first item that does not parse.
pub struct Items<'a> {
    rest: &'a [u8],
    malformed: bool,
}

impl<'a> Items<'a> {
    /// The items of `payload`.
    pub fn new(payload: &'a [u8]) -> Items<'a> {
        Items {
            rest: payload,
            malformed: false,
        }
    }

    /// True when reading stopped at a malformed item.
    pub fn malformed(&self) -> bool {
        self.malformed
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.rest.len() < n {
            return None;
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Some(head)
    }

    fn byte(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn addr(&mut self) -> Option<IpAddr> {
        match self.byte()? {
            4 => {
                let b: [u8; 4] = self.take(4)?.try_into().ok()?;
                Some(IpAddr::V4(Ipv4Addr::from(b)))
            }
            6 => {
                let b: [u8; 16] = self.take(16)?.try_into().ok()?;
                Some(IpAddr::V6(Ipv6Addr::from(b)))
            }
            _ => None,
        }
    }

    fn port(&mut self) -> Option<PortSpec> {
        let proto = L4Proto::from_number(self.byte()?)?;
        let b = self.take(2)?;
        Some(PortSpec {
            proto,
            port: u16::from_be_bytes([b[0], b[1]]),
        })
    }

    fn name(&mut self) -> Option<Name> {
        let n = usize::from(self.byte()?);
        if n > NAME_MAX {
            return None;
        }
        let s = core::str::from_utf8(self.take(n)?).ok()?;
        let mut name = Name::new();
        name.push_str(s).ok()?;
        Some(name)
    }

    fn cidr(&mut self) -> Option<Cidr> {
        let addr = self.addr()?;
        // Refuses host bits past the length: one network, one form.
        Cidr::new(addr, self.byte()?)
    }

    fn remaining(&mut self) -> Option<Duration> {
        self.u32().map(|ms| Duration::from_millis(u64::from(ms)))
    }

    fn item(&mut self) -> Option<Item> {
        Some(match self.byte()? {
            GRANT => Item::Grant {
                addr: self.addr()?,
                port: self.port()?,
                remaining: self.remaining()?,
                origin: self.name()?,
            },
            CLOSE => Item::Close {
                addr: self.addr()?,
                port: self.port()?,
            },
            FORWARD => Item::Forward {
                addr: self.addr()?,
                forward: self.name()?,
                client: self.name()?,
                remaining: self.remaining()?,
            },
            BAN => Item::Ban {
                net: self.cidr()?,
                remaining: self.remaining()?,
            },
            UNBAN => Item::Unban { net: self.cidr()? },
            REPLAY => {
                let client = match self.byte()? {
                    0 => None,
                    1 => Some(self.name()?),
                    _ => return None,
                };
                let nonce: [u8; NONCE_LEN] = self.take(NONCE_LEN)?.try_into().ok()?;
                let b: [u8; 8] = self.take(8)?.try_into().ok()?;
                Item::Replay {
                    client,
                    entry: ReplayEntry {
                        nonce,
                        timestamp: u64::from_be_bytes(b),
                    },
                }
            }
            RESYNC_REQUEST => Item::ResyncRequest,
            KEEPALIVE => Item::Keepalive,
            _ => return None,
        })
    }
}

impl Iterator for Items<'_> {
    type Item = Item;

    fn next(&mut self) -> Option<Item> {
        if self.rest.is_empty() || self.malformed {
            return None;
        }
        let item = self.item();
        if item.is_none() {
            self.malformed = true;
        }
        item
    }
}

/// `s` cut to at most [`NAME_MAX`] bytes (at a character boundary).
pub fn name(s: &str) -> Name {
    let mut end = s.len().min(NAME_MAX);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let mut n = Name::new();
    // Cannot fail: at most NAME_MAX bytes.
    let _ = n.push_str(&s[..end]);
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn samples() -> Vec<Item> {
        let tcp = |port| PortSpec {
            proto: L4Proto::Tcp,
            port,
        };
        vec![
            Item::Grant {
                addr: "192.0.2.7".parse().unwrap(),
                port: tcp(22),
                remaining: Duration::from_millis(29_500),
                origin: name("alice"),
            },
            Item::Close {
                addr: "2001:db8::7".parse().unwrap(),
                port: PortSpec {
                    proto: L4Proto::Udp,
                    port: 51820,
                },
            },
            Item::Forward {
                addr: "198.51.100.1".parse().unwrap(),
                forward: name("nas_ssh"),
                client: name("bob"),
                remaining: Duration::from_secs(60),
            },
            Item::Ban {
                net: Cidr::new("2001:db8:1:2::".parse().unwrap(), 64).unwrap(),
                remaining: Duration::from_secs(3600),
            },
            Item::Unban {
                net: Cidr::host("203.0.113.9".parse().unwrap()),
            },
            Item::Replay {
                client: Some(name("alice")),
                entry: ReplayEntry {
                    nonce: [7; NONCE_LEN],
                    timestamp: 1_790_000_000,
                },
            },
            Item::Replay {
                client: None,
                entry: ReplayEntry {
                    nonce: [9; NONCE_LEN],
                    timestamp: 1,
                },
            },
            Item::ResyncRequest,
            Item::Keepalive,
        ]
    }

    #[test]
    fn every_item_round_trips_and_fits() {
        let items = samples();
        let mut buf = [0u8; 1024];
        let mut len = 0;
        for item in &items {
            assert!(item.encoded_len() <= MAX_ITEM_LEN, "{item:?}");
            len += item.encode(&mut buf[len..]).unwrap();
        }
        let mut read = Items::new(&buf[..len]);
        let back: Vec<Item> = read.by_ref().collect();
        assert_eq!(back, items);
        assert!(!read.malformed());
    }

    #[test]
    fn every_truncation_is_refused_without_panic() {
        for item in samples() {
            let mut buf = [0u8; MAX_ITEM_LEN];
            let len = item.encode(&mut buf).unwrap();
            for cut in 1..len {
                let mut read = Items::new(&buf[..cut]);
                assert_eq!(read.next(), None, "{item:?} cut at {cut}");
                assert!(read.malformed());
            }
        }
    }

    #[test]
    fn encode_refuses_a_short_buffer() {
        let item = &samples()[0];
        let mut buf = [0u8; 8];
        assert_eq!(item.encode(&mut buf), None);
    }

    #[test]
    fn bad_values_are_malformed() {
        // Unknown tag, bad family, bad protocol, host bits in a network, a
        // name longer than NAME_MAX, a name that is not UTF-8.
        let cases: [&[u8]; 6] = [
            &[99],
            &[CLOSE, 5, 1, 2, 3, 4, 6, 0, 22],
            &[CLOSE, 4, 1, 2, 3, 4, 1, 0, 22],
            &[UNBAN, 4, 10, 0, 0, 1, 8],
            &[GRANT, 4, 1, 2, 3, 4, 6, 0, 22, 0, 0, 0, 1, 33],
            &[GRANT, 4, 1, 2, 3, 4, 6, 0, 22, 0, 0, 0, 1, 1, 0xff],
        ];
        for c in cases {
            let mut read = Items::new(c);
            assert_eq!(read.next(), None, "{c:?}");
            assert!(read.malformed());
        }
    }

    #[test]
    fn long_names_are_cut_at_a_character_boundary() {
        let n = name(&"é".repeat(40));
        assert!(n.len() <= NAME_MAX);
        assert_eq!(n.len() % 2, 0);
    }

    #[test]
    fn remaining_time_saturates() {
        let item = Item::Ban {
            net: Cidr::host("192.0.2.1".parse().unwrap()),
            remaining: Duration::from_secs(u64::MAX / 4),
        };
        let mut buf = [0u8; MAX_ITEM_LEN];
        let len = item.encode(&mut buf).unwrap();
        match Items::new(&buf[..len]).next() {
            Some(Item::Ban { remaining, .. }) => {
                assert_eq!(remaining, Duration::from_millis(u64::from(u32::MAX)))
            }
            other => panic!("{other:?}"),
        }
    }
}
