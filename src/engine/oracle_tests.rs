//! Attacks through side effects: an attacker without the key knocks
//! candidates and watches what the engine decides (a ban is visible from
//! outside: the guarded port stops answering, ping stops). If any decision
//! depends on whether a candidate was right, the attacker learns the secret
//! one knock (or symbol) at a time.
//!
//! Each attack below runs in full and must fail; and for each mode the
//! decision streams (and ban table) after a right and a wrong group of
//! candidates must be identical.

use super::*;
use crate::knock::hmac::HmacKey;
use crate::knock::totp::{self, TotpShape};
use crate::wire::TcpFlags;
use core::net::{Ipv4Addr, Ipv6Addr};

const KEY7: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";
const UNIX: u64 = 1_800_000_010;
/// The default ban threshold: the group size the attacker uses.
const T: usize = crate::bans::DEFAULT_BAN_THRESHOLD as usize;

/// Where the attacker's packets come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sources {
    /// A fresh address of one IPv6 /64 for every probe (the reported attack).
    OneSlash64,
    /// A fresh /64 for every probe (an attacker with many networks).
    ManyNetworks,
}

/// The engine under attack, with its own clock.
struct Target {
    e: Engine,
    mono: u64,
    hosts: u64,
    sources: Sources,
    /// Knocks sent.
    sent: usize,
}

impl Target {
    fn new(cfg: &Config, sources: Sources) -> Target {
        Target {
            e: Engine::new(cfg),
            mono: 1_000,
            hosts: 0,
            sources,
            sent: 0,
        }
    }

    /// A source the attacker has not used yet.
    fn fresh(&mut self) -> IpAddr {
        self.hosts += 1;
        let n = self.hosts;
        IpAddr::V6(match self.sources {
            Sources::OneSlash64 => Ipv6Addr::new(
                0x2001,
                0xdb8,
                7,
                7,
                (n >> 48) as u16,
                (n >> 32) as u16,
                (n >> 16) as u16,
                n as u16,
            ),
            Sources::ManyNetworks => {
                Ipv6Addr::new(0x2001, 0xdb8, (n >> 16) as u16, n as u16, 0, 0, 0, 1)
            }
        })
    }

    /// One knock; the decisions it caused.
    fn knock(&mut self, src: IpAddr, port: PortSpec) -> Vec<String> {
        self.mono += 1;
        self.sent += 1;
        let obs = Observation {
            src,
            dst: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            proto: port.proto,
            src_port: 40000,
            dst_port: port.port,
            tcp_flags: TcpFlags(TcpFlags::SYN),
            payload: &[],
        };
        let now = Now {
            mono: Millis(self.mono),
            unix: UNIX,
        };
        let mut out = Vec::new();
        self.e
            .on_observation(now, &obs, &mut |d| out.push(format!("{d:?}")));
        out
    }

    /// Knocks `ports` in order from `src`; all decisions.
    fn knocks(&mut self, src: IpAddr, ports: &[PortSpec]) -> Vec<String> {
        ports.iter().flat_map(|&p| self.knock(src, p)).collect()
    }
}

fn banned(decisions: &[String]) -> bool {
    decisions.iter().any(|d| d.starts_with("Ban"))
}

fn opened(decisions: &[String]) -> bool {
    decisions.iter().any(|d| d.starts_with("Open"))
}

/// Group testing through the ban oracle: `probe(target, group)` knocks every
/// candidate of the group (exactly [`T`] of them) from one fresh source and
/// returns its decisions; the attacker believes the group holds a right
/// candidate when no ban came. Returns a candidate believed right, and
/// whether an open was seen on the way.
fn find_right(
    t: &mut Target,
    candidates: &[u16],
    probe: &mut impl FnMut(&mut Target, &[u16]) -> Vec<String>,
) -> (Option<u16>, bool) {
    let mut wrong: Vec<u16> = Vec::new();
    let mut hits: Vec<Vec<u16>> = Vec::new();
    for chunk in candidates.chunks(T) {
        let mut group = chunk.to_vec();
        // The last chunk is padded with candidates already known wrong.
        group.extend(wrong.iter().take(T - group.len()));
        let d = probe(t, &group);
        if opened(&d) {
            return (None, true);
        }
        if banned(&d) {
            wrong.extend_from_slice(chunk);
        } else {
            hits.push(chunk.to_vec());
        }
    }
    let Some(hit) = hits.first() else {
        return (None, false);
    };
    if wrong.len() < T {
        // Every group looked right: no oracle. Guess the first.
        return (hit.first().copied(), false);
    }
    for &c in hit {
        let mut group = vec![c];
        group.extend(wrong.iter().take(T - 1));
        let d = probe(t, &group);
        if opened(&d) {
            return (Some(c), true);
        }
        if !banned(&d) {
            return (Some(c), false);
        }
    }
    (hit.first().copied(), false)
}

