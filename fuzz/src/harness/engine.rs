//! Target `engine`: the engine fed a fuzz-chosen sequence of frames,
//! observations, SPA packets, clock steps and ticks.
//!
//! Two configurations (first byte, bit 0):
//! * locked: only SPA clients whose keys the harness never seals with. Any
//!   `Open` or `Close` decision, or a refusal that claims authentication, is a
//!   failure: a byte stream without the key must never grant.
//! * open: five knock sequences (overlapping prefixes, repeated steps, a
//!   one-step sequence) and the `spa` target's clients. Every sequence
//!   decision must be backed by the source's own knocks: the sequence's steps
//!   are a subsequence of what that source sent to the matcher within the
//!   timeout, ending with this packet. Every SPA decision must be a packet the
//!   harness sealed under that client's key, asking for exactly what was
//!   decided, accepted at most once.
//!
//! Both clocks only move forward (a wall clock stepping back past `max_skew`
//! is outside what the replay cache promises; see fuzz/README.md).

use core::net::IpAddr;
use core::time::Duration;
use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use postern::config::{self, Action, Config};
use postern::engine::{Decision, Engine, Origin};
use postern::port::{L4Proto, PortSpec};
use postern::spa::seal::{MAX_PACKET_LEN, NONCE_LEN};
use postern::spa::{self, Kind, RequestRepr, Target};
use postern::time::{Millis, Now};
use postern::wire::{observe, Checksums, Observation, TcpFlags};

use super::input::Input;
use super::net;
use super::spa::{action_index, clients_uci, key, source, LAPTOP, NAMES, OLD, PHONE, STRANGER};

const SEQUENCES: &str = "config sequence 'ssh'\n\tlist knock tcp:7000\n\tlist knock udp:8000\n\tlist knock tcp:9000\n\toption timeout 10\n\tlist open tcp:22\n\n\
config sequence 'ssh_close'\n\tlist knock tcp:9000\n\tlist knock udp:8000\n\tlist knock tcp:7000\n\toption action close\n\tlist close tcp:22\n\n\
config sequence 'one'\n\tlist knock udp:5000\n\tlist open tcp:80\n\n\
config sequence 'rep'\n\tlist knock udp:6000\n\tlist knock udp:6001\n\tlist knock udp:6000\n\tlist knock udp:6001\n\toption timeout 5\n\tlist open tcp:8080\n\n\
config sequence 'prefix'\n\tlist knock tcp:7000\n\tlist knock udp:8000\n\tlist knock udp:8001\n\toption timeout 3600\n\tlist open tcp:8443\n";

/// The SPA port of both configurations.
const SPA_PORT: u16 = 62201;

fn open_config() -> &'static Config {
    static C: OnceLock<Config> = OnceLock::new();
    C.get_or_init(|| {
        let text = format!(
            "config postern\n\toption max_skew 120\n\n{SEQUENCES}\n{}",
            clients_uci()
        );
        config::parse_str("engine-open.conf", &text).expect("valid")
    })
}

fn locked_config() -> &'static Config {
    static C: OnceLock<Config> = OnceLock::new();
    C.get_or_init(|| {
        let text = format!(
            "config postern\n\toption max_skew 120\n\nconfig client 'a'\n\toption key '{}'\n\tlist allow tcp:22\n\n\
             config client 'b'\n\toption key '{}'\n\tlist allow tcp:22\n\tlist allow udp:53\n\tlist source 192.0.2.0/24\n",
            key(0x55).to_base64(),
            key(0x66).to_base64()
        );
        config::parse_str("engine-locked.conf", &text).expect("valid")
    })
}

/// Ports the harness likes to knock on.
const PORTS: [PortSpec; 11] = [
    PortSpec::tcp(7000),
    PortSpec::udp(8000),
    PortSpec::tcp(9000),
    PortSpec::udp(5000),
    PortSpec::udp(6000),
    PortSpec::udp(6001),
    PortSpec::udp(8001),
    PortSpec::tcp(22),
    PortSpec::udp(SPA_PORT),
    PortSpec::udp(7000),
    PortSpec::tcp(8000),
];

