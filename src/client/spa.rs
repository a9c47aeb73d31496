//! The SPA sender: one sealed UDP datagram to the router's `spa_port`.
//!
//! Builds a [`RequestRepr`] stamped with this machine's wall clock, seals it
//! with a fresh random nonce and a random amount of random padding (so packet
//! lengths vary), and sends it. Nothing waits for an answer: the router
//! answers SPA packets with silence either way.

use core::net::{IpAddr, SocketAddr};
use std::io;
use std::net::UdpSocket;

use crate::port::{PortSpec, PortSpecError};
use crate::spa::prefilter::RANDOM_LEN;
use crate::spa::request::{MAX_NAME_LEN, MAX_PORTS};
use crate::spa::seal::{self, MAX_PACKET_LEN, MAX_PLAINTEXT_LEN};
use crate::spa::{Key, Kind, RequestRepr, Target};

/// Most padding bytes added (a random amount from 0 to this).
pub const MAX_PADDING: u8 = 64;
/// Most copies `--repeat` sends.
pub const MAX_REPEAT: u32 = 10;
/// Between two copies.
pub const REPEAT_GAP: std::time::Duration = std::time::Duration::from_millis(20);

/// What to ask the router for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Open, close, command or forward.
    pub kind: Kind,
    /// The address to allow: the packet's source (`-s`) or an explicit one (`-a`).
    pub target: Target,
    /// Open and close: the ports (up to [`MAX_PORTS`]; none: the router
    /// opens the client's `default_access`).
    pub ports: Vec<PortSpec>,
    /// Command and forward: the router's `config command`/`config forward` name.
    pub name: String,
    /// Seconds (ignored for close and command).
    pub duration: u32,
}

/// Parses an access list: `tcp/22,udp/53` (fwknop's form) or `tcp:22,udp:53`;
/// `none` (or nothing) asks for no port: the router's choice.
pub fn parse_access(text: &str) -> Result<Vec<PortSpec>, String> {
    let mut out = Vec::new();
    if matches!(text.trim(), "" | "none") {
        return Ok(out);
    }
    for item in text.split(',').map(str::trim) {
        let spec = item.replacen('/', ":", 1);
        let p = spec
            .parse::<PortSpec>()
            .map_err(|e: PortSpecError| format!("access '{item}': {e}"))?;
        if !out.contains(&p) {
            out.push(p);
        }
    }
    if out.len() > MAX_PORTS {
        return Err(format!(
            "{} ports in one request; at most {MAX_PORTS}",
            out.len()
        ));
    }
    Ok(out)
}

/// Seals `req` at unix time `now` with the nonce's `random` bytes and
/// `padding` into a packet.
pub fn packet_with(
    key: &Key,
    req: &Request,
    now: u64,
    random: &[u8; RANDOM_LEN],
    padding: &[u8],
) -> io::Result<Vec<u8>> {
    let invalid = |msg: String| io::Error::new(io::ErrorKind::InvalidInput, msg);
    if req.kind.has_name() {
        if !crate::config::typed::is_action_name(&req.name) {
            return Err(invalid(format!(
                "'{}' is not a command or forward name (1-{MAX_NAME_LEN} letters, digits or _)",
                req.name
            )));
        }
        if req.kind == Kind::Command && req.target != Target::Source {
            return Err(invalid(
                "a command runs for the packet's source only: drop -a".into(),
            ));
        }
    } else if req.ports.len() > MAX_PORTS {
        return Err(invalid(format!("give at most {MAX_PORTS} ports")));
    }
    let repr = RequestRepr {
        kind: req.kind,
        timestamp: now,
        duration: match req.kind {
            Kind::Open | Kind::Forward => req.duration.max(1),
            Kind::Close | Kind::Command => 0,
        },
        target: req.target,
        ports: if req.kind.has_name() {
            heapless::Vec::new()
        } else {
            req.ports.iter().copied().collect()
        },
        name: if req.kind.has_name() {
            // Checked above: ASCII of at most MAX_NAME_LEN bytes.
            heapless::String::try_from(req.name.as_str()).unwrap_or_default()
        } else {
            heapless::String::new()
        },
    };
    let mut out = [0u8; MAX_PACKET_LEN];
    let n = seal::seal(key, random, &repr, padding, &mut out)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "request too long"))?;
    Ok(out[..n].to_vec())
}

