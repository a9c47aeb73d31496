//! `postern knock` for the knock modes that carry information: `--totp`,
//! `--encode … --profile NAME`, `--auth`, and `--print` (show the knocks
//! instead of sending them, in the syntax of Debian's `knock` client).
//!
//! Argument parsing and the knock lists are plain functions; [`run`] is the
//! edge (reads key and config files, the clocks, sends knocks).

use core::net::{IpAddr, SocketAddr};
use core::time::Duration;
use std::net::UdpSocket;
use std::path::PathBuf;

use crate::client::conf as client_conf;
use crate::client::spa::parse_access;
use crate::knock::authenticated::{self, AuthAction, AuthKeys, AuthRequest};
use crate::knock::hmac::HmacKey;
use crate::knock::totp::{self, TotpShape};
use crate::port::{L4Proto, PortSpec};
use crate::spa::Key;

/// Delay between two knocks of these modes unless `--delay` says otherwise:
/// keeps them in order on the wire (the daemon tolerates duplicates, not reordering).
pub const DEFAULT_DELAY: Duration = Duration::from_millis(20);

/// Which mode, with its own parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// `--totp`: the sequence of the current time step.
    Totp(TotpShape),
    /// `--encode PROTO/PORT --profile NAME`.
    Encode {
        /// The port asked for.
        port: PortSpec,
        /// The `config encoded` section to read.
        profile: String,
        /// Minutes asked for (`--minutes`, 0: the profile's default).
        minutes: u32,
    },
    /// `--auth -A PROTO/PORT`.
    Auth {
        /// Range start (`--base`).
        base: u16,
        /// Knock protocol (`--proto`).
        proto: L4Proto,
        /// The port asked for.
        port: PortSpec,
        /// Open for minutes (0: the client's maximum) or close.
        action: AuthAction,
        /// The source address the router will see (`--source`; default: the local one).
        source: Option<IpAddr>,
    },
}

/// A parsed `postern knock` of one of these modes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModeRequest {
    /// The router (from the arguments or the stanza; not needed with `--print` for TOTP).
    pub host: Option<String>,
    /// `--key` / `--key-file` / the stanza's key.
    pub key: Option<Key>,
    /// `--stanza NAME`.
    pub stanza: Option<String>,
    /// `-c FILE`: the client config (stanzas and `config encoded` profiles).
    pub conf: Option<PathBuf>,
    /// Print the knocks instead of sending them.
    pub print: bool,
    /// Between two knocks.
    pub delay: Duration,
    /// The mode.
    pub mode: Mode,
}

fn value<'a>(it: &mut impl Iterator<Item = &'a String>, flag: &str) -> Result<&'a String, String> {
    it.next().ok_or_else(|| format!("{flag} needs a value"))
}

fn num<T: core::str::FromStr>(v: &str, flag: &str) -> Result<T, String> {
    v.parse()
        .map_err(|_| format!("{flag} '{v}' is not a valid number"))
}

fn proto(v: &str) -> Result<L4Proto, String> {
    match v {
        "tcp" => Ok(L4Proto::Tcp),
        "udp" => Ok(L4Proto::Udp),
        _ => Err(format!("--proto '{v}': tcp or udp")),
    }
}

fn one_port(v: &str, flag: &str) -> Result<PortSpec, String> {
    match parse_access(v)?.as_slice() {
        [p] => Ok(*p),
        _ => Err(format!("{flag}: give one port, e.g. tcp/22")),
    }
}