/// Ports an SPA request may ask for.
const SPA_PORTS: [PortSpec; 4] = [
    PortSpec::tcp(22),
    PortSpec::udp(53),
    PortSpec::tcp(443),
    PortSpec::tcp(80),
];

/// What the harness knows, to judge decisions.
struct World {
    locked: bool,
    /// Packets that reached the knock matcher: (time, source, port).
    knocks: Vec<(Millis, IpAddr, PortSpec)>,
    /// Nonce → (key byte, request) of every packet the harness sealed.
    sealed: HashMap<[u8; NONCE_LEN], (u8, RequestRepr)>,
    /// SPA packets in sealing order (for replays).
    packets: Vec<Vec<u8>>,
    /// Nonces of accepted SPA packets.
    accepted: HashSet<[u8; NONCE_LEN]>,
    opened: u64,
    closed: u64,
    /// Run and Forward decisions seen.
    ran: u64,
    forwarded: u64,
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let _ = run_counting(data);
}

/// Runs one input; returns the (open, close) decisions it caused.
pub fn run_counting(data: &[u8]) -> (u64, u64) {
    let [opened, closed, _, _] = run_all_counts(data);
    (opened, closed)
}

/// Runs one input; returns the open, close, run and forward decisions it caused.
pub fn run_all_counts(data: &[u8]) -> [u64; 4] {
    let mut input = Input::new(data);
    let locked = input.u8() & 1 == 1;
    let cfg = if locked {
        locked_config()
    } else {
        open_config()
    };
    let mut engine = Engine::new(cfg);
    let mut world = World {
        locked,
        knocks: Vec::new(),
        sealed: HashMap::new(),
        packets: Vec::new(),
        accepted: HashSet::new(),
        opened: 0,
        closed: 0,
        ran: 0,
        forwarded: 0,
    };
    let mut now = Now {
        mono: Millis(1_000_000),
        unix: 1_800_000_000,
    };
    let mut frames = 0u64;
    let mut ops = 0;
    while !input.is_empty() && ops < 512 {
        ops += 1;
        match input.u8() % 8 {
            0 => {
                let step = u64::from(input.u16()) * if input.u8() & 1 == 0 { 1 } else { 97 };
                now.mono = Millis(now.mono.0 + step);
                now.unix += step / 1000;
            }
            1 => now.unix += u64::from(input.u8()),
            2 => engine.on_tick(now.mono),
            3 => {
                // A knock-shaped observation.
                let src = pick_source(&mut input);
                let port = pick_port(&mut input);
                let flags = input.u8();
                let payload = input.chunk();
                let obs = Observation {
                    src,
                    dst: dst_for(src),
                    proto: port.proto,
                    src_port: input.u16(),
                    dst_port: port.port,
                    tcp_flags: TcpFlags(flags),
                    payload,
                };
                world.feed(&mut engine, cfg, now, &obs);
            }
            4 => {
                // The same as a frame (or a raw frame), through the wire parser.
                let frame = if input.u8() & 1 == 0 {
                    let src = pick_source(&mut input);
                    let port = pick_port(&mut input);
                    let (flags, payload) = (input.u8(), input.chunk());
                    net::frame(
                        src,
                        dst_for(src),
                        port.proto.number(),
                        40000,
                        port.port,
                        flags,
                        payload,
                    )
                } else {
                    input.chunk().to_vec()
                };
                frames += 1;
                world.frame(&mut engine, cfg, now, &frame);
            }
            5 => {
                let packet = world.seal(&mut input, now);
                let src = pick_source(&mut input);
                world.spa(
                    &mut engine,
                    cfg,
                    now,
                    src,
                    &packet,
                    input.u8() & 1 == 1,
                    &mut frames,
                );
            }
            6 => {
                // Replay an earlier packet, maybe from elsewhere.
                if world.packets.is_empty() {
                    continue;
                }
                let i = usize::from(input.u8()) % world.packets.len();
                let packet = world.packets[i].clone();
                let src = pick_source(&mut input);
                world.spa(
                    &mut engine,
                    cfg,
                    now,
                    src,
                    &packet,
                    input.u8() & 1 == 1,
                    &mut frames,
                );
            }
            _ => {
                // Junk on the SPA port.
                let src = pick_source(&mut input);
                let packet = input.chunk().to_vec();
                world.spa(
                    &mut engine,
                    cfg,
                    now,
                    src,
                    &packet,
                    input.u8() & 1 == 1,
                    &mut frames,
                );
            }
        }
    }
    let c = engine.counters();
    assert_eq!(c.frames, frames);
    assert_eq!((c.opened, c.closed), (world.opened, world.closed));
    assert_eq!((c.commands, c.forwards), (world.ran, world.forwarded));
    assert!(engine.knocks_in_progress() <= postern::knock::KNOCK_TABLE_CAPACITY);
    [world.opened, world.closed, world.ran, world.forwarded]
}

