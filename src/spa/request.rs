//! The SPA request: the plaintext inside the sealed packet.
//!
//! smoltcp-style: [`Request`] is a checked view over a buffer (accessors read
//! the bytes in place, setters write them), [`RequestRepr`] is the parsed,
//! validated meaning with [`RequestRepr::parse`] and [`RequestRepr::emit`].
//! Layout (big-endian), documented with test vectors in `docs/spa-protocol.md`:
//!
//! ```text
//!  0      version       u8   = 2
//!  1      kind          u8   1 = open, 2 = close, 3 = command, 4 = forward
//!  2..10  timestamp     u64  unix seconds
//! 10..14  duration      u32  seconds (open, forward: ≥ 1; close, command: 0)
//! 14      address kind  u8   0 = the packet's source, 4 = IPv4, 6 = IPv6 (command: 0)
//! 15..31  address       16 bytes (IPv4 in the first 4, the rest zero; all zero for kind 0)
//! 31      count         u8   open/close: ports, 0..=MAX_PORTS (0: the client's default_access); command/forward: name bytes, 1..=MAX_NAME_LEN
//! 32..    ports         open/close: count × (proto u8 (6 tcp, 17 udp), port u16 ≠ 0)
//!         name          command/forward: the `config command`/`config forward` name ([A-Za-z0-9_])
//! ..end   padding       any bytes (random), any length the packet bounds allow
//! ```
//!
//! No I/O, no allocation, never panics on any buffer.

use core::fmt;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::port::{L4Proto, PortSpec};

/// The protocol version this code speaks.
pub const VERSION: u8 = 2;
/// Most `(proto, port)` pairs in one request.
pub const MAX_PORTS: usize = 16;
/// Longest command or forward name in one request.
pub const MAX_NAME_LEN: usize = 32;
/// Bytes before the port list.
pub const HEADER_LEN: usize = field::PORTS;
/// Bytes per `(proto, port)` pair.
pub const PORT_LEN: usize = 3;

static_assertions::const_assert!(MAX_PORTS <= u8::MAX as usize);

mod field {
    use core::ops::Range;
    pub const VERSION: usize = 0;
    pub const KIND: usize = 1;
    pub const TIMESTAMP: Range<usize> = 2..10;
    pub const DURATION: Range<usize> = 10..14;
    pub const ADDR_KIND: usize = 14;
    pub const ADDR: Range<usize> = 15..31;
    pub const PORT_COUNT: usize = 31;
    pub const PORTS: usize = 32;
}

/// Why a plaintext is not a valid request (it was authenticated: the sender holds
/// a key, so these point at a client bug or a newer protocol version).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestError {
    /// Shorter than the header or the port list it announces.
    Truncated,
    /// A version this code does not speak.
    UnsupportedVersion(u8),
    /// A kind other than open (1), close (2), command (3) or forward (4).
    BadKind(u8),
    /// An address kind other than 0, 4 or 6, or non-zero bytes where zeros belong.
    BadAddress,
    /// More than [`MAX_PORTS`] ports.
    BadPortCount(u8),
    /// A protocol other than TCP or UDP, or port 0.
    BadPort,
    /// An open or forward for 0 seconds, or a close or command with a duration.
    BadDuration,
    /// A command or forward name that is empty, too long or not `[A-Za-z0-9_]`.
    BadName,
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::Truncated => f.write_str("truncated request"),
            RequestError::UnsupportedVersion(v) => write!(f, "unsupported protocol version {v}"),
            RequestError::BadKind(k) => write!(f, "unknown request kind {k}"),
            RequestError::BadAddress => f.write_str("bad address field"),
            RequestError::BadPortCount(n) => {
                write!(f, "{n} ports (0 to {MAX_PORTS} allowed)")
            }
            RequestError::BadPort => f.write_str("bad protocol or port 0"),
            RequestError::BadDuration => f.write_str("bad duration"),
            RequestError::BadName => f.write_str("bad command or forward name"),
        }
    }
}

/// What the request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Allow the address to the ports for the duration.
    Open,
    /// Remove the address's grants on the ports now.
    Close,
    /// Run the named `config command` on the router.
    Command,
    /// Open the named `config forward` for the address for the duration.
    Forward,
}

impl Kind {
    /// The kind byte.
    pub const fn number(self) -> u8 {
        match self {
            Kind::Open => 1,
            Kind::Close => 2,
            Kind::Command => 3,
            Kind::Forward => 4,
        }
    }

