//! The messages between the daemon and its privileged launcher, and their
//! encoding: one message per `SOCK_SEQPACKET` datagram, fields separated by
//! a NUL byte, the first field the verb. Pure: no I/O.
//!
//! The daemon names a command; it never sends a path or an argument. The
//! launcher looks the name up in its own copy of the configuration.

use core::net::IpAddr;

use crate::grant_hooks::{GrantEnv, HookEvent, HookReason, HOOK_PORTS};

/// The largest message either side sends or accepts (bytes).
pub const MAX_MESSAGE: usize = 1024;
/// Longest reason text in [`Event::NotStarted`] (longer ones are cut).
pub const MAX_REASON: usize = 512;
/// Longest command or client name accepted (UCI names).
pub const MAX_NAME: usize = 64;

static_assertions::const_assert!(MAX_REASON + 3 * MAX_NAME + 64 <= MAX_MESSAGE);

/// What the daemon asks of the launcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Run the configured command `name` for SPA client `client`, whose
    /// packet came from `source` (the runner's `POSTERN_*` environment).
    Run {
        /// The command's section name.
        name: String,
        /// The SPA client's name.
        client: String,
        /// The packet's source address.
        source: IpAddr,
    },
    /// Run the configured command `name` as an open or close hook of a
    /// grant (the runner's `POSTERN_*` environment, with the grant's).
    Hook {
        /// The command's section name.
        name: String,
        /// The grant: addresses, port specs, a name, numbers, fixed words.
        env: GrantEnv,
    },
    /// Read the configuration file again (SIGHUP) and hand it over.
    Reload,
    /// The daemon took the configuration handed over with [`Event::Config`]
    /// number `seq`: run its commands from now on (if it is still the one
    /// read last).
    Adopt {
        /// The number of the [`Event::Config`] taken.
        seq: u32,
    },
}

/// What the launcher tells the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Command `name` runs as process `pid` for `client` from `source`.
    Started {
        /// The command's name.
        name: String,
        /// The SPA client's name.
        client: String,
        /// The packet's source address.
        source: IpAddr,
        /// Its process id.
        pid: u32,
    },
    /// Command `name` was not started for `client`, for `reason`.
    NotStarted {
        /// The command's name.
        name: String,
        /// The SPA client that asked.
        client: String,
        /// Why, in words for the log.
        reason: String,
    },
    /// Command `name` ended (the launcher logged how).
    Finished {
        /// The command's name.
        name: String,
    },
    /// The configuration file as read now travels with this message (a
    /// memory file passed with it); nothing is used until [`Request::Adopt`]
    /// names `seq`.
    Config {
        /// Counts the reads: an adoption of an older read is ignored.
        seq: u32,
    },
    /// The configuration file could not be read or is invalid (the launcher
    /// logged the errors); both sides keep the running configuration.
    ConfigRefused {
        /// The errors, one a line (cut to [`MAX_REASON`] bytes): `postern
        /// status` shows them.
        reason: String,
    },
}

/// `reason` without NULs, cut to at most [`MAX_REASON`] bytes (on a
/// character boundary).
fn cut_reason(reason: &str) -> String {
    let mut cut = reason.replace('\0', " ");
    if cut.len() > MAX_REASON {
        let mut end = MAX_REASON;
        while !cut.is_char_boundary(end) {
            end -= 1;
        }
        cut.truncate(end);
    }
    cut
}

/// Why a message could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadMessage(pub &'static str);

impl core::fmt::Display for BadMessage {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "bad launcher message: {}", self.0)
    }
}

fn is_name(s: &str) -> bool {
    s.len() <= MAX_NAME && crate::config::uci::is_name(s)
}

/// A UCI name, or `@type[N]` (an anonymous section: what granted a hook's grant).
fn is_origin(s: &str) -> bool {
    if is_name(s) {
        return true;
    }
    let Some(inner) = s.strip_prefix('@').and_then(|r| r.strip_suffix(']')) else {
        return false;
    };
    let Some((kind, index)) = inner.split_once('[') else {
        return false;
    };
    s.len() <= MAX_NAME
        && crate::config::uci::is_name(kind)
        && !index.is_empty()
        && index.bytes().all(|b| b.is_ascii_digit())
}