/// Parses the arguments of `postern knock`; `None` when no mode flag is given
/// (the plain `postern knock HOST PROTO:PORT...`).
pub fn parse(args: &[String]) -> Result<Option<ModeRequest>, String> {
    let modes = ["--totp", "--encode", "--auth", "--print"];
    if !args.iter().any(|a| modes.contains(&a.as_str())) {
        return Ok(None);
    }
    let (mut totp, mut auth, mut print) = (false, false, false);
    let mut encode: Option<PortSpec> = None;
    let mut access: Option<PortSpec> = None;
    let (mut profile, mut stanza, mut conf, mut host) = (None, None, None, None);
    let mut key: Option<Key> = None;
    let mut base: Option<u16> = None;
    let (mut range, mut length, mut period) = (
        totp::DEFAULT_RANGE,
        totp::DEFAULT_LENGTH,
        totp::DEFAULT_PERIOD,
    );
    let mut knock_proto = L4Proto::Tcp;
    let (mut minutes, mut close, mut source) = (0u32, false, None);
    let mut delay = DEFAULT_DELAY;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--totp" => totp = true,
            "--auth" => auth = true,
            "--print" => print = true,
            "--encode" => encode = Some(one_port(value(&mut it, a)?, a)?),
            "-A" | "--access" => access = Some(one_port(value(&mut it, a)?, a)?),
            "--profile" => profile = Some(value(&mut it, a)?.clone()),
            "--stanza" | "-n" => stanza = Some(value(&mut it, a)?.clone()),
            "-c" | "--config" => conf = Some(PathBuf::from(value(&mut it, a)?)),
            "--key" => {
                key = Some(Key::from_base64(value(&mut it, a)?).map_err(|e| format!("--key: {e}"))?)
            }
            "--key-file" => {
                key = Some(client_conf::read_key_file(std::path::Path::new(value(
                    &mut it, a,
                )?))?)
            }
            "--base" => base = Some(num(value(&mut it, a)?, a)?),
            "--range" => range = num(value(&mut it, a)?, a)?,
            "--length" => length = num(value(&mut it, a)?, a)?,
            "--period" => period = num(value(&mut it, a)?, a)?,
            "--proto" => knock_proto = proto(value(&mut it, a)?)?,
            "--minutes" => minutes = num(value(&mut it, a)?, a)?,
            "--close" => close = true,
            "--source" => source = Some(num(value(&mut it, a)?, a)?),
            "-d" | "--delay" => delay = Duration::from_millis(num(value(&mut it, a)?, a)?),
            other if other.starts_with('-') => {
                return Err(format!("knock: unknown option '{other}'"))
            }
            other if host.is_none() => host = Some(other.to_string()),
            other => return Err(format!("knock: unexpected argument '{other}'")),
        }
    }
    let need_base = || base.ok_or_else(|| "give --base PORT (the router's knock_base)".to_string());
    let mode = match (totp, encode, auth) {
        (true, None, false) => {
            let shape = TotpShape {
                proto: knock_proto,
                base: need_base()?,
                range,
                length,
                period: period.max(1),
            };
            if !(2..=totp::MAX_TOTP_LENGTH as u8).contains(&length)
                || shape.band() < totp::MIN_BAND
                || u32::from(shape.base) + u32::from(range) > 65536
            {
                return Err("--totp: --base/--range/--length do not make a valid sequence (as the router checks them)".into());
            }
            if shape.strength_bits() < totp::MIN_STRENGTH_BITS {
                return Err(format!(
                    "--totp: --range {range} --length {length} give {:.1} bits; the router refuses below {:.0} (the defaults, --range {} --length {}, give {:.1})",
                    shape.strength_bits(),
                    totp::MIN_STRENGTH_BITS,
                    totp::DEFAULT_RANGE,
                    totp::DEFAULT_LENGTH,
                    TotpShape {
                        range: totp::DEFAULT_RANGE,
                        length: totp::DEFAULT_LENGTH,
                        ..shape
                    }
                    .strength_bits()
                ));
            }
            Mode::Totp(shape)
        }
        (false, Some(port), false) => Mode::Encode {
            port,
            profile: profile.ok_or("--encode needs --profile NAME (a config encoded section)")?,
            minutes,
        },
        (false, None, true) => Mode::Auth {
            base: need_base()?,
            proto: knock_proto,
            port: access.ok_or("--auth needs -A PROTO/PORT")?,
            action: if close {
                AuthAction::Close
            } else {
                AuthAction::Open(
                    u8::try_from(minutes)
                        .ok()
                        .filter(|&m| m < authenticated::CODE_CLOSE)
                        .ok_or("--minutes: 0 to 254")?,
                )
            },
            source,
        },
        _ => return Err("knock: give exactly one of --totp, --encode PROTO/PORT, --auth".into()),
    };
    Ok(Some(ModeRequest {
        host,
        key,
        stanza,
        conf,
        print,
        delay,
        mode,
    }))
}

/// The TOTP knocks at unix time `unix`.
pub fn totp_knocks(key: &Key, shape: &TotpShape, unix: u64) -> Vec<PortSpec> {
    totp::sequence(&HmacKey::new(key.as_bytes()), shape, shape.step_at(unix))
        .iter()
        .map(|&port| PortSpec {
            proto: shape.proto,
            port,
        })
        .collect()
}

/// The authenticated knocks asking for `req`, bound to `source`, at unix time `unix`.
pub fn auth_knocks(
    key: &Key,
    base: u16,
    proto: L4Proto,
    source: IpAddr,
    req: &AuthRequest,
    unix: u64,
) -> Vec<PortSpec> {
    let syms = authenticated::seal(
        &AuthKeys::new(key.as_bytes()),
        unix / authenticated::STEP_SECS,
        source,
        req,
    );
    authenticated::knocks(base, proto, &syms)
}