    /// The kind for a byte.
    pub const fn from_number(n: u8) -> Option<Kind> {
        Some(match n {
            1 => Kind::Open,
            2 => Kind::Close,
            3 => Kind::Command,
            4 => Kind::Forward,
            _ => return None,
        })
    }

    /// Whether the request names a command or forward instead of listing ports.
    pub const fn has_name(self) -> bool {
        matches!(self, Kind::Command | Kind::Forward)
    }
}

/// Which address the request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The source address of the packet that carried it (`-s`, the default).
    Source,
    /// This address (`-a ADDR`), e.g. when the packet leaves through another NAT.
    Addr(IpAddr),
}

/// A checked view over a request buffer.
#[derive(Debug, Clone)]
pub struct Request<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Request<T> {
    /// Wraps a buffer without checking its length (accessors may then panic).
    pub const fn new_unchecked(buffer: T) -> Request<T> {
        Request { buffer }
    }

    /// Wraps a buffer after [`Request::check_len`].
    pub fn new_checked(buffer: T) -> Result<Request<T>, RequestError> {
        let r = Request::new_unchecked(buffer);
        r.check_len()?;
        Ok(r)
    }

    /// Ensures the header and the announced port list or name fit in the buffer.
    pub fn check_len(&self) -> Result<(), RequestError> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN || b.len() < self.body_end() {
            return Err(RequestError::Truncated);
        }
        Ok(())
    }

    /// Whether the kind byte says the body is a name (command, forward).
    fn named(&self) -> bool {
        let kind = self.buffer.as_ref().get(field::KIND).copied().unwrap_or(0);
        Kind::from_number(kind).is_some_and(Kind::has_name)
    }

    /// Where the port list or name ends (by the count byte; may exceed the
    /// buffer when unchecked).
    fn body_end(&self) -> usize {
        let count = self
            .buffer
            .as_ref()
            .get(field::PORT_COUNT)
            .copied()
            .unwrap_or(0);
        let unit = if self.named() { 1 } else { PORT_LEN };
        HEADER_LEN + unit * usize::from(count)
    }

    /// The inner buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The version byte.
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VERSION]
    }

    /// The kind byte (1 open, 2 close).
    pub fn kind(&self) -> u8 {
        self.buffer.as_ref()[field::KIND]
    }

    /// The timestamp (unix seconds).
    pub fn timestamp(&self) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.buffer.as_ref()[field::TIMESTAMP]);
        u64::from_be_bytes(b)
    }

    /// The requested duration in seconds.
    pub fn duration(&self) -> u32 {
        let mut b = [0u8; 4];
        b.copy_from_slice(&self.buffer.as_ref()[field::DURATION]);
        u32::from_be_bytes(b)
    }

    /// The address kind byte (0 source, 4 IPv4, 6 IPv6).
    pub fn addr_kind(&self) -> u8 {
        self.buffer.as_ref()[field::ADDR_KIND]
    }

    /// The 16 address bytes.
    pub fn addr_bytes(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b.copy_from_slice(&self.buffer.as_ref()[field::ADDR]);
        b
    }

    /// The number of `(proto, port)` pairs.
    pub fn port_count(&self) -> u8 {
        self.buffer.as_ref()[field::PORT_COUNT]
    }

    /// The `i`-th pair as (IP protocol number, port).
    pub fn port(&self, i: usize) -> (u8, u16) {
        let at = HEADER_LEN + PORT_LEN * i;
        let b = &self.buffer.as_ref()[at..at + PORT_LEN];
        (b[0], u16::from_be_bytes([b[1], b[2]]))
    }

    /// The name of a command or forward request (the count byte's worth of bytes).
    pub fn name(&self) -> &[u8] {
        let n = usize::from(self.port_count());
        &self.buffer.as_ref()[HEADER_LEN..HEADER_LEN + n]
    }

    /// The padding after the port list or name.
    pub fn padding(&self) -> &[u8] {
        &self.buffer.as_ref()[self.body_end()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Request<T> {
    /// Sets the version byte.
    pub fn set_version(&mut self, v: u8) {
        self.buffer.as_mut()[field::VERSION] = v;
    }

    /// Sets the kind byte.
    pub fn set_kind(&mut self, k: u8) {
        self.buffer.as_mut()[field::KIND] = k;
    }

    /// Sets the timestamp.
    pub fn set_timestamp(&mut self, t: u64) {
        self.buffer.as_mut()[field::TIMESTAMP].copy_from_slice(&t.to_be_bytes());
    }

    /// Sets the duration.
    pub fn set_duration(&mut self, d: u32) {
        self.buffer.as_mut()[field::DURATION].copy_from_slice(&d.to_be_bytes());
    }

    /// Sets the address kind and bytes.
    pub fn set_addr(&mut self, kind: u8, bytes: [u8; 16]) {
        let b = self.buffer.as_mut();
        b[field::ADDR_KIND] = kind;
        b[field::ADDR].copy_from_slice(&bytes);
    }

    /// Sets the port count.
    pub fn set_port_count(&mut self, n: u8) {
        self.buffer.as_mut()[field::PORT_COUNT] = n;
    }

    /// Sets the count byte and the name of a command or forward request.
    pub fn set_name(&mut self, name: &[u8]) {
        let b = self.buffer.as_mut();
        b[field::PORT_COUNT] = name.len() as u8;
        b[HEADER_LEN..HEADER_LEN + name.len()].copy_from_slice(name);
    }

    /// Sets the `i`-th pair.
    pub fn set_port(&mut self, i: usize, proto: u8, port: u16) {
        let at = HEADER_LEN + PORT_LEN * i;
        let b = &mut self.buffer.as_mut()[at..at + PORT_LEN];
        b[0] = proto;
        b[1..].copy_from_slice(&port.to_be_bytes());
    }
}

/// A valid request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRepr {
    /// Open, close, command or forward.
    pub kind: Kind,
    /// When the client sent it (unix seconds).
    pub timestamp: u64,
    /// Seconds the grant should last (0 for close and command).
    pub duration: u32,
    /// The address to allow (always the source for a command).
    pub target: Target,
    /// Open and close: the ports, 0..=[`MAX_PORTS`] (none: the client's
    /// `default_access`); empty otherwise.
    pub ports: heapless::Vec<PortSpec, MAX_PORTS>,
    /// Command and forward: the name; empty otherwise.
    pub name: heapless::String<MAX_NAME_LEN>,
}

impl RequestRepr {
    /// Parses and validates a checked view. Padding is ignored.
    pub fn parse<T: AsRef<[u8]>>(r: &Request<T>) -> Result<RequestRepr, RequestError> {
        r.check_len()?;
        if r.version() != VERSION {
            return Err(RequestError::UnsupportedVersion(r.version()));
        }
        let kind = Kind::from_number(r.kind()).ok_or(RequestError::BadKind(r.kind()))?;
        let duration = r.duration();
        match (kind, duration) {
            (Kind::Open | Kind::Forward, 0) => return Err(RequestError::BadDuration),
            (Kind::Close | Kind::Command, d) if d != 0 => return Err(RequestError::BadDuration),
            _ => {}
        }
        let a = r.addr_bytes();
        let target = match r.addr_kind() {
            0 if a == [0; 16] => Target::Source,
            4 if a[4..] == [0; 12] => {
                Target::Addr(IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3])))
            }
            6 => Target::Addr(IpAddr::V6(Ipv6Addr::from(a))),
            _ => return Err(RequestError::BadAddress),
        };
        if kind.has_name() {
            if kind == Kind::Command && target != Target::Source {
                return Err(RequestError::BadAddress);
            }
            let name = r.name();
            let valid = |b: &u8| b.is_ascii_alphanumeric() || *b == b'_';
            if name.is_empty() || name.len() > MAX_NAME_LEN || !name.iter().all(valid) {
                return Err(RequestError::BadName);
            }
            let mut s = heapless::String::new();
            // ASCII, at most MAX_NAME_LEN bytes: both cannot fail.
            let _ = s.push_str(core::str::from_utf8(name).unwrap_or_default());
            return Ok(RequestRepr {
                kind,
                timestamp: r.timestamp(),
                duration,
                target,
                ports: heapless::Vec::new(),
                name: s,
            });
        }
        let count = r.port_count();
        // No port: the client's default_access (the router's choice).
        if usize::from(count) > MAX_PORTS {
            return Err(RequestError::BadPortCount(count));
        }
        let mut ports = heapless::Vec::new();
        for i in 0..usize::from(count) {
            let (proto, port) = r.port(i);
            let proto = L4Proto::from_number(proto).ok_or(RequestError::BadPort)?;
            if port == 0 {
                return Err(RequestError::BadPort);
            }
            // count <= MAX_PORTS: cannot overflow.
            let _ = ports.push(PortSpec { proto, port });
        }
        Ok(RequestRepr {
            kind,
            timestamp: r.timestamp(),
            duration,
            target,
            ports,
            name: heapless::String::new(),
        })
    }

    /// Bytes the request needs without padding.
    pub fn buffer_len(&self) -> usize {
        if self.kind.has_name() {
            HEADER_LEN + self.name.len()
        } else {
            HEADER_LEN + PORT_LEN * self.ports.len()
        }
    }

    /// Writes the request into the first [`RequestRepr::buffer_len`] bytes of `r`
    /// (which must be at least that long); the rest is left as it is (padding).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, r: &mut Request<T>) {
        r.set_version(VERSION);
        r.set_kind(self.kind.number());
        r.set_timestamp(self.timestamp);
        r.set_duration(self.duration);
        match self.target {
            Target::Source => r.set_addr(0, [0; 16]),
            Target::Addr(IpAddr::V4(a)) => {
                let mut b = [0u8; 16];
                b[..4].copy_from_slice(&a.octets());
                r.set_addr(4, b);
            }
            Target::Addr(IpAddr::V6(a)) => r.set_addr(6, a.octets()),
        }
        if self.kind.has_name() {
            r.set_name(self.name.as_bytes());
            return;
        }
        r.set_port_count(self.ports.len() as u8);
        for (i, p) in self.ports.iter().enumerate() {
            r.set_port(i, p.proto.number(), p.port);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Open tcp:22 and udp:53 for 192.0.2.7, 30 s, at 1_700_000_000, 2 padding bytes.
    const BYTES: [u8; 40] = [
        2, 1, 0, 0, 0, 0, 0x65, 0x53, 0xf1, 0x00, 0, 0, 0, 30, 4, 192, 0, 2, 7, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 2, 6, 0, 22, 17, 0, 53, 0xaa, 0xbb,
    ];

    fn repr() -> RequestRepr {
        RequestRepr {
            kind: Kind::Open,
            timestamp: 1_700_000_000,
            duration: 30,
            target: Target::Addr("192.0.2.7".parse().unwrap()),
            ports: heapless::Vec::from_slice(&[PortSpec::tcp(22), PortSpec::udp(53)]).unwrap(),
            name: heapless::String::new(),
        }
    }

    #[test]
    fn parse_and_emit_bytes() {
        let r = Request::new_checked(&BYTES[..]).unwrap();
        assert_eq!(r.timestamp(), 1_700_000_000);
        assert_eq!(r.padding(), [0xaa, 0xbb]);
        assert_eq!(RequestRepr::parse(&r).unwrap(), repr());
        let mut buf = [0xaau8; 40];
        buf[39] = 0xbb;
        repr().emit(&mut Request::new_unchecked(&mut buf[..]));
        assert_eq!(buf, BYTES);
        assert_eq!(repr().buffer_len(), 38);
    }

    #[test]
    fn targets_round_trip() {
        for target in [
            Target::Source,
            Target::Addr("2001:db8::7".parse().unwrap()),
            Target::Addr("203.0.113.1".parse().unwrap()),
        ] {
            let want = RequestRepr {
                target,
                kind: Kind::Close,
                duration: 0,
                ..repr()
            };
            let mut buf = [0u8; 64];
            want.emit(&mut Request::new_unchecked(&mut buf[..]));
            let got = RequestRepr::parse(&Request::new_unchecked(&buf[..])).unwrap();
            assert_eq!(got, want);
        }
    }

    #[test]
    fn refuses_every_bad_field() {
        let with = |at: usize, v: u8| {
            let mut b = BYTES;
            b[at] = v;
            RequestRepr::parse(&Request::new_unchecked(&b[..]))
        };
        assert_eq!(
            with(0, 1),
            Err(RequestError::UnsupportedVersion(1)),
            "protocol 1 is gone"
        );
        assert_eq!(with(1, 5), Err(RequestError::BadKind(5)));
        assert_eq!(
            with(1, 2),
            Err(RequestError::BadDuration),
            "close with 30 s"
        );
        assert_eq!(with(13, 0), Err(RequestError::BadDuration), "open for 0 s");
        assert_eq!(with(14, 5), Err(RequestError::BadAddress));
        assert_eq!(
            with(20, 1),
            Err(RequestError::BadAddress),
            "v4 tail not zero"
        );
        // No port: the router's choice (the client's default_access).
        let none = with(31, 0).unwrap();
        assert!(none.ports.is_empty() && none.kind == Kind::Open);
        assert_eq!(with(31, 3), Err(RequestError::Truncated));
        assert_eq!(with(32, 1), Err(RequestError::BadPort), "icmp");
        assert_eq!(with(34, 0), Err(RequestError::BadPort), "port 0");
        let mut src = BYTES;
        src[14] = 0;
        assert_eq!(
            RequestRepr::parse(&Request::new_unchecked(&src[..])),
            Err(RequestError::BadAddress),
            "kind source with address bytes"
        );
        let mut many = [0u8; 200];
        many[..BYTES.len()].copy_from_slice(&BYTES);
        many[31] = MAX_PORTS as u8 + 1;
        assert_eq!(
            RequestRepr::parse(&Request::new_unchecked(&many[..])),
            Err(RequestError::BadPortCount(17))
        );
    }

    fn named(kind: Kind, name: &str, duration: u32, target: Target) -> RequestRepr {
        RequestRepr {
            kind,
            duration,
            target,
            ports: heapless::Vec::new(),
            name: heapless::String::try_from(name).unwrap(),
            ..repr()
        }
    }

    #[test]
    fn command_and_forward_round_trip() {
        let cmd = named(Kind::Command, "wake_nas", 0, Target::Source);
        let mut buf = [0xeeu8; 64];
        cmd.emit(&mut Request::new_unchecked(&mut buf[..]));
        assert_eq!(buf[1], 3);
        assert_eq!(buf[31], 8, "the count byte holds the name length");
        assert_eq!(&buf[32..40], b"wake_nas");
        assert_eq!(buf[40], 0xee, "padding untouched");
        assert_eq!(cmd.buffer_len(), 40);
        let view = Request::new_checked(&buf[..]).unwrap();
        assert_eq!(view.padding().len(), 24);
        assert_eq!(RequestRepr::parse(&view).unwrap(), cmd);

        let fwd = named(
            Kind::Forward,
            "nas_ssh",
            60,
            Target::Addr("203.0.113.9".parse().unwrap()),
        );
        let mut buf = [0u8; 64];
        fwd.emit(&mut Request::new_unchecked(&mut buf[..]));
        assert_eq!(buf[1], 4);
        let got = RequestRepr::parse(&Request::new_unchecked(&buf[..])).unwrap();
        assert_eq!(got, fwd);
    }

    #[test]
    fn refuses_bad_command_and_forward_fields() {
        let parse = |r: &RequestRepr, edit: &dyn Fn(&mut [u8])| {
            let mut buf = [0u8; 80];
            r.emit(&mut Request::new_unchecked(&mut buf[..]));
            edit(&mut buf);
            RequestRepr::parse(&Request::new_unchecked(&buf[..]))
        };
        let cmd = named(Kind::Command, "wake", 0, Target::Source);
        let fwd = named(Kind::Forward, "nas", 30, Target::Source);
        assert!(parse(&cmd, &|_| {}).is_ok());
        assert_eq!(parse(&cmd, &|b| b[13] = 5), Err(RequestError::BadDuration));
        assert_eq!(parse(&fwd, &|b| b[13] = 0), Err(RequestError::BadDuration));
        assert_eq!(
            parse(&cmd, &|b| {
                b[14] = 4;
                b[15] = 10;
            }),
            Err(RequestError::BadAddress),
            "a command runs for its source only"
        );
        for bad in [b';', b' ', b'/', b'$', 0, 0xff] {
            assert_eq!(parse(&cmd, &|b| b[33] = bad), Err(RequestError::BadName));
        }
        assert_eq!(parse(&cmd, &|b| b[31] = 0), Err(RequestError::BadName));
        assert_eq!(
            parse(&fwd, &|b| {
                b[31] = 33;
                b[32..65].fill(b'a');
            }),
            Err(RequestError::BadName),
            "longer than MAX_NAME_LEN"
        );
        let mut short = [0u8; 80];
        cmd.emit(&mut Request::new_unchecked(&mut short[..]));
        assert_eq!(
            Request::new_checked(&short[..HEADER_LEN + 3]).err(),
            Some(RequestError::Truncated)
        );
    }

    #[test]
    fn every_truncation_is_refused() {
        for len in 0..38 {
            assert!(
                Request::new_checked(&BYTES[..len]).is_err(),
                "{len} bytes accepted"
            );
        }
        assert!(Request::new_checked(&BYTES[..38]).is_ok());
    }
}