fn origin(f: &str) -> Result<String, BadMessage> {
    if is_origin(f) {
        Ok(f.to_string())
    } else {
        Err(BadMessage("not a name"))
    }
}

/// The fields of a hook's grant after the verb and name.
fn grant_fields(env: &GrantEnv) -> [String; 6] {
    [
        env.event.as_str().to_string(),
        env.reason.as_str().to_string(),
        env.granted_by.to_string(),
        env.address.to_string(),
        env.ports_text(),
        env.duration_s.to_string(),
    ]
}

fn grant(fields: &[&str]) -> Result<GrantEnv, BadMessage> {
    let [event, reason, by, address, ports, duration] = fields else {
        return Err(BadMessage("unknown request"));
    };
    let mut list: heapless::Vec<crate::port::PortSpec, HOOK_PORTS> = heapless::Vec::new();
    for p in ports.split(' ').filter(|p| !p.is_empty()) {
        let p = p.parse().map_err(|_| BadMessage("not a port"))?;
        list.push(p).map_err(|_| BadMessage("too many ports"))?;
    }
    Ok(GrantEnv {
        event: HookEvent::parse(event).ok_or(BadMessage("not an event"))?,
        reason: HookReason::parse(reason).ok_or(BadMessage("not a reason"))?,
        granted_by: origin(by)?
            .as_str()
            .try_into()
            .map_err(|_| BadMessage("not a name"))?,
        address: source(address)?,
        ports: list,
        duration_s: duration.parse().map_err(|_| BadMessage("not a number"))?,
    })
}

/// `fields` joined by NUL into `out`; false when a field holds a NUL or the
/// whole would exceed [`MAX_MESSAGE`].
fn join(out: &mut Vec<u8>, fields: &[&str]) -> bool {
    out.clear();
    for (i, f) in fields.iter().enumerate() {
        if f.contains('\0') {
            return false;
        }
        if i > 0 {
            out.push(0);
        }
        out.extend_from_slice(f.as_bytes());
    }
    out.len() <= MAX_MESSAGE
}

/// The NUL-separated fields of `bytes` (UTF-8 checked).
fn split(bytes: &[u8]) -> Result<Vec<&str>, BadMessage> {
    if bytes.is_empty() || bytes.len() > MAX_MESSAGE {
        return Err(BadMessage("empty or too long"));
    }
    bytes
        .split(|&b| b == 0)
        .map(|f| core::str::from_utf8(f).map_err(|_| BadMessage("not UTF-8")))
        .collect()
}

fn name(f: &str) -> Result<String, BadMessage> {
    if is_name(f) {
        Ok(f.to_string())
    } else {
        Err(BadMessage("not a name"))
    }
}

fn source(f: &str) -> Result<IpAddr, BadMessage> {
    f.parse().map_err(|_| BadMessage("not an address"))
}

impl Request {
    /// Encodes into `out`; false when a name is not a UCI name.
    pub fn encode(&self, out: &mut Vec<u8>) -> bool {
        match self {
            Request::Run {
                name,
                client,
                source,
            } => {
                is_name(name)
                    && is_name(client)
                    && join(out, &["run", name, client, &source.to_string()])
            }
            Request::Hook { name, env } => {
                let f = grant_fields(env);
                is_name(name)
                    && is_origin(&f[2])
                    && join(
                        out,
                        &["hook", name, &f[0], &f[1], &f[2], &f[3], &f[4], &f[5]],
                    )
            }
            Request::Reload => join(out, &["reload"]),
            Request::Adopt { seq } => join(out, &["adopt", &seq.to_string()]),
        }
    }

    /// Decodes one message; anything else is refused whole.
    pub fn decode(bytes: &[u8]) -> Result<Request, BadMessage> {
        match split(bytes)?.as_slice() {
            ["run", n, c, s] => Ok(Request::Run {
                name: name(n)?,
                client: name(c)?,
                source: source(s)?,
            }),
            ["hook", n, rest @ ..] => Ok(Request::Hook {
                name: name(n)?,
                env: grant(rest)?,
            }),
            ["reload"] => Ok(Request::Reload),
            ["adopt", s] => Ok(Request::Adopt {
                seq: s.parse().map_err(|_| BadMessage("not a number"))?,
            }),
            _ => Err(BadMessage("unknown request")),
        }
    }
}