// ---------------------------------------------------------------------------
// TOTP

/// A TOTP sequence in the old default shape (knock_range 1024, length 4:
/// 256 ports per band), default ban settings.
fn totp_config() -> Config {
    let text = format!(
        "config sequence 'otp'\n\toption key '{KEY7}'\n\toption knock_base '20000'\n\
         \toption knock_range '24000'\n\toption length '4'\n\tlist open 'tcp:22'\n"
    );
    let mut cfg = crate::config::parse_str("t", &text).unwrap();
    // The shape main shipped as its default (refused by today's config check).
    cfg.knock_modes.totp[0].shape.range = 1024;
    cfg
}

fn totp_shape(cfg: &Config) -> TotpShape {
    cfg.knock_modes.totp[0].shape
}

/// Learns the sequence band by band through the ban oracle; true when the
/// engine opened for the attacker.
fn totp_attack(sources: Sources) -> (bool, Vec<u16>, usize) {
    let cfg = totp_config();
    let shape = totp_shape(&cfg);
    let mut t = Target::new(&cfg, sources);
    let mut known: Vec<u16> = Vec::new();
    for band in 0..shape.length {
        let first = shape.base + u16::from(band) * shape.band();
        let candidates: Vec<u16> = (first..first + shape.band()).collect();
        let prefix = known.clone();
        let mut probe = |t: &mut Target, group: &[u16]| {
            let src = t.fresh();
            let mut d = Vec::new();
            for &c in group {
                let mut ks: Vec<PortSpec> = prefix.iter().map(|&p| PortSpec::tcp(p)).collect();
                ks.push(PortSpec::tcp(c));
                d.extend(t.knocks(src, &ks));
            }
            d
        };
        let (right, open) = find_right(&mut t, &candidates, &mut probe);
        if open {
            return (true, known, t.sent);
        }
        match right {
            Some(c) => known.push(c),
            None => return (false, known, t.sent),
        }
    }
    let src = t.fresh();
    let ks: Vec<PortSpec> = known.iter().map(|&p| PortSpec::tcp(p)).collect();
    let d = t.knocks(src, &ks);
    (opened(&d), known, t.sent)
}

#[test]
fn totp_sequence_cannot_be_learned_through_bans() {
    for sources in [Sources::OneSlash64, Sources::ManyNetworks] {
        let (open, learned, sent) = totp_attack(sources);
        assert!(
            !open,
            "{sources:?}: the attacker learned the TOTP sequence {learned:?} without the key \
             and opened the guarded port, with {sent} knocks"
        );
    }
}

#[test]
fn totp_right_and_wrong_first_knocks_decide_the_same() {
    let cfg = totp_config();
    let shape = totp_shape(&cfg);
    let key = HmacKey::new(cfg.knock_modes.totp[0].key.as_bytes());
    let right = totp::sequence(&key, &shape, shape.step_at(UNIX))[0];
    let wrong = (shape.base..shape.base + shape.band())
        .find(|p| {
            (0..3).all(|j| totp::sequence(&key, &shape, shape.step_at(UNIX) - 1 + j)[0] != *p)
        })
        .unwrap();
    // Groups of T candidates: all wrong, or one right among them. Then the
    // same group again and again from the same source.
    let run = |group: &[u16]| {
        let mut t = Target::new(&cfg, Sources::OneSlash64);
        let src = t.fresh();
        let mut d = Vec::new();
        for _ in 0..5 {
            for &p in group {
                d.extend(t.knock(src, PortSpec::tcp(p)));
            }
        }
        (d, t.e.bans().len(), t.e.counters().bans)
    };
    let filler: Vec<u16> = (shape.base..shape.base + shape.band())
        .filter(|p| {
            (0..3).all(|j| totp::sequence(&key, &shape, shape.step_at(UNIX) - 1 + j)[0] != *p)
        })
        .take(T - 1)
        .collect();
    let mut with_right = filler.clone();
    with_right.insert(T / 2, right);
    let mut all_wrong = filler.clone();
    all_wrong.insert(T / 2, wrong);
    assert_eq!(
        run(&with_right),
        run(&all_wrong),
        "a group holding the right first knock and one without are told apart"
    );
    // The second knock as well: right prefix, then right or wrong second knock.
    let seq = totp::sequence(&key, &shape, shape.step_at(UNIX));
    let second_wrong = (seq[1]..shape.base + 2 * shape.band())
        .chain(shape.base + shape.band()..seq[1])
        .find(|p| *p != seq[1])
        .unwrap();
    let pairs = |second: u16| {
        let mut t = Target::new(&cfg, Sources::OneSlash64);
        let src = t.fresh();
        let mut d = Vec::new();
        for _ in 0..T + 2 {
            d.extend(t.knocks(src, &[PortSpec::tcp(seq[0]), PortSpec::tcp(second)]));
        }
        (d, t.e.bans().len())
    };
    assert_eq!(pairs(seq[1]), pairs(second_wrong));
}