/// Knocks in the syntax of Debian's `knock` client: `40123 40456:udp`.
pub fn knock_syntax(knocks: &[PortSpec]) -> String {
    knocks
        .iter()
        .map(|k| match k.proto {
            L4Proto::Tcp => k.port.to_string(),
            L4Proto::Udp => format!("{}:udp", k.port),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The local address the kernel would send from to reach `host`.
pub fn local_source(host: IpAddr) -> std::io::Result<IpAddr> {
    let bind: SocketAddr = match host {
        IpAddr::V4(_) => SocketAddr::from(([0, 0, 0, 0], 0)),
        IpAddr::V6(_) => SocketAddr::from(([0u16; 8], 0)),
    };
    let s = UdpSocket::bind(bind)?;
    s.connect(SocketAddr::new(host, 9))?;
    Ok(s.local_addr()?.ip())
}

/// Carries out `req`: resolves what it needs, then sends (or prints) the
/// knocks; returns the line to print.
pub fn run(req: &ModeRequest) -> Result<String, String> {
    let stanza = match &req.stanza {
        None => None,
        Some(name) => {
            let path = conf_path(req)?;
            let stanzas = client_conf::load(&path).map_err(|e| errors(&e))?;
            Some(client_conf::find(&stanzas, name, &path)?.clone())
        }
    };
    let host = req
        .host
        .clone()
        .or_else(|| stanza.as_ref().map(|s| s.host.clone()));
    let resolve = |h: &Option<String>| -> Result<IpAddr, String> {
        let h = h.as_ref().ok_or("knock: give HOST (or --stanza NAME)")?;
        super::resolve(h).map_err(|e| format!("knock: host '{h}': {e}"))
    };
    let key = || {
        req.key
            .clone()
            .or_else(|| stanza.as_ref().map(|s| s.key.clone()))
            .ok_or("knock: give a key: --key B64, --key-file F or --stanza NAME")
    };
    let unix = crate::time::unix_now();
    let (knocks, what) = match &req.mode {
        Mode::Totp(shape) => {
            let left = shape.period - unix % shape.period;
            (
                totp_knocks(&key()?, shape, unix),
                format!("TOTP sequence, valid for {left} more s (and one period after)"),
            )
        }
        Mode::Encode {
            port,
            profile,
            minutes,
        } => {
            let path = conf_path(req)?;
            let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let file = path.display().to_string();
            let sections =
                crate::config::uci::parse_bytes(&file, &bytes).map_err(|e| errors(&e))?;
            let profiles =
                crate::config::typed::encoded_profiles(&file, &sections).map_err(|e| errors(&e))?;
            let p = profiles
                .iter()
                .find(|p| &p.name == profile)
                .ok_or_else(|| format!("{file}: no config encoded '{profile}'"))?;
            let syms = p
                .shape
                .encode(port.port, *minutes)
                .map_err(|e| format!("--encode {port}: {e}"))?;
            (
                p.shape.knocks(port.proto, &syms),
                format!("encoded request for {port}"),
            )
        }
        Mode::Auth {
            base,
            proto,
            port,
            action,
            source,
        } => {
            let key = key()?;
            let source = match source {
                Some(s) => *s,
                None => {
                    let h = resolve(&host)?;
                    local_source(h)
                        .map_err(|e| format!("knock: source address towards {h}: {e}"))?
                }
            };
            let r = AuthRequest {
                port: *port,
                action: *action,
            };
            (
                auth_knocks(&key, *base, *proto, source, &r, unix),
                format!("authenticated request for {port} from {source}"),
            )
        }
    };
    if req.print {
        return Ok(knock_syntax(&knocks));
    }
    let addr = resolve(&host)?;
    super::knock(addr, &knocks, req.delay).map_err(|e| e.to_string())?;
    Ok(format!("sent {} knocks to {addr}: {what}", knocks.len()))
}

fn conf_path(req: &ModeRequest) -> Result<PathBuf, String> {
    req.conf
        .clone()
        .or_else(client_conf::default_path)
        .ok_or_else(|| "knock: no client config path: give -c FILE".to_string())
}

fn errors(e: &[crate::config::ConfigError]) -> String {
    e.iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    const KEY: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";

    #[test]
    fn plain_knocks_are_not_a_mode() {
        assert_eq!(parse(&args("192.0.2.1 tcp:7000 udp:8000")), Ok(None));
    }

    #[test]
    fn parses_each_mode() {
        let r = parse(&args(&format!(
            "--totp --print --key {KEY} --base 40000 --length 5"
        )))
        .unwrap()
        .unwrap();
        assert!(r.print);
        assert_eq!(r.host, None);
        assert!(matches!(
            r.mode,
            Mode::Totp(TotpShape {
                base: 40000,
                length: 5,
                range: totp::DEFAULT_RANGE,
                period: 30,
                ..
            })
        ));
        // The defaults are the router's (the same constants).
        let r = parse(&args(&format!("--totp --print --key {KEY} --base 40000")))
            .unwrap()
            .unwrap();
        assert!(matches!(
            r.mode,
            Mode::Totp(TotpShape {
                length: 6,
                range: 12288,
                ..
            })
        ));
        // Too weak to guess: refused as the router refuses it, with the bits.
        let e = parse(&args("h --totp --base 40000 --range 1024 --length 4")).unwrap_err();
        assert!(
            e.contains("give 30.4 bits; the router refuses below 48"),
            "{e}"
        );
        let r = parse(&args("h --encode tcp/143 --profile enc --minutes 5"))
            .unwrap()
            .unwrap();
        assert_eq!(
            r.mode,
            Mode::Encode {
                port: PortSpec::tcp(143),
                profile: "enc".into(),
                minutes: 5
            }
        );
        assert_eq!(r.delay, DEFAULT_DELAY);
        let r = parse(&args(&format!(
            "h --auth -A udp/53 --close --base 50000 --proto udp --source 198.51.100.7 --key {KEY}"
        )))
        .unwrap()
        .unwrap();
        assert_eq!(
            r.mode,
            Mode::Auth {
                base: 50000,
                proto: L4Proto::Udp,
                port: PortSpec::udp(53),
                action: AuthAction::Close,
                source: Some("198.51.100.7".parse().unwrap())
            }
        );
        assert!(parse(&args("h --totp --encode tcp/1 --base 1")).is_err());
        assert!(parse(&args("h --totp")).unwrap_err().contains("--base"));
        assert!(parse(&args("h --totp --base 40000 --range 40")).is_err());
        assert!(parse(&args("h --encode tcp/143"))
            .unwrap_err()
            .contains("--profile"));
        assert!(parse(&args("h --auth --base 1"))
            .unwrap_err()
            .contains("-A"));
        assert!(parse(&args("h --auth -A tcp/22 --base 1 --minutes 255")).is_err());
    }

    #[test]
    fn print_uses_the_knock_clients_syntax_and_matches_the_daemon() {
        let shape = TotpShape {
            proto: L4Proto::Udp,
            base: 40000,
            range: 1024,
            length: 4,
            period: 30,
        };
        let key = Key::from_base64(KEY).unwrap();
        let k = totp_knocks(&key, &shape, 1_800_000_000);
        let expect = totp::sequence(&HmacKey::new(key.as_bytes()), &shape, 60_000_000);
        assert_eq!(
            k.iter().map(|p| p.port).collect::<Vec<_>>(),
            expect.to_vec()
        );
        let line = knock_syntax(&k);
        assert_eq!(line.split(' ').count(), 4);
        assert!(line.split(' ').all(|w| w.ends_with(":udp")));
        assert_eq!(
            knock_syntax(&[PortSpec::tcp(1), PortSpec::udp(2)]),
            "1 2:udp"
        );
    }

    #[test]
    fn auth_knocks_open_at_the_daemon() {
        let key = Key::from_base64(KEY).unwrap();
        let src: IpAddr = "198.51.100.7".parse().unwrap();
        let req = AuthRequest {
            port: PortSpec::tcp(22),
            action: AuthAction::Open(3),
        };
        let k = auth_knocks(&key, 50000, L4Proto::Tcp, src, &req, 1_800_000_000);
        assert_eq!(k.len(), authenticated::SYMBOLS);
        let syms: Vec<u8> = k
            .iter()
            .map(|p| authenticated::alphabet(50000).symbol(p.port).unwrap().1)
            .collect();
        let opened = authenticated::open(&AuthKeys::new(key.as_bytes()), 1_800_000_010, src, &syms);
        assert_eq!(opened.map(|r| r.0), Ok(req));
    }

    #[test]
    fn local_source_towards_loopback() {
        assert!(local_source("127.0.0.1".parse().unwrap())
            .unwrap()
            .is_loopback());
    }
}
