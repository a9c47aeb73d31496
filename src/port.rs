//! Transport protocols and `proto:port` specifications (`tcp:22`, `udp:8000`).
//!
//! Owns the one textual form of a port used everywhere: config files, the
//! command line and log lines. No I/O.

use core::fmt;
use core::str::FromStr;

/// A transport protocol that postern can knock with or guard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum L4Proto {
    /// TCP (IP protocol 6).
    Tcp,
    /// UDP (IP protocol 17).
    Udp,
}

impl L4Proto {
    /// The IP protocol number (`6` or `17`).
    pub const fn number(self) -> u8 {
        match self {
            L4Proto::Tcp => 6,
            L4Proto::Udp => 17,
        }
    }

    /// The protocol for an IP protocol number, if postern handles it.
    pub const fn from_number(n: u8) -> Option<L4Proto> {
        match n {
            6 => Some(L4Proto::Tcp),
            17 => Some(L4Proto::Udp),
            _ => None,
        }
    }

    /// Lower-case name: `tcp` or `udp`.
    pub const fn name(self) -> &'static str {
        match self {
            L4Proto::Tcp => "tcp",
            L4Proto::Udp => "udp",
        }
    }
}

impl fmt::Display for L4Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A protocol and port, written `tcp:22` or `udp:8000`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortSpec {
    /// Transport protocol.
    pub proto: L4Proto,
    /// Port number, never 0.
    pub port: u16,
}

impl PortSpec {
    /// A TCP port.
    pub const fn tcp(port: u16) -> PortSpec {
        PortSpec {
            proto: L4Proto::Tcp,
            port,
        }
    }

    /// A UDP port.
    pub const fn udp(port: u16) -> PortSpec {
        PortSpec {
            proto: L4Proto::Udp,
            port,
        }
    }
}

impl fmt::Display for PortSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.proto, self.port)
    }
}

/// A range of ports of one protocol, `first..=last` (a single port when equal).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortRange {
    /// Transport protocol.
    pub proto: L4Proto,
    /// First port.
    pub first: u16,
    /// Last port (at least `first`).
    pub last: u16,
}

impl PortRange {
    /// The range holding only `p`.
    pub const fn single(p: PortSpec) -> PortRange {
        PortRange {
            proto: p.proto,
            first: p.port,
            last: p.port,
        }
    }

    /// True when `p` is in the range.
    pub fn contains(&self, p: PortSpec) -> bool {
        p.proto == self.proto && (self.first..=self.last).contains(&p.port)
    }

    /// True when the two ranges share a port.
    pub fn overlaps(&self, other: &PortRange) -> bool {
        self.proto == other.proto && self.first <= other.last && other.first <= self.last
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}:{}", self.proto, self.first)
        } else {
            write!(f, "{}:{}-{}", self.proto, self.first, self.last)
        }
    }
}

/// Why a `proto:port` text was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortSpecError {
    /// The text has no `:` between protocol and port.
    MissingColon,
    /// The protocol is neither `tcp` nor `udp`.
    UnknownProtocol(String),
    /// The port is not a number from 1 to 65535.
    BadPort(String),
}

impl fmt::Display for PortSpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortSpecError::MissingColon => {
                f.write_str("expected PROTO:PORT, e.g. tcp:22 or udp:8000")
            }
            PortSpecError::UnknownProtocol(p) => {
                write!(f, "unknown protocol '{p}' (expected tcp or udp)")
            }
            PortSpecError::BadPort(p) => write!(f, "bad port '{p}' (expected 1-65535)"),
        }
    }
}

impl std::error::Error for PortSpecError {}

impl FromStr for PortSpec {
    type Err = PortSpecError;

    /// Parses `tcp:22`, `udp:8000` (protocol case-insensitive).
    fn from_str(s: &str) -> Result<PortSpec, PortSpecError> {
        let (proto, port) = s.split_once(':').ok_or(PortSpecError::MissingColon)?;
        let proto = match proto.to_ascii_lowercase().as_str() {
            "tcp" => L4Proto::Tcp,
            "udp" => L4Proto::Udp,
            _ => return Err(PortSpecError::UnknownProtocol(proto.to_string())),
        };
        let port = parse_port(port).ok_or_else(|| PortSpecError::BadPort(port.to_string()))?;
        Ok(PortSpec { proto, port })
    }
}

/// Parses a decimal port from 1 to 65535 (no sign, no spaces).
pub fn parse_port(s: &str) -> Option<u16> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    match s.parse::<u16>() {
        Ok(0) | Err(_) => None,
        Ok(p) => Some(p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let p: PortSpec = "tcp:22".parse().unwrap();
        assert_eq!(p, PortSpec::tcp(22));
        assert_eq!(p.to_string(), "tcp:22");
        assert_eq!("UDP:8000".parse::<PortSpec>().unwrap(), PortSpec::udp(8000));
    }

    #[test]
    fn refuses_bad_text() {
        assert_eq!("22".parse::<PortSpec>(), Err(PortSpecError::MissingColon));
        assert!(matches!(
            "icmp:1".parse::<PortSpec>(),
            Err(PortSpecError::UnknownProtocol(_))
        ));
        for bad in ["tcp:0", "tcp:65536", "tcp:", "tcp:+22", "tcp: 22", "tcp:2a"] {
            assert!(
                matches!(bad.parse::<PortSpec>(), Err(PortSpecError::BadPort(_))),
                "{bad}"
            );
        }
    }
}