// ---------------------------------------------------------------------------
// Static sequences

/// A static sequence; the attacker knows (or guessed) its first step.
fn static_config() -> Config {
    crate::config::parse_str(
        "t",
        "config sequence 'ssh'\n\tlist knock 'tcp:7000'\n\tlist knock 'tcp:8123'\n\
         \tlist knock 'tcp:8765'\n\tlist open 'tcp:22'\n",
    )
    .unwrap()
}

/// Learns step 2 through the ban oracle, then step 3 by trying each port
/// (the open is the signal). After the known first step, a right candidate
/// makes progress that the next first-step knock resets (a failure); a wrong
/// one is a port of no sequence, ignored (and the next first-step knock a
/// duplicate). Each group is knocked [`T`] + 1 times, so a group holding the
/// right candidate bans.
fn static_attack(sources: Sources) -> (bool, Vec<u16>, usize) {
    let cfg = static_config();
    let mut t = Target::new(&cfg, sources);
    let candidates: Vec<u16> = (8000..9000).collect();
    let rounds = |t: &mut Target, group: &[u16]| {
        let src = t.fresh();
        let mut d = Vec::new();
        // T + 1 rounds: the progress of the last one is never reset.
        for _ in 0..=T {
            for &c in group {
                d.extend(t.knocks(src, &[PortSpec::tcp(7000), PortSpec::tcp(c)]));
            }
        }
        d
    };
    let mut second = None;
    'search: for chunk in candidates.chunks(T) {
        if banned(&rounds(&mut t, chunk)) {
            for &c in chunk {
                if banned(&rounds(&mut t, &[c])) {
                    second = Some(c);
                    break 'search;
                }
            }
        }
    }
    let Some(second) = second else {
        return (false, vec![7000], t.sent);
    };
    let mut src = t.fresh();
    for (i, &c) in candidates.iter().enumerate() {
        if i % (T - 1) == 0 {
            src = t.fresh(); // each wrong try is one reset: move on before a ban
        }
        let d = t.knocks(
            src,
            &[PortSpec::tcp(7000), PortSpec::tcp(second), PortSpec::tcp(c)],
        );
        if opened(&d) {
            return (true, vec![7000, second, c], t.sent);
        }
    }
    (false, vec![7000, second], t.sent)
}

#[test]
fn static_sequence_cannot_be_learned_through_bans() {
    for sources in [Sources::OneSlash64, Sources::ManyNetworks] {
        let (open, learned, sent) = static_attack(sources);
        assert!(
            !open,
            "{sources:?}: the attacker learned the static sequence {learned:?} step by step \
             and opened the guarded port, with {sent} knocks"
        );
    }
}

#[test]
fn static_right_and_wrong_steps_decide_the_same() {
    let cfg = static_config();
    let run = |second: u16| {
        let mut t = Target::new(&cfg, Sources::OneSlash64);
        let src = t.fresh();
        let mut d = Vec::new();
        for _ in 0..2 * T {
            d.extend(t.knocks(src, &[PortSpec::tcp(7000), PortSpec::tcp(second)]));
        }
        (d, t.e.bans().len(), t.e.counters().bans)
    };
    // 8123 is step 2; 8124 is no knock port; 8765 is a knock port, but not step 2.
    assert_eq!(run(8123), run(8124));
    assert_eq!(run(8123), run(8765));
}

// ---------------------------------------------------------------------------
// Encoded sequences

/// An encoded profile whose frame (header 7, footer 3) is the secret part
/// of the layout; tcp:143 may be asked for.
fn encoded_config() -> Config {
    crate::config::parse_str(
        "t",
        "config encoded 'enc'\n\toption knock_base '45000'\n\tlist header 7\n\tlist footer 3\n\
         \toption port_digits 4\n\tlist allow 'tcp:143'\n",
    )
    .unwrap()
}

/// The knocks of a sequence with frame (`header`, `footer`) asking for `port`.
fn encoded_knocks(header: u8, footer: u8, port: u16) -> Vec<PortSpec> {
    let shape = crate::knock::encoded::EncodedShape {
        alphabet: crate::knock::window::Alphabet {
            base: 45000,
            width: 10,
        },
        header: [header].into_iter().collect(),
        footer: [footer].into_iter().collect(),
        port_digits: 4,
        duration_digits: 0,
    };
    let syms = shape.encode(port, 0).unwrap();
    shape.knocks(L4Proto::Tcp, &syms)
}