/// Seals `req` with a random nonce (20 random bytes and the pre-filter tag)
/// and random padding, stamped with the wall clock.
pub fn packet(key: &Key, req: &Request) -> io::Result<Vec<u8>> {
    let mut random = [0u8; RANDOM_LEN];
    crate::random::fill(&mut random)?;
    let body = if req.kind.has_name() {
        req.name.len()
    } else {
        crate::spa::request::PORT_LEN * req.ports.len()
    };
    let room = MAX_PLAINTEXT_LEN.saturating_sub(crate::spa::request::HEADER_LEN + body);
    let max = MAX_PADDING.min(u8::try_from(room).unwrap_or(u8::MAX));
    // A request without a body needs one byte of padding to reach the
    // shortest packet the router reads (docs/spa-protocol.md).
    let least = u8::from(body == 0);
    let pad = crate::random::below_or_eq(max - least)? + least;
    let mut padding = vec![0u8; usize::from(pad)];
    crate::random::fill(&mut padding)?;
    packet_with(key, req, crate::time::unix_now(), &random, &padding)
}

/// Sends `req` to `host:port`, `copies` times [`REPEAT_GAP`] apart (the
/// same packet: the router accepts the first copy that arrives and refuses
/// the others as replays, which never count towards a ban); returns the
/// packet sent.
pub fn send(host: IpAddr, port: u16, key: &Key, req: &Request, copies: u32) -> io::Result<Vec<u8>> {
    let p = packet(key, req)?;
    let bind: SocketAddr = match host {
        IpAddr::V4(_) => SocketAddr::from(([0, 0, 0, 0], 0)),
        IpAddr::V6(_) => SocketAddr::from(([0u16; 8], 0)),
    };
    let sock = UdpSocket::bind(bind)?;
    for i in 0..copies.max(1) {
        if i > 0 {
            std::thread::sleep(REPEAT_GAP);
        }
        sock.send_to(&p, SocketAddr::new(host, port))
            .map_err(|e| io::Error::new(e.kind(), format!("send to {host} udp:{port}: {e}")))?;
    }
    Ok(p)
}

/// A short description for the user: `open tcp:22 udp:53 for 30 s`.
pub fn describe(req: &Request) -> String {
    let mut ports: Vec<String> = req.ports.iter().map(|p| p.to_string()).collect();
    if ports.is_empty() {
        ports.push("the router's choice (default_access)".into());
    }
    let target = match req.target {
        Target::Source => String::new(),
        Target::Addr(a) => format!(" for {a}"),
    };
    match req.kind {
        Kind::Open => format!("open {}{target} for {} s", ports.join(" "), req.duration),
        Kind::Close => format!("close {}{target}", ports.join(" ")),
        Kind::Command => format!("run command {}", req.name),
        Kind::Forward => format!("open forward {}{target} for {} s", req.name, req.duration),
    }
}

/// What `postern spa --verbose` adds: where the packet went, its size and
/// what it asks, one item a line. Never the key (only where it came from).
pub fn report(
    req: &Request,
    host: &str,
    addr: IpAddr,
    port: u16,
    len: usize,
    key_from: &str,
) -> String {
    let kind = match req.kind {
        Kind::Open => "open",
        Kind::Close => "close",
        Kind::Command => "command",
        Kind::Forward => "forward",
    };
    let address = match req.target {
        Target::Source => "the packet's source (no address sealed in it)".to_string(),
        Target::Addr(a) => format!("{a} (sealed in the packet)"),
    };
    let mut out = format!(
        "  destination: {host} = {} udp:{port}
  size:        {len} bytes (nonce 24, tag 16,          the rest the sealed request and random padding)
  request:     {kind}
  for:         {address}
",
        SocketAddr::new(addr, port).ip()
    );
    use core::fmt::Write as _;
    match req.kind {
        Kind::Open | Kind::Close => {
            let _ = writeln!(out, "  ports:       {}", describe_ports(&req.ports));
        }
        Kind::Command | Kind::Forward => {
            let _ = writeln!(out, "  name:        {}", req.name);
        }
    }
    if matches!(req.kind, Kind::Open | Kind::Forward) {
        let _ = writeln!(out, "  duration:    {} s", req.duration);
    }
    let _ = writeln!(
        out,
        "  timestamp:   {} (this machine's clock; the router allows max_skew)",
        crate::time::unix_now()
    );
    let _ = writeln!(out, "  key:         from {key_from} (not shown)");
    out
}

