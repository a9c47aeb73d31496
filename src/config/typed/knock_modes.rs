//! The UCI side of the knock modes that carry information: `config sequence`
//! with a `key` (TOTP), `config encoded`, and `knock_*` options of `config
//! client`; and the checks that keep their port ranges apart from every other
//! knock port, guarded port and the SPA port. Validation only, no I/O.

use core::time::Duration;

use heapless::Vec as HVec;

use super::{
    acted_ports, anon_name, check_names, get_bool, get_choice, get_key, get_number, get_ports,
    get_secs, items, section_label, Checked, CheckedClient, Errors, ACTIONS,
};
use crate::config::uci::{Entry, Section};
use crate::config::{Action, ClientKnock, Encoded, Main, TotpSequence};
use crate::knock::encoded::{
    EncodedShape, MAX_DURATION_DIGITS, MAX_ENCODED, MAX_FRAME, MAX_PORT_DIGITS,
};
use crate::knock::totp::{
    TotpShape, ACCEPTED_STEPS, DEFAULT_LENGTH, DEFAULT_PERIOD, DEFAULT_RANGE, MAX_TOTP_LENGTH,
    MIN_BAND, MIN_STRENGTH_BITS,
};
use crate::knock::window::{Alphabet, MAX_WINDOW};
use crate::port::{L4Proto, PortRange, PortSpec};

/// Options of a TOTP `config sequence`.
pub(super) const TOTP_OPTIONS: &[&str] = &[
    "enabled",
    "key",
    "period",
    "length",
    "knock_base",
    "knock_range",
    "knock_proto",
    "timeout",
    "action",
    "open",
    "close",
    "duration",
    "on_open",
    "on_close",
];
/// Options of `config encoded`.
pub(super) const ENCODED_OPTIONS: &[&str] = &[
    "enabled",
    "knock_base",
    "width",
    "header",
    "footer",
    "port_digits",
    "duration_digits",
    "allow",
    "duration",
    "max_duration",
    "timeout",
];
const PROTOS: &[(&str, L4Proto)] = &[("tcp", L4Proto::Tcp), ("udp", L4Proto::Udp)];

/// A checked TOTP sequence with its line.
pub(super) struct CheckedTotp {
    pub(super) seq: TotpSequence,
    line: usize,
}

/// A checked encoded profile with its line.
pub(super) struct CheckedEncoded {
    pub(super) enc: Encoded,
    line: usize,
}

/// A checked client knock range with its line.
pub(super) struct CheckedClientKnock {
    pub(super) knock: ClientKnock,
    line: usize,
}

fn number(
    cx: &mut Errors,
    s: &Section,
    name: &str,
    default: u64,
    min: u64,
    max: u64,
) -> Option<u64> {
    s.get(name)
        .map_or(Some(default), |e| get_number(cx, e, min, max))
}

fn proto(cx: &mut Errors, s: &Section, name: &str) -> Option<L4Proto> {
    s.get(name)
        .map_or(Some(L4Proto::Tcp), |e| get_choice(cx, e, PROTOS))
}

/// Small numbers (symbols) of a list.
fn symbols(cx: &mut Errors, e: &Entry, below: u64) -> Option<HVec<u8, MAX_FRAME>> {
    let before = cx.count();
    let mut out = HVec::new();
    for (v, line) in items(cx, e) {
        match v.parse::<u64>() {
            Ok(n) if n < below && v.bytes().all(|b| b.is_ascii_digit()) => {
                if out.push(n as u8).is_err() {
                    cx.push(line, format!("{}: at most {MAX_FRAME} symbols", e.name));
                }
            }
            _ => cx.push(
                line,
                format!("{} '{v}' is not a symbol from 0 to {}", e.name, below - 1),
            ),
        }
    }
    (cx.count() == before).then_some(out)
}

