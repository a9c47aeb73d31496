//! IP networks written `ADDR/LEN` (`192.0.2.0/24`, `2001:db8::/32`) or a bare address.
//!
//! Owns the one text form of a network used by `list source` in client sections,
//! and the membership test. No I/O.

use core::fmt;
use core::net::IpAddr;
use core::str::FromStr;

/// An IPv4 or IPv6 network: an address whose bits past `len` are zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    addr: IpAddr,
    len: u8,
}

impl Cidr {
    /// The network `addr/len`; `None` if `len` exceeds the family's width or
    /// `addr` has host bits set past `len`.
    pub fn new(addr: IpAddr, len: u8) -> Option<Cidr> {
        if len > width(addr) || bits(addr) & !mask(addr, len) != 0 {
            return None;
        }
        Some(Cidr { addr, len })
    }

    /// The network address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length.
    pub fn len(&self) -> u8 {
        self.len
    }

    /// True for `/0` (every address of the family).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The single address `ip` as a network (`/32` or `/128`; IPv4-mapped
    /// IPv6 addresses are taken as IPv4).
    pub fn host(ip: IpAddr) -> Cidr {
        let addr = ip.to_canonical();
        Cidr {
            addr,
            len: width(addr),
        }
    }

    /// The network of the first `len` bits of `ip` (clamped to the family's
    /// width): `network_of(2001:db8:1:2::5, 64)` is `2001:db8:1:2::/64`.
    /// IPv4-mapped IPv6 addresses are taken as IPv4.
    pub fn network_of(ip: IpAddr, len: u8) -> Cidr {
        let ip = ip.to_canonical();
        let len = len.min(width(ip));
        let m = bits(ip) & mask(ip, len);
        let addr = match ip {
            IpAddr::V4(_) => IpAddr::V4((m as u32).into()),
            IpAddr::V6(_) => IpAddr::V6(m.into()),
        };
        Cidr { addr, len }
    }

    /// True for a single address (`/32` or `/128`).
    pub fn is_host(&self) -> bool {
        self.len == width(self.addr)
    }

    /// Whether `ip` lies in this network (never across families).
    pub fn contains(&self, ip: IpAddr) -> bool {
        width(ip) == width(self.addr) && bits(ip) & mask(ip, self.len) == bits(self.addr)
    }
}

fn width(ip: IpAddr) -> u8 {
    match ip {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

/// The address as a 128-bit number (IPv4 in the low 32 bits).
fn bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

fn mask(ip: IpAddr, len: u8) -> u128 {
    let w = u32::from(width(ip));
    let all = if w == 128 {
        u128::MAX
    } else {
        (1u128 << w) - 1
    };
    let host = all.checked_shr(u32::from(len)).unwrap_or(0);
    all & !host
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// Why a network text was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CidrError {
    /// The address part is not an IPv4 or IPv6 address.
    BadAddress,
    /// The length is not a number within the family's width.
    BadLength,
    /// Bits are set past the prefix (e.g. `192.0.2.1/24`): say `192.0.2.0/24`.
    HostBits(Cidr),
}

impl fmt::Display for CidrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CidrError::BadAddress => f.write_str("not an IP address or network (ADDR/LEN)"),
            CidrError::BadLength => {
                f.write_str("bad prefix length (0-32 for IPv4, 0-128 for IPv6)")
            }
            CidrError::HostBits(n) => write!(f, "host bits set past the prefix; did you mean {n}?"),
        }
    }
}

impl std::error::Error for CidrError {}

impl FromStr for Cidr {
    type Err = CidrError;