impl Event {
    /// Encodes into `out` (a reason is cut to [`MAX_REASON`] bytes and its
    /// NULs replaced); false when a name is not a UCI name.
    pub fn encode(&self, out: &mut Vec<u8>) -> bool {
        match self {
            Event::Started {
                name,
                client,
                source,
                pid,
            } => {
                is_name(name)
                    && is_origin(client)
                    && join(
                        out,
                        &[
                            "started",
                            name,
                            client,
                            &source.to_string(),
                            &pid.to_string(),
                        ],
                    )
            }
            Event::NotStarted {
                name,
                client,
                reason,
            } => {
                let cut = cut_reason(reason);
                is_name(name)
                    && is_origin(client)
                    && join(out, &["not-started", name, client, &cut])
            }
            Event::Finished { name } => is_name(name) && join(out, &["finished", name]),
            Event::Config { seq } => join(out, &["config", &seq.to_string()]),
            Event::ConfigRefused { reason } => join(out, &["config-refused", &cut_reason(reason)]),
        }
    }

    /// Decodes one message; anything else is refused whole.
    pub fn decode(bytes: &[u8]) -> Result<Event, BadMessage> {
        match split(bytes)?.as_slice() {
            ["started", n, c, s, p] => Ok(Event::Started {
                name: name(n)?,
                client: origin(c)?,
                source: source(s)?,
                pid: p.parse().map_err(|_| BadMessage("not a pid"))?,
            }),
            ["not-started", n, c, r] if r.len() <= MAX_REASON => Ok(Event::NotStarted {
                name: name(n)?,
                client: origin(c)?,
                reason: r.to_string(),
            }),
            ["finished", n] => Ok(Event::Finished { name: name(n)? }),
            ["config", s] => Ok(Event::Config {
                seq: s.parse().map_err(|_| BadMessage("not a number"))?,
            }),
            ["config-refused", r] if r.len() <= MAX_REASON => Ok(Event::ConfigRefused {
                reason: r.to_string(),
            }),
            _ => Err(BadMessage("unknown event")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_request(r: Request) {
        let mut buf = Vec::new();
        assert!(r.encode(&mut buf), "{r:?}");
        assert_eq!(Request::decode(&buf), Ok(r));
    }

    fn round_event(e: Event) {
        let mut buf = Vec::new();
        assert!(e.encode(&mut buf), "{e:?}");
        assert_eq!(Event::decode(&buf), Ok(e));
    }

    #[test]
    fn requests_round_trip() {
        round_request(Request::Run {
            name: "reboot".into(),
            client: "laptop".into(),
            source: "2001:db8::7".parse().unwrap(),
        });
        round_request(Request::Reload);
        round_request(Request::Adopt { seq: 7 });
        let mut buf = Vec::new();
        Request::Run {
            name: "wake".into(),
            client: "phone_2".into(),
            source: "192.0.2.9".parse().unwrap(),
        }
        .encode(&mut buf);
        assert_eq!(buf, b"run\0wake\0phone_2\x00192.0.2.9");
    }

    #[test]
    fn events_round_trip() {
        round_event(Event::Started {
            name: "wake".into(),
            client: "laptop".into(),
            source: "192.0.2.9".parse().unwrap(),
            pid: 4242,
        });
        round_event(Event::NotStarted {
            name: "wake".into(),
            client: "laptop".into(),
            reason: "it is running already".into(),
        });
        round_event(Event::Finished {
            name: "wake".into(),
        });
        round_event(Event::Config { seq: u32::MAX });
        round_event(Event::ConfigRefused {
            reason: "postern:3: bad\npostern:4: worse".into(),
        });
        let mut buf = Vec::new();
        let long = Event::ConfigRefused {
            reason: "é".repeat(MAX_REASON),
        };
        assert!(long.encode(&mut buf));
        match Event::decode(&buf).unwrap() {
            Event::ConfigRefused { reason } => assert_eq!(reason.len(), MAX_REASON),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_request_carries_no_path_or_argument() {
        // The attack: a compromised daemon names a program instead of a
        // command. Names are UCI names: no '/', no space, no NUL.
        for bad in ["/bin/sh", "../x", "a b", "", "x\0/bin/sh"] {
            let r = Request::Run {
                name: bad.into(),
                client: "laptop".into(),
                source: "192.0.2.9".parse().unwrap(),
            };
            assert!(!r.encode(&mut Vec::new()), "{bad:?} encoded");
        }
        for bytes in [
            &b"run\0/bin/sh\0laptop\x00192.0.2.9"[..],
            b"run\0wake\0laptop\x00192.0.2.9\0extra",
            b"run\0wake\0laptop",
            b"run\0wake\0laptop\0not-an-ip",
            b"exec\0/bin/sh",
            b"",
            b"run\0w\xffke\0laptop\x00192.0.2.9",
        ] {
            assert!(Request::decode(bytes).is_err(), "{bytes:?} decoded");
        }
        let long = vec![b'a'; MAX_MESSAGE + 1];
        assert!(Request::decode(&long).is_err());
    }

    fn hook_env(by: &str) -> GrantEnv {
        GrantEnv {
            event: HookEvent::Close,
            reason: HookReason::Expired,
            address: "2001:db8::7".parse().unwrap(),
            ports: [
                crate::port::PortSpec::tcp(22),
                crate::port::PortSpec::udp(53),
            ]
            .into_iter()
            .collect(),
            granted_by: by.try_into().unwrap(),
            duration_s: 30,
        }
    }

    #[test]
    fn hooks_round_trip_and_carry_only_checked_fields() {
        round_request(Request::Hook {
            name: "down".into(),
            env: hook_env("ssh"),
        });
        round_request(Request::Hook {
            name: "down".into(),
            env: hook_env("@sequence[3]"),
        });
        let mut buf = Vec::new();
        assert!(Request::Hook {
            name: "down".into(),
            env: hook_env("laptop"),
        }
        .encode(&mut buf));
        assert_eq!(
            buf,
            b"hook\0down\0close\0expired\0laptop\x002001:db8::7\0tcp:22 udp:53\x0030"
        );
        // A name or origin that is a path, and fields that are no port,
        // event, reason or number, are refused whole.
        for bad in ["/bin/sh", "@x[1", "@/[1]", "a b"] {
            let r = Request::Hook {
                name: "down".into(),
                env: hook_env("ssh"),
            };
            let mut r2 = r.clone();
            if let Request::Hook { env, .. } = &mut r2 {
                env.granted_by = bad.try_into().unwrap();
            }
            assert!(!r2.encode(&mut Vec::new()), "{bad:?} encoded");
        }
        for bytes in [
            &b"hook\0/bin/sh\0open\0granted\0ssh\x00192.0.2.9\0tcp:22\x0030"[..],
            b"hook\0up\0opened\0granted\0ssh\x00192.0.2.9\0tcp:22\x0030",
            b"hook\0up\0open\0because\0ssh\x00192.0.2.9\0tcp:22\x0030",
            b"hook\0up\0open\0granted\0ssh\x00192.0.2.9\0tcp:22;rm\x0030",
            b"hook\0up\0open\0granted\0ssh\x00192.0.2.9\0tcp:22\0x",
            b"hook\0up\0open\0granted\0ssh\x00192.0.2.9\0tcp:22",
        ] {
            assert!(Request::decode(bytes).is_err(), "{bytes:?} decoded");
        }
    }

    #[test]
    fn long_reasons_are_cut_and_nuls_replaced() {
        let mut buf = Vec::new();
        let e = Event::NotStarted {
            name: "wake".into(),
            client: "laptop".into(),
            reason: format!("a\0b{}", "é".repeat(MAX_REASON)),
        };
        assert!(e.encode(&mut buf));
        assert!(buf.len() <= MAX_MESSAGE);
        match Event::decode(&buf).unwrap() {
            Event::NotStarted { reason, .. } => {
                assert!(reason.starts_with("a b"));
                assert!(reason.len() <= MAX_REASON);
            }
            other => panic!("{other:?}"),
        }
        assert!(Event::decode(b"started\0wake\0laptop\x00192.0.2.9\0-1").is_err());
    }
}