fn describe_ports(ports: &[PortSpec]) -> String {
    if ports.is_empty() {
        return "none: the router's choice (the client's default_access)".into();
    }
    let v: Vec<String> = ports.iter().map(ToString::to_string).collect();
    v.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Client, Config, Main};
    use crate::spa::seal::NONCE_LEN;
    use crate::spa::Verifier;
    use crate::time::{Millis, Now};
    use core::time::Duration;

    fn req() -> Request {
        Request {
            kind: Kind::Open,
            target: Target::Source,
            ports: vec![PortSpec::tcp(22)],
            name: String::new(),
            duration: 30,
        }
    }

    #[test]
    fn access_lists() {
        assert_eq!(
            parse_access("tcp/22,udp/53").unwrap(),
            [PortSpec::tcp(22), PortSpec::udp(53)]
        );
        assert_eq!(parse_access("tcp:22, tcp/22").unwrap(), [PortSpec::tcp(22)]);
        assert!(parse_access("tcp/0").is_err());
        assert!(parse_access("icmp/1").unwrap_err().contains("icmp"));
        assert_eq!(parse_access("none").unwrap(), [], "the router's choice");
        assert_eq!(parse_access("").unwrap(), []);
        assert!(parse_access("tcp/22,none").is_err());
        let many: Vec<String> = (1..=17).map(|p| format!("tcp/{p}")).collect();
        assert!(parse_access(&many.join(",")).is_err());
    }

    #[test]
    fn packets_vary_and_the_verifier_accepts_them() {
        let key = Key::from_bytes([5; 32]);
        let a = packet(&key, &req()).unwrap();
        let b = packet(&key, &req()).unwrap();
        assert_ne!(a[..NONCE_LEN], b[..NONCE_LEN], "fresh nonce");
        let lens: std::collections::HashSet<usize> = (0..20)
            .map(|_| packet(&key, &req()).unwrap().len())
            .collect();
        assert!(lens.len() > 1, "random padding varies the length");
        let cfg = Config {
            main: Main::default(),
            sequences: Vec::new(),
            knock_modes: Default::default(),
            commands: Vec::new(),
            forwards: Vec::new(),
            peers: Vec::new(),
            clients: vec![Client {
                name: "me".into(),
                enabled: true,
                key: Some(key.clone()),
                fwknop: None,
                allow: vec![PortSpec::tcp(22)],
                max_duration: Duration::from_secs(60),
                sources: Vec::new(),
                allow_other_address: false,
                require_address: false,
                commands: Vec::new(),
                forwards: Vec::new(),
                default_access: Vec::new(),
            }],
            hooks: Vec::new(),
        };
        let mut v = Verifier::new(&cfg);
        let now = Now {
            mono: Millis(1),
            unix: crate::time::unix_now(),
        };
        let got = v.verify(now, "192.0.2.1".parse().unwrap(), &a).unwrap();
        assert_eq!(got.ports, [PortSpec::tcp(22)]);
        // No ports: always padded to the shortest packet, and refused by a
        // client without default_access.
        let empty = Request {
            ports: Vec::new(),
            ..req()
        };
        for _ in 0..40 {
            let p = packet(&key, &empty).unwrap();
            assert!(p.len() >= seal::MIN_PACKET_LEN);
        }
        let p = packet(&key, &empty).unwrap();
        let refused = v.verify(now, "192.0.2.1".parse().unwrap(), &p).unwrap_err();
        assert_eq!(refused.reason, crate::spa::Refusal::PortNotAllowed);
    }

    #[test]
    fn sends_one_datagram() {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let port = sock.local_addr().unwrap().port();
        let key = Key::from_bytes([6; 32]);
        let sent = send("127.0.0.1".parse().unwrap(), port, &key, &req(), 1).unwrap();
        let mut buf = [0u8; 600];
        let (n, _) = sock.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], &sent[..]);
        // --repeat 3: three identical copies.
        let sent = send("127.0.0.1".parse().unwrap(), port, &key, &req(), 3).unwrap();
        for _ in 0..3 {
            let (n, _) = sock.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], &sent[..]);
        }
        assert_eq!(describe(&req()), "open tcp:22 for 30 s");
    }
}