/// A `config sequence` with a `key`.
pub(super) fn totp_sequence(cx: &mut Errors, s: &Section, index: usize) -> Option<CheckedTotp> {
    let label = section_label(s, index);
    let before = cx.count();
    check_names(cx, s, &label, TOTP_OPTIONS);
    let opt = |name: &str| s.get(name);
    let enabled = opt("enabled").and_then(|e| get_bool(cx, e)).unwrap_or(true);
    let key = opt("key").and_then(|e| get_key(cx, e));
    let period = number(cx, s, "period", DEFAULT_PERIOD, 5, 3600);
    let length = number(
        cx,
        s,
        "length",
        u64::from(DEFAULT_LENGTH),
        2,
        MAX_TOTP_LENGTH as u64,
    );
    let base = match opt("knock_base") {
        Some(e) => get_number(cx, e, 1, 65535),
        None => {
            let msg = format!(
                "{label} has a key but no knock_base: add option knock_base '40000' (the first port of its range)"
            );
            cx.push(s.line, msg);
            None
        }
    };
    let range = number(cx, s, "knock_range", u64::from(DEFAULT_RANGE), 2, 65535);
    let proto = proto(cx, s, "knock_proto");
    let timeout =
        opt("timeout").map_or(Some(Duration::from_secs(10)), |e| get_secs(cx, e, 1, 3600));
    let duration = opt("duration").map_or(Some(Duration::from_secs(30)), |e| {
        get_secs(cx, e, 1, 86_400)
    });
    let action = opt("action").map_or(Some(Action::Open), |e| get_choice(cx, e, ACTIONS));
    let ports = action.and_then(|a| acted_ports(cx, s, &label, a));
    if cx.count() != before {
        return None;
    }
    let shape = TotpShape {
        proto: proto?,
        base: base? as u16,
        range: range? as u16,
        length: length? as u8,
        period: period?,
    };
    let line = opt("knock_base").map_or(s.line, |e| e.line);
    if u32::from(shape.base) + u32::from(shape.range) - 1 > 65535 {
        let msg = format!(
            "{label}: knock_base {} + knock_range {} runs past port 65535",
            shape.base, shape.range
        );
        cx.push(line, msg);
        return None;
    }
    if shape.band() < MIN_BAND {
        let msg = format!(
            "{label}: knock_range {} gives each of the {} knocks only {} ports; give at least {} (length x {MIN_BAND})",
            shape.range,
            shape.length,
            shape.band(),
            u32::from(shape.length) * u32::from(MIN_BAND)
        );
        cx.push(line, msg);
        return None;
    }
    if let Some(msg) = weak_totp(&label, &shape) {
        let line = opt("knock_range")
            .or_else(|| opt("length"))
            .map_or(line, |e| e.line);
        cx.push(line, msg);
        return None;
    }
    Some(CheckedTotp {
        line,
        seq: TotpSequence {
            name: s.name.clone().unwrap_or_else(|| anon_name(&s.kind, index)),
            enabled,
            key: key?,
            shape,
            timeout: timeout?,
            action: action?,
            ports: ports?,
            duration: duration?,
        },
    })
}

/// Why a TOTP shape is too easy to guess, if it is (below [`MIN_STRENGTH_BITS`]).
pub(crate) fn weak_totp(label: &str, shape: &TotpShape) -> Option<String> {
    let bits = shape.strength_bits();
    if bits >= MIN_STRENGTH_BITS {
        return None;
    }
    let default = TotpShape {
        range: DEFAULT_RANGE,
        length: DEFAULT_LENGTH,
        ..*shape
    };
    Some(format!(
        "{label}: a guessed sequence succeeds once in 2^{bits:.1} tries ({} knocks x log2({} ports per band) - log2({ACCEPTED_STEPS} steps accepted) = {bits:.1} bits); at least {MIN_STRENGTH_BITS:.0} bits are needed: raise knock_range or length (the defaults, knock_range {DEFAULT_RANGE} and length {DEFAULT_LENGTH}, give {:.1} bits)",
        shape.length,
        shape.band(),
        default.strength_bits()
    ))
}