fn pick_source(input: &mut Input<'_>) -> IpAddr {
    let b = input.u8();
    if b < 0xf0 {
        source(b)
    } else {
        IpAddr::from(input.u32().to_be_bytes())
    }
}

fn pick_port(input: &mut Input<'_>) -> PortSpec {
    let b = input.u8();
    match PORTS.get(usize::from(b)) {
        Some(p) => *p,
        None if b & 1 == 0 => PortSpec::tcp(input.u16()),
        None => PortSpec::udp(input.u16()),
    }
}

fn dst_for(src: IpAddr) -> IpAddr {
    match src {
        IpAddr::V4(_) => "198.51.100.1".parse().unwrap(),
        IpAddr::V6(_) => "2001:db8:1::1".parse().unwrap(),
    }
}

impl World {
    /// Seals a fuzz-shaped request under a key the harness picks.
    fn seal(&mut self, input: &mut Input<'_>, now: Now) -> Vec<u8> {
        let k = [LAPTOP, PHONE, OLD, STRANGER][usize::from(input.u8()) % 4];
        let b = input.u8();
        // Bits 0 and 6: open, close, command, forward.
        let kind = [Kind::Open, Kind::Close, Kind::Command, Kind::Forward]
            [usize::from(b & 1 | (b >> 5) & 2)];
        let duration = match kind {
            Kind::Open | Kind::Forward => {
                (u32::from(input.u8()) * if b & 2 == 0 { 1 } else { 5 }).max(1)
            }
            Kind::Close | Kind::Command => 0,
        };
        let target = match input.u8() % 4 {
            // A command runs for the source only (other targets do not parse).
            1 if kind != Kind::Command => Target::Addr(pick_source(input)),
            _ => Target::Source,
        };
        let (ports, name) = if kind.has_name() {
            let name = NAMES[usize::from(input.u8()) % NAMES.len()];
            (
                heapless::Vec::new(),
                heapless::String::try_from(name).unwrap(),
            )
        } else {
            let n = 1 + usize::from(input.u8()) % 3;
            let ports = (0..n)
                .map(|_| SPA_PORTS[usize::from(input.u8()) % SPA_PORTS.len()])
                .collect();
            (ports, heapless::String::new())
        };
        let delta = i64::from(input.u8() as i8) * 2;
        let repr = RequestRepr {
            kind,
            timestamp: now.unix.saturating_add_signed(delta),
            duration,
            target,
            ports,
            name,
        };
        // Unique per packet, so the harness's nonce map is exact.
        let mut random = [0u8; spa::prefilter::RANDOM_LEN];
        random[..8].copy_from_slice(&(self.packets.len() as u64).to_be_bytes());
        random[8] = input.u8();
        let nonce: [u8; NONCE_LEN] = spa::seal::nonce_for(&key(k), &random);
        let padding = input.bytes(usize::from(input_len_hint(b)));
        let mut out = [0u8; MAX_PACKET_LEN];
        let len = spa::seal::seal(&key(k), &random, &repr, padding, &mut out).expect("fits");
        self.sealed.insert(nonce, (k, repr));
        self.packets.push(out[..len].to_vec());
        out[..len].to_vec()
    }