/// Learns the frame through the ban oracle: a sequence with the right frame
/// asking for a port not allowed is "not allowed" (no failure); a wrong
/// frame is "invalid" (a failure). Then finds the port.
fn encoded_attack(sources: Sources) -> (bool, Option<(u8, u8)>, usize) {
    let cfg = encoded_config();
    let mut t = Target::new(&cfg, sources);
    let mut frame = None;
    'search: for h in 0..10u8 {
        for f in 0..10u8 {
            let src = t.fresh();
            let mut d = Vec::new();
            for _ in 0..T {
                d.extend(t.knocks(src, &encoded_knocks(h, f, 9999)));
            }
            if !banned(&d) {
                frame = Some((h, f));
                break 'search;
            }
        }
    }
    let Some((h, f)) = frame else {
        return (false, None, t.sent);
    };
    for port in 1..1000 {
        let src = t.fresh();
        if opened(&t.knocks(src, &encoded_knocks(h, f, port))) {
            return (true, frame, t.sent);
        }
    }
    (false, frame, t.sent)
}

#[test]
fn encoded_frame_cannot_be_learned_through_bans() {
    for sources in [Sources::OneSlash64, Sources::ManyNetworks] {
        let (open, frame, sent) = encoded_attack(sources);
        assert!(
            !open,
            "{sources:?}: the attacker learned the encoded frame {frame:?} and opened, with {sent} knocks"
        );
    }
}

#[test]
fn encoded_right_and_wrong_frames_decide_the_same() {
    let cfg = encoded_config();
    let run = |h: u8| {
        let mut t = Target::new(&cfg, Sources::OneSlash64);
        let src = t.fresh();
        let mut d = Vec::new();
        for _ in 0..2 * T {
            d.extend(t.knocks(src, &encoded_knocks(h, 3, 9999)));
        }
        (d, t.e.bans().len(), t.e.counters().bans)
    };
    assert_eq!(run(7), run(6));
}

// ---------------------------------------------------------------------------
// Authenticated knocks

#[test]
fn authenticated_bad_tags_decide_nothing() {
    // A tag is all or nothing (64 bits over the whole window): a bad tag
    // tells nothing a missing grant would not. Still, no knock's correctness
    // feeds a ban, so spoofed junk cannot ban anyone either.
    let cfg = crate::config::parse_str(
        "t",
        "config client 'laptop'\n\toption key 'CAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAg='\n\
         \tlist allow 'tcp:2222'\n\toption knock_base '50000'\n",
    )
    .unwrap();
    let mut t = Target::new(&cfg, Sources::OneSlash64);
    let src = t.fresh();
    let mut d = Vec::new();
    for i in 0..(T * 12) as u16 {
        d.extend(t.knock(src, PortSpec::tcp(50000 + (i % 2) * 256 + i % 200)));
    }
    assert!(t.e.counters().auth.bad_tag >= T as u64);
    assert!(d.is_empty(), "{d:?}");
    assert_eq!(t.e.counters().bans.failures, 0);
}

// ---------------------------------------------------------------------------
// The volume limit: the one per-source effect of knocking

#[test]
fn volume_limit_ignores_right_and_wrong_knocks_alike() {
    let cfg = totp_config();
    let shape = totp_shape(&cfg);
    let key = HmacKey::new(cfg.knock_modes.totp[0].key.as_bytes());
    let limit = crate::knock::volume::DEFAULT_KNOCK_LIMIT as usize;
    let seq: Vec<PortSpec> = totp::sequence(&key, &shape, shape.step_at(UNIX))
        .iter()
        .map(|&p| PortSpec::tcp(p))
        .collect();
    // One /64 knocks `limit` times (junk, from many addresses), then the
    // right sequence from yet another address of it: ignored, as a wrong
    // one is. Another network still gets in.
    let run = |last: &[PortSpec]| {
        let mut t = Target::new(&cfg, Sources::OneSlash64);
        let mut d = Vec::new();
        for i in 0..limit {
            let src = t.fresh();
            d.extend(t.knock(src, PortSpec::tcp(shape.base + (i % 7) as u16)));
        }
        let src = t.fresh();
        d.extend(t.knocks(src, last));
        let c = t.e.counters().volume;
        let other = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1));
        let mut o = Target {
            sources: Sources::ManyNetworks,
            ..t
        };
        let elsewhere = o.knocks(other, &seq);
        (d, c, elsewhere.len())
    };
    let wrong: Vec<PortSpec> = seq.iter().map(|p| PortSpec::tcp(p.port ^ 1)).collect();
    let (right_d, right_c, right_other) = run(&seq);
    assert_eq!((right_d.clone(), right_c), {
        let (d, c, _) = run(&wrong);
        (d, c)
    });
    assert!(right_d.is_empty(), "{right_d:?}");
    assert_eq!(right_c.limited, seq.len() as u64);
    assert_eq!(right_other, 1, "another network opens");
}