/// A `config encoded` section.
pub(super) fn encoded(cx: &mut Errors, s: &Section, index: usize) -> Option<CheckedEncoded> {
    let label = section_label(s, index);
    let before = cx.count();
    check_names(cx, s, &label, ENCODED_OPTIONS);
    let opt = |name: &str| s.get(name);
    let enabled = opt("enabled").and_then(|e| get_bool(cx, e)).unwrap_or(true);
    let base = match opt("knock_base") {
        Some(e) => get_number(cx, e, 1, 65535),
        None => {
            cx.push(
                s.line,
                format!("{label} has no knock_base: add option knock_base '45000'"),
            );
            None
        }
    };
    let width = number(cx, s, "width", 10, 10, 256);
    let below = width.unwrap_or(10);
    let header = opt("header").map_or(Some(HVec::new()), |e| symbols(cx, e, below));
    let footer = opt("footer").map_or(Some(HVec::new()), |e| symbols(cx, e, below));
    let port_digits = number(cx, s, "port_digits", 5, 1, u64::from(MAX_PORT_DIGITS));
    let duration_digits = number(
        cx,
        s,
        "duration_digits",
        0,
        0,
        u64::from(MAX_DURATION_DIGITS),
    );
    let allow = match opt("allow") {
        Some(e) => get_ports(cx, e).map(|v| v.into_iter().map(|(p, _)| p).collect::<Vec<_>>()),
        None => {
            let msg = format!("{label} may open nothing: add lines such as list allow 'tcp:143'");
            cx.push(s.line, msg);
            None
        }
    };
    let duration = opt("duration").map_or(Some(Duration::from_secs(30)), |e| {
        get_secs(cx, e, 1, 86_400)
    });
    let max_duration = opt("max_duration").map_or(Some(Duration::from_secs(3600)), |e| {
        get_secs(cx, e, 1, 86_400)
    });
    let timeout =
        opt("timeout").map_or(Some(Duration::from_secs(10)), |e| get_secs(cx, e, 1, 3600));
    if cx.count() != before {
        return None;
    }
    let shape = EncodedShape {
        alphabet: Alphabet {
            base: base? as u16,
            width: width? as u16,
        },
        header: header?,
        footer: footer?,
        port_digits: port_digits? as u8,
        duration_digits: duration_digits? as u8,
    };
    let line = opt("knock_base").map_or(s.line, |e| e.line);
    if shape.alphabet.last() > 65535 {
        let msg = format!(
            "{label}: knock_base {} + 2 x width {} runs past port 65535",
            shape.alphabet.base, shape.alphabet.width
        );
        cx.push(line, msg);
        return None;
    }
    if shape.len() > MAX_WINDOW {
        let msg = format!(
            "{label}: a sequence would be {} knocks; at most {MAX_WINDOW}",
            shape.len()
        );
        cx.push(s.line, msg);
        return None;
    }
    let allow = allow?;
    let too_big = 10u32.pow(u32::from(shape.port_digits));
    if let Some(p) = allow.iter().find(|p| u32::from(p.port) >= too_big) {
        let msg = format!(
            "{label}: allowed port {p} has more than port_digits {} digits",
            shape.port_digits
        );
        cx.push(opt("allow").map_or(s.line, |e| e.line), msg);
        return None;
    }
    Some(CheckedEncoded {
        line,
        enc: Encoded {
            name: s.name.clone().unwrap_or_else(|| anon_name(&s.kind, index)),
            enabled,
            shape,
            allow,
            duration: duration?,
            max_duration: max_duration?,
            timeout: timeout?,
        },
    })
}

/// The knock options of a `config client` (None when it has no `knock_base`).
pub(super) fn client_knock(cx: &mut Errors, s: &Section, name: &str) -> Option<CheckedClientKnock> {
    let Some(e) = s.get("knock_base") else {
        for o in ["knock_proto", "knock_timeout"] {
            if let Some(e) = s.get(o) {
                cx.push(e.line, format!("option {o} needs option knock_base"));
            }
        }
        return None;
    };
    if s.get("key").is_none() {
        cx.push(
            e.line,
            "authenticated knocks (knock_base) use the client's native key: add option key (postern keygen)".to_string(),
        );
    }
    let base = get_number(
        cx,
        e,
        1,
        65535 - u64::from(crate::knock::authenticated::RANGE) + 1,
    );
    let proto = proto(cx, s, "knock_proto");
    let timeout = s
        .get("knock_timeout")
        .map_or(Some(Duration::from_secs(10)), |e| get_secs(cx, e, 1, 3600));
    Some(CheckedClientKnock {
        line: e.line,
        knock: ClientKnock {
            client: name.to_string(),
            base: base? as u16,
            proto: proto?,
            timeout: timeout?,
        },
    })
}