    /// Sends an SPA payload as an observation or as a frame.
    #[allow(clippy::too_many_arguments)]
    fn spa(
        &mut self,
        engine: &mut Engine,
        cfg: &Config,
        now: Now,
        src: IpAddr,
        payload: &[u8],
        as_frame: bool,
        frames: &mut u64,
    ) {
        if as_frame {
            let frame = net::frame(src, dst_for(src), net::UDP, 40000, SPA_PORT, 0, payload);
            *frames += 1;
            self.frame(engine, cfg, now, &frame);
        } else {
            let obs = Observation {
                src,
                dst: dst_for(src),
                proto: L4Proto::Udp,
                src_port: 40000,
                dst_port: SPA_PORT,
                tcp_flags: TcpFlags(0),
                payload,
            };
            self.feed(engine, cfg, now, &obs);
        }
    }

    fn frame(&mut self, engine: &mut Engine, cfg: &Config, now: Now, frame: &[u8]) {
        let obs = observe(frame, Checksums::Verify).ok();
        if let Some(o) = &obs {
            self.note(o, now);
        }
        let mut check = |d: Decision<'_>| match &obs {
            Some(o) => self.judge(cfg, now, o, d),
            None => panic!("a decision from a frame the wire parser refuses: {d:?}"),
        };
        engine.on_frame(now, frame, Checksums::Verify, &mut check);
    }

    fn feed(&mut self, engine: &mut Engine, cfg: &Config, now: Now, obs: &Observation<'_>) {
        self.note(obs, now);
        engine.on_observation(now, obs, &mut |d| self.judge(cfg, now, obs, d));
    }

    /// Records a packet that the matcher sees.
    fn note(&mut self, obs: &Observation<'_>, now: Now) {
        let spa = obs.proto == L4Proto::Udp && obs.dst_port == SPA_PORT;
        let not_syn = obs.proto == L4Proto::Tcp && !obs.tcp_flags.is_initial_syn();
        if !spa && !not_syn {
            let port = PortSpec {
                proto: obs.proto,
                port: obs.dst_port,
            };
            self.knocks.push((now.mono, obs.src, port));
        }
    }

    /// Checks one decision against what the harness knows.
    fn judge(&mut self, cfg: &Config, now: Now, obs: &Observation<'_>, d: Decision<'_>) {
        let (by, addr, ports, open, duration, record) = match d {
            Decision::Refuse { src, refused } => {
                assert_eq!(src, obs.src);
                assert_eq!(
                    refused.client.is_some(),
                    refused.reason.authenticated(),
                    "{refused:?}"
                );
                assert!(
                    !(self.locked && refused.reason.authenticated()),
                    "locked config authenticated a packet: {refused:?}"
                );
                return;
            }
            // Failures past the threshold ban the packet's own source's
            // network, never a link-local, multicast or special source.
            Decision::Ban { net, .. } => {
                assert!(net.contains(obs.src.to_canonical()), "{net} {}", obs.src);
                assert!(!postern::bans::is_never_banned_address(obs.src));
                return;
            }
            Decision::Open {
                addr,
                by,
                ports,
                duration,
                record,
            } => (by, addr, ports, true, duration, record),
            Decision::Close {
                addr,
                by,
                ports,
                record,
            } => (by, addr, ports, false, Duration::ZERO, record),
            Decision::Run {
                command,
                by,
                record,
            } => {
                assert!(
                    !self.locked,
                    "the locked configuration ran a command: {d:?}"
                );
                self.ran += 1;
                let repr = self.sealed_request(by, record, obs, Kind::Command, command, cfg);
                assert_eq!(repr.target, Target::Source);
                return;
            }
            Decision::Forward {
                addr,
                forward,
                by,
                duration,
                record,
            } => {
                assert!(!self.locked, "the locked configuration forwarded: {d:?}");
                self.forwarded += 1;
                let repr = self.sealed_request(by, record, obs, Kind::Forward, forward, cfg);
                assert_eq!(duration.as_secs(), u64::from(repr.duration));
                let want = match repr.target {
                    Target::Source => obs.src,
                    Target::Addr(a) => a,
                };
                assert_eq!(addr, want);
                return;
            }
        };
        assert!(!self.locked, "the locked configuration granted: {d:?}");
        if open {
            self.opened += 1;
        } else {
            self.closed += 1;
        }
        match by {
            Origin::Sequence(name) => {
                assert_eq!(addr, obs.src);
                assert!(record.is_none());
                let s = cfg
                    .active_sequences()
                    .find(|s| s.name == name)
                    .expect("a configured sequence");
                assert_eq!(s.action == Action::Open, open);
                assert_eq!(ports, &s.ports[..]);
                if open {
                    assert_eq!(duration, s.duration);
                }
                assert!(
                    self.knocked(obs.src, &s.knocks, s.timeout, now.mono),
                    "{name} completed without its knocks"
                );
            }
            Origin::Encoded(name) | Origin::KnockClient { name, .. } => {
                panic!("{name}: the harness configures no encoded or authenticated knocks")
            }
            Origin::Client { name, from } => {
                assert_eq!(from, obs.src);
                let record = record.expect("an SPA decision carries its replay record");
                let (k, repr) = self
                    .sealed
                    .get(&record.nonce)
                    .expect("a grant for a packet the harness never sealed");
                let expected_name = match *k {
                    LAPTOP => "laptop",
                    PHONE => "phone",
                    _ => panic!("{name} granted for a packet sealed with key {k:#x}"),
                };
                assert_eq!(name, expected_name);
                assert_eq!(repr.kind == Kind::Open, open);
                assert_eq!(ports, &repr.ports[..]);
                assert_eq!(record.timestamp, repr.timestamp);
                if open {
                    assert_eq!(duration.as_secs(), u64::from(repr.duration));
                }
                let want = match repr.target {
                    Target::Source => obs.src,
                    Target::Addr(a) => a,
                };
                assert_eq!(addr, want);
                assert!(
                    self.accepted.insert(record.nonce),
                    "an SPA packet accepted twice"
                );
            }
        }
    }

    /// Checks a Run or Forward decision: `by` a client whose key sealed the
    /// packet `record` names, asking for `kind` and the name at `index` of the
    /// enabled commands or forwards, which the client lists; the packet is
    /// accepted only once. Returns the sealed request.
    fn sealed_request(
        &mut self,
        by: Origin<'_>,
        record: Option<postern::spa::ReplayEntry>,
        obs: &Observation<'_>,
        kind: Kind,
        index: usize,
        cfg: &Config,
    ) -> RequestRepr {
        let Origin::Client { name, from } = by else {
            panic!("a {kind:?} decision not from an SPA client: {by:?}");
        };
        assert_eq!(from, obs.src);
        let record = record.expect("an SPA decision carries its replay record");
        let (k, repr) = self
            .sealed
            .get(&record.nonce)
            .expect("a decision for a packet the harness never sealed")
            .clone();
        let expected_name = match k {
            LAPTOP => "laptop",
            PHONE => "phone",
            _ => panic!("{name} accepted a packet sealed with key {k:#x}"),
        };
        assert_eq!(name, expected_name);
        assert_eq!(repr.kind, kind);
        assert_eq!(record.timestamp, repr.timestamp);
        assert_eq!(
            action_index(cfg, k, kind, &repr.name),
            Some(index),
            "the decision's index is the sealed name, listed by the client"
        );
        if kind == Kind::Forward {
            let max = if k == LAPTOP { 300 } else { 60 };
            assert!(u64::from(repr.duration) <= max, "longer than max_duration");
        }
        assert!(
            self.accepted.insert(record.nonce),
            "an SPA packet accepted twice"
        );
        repr
    }

    /// Did `src` send `steps` in order (not necessarily adjacent) within
    /// `timeout`, the last one being the packet just seen?
    fn knocked(&self, src: IpAddr, steps: &[PortSpec], timeout: Duration, now: Millis) -> bool {
        let mut want = steps.iter().rev().peekable();
        let mine = self.knocks.iter().rev().filter(|k| k.1 == src);
        for (i, (t, _, port)) in mine.enumerate() {
            if u128::from(now.since(*t)) > timeout.as_millis() {
                break;
            }
            if i == 0 && Some(port) != steps.last() {
                return false;
            }
            if want.peek() == Some(&port) {
                want.next();
            }
            if want.peek().is_none() {
                return true;
            }
        }
        false
    }
}

/// Padding length for a sealed request (kept short: the packet must fit).
fn input_len_hint(b: u8) -> u8 {
    (b >> 2) % 48
}