    /// Parses `ADDR/LEN` or a bare `ADDR` (a /32 or /128).
    fn from_str(s: &str) -> Result<Cidr, CidrError> {
        let (a, l) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = a.parse().map_err(|_| CidrError::BadAddress)?;
        let len = match l {
            None => width(addr),
            Some(l) if !l.is_empty() && l.len() <= 3 && l.bytes().all(|b| b.is_ascii_digit()) => {
                l.parse::<u8>().map_err(|_| CidrError::BadLength)?
            }
            Some(_) => return Err(CidrError::BadLength),
        };
        if len > width(addr) {
            return Err(CidrError::BadLength);
        }
        Cidr::new(addr, len).ok_or_else(|| {
            let net = match addr {
                IpAddr::V4(_) => IpAddr::V4((bits(addr) as u32 & mask(addr, len) as u32).into()),
                IpAddr::V6(_) => IpAddr::V6((bits(addr) & mask(addr, len)).into()),
            };
            CidrError::HostBits(Cidr { addr: net, len })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_matches() {
        let n = c("192.0.2.0/24");
        assert!(n.contains(ip("192.0.2.255")));
        assert!(!n.contains(ip("192.0.3.0")));
        assert!(!n.contains(ip("::ffff:192.0.2.1")), "never across families");
        assert_eq!(n.to_string(), "192.0.2.0/24");
        assert!(c("0.0.0.0/0").contains(ip("203.0.113.7")));
        assert!(c("0.0.0.0/0").is_empty());
        assert!(c("::/0").contains(ip("2001:db8::1")));
        assert!(!c("::/0").contains(ip("10.0.0.1")));
        let v6 = c("2001:db8:a::/48");
        assert!(v6.contains(ip("2001:db8:a:ffff::1")));
        assert!(!v6.contains(ip("2001:db8:b::1")));
        assert_eq!(c("10.1.2.3"), c("10.1.2.3/32"));
        assert!(c("10.1.2.3").contains(ip("10.1.2.3")));
        assert!(!c("10.1.2.3").contains(ip("10.1.2.4")));
        assert_eq!(c("2001:db8::1").len(), 128);
    }

    #[test]
    fn hosts_and_networks_of_addresses() {
        assert_eq!(Cidr::host(ip("192.0.2.7")), c("192.0.2.7/32"));
        assert_eq!(Cidr::host(ip("::ffff:192.0.2.7")), c("192.0.2.7/32"));
        assert!(Cidr::host(ip("2001:db8::1")).is_host());
        assert_eq!(
            Cidr::network_of(ip("2001:db8:1:2:3:4:5:6"), 64),
            c("2001:db8:1:2::/64")
        );
        assert_eq!(Cidr::network_of(ip("192.0.2.7"), 24), c("192.0.2.0/24"));
        assert_eq!(Cidr::network_of(ip("192.0.2.7"), 64), c("192.0.2.7/32"));
        assert_eq!(Cidr::network_of(ip("2001:db8::1"), 0), c("::/0"));
        assert!(!Cidr::network_of(ip("2001:db8::1"), 64).is_host());
    }

    #[test]
    fn refuses_bad_text() {
        assert_eq!("10.0.0.0/33".parse::<Cidr>(), Err(CidrError::BadLength));
        assert_eq!("::/129".parse::<Cidr>(), Err(CidrError::BadLength));
        assert_eq!("10.0.0.0/".parse::<Cidr>(), Err(CidrError::BadLength));
        assert_eq!("10.0.0.0/+8".parse::<Cidr>(), Err(CidrError::BadLength));
        assert_eq!("10.0.0.0/0008".parse::<Cidr>(), Err(CidrError::BadLength));
        assert_eq!("host/8".parse::<Cidr>(), Err(CidrError::BadAddress));
        let e = "192.0.2.1/24".parse::<Cidr>().unwrap_err();
        assert_eq!(e, CidrError::HostBits(c("192.0.2.0/24")));
        assert_eq!(
            e.to_string(),
            "host bits set past the prefix; did you mean 192.0.2.0/24?"
        );
        assert!(matches!(
            "2001:db8::1/64".parse::<Cidr>(),
            Err(CidrError::HostBits(_))
        ));
    }
}