/// Ranges of enabled knock modes against each other, static knock steps,
/// guarded ports and the SPA port; and the number of encoded profiles.
pub(super) fn cross_check(
    cx: &mut Errors,
    main: &Main,
    seqs: &[Checked],
    clients: &[CheckedClient],
    totp: &[CheckedTotp],
    encoded: &[CheckedEncoded],
    knocks: &[CheckedClientKnock],
) {
    if let Some(e) = encoded.iter().filter(|e| e.enc.enabled).nth(MAX_ENCODED) {
        cx.push(
            e.line,
            format!("too many enabled encoded profiles: at most {MAX_ENCODED}"),
        );
    }
    let mut ranges: Vec<(PortRange, String, usize)> = Vec::new();
    for t in totp.iter().filter(|t| t.seq.enabled) {
        let s = &t.seq.shape;
        let r = PortRange {
            proto: s.proto,
            first: s.base,
            last: (u32::from(s.base) + u32::from(s.range) - 1) as u16,
        };
        ranges.push((r, format!("sequence '{}'", t.seq.name), t.line));
    }
    for e in encoded.iter().filter(|e| e.enc.enabled) {
        let a = e.enc.shape.alphabet;
        for proto in [L4Proto::Tcp, L4Proto::Udp] {
            if e.enc.allow.iter().any(|p| p.proto == proto) {
                let r = PortRange {
                    proto,
                    first: a.base,
                    last: a.last() as u16,
                };
                ranges.push((r, format!("encoded '{}'", e.enc.name), e.line));
            }
        }
    }
    let enabled_client = |name: &str| {
        clients
            .iter()
            .any(|c| c.client.enabled && c.client.name == name)
    };
    for k in knocks.iter().filter(|k| enabled_client(&k.knock.client)) {
        let a = crate::knock::authenticated::alphabet(k.knock.base);
        let r = PortRange {
            proto: k.knock.proto,
            first: a.base,
            last: a.last() as u16,
        };
        ranges.push((r, format!("client '{}'", k.knock.client), k.line));
    }
    // Ports a range may not cover, with their owner.
    let mut taken: Vec<(PortSpec, String)> = Vec::new();
    for q in seqs.iter().filter(|q| q.seq.enabled) {
        let who = format!("sequence '{}'", q.seq.name);
        for k in &q.seq.knocks {
            taken.push((*k, format!("a knock step of {who}")));
        }
        for p in &q.seq.ports {
            taken.push((*p, format!("a port that {who} guards")));
        }
    }
    for c in clients.iter().filter(|c| c.client.enabled) {
        for p in &c.client.allow {
            taken.push((*p, format!("a port that client '{}' guards", c.client.name)));
        }
    }
    for t in totp.iter().filter(|t| t.seq.enabled) {
        for p in &t.seq.ports {
            taken.push((*p, format!("a port that sequence '{}' guards", t.seq.name)));
        }
    }
    for e in encoded.iter().filter(|e| e.enc.enabled) {
        for p in &e.enc.allow {
            taken.push((*p, format!("a port that encoded '{}' guards", e.enc.name)));
        }
    }
    if clients.iter().any(|c| c.client.enabled) {
        taken.push((PortSpec::udp(main.spa_port), "spa_port".to_string()));
    }
    for (i, (r, who, line)) in ranges.iter().enumerate() {
        if let Some((o, other, _)) = ranges[..i].iter().find(|(o, _, _)| o.overlaps(r)) {
            let msg =
                format!("knock range {r} of {who} overlaps range {o} of {other}: move one of them");
            cx.push(*line, msg);
            continue;
        }
        if let Some((p, what)) = taken.iter().find(|(p, _)| r.contains(*p)) {
            let msg = format!("knock range {r} of {who} holds {p}, {what}: move the range");
            cx.push(*line, msg);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{parse_str, Action, Config};
    use crate::port::{L4Proto, PortRange, PortSpec};
    use core::time::Duration;

    const KEY7: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";
    const KEY8: &str = "CAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAg=";

    fn ok(text: &str) -> Config {
        parse_str("t", text).unwrap_or_else(|e| panic!("{e:#?}"))
    }

    fn errs(text: &str) -> Vec<(usize, String)> {
        match parse_str("t", text) {
            Ok(c) => panic!("expected errors, got {c:?}"),
            Err(e) => e.into_iter().map(|e| (e.line, e.message)).collect(),
        }
    }

    fn totp(extra: &str) -> String {
        format!("config sequence 'otp'\n\toption key '{KEY7}'\n\toption knock_base '40000'\n\tlist open 'tcp:22'\n{extra}")
    }

    const ENCODED: &str = "config encoded 'enc'\n\toption knock_base '45000'\n\tlist header 2\n\tlist header 0\n\tlist header 3\n\tlist footer 3\n\tlist footer 0\n\tlist footer 2\n\toption port_digits 4\n\tlist allow 'tcp:143'\n\tlist allow 'udp:53'\n";

    fn client(extra: &str) -> String {
        format!("config client 'laptop'\n\toption key '{KEY8}'\n\tlist allow 'tcp:2222'\n\toption knock_base '50000'\n{extra}")
    }

    #[test]
    fn totp_sequences() {
        let c = ok(&totp("\toption period 60\n\toption length 8\n\toption knock_range 4000\n\toption knock_proto udp\n"));
        assert!(c.sequences.is_empty(), "not a static sequence");
        let t = &c.knock_modes.totp[0];
        assert_eq!(t.name, "otp");
        assert_eq!(
            (t.shape.base, t.shape.range, t.shape.length, t.shape.period),
            (40000, 4000, 8, 60)
        );
        assert_eq!(t.shape.proto, L4Proto::Udp);
        assert_eq!(t.action, Action::Open);
        assert_eq!(t.duration, Duration::from_secs(30));
        let d = ok(&totp(""));
        let t = &d.knock_modes.totp[0];
        assert_eq!(
            (t.shape.range, t.shape.length, t.shape.period),
            (12288, 6, 30)
        );
        assert_eq!(d.guarded_ports(), [PortSpec::tcp(22)]);
        assert_eq!(
            d.capture_ranges(),
            [PortRange {
                proto: L4Proto::Tcp,
                first: 40000,
                last: 52287
            }]
        );
        assert!(ok(&totp("\toption enabled 0\n"))
            .capture_ranges()
            .is_empty());
    }

    #[test]
    fn totp_errors() {
        assert_eq!(
            errs(&format!("config sequence 's'\n\toption key '{KEY7}'\n\tlist open tcp:22\n")),
            [(1, "sequence 's' has a key but no knock_base: add option knock_base '40000' (the first port of its range)".to_string())]
        );
        let e = errs(&totp("\toption knock_range 40\n"));
        assert_eq!(e[0].0, 3);
        assert!(e[0].1.contains("only 6 ports; give at least 96"), "{e:?}");
        let e = errs(&totp("\toption knock_range 30000\n"));
        assert!(e[0].1.contains("runs past port 65535"), "{e:?}");
        let e = errs(&totp("\tlist knock tcp:1\n"));
        assert_eq!(e[0].0, 5);
        assert!(e[0].1.starts_with("unknown option 'knock'"), "{e:?}");
        assert_eq!(errs(&totp("\toption period 1\n"))[0].0, 5);
        assert_eq!(errs(&totp("\toption length 17\n"))[0].0, 5);
        assert_eq!(errs(&totp("\toption knock_proto icmp\n"))[0].0, 5);
    }

    #[test]
    fn weak_totp_sequences_are_refused_with_their_strength() {
        // The old defaults: 4 knocks in 1024 ports, 30.4 bits.
        let e = errs(&totp("\toption knock_range 1024\n\toption length 4\n"));
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].0, 5, "the knock_range line");
        assert_eq!(
            e[0].1,
            "sequence 'otp': a guessed sequence succeeds once in 2^30.4 tries (4 knocks x log2(256 ports per band) - log2(3 steps accepted) = 30.4 bits); at least 48 bits are needed: raise knock_range or length (the defaults, knock_range 12288 and length 6, give 64.4 bits)"
        );
        // Only a length: its line.
        let e = errs(&totp("\toption length 2\n"));
        assert_eq!(e[0].0, 5);
        assert!(e[0].1.contains("= 23.6 bits"), "{e:?}");
        // 48 bits and up pass: 8 knocks in 512 ports (6 bits each) is 46.4, refused;
        // 8 in 1024 (7 bits each) is 54.4, accepted.
        assert!(
            errs(&totp("\toption knock_range 512\n\toption length 8\n"))[0]
                .1
                .contains("= 46.4 bits")
        );
        let c = ok(&totp("\toption knock_range 1024\n\toption length 8\n"));
        assert!(c.knock_modes.totp[0].shape.strength_bits() >= crate::knock::totp::Bits::whole(48));
        // The defaults reach 64 bits.
        let d = ok(&totp(""));
        assert!(d.knock_modes.totp[0].shape.strength_bits() >= crate::knock::totp::Bits::whole(64));
    }

    #[test]
    fn encoded_profiles() {
        let c = ok(ENCODED);
        let e = &c.knock_modes.encoded[0];
        assert_eq!(e.shape.len(), 11);
        assert_eq!(e.shape.header, [2, 0, 3]);
        assert_eq!(e.allow, [PortSpec::tcp(143), PortSpec::udp(53)]);
        assert_eq!(c.guarded_ports(), [PortSpec::tcp(143), PortSpec::udp(53)]);
        assert_eq!(
            c.capture_ranges(),
            [
                PortRange {
                    proto: L4Proto::Tcp,
                    first: 45000,
                    last: 45019
                },
                PortRange {
                    proto: L4Proto::Udp,
                    first: 45000,
                    last: 45019
                }
            ]
        );
        let e = errs(&format!("{ENCODED}\tlist header 10\n"));
        assert_eq!(
            e,
            [(12, "header '10' is not a symbol from 0 to 9".to_string())]
        );
        let e = errs(&format!("{ENCODED}\tlist allow tcp:10000\n"));
        assert!(e[0].1.contains("more than port_digits 4 digits"), "{e:?}");
        let e = errs("config encoded 'x'\n\tlist allow tcp:22\n");
        assert_eq!(
            e,
            [(
                1,
                "encoded 'x' has no knock_base: add option knock_base '45000'".to_string()
            )]
        );
    }

    #[test]
    fn client_knock_ranges() {
        let c = ok(&client("\toption knock_proto udp\n"));
        let k = &c.knock_modes.clients[0];
        assert_eq!(
            (k.client.as_str(), k.base, k.proto),
            ("laptop", 50000, L4Proto::Udp)
        );
        assert_eq!(c.active_client_knocks().count(), 1);
        assert!(c.capture_ranges().contains(&PortRange {
            proto: L4Proto::Udp,
            first: 50000,
            last: 50511
        }));
        let e = errs(&format!("config client 'a'\n\toption key '{KEY8}'\n\tlist allow tcp:22\n\toption knock_proto udp\n"));
        assert_eq!(
            e,
            [(4, "option knock_proto needs option knock_base".to_string())]
        );
        assert_eq!(errs(&client("").replace("'50000'", "'65100'"))[0].0, 4);
        // Authenticated knocks need the native key (a fwknop-only client has none).
        const FK: &str = "DyXRecbCiglrL5bp+oK2zB0ErwCQ/1GIU2EkP6N9Y70=";
        const FH: &str =
            "dUuyo02GNrV4WraUMCVPwiERqhS0ROLV2upc4DQbTNePa498Yy7qQxrsK+cJVrv1elzJnBQS7lyy5zhL8BUHDA==";
        let e = errs(&format!(
            "config client 'f'\n\tlist allow tcp:22\n\toption knock_base 50000\n\toption fwknop_key '{FK}'\n\toption fwknop_hmac_key '{FH}'\n"
        ));
        assert!(
            e.iter()
                .any(|(line, m)| *line == 3 && m.contains("use the client's native key")),
            "{e:?}"
        );
        // A disabled client's range listens nowhere.
        assert!(ok(&client("\toption enabled 0\n"))
            .knock_ranges()
            .is_empty());
    }

    #[test]
    fn ranges_stay_apart() {
        // TOTP range over the encoded range.
        let text = format!("{}{ENCODED}", totp("").replace("40000", "44900"));
        let e = errs(&text);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].1.starts_with("knock range tcp:45000-45019 of encoded 'enc' overlaps range tcp:44900-57187 of sequence 'otp'"), "{e:?}");
        // A range holding a static knock step, a guarded port, the SPA port.
        let text = format!(
            "{}config sequence 's'\n\tlist knock tcp:40005\n\tlist open tcp:23\n",
            totp("")
        );
        let e = errs(&text);
        assert!(
            e[0].1
                .contains("holds tcp:40005, a knock step of sequence 's'"),
            "{e:?}"
        );
        let e = errs(&totp("").replace("tcp:22", "tcp:40022"));
        assert!(
            e[0].1
                .contains("holds tcp:40022, a port that sequence 'otp' guards"),
            "{e:?}"
        );
        let e = errs(&client("\toption knock_proto udp\n").replace("50000", "62000"));
        assert!(e[0].1.contains("holds udp:62201, spa_port"), "{e:?}");
        // Side by side is fine.
        ok(&format!(
            "{}{ENCODED}{}",
            totp("").replace("40000", "20000"),
            client("")
        ));
    }
}
